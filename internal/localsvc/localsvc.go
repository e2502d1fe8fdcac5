// Package localsvc starts real redis-server and Postgres server processes as
// children of the calling process, listening on loopback only, with their data
// under a directory. `seckill dev` uses it to run everything on one machine and
// internal/testenv uses it so that tests talk to the real servers rather than
// to mocks (DESIGN.md: "nothing is mocked where the real part can run here").
//
// The children die with us: on Linux each one gets SIGKILL from the kernel when
// the process that started it goes away (PR_SET_PDEATHSIG), so a crashed test
// binary or a killed `seckill dev` does not leave servers behind. Each child
// also runs in its own process group, so Ctrl-C in a terminal reaches only the
// Go process, which then stops the servers in its own order, and Kill can take
// down a server together with the helper processes it forked.
package localsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FindBinary returns the absolute path of the executable name. It looks in
// PATH first, then in /usr/lib/postgresql/*/bin (newest major version first,
// because Debian keeps the Postgres server binaries there, off PATH), then in
// /usr/bin, /usr/sbin and /usr/local/bin (a PATH stripped down by a service
// manager or CI may miss them). The error says which package to install.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
		return p, nil
	}
	for _, dir := range searchDirs() {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/lib/postgresql/*/bin, /usr/bin, /usr/sbin or /usr/local/bin: %s",
		name, installHint(name))
}

// installHint tells how to get name on Debian, the platform we run CI on.
func installHint(name string) string {
	switch name {
	case "redis-server", "redis-cli":
		return "install it with `apt-get install -y redis-server`"
	case "postgres", "postmaster", "initdb", "pg_ctl", "psql", "pg_isready", "pg_dump":
		return "install it with `apt-get install -y postgresql`"
	default:
		return "install the package that provides it"
	}
}

// searchDirs lists the fallback directories of FindBinary in search order.
func searchDirs() []string {
	var dirs []string
	pgBins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major first: a machine may carry several versions side by side.
	slices.SortFunc(pgBins, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	dirs = append(dirs, pgBins...)
	return append(dirs, "/usr/bin", "/usr/sbin", "/usr/local/bin")
}

// compareVersions compares dotted version strings such as "9.6" and "15"
// numerically; non-numeric parts compare as zero.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// freePort asks the kernel for a free TCP port on loopback. Another process
// may take it before our server binds it; the Start functions detect that and
// retry with a new port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// maxStartAttempts bounds the retries when a port picked by freePort turns out
// to be taken by the time the server binds it.
const maxStartAttempts = 5

// errPortTaken reports that the server could not bind its port, or that
// something other than our child answers on it.
var errPortTaken = errors.New("port already in use")

// proc is one child server process.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	logFrom int64         // size of the log before this process started
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // what Wait returned; read it only after done is closed
}

// startProc starts bin with args in dir, appending its stdout and stderr to
// logPath. cred, when not nil, is the user to run it as.
func startProc(bin string, args []string, dir, logPath string, cred *syscall.Credential) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child gets its own copy of the descriptor, so ours can close now.
	defer f.Close()
	from, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: cmd, logPath: logPath, logFrom: from, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is our environment without the PG* variables: a PGDATA or PGPORT
// meant for the user's psql must not redirect initdb or the server.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// untilExit returns a context that is canceled when ctx is or when the process
// exits, so that a probe hanging on a port held by someone else ends as soon
// as our server has given up.
func (p *proc) untilExit(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the end of what this process wrote to its log, for errors.
func (p *proc) logTail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 4 << 10
	from := p.logFrom
	if fi, err := f.Stat(); err == nil && fi.Size()-from > maxTail {
		from = fi.Size() - maxTail
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// exitError describes why the process ended before it was ready.
func (p *proc) exitError(name string) error {
	tail := p.logTail()
	if strings.Contains(tail, "Address already in use") {
		return errPortTaken
	}
	return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", name, p.err, p.logPath, tail)
}

// stop sends sig to the process (the server then stops its own helpers) and
// waits up to timeout for it to exit; after that it kills the whole group.
// A process that already exited is not an error: Stop after Kill is fine.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) && !ee.Exited() {
			return nil // ended by a signal, which is what we asked for
		}
		if p.err != nil {
			return fmt.Errorf("exit: %w; log %s:\n%s", p.err, p.logPath, p.logTail())
		}
		return nil
	case <-timer.C:
		p.kill()
		return fmt.Errorf("did not stop within %s after %v, killed it", timeout, sig)
	}
}

// kill ends the process and everything it started with SIGKILL, and waits
// until none of them runs, so that a restart does not race with dying
// helpers: Postgres refuses to start while old backends still hold its shared
// memory, and they would otherwise linger until they notice the postmaster died.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	// Stopped, the server forks no more children while we collect them.
	// Process.Signal cannot hit a reused pid, unlike a plain kill(2).
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	pids := descendants(p.pid())
	pgid := p.pid() // Setpgid made the leader's pid the group id
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.done
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (groupAlive(pgid) || slices.ContainsFunc(pids, processAlive)) {
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStep is how often the Start functions poll a starting server.
const waitStep = 10 * time.Millisecond

// readFirstLine returns the first line of a file, trimmed.
func readFirstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan()
	return strings.TrimSpace(s.Text()), s.Err()
}
