// Package buildinfo owns what a binary knows of its own build: the version
// it was released as (-ldflags), else what the Go toolchain stamped into it
// (module version, VCS revision and time), so `seckill version` and the
// seckill_build_info metric say which build runs.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version is set at link time:
//
//	go build -ldflags "-X github.com/seckill/seckill/internal/buildinfo.version=v1.2.3" ./cmd/seckill
//
// Empty means "not a release build": Read falls back to the module version.
var version string

// Info describes one build.
type Info struct {
	// Version is the -ldflags version, else the main module's version
	// ("(devel)" for a build from a checkout), else "unknown".
	Version string
	// Revision is the VCS commit the build was made from ("" if the
	// toolchain did not stamp it, e.g. go run or a copy without .git);
	// suffixed "+dirty" when the tree had local changes.
	Revision string
	// Time is the commit's time (RFC 3339), "" if unknown.
	Time string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the build information of the running binary.
func Read() Info {
	info := Info{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = "unknown"
		}
		return info
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "unknown"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "" {
		info.Revision += "+dirty"
	}
	return info
}

// String is the one-line form `seckill version` prints.
func (i Info) String() string {
	s := "seckill " + i.Version
	if i.Revision != "" {
		s += " (" + i.Revision
		if i.Time != "" {
			s += ", " + i.Time
		}
		s += ")"
	}
	return s + " " + i.GoVersion
}
