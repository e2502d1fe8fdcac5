package localsvc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in its own process group and has the kernel kill
// it when we die. Go applies Pdeathsig after switching to cred, which matters:
// the kernel clears the death signal when the credentials change.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// process. The Go runtime only ends threads of goroutines that exit while
// locked with runtime.LockOSThread, so do not start servers from such a
// goroutine.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: cred,
	}
}

// groupAlive reports whether process group pgid has a member that is not a
// zombie. Orphaned members are reaped by PID 1, which in some containers never
// does it, so "kill(-pgid, 0) succeeds" is not enough.
func groupAlive(pgid int) bool {
	for _, st := range procStats() {
		if st.pgrp == pgid && st.live() {
			return true
		}
	}
	return false
}

// descendants lists the live descendants of pid. Postgres puts every backend
// in a session of its own, so the process group does not find them.
func descendants(pid int) []int {
	children := make(map[int][]int)
	for _, st := range procStats() {
		if st.live() {
			children[st.ppid] = append(children[st.ppid], st.pid)
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// stat is what we need of /proc/<pid>/stat.
type stat struct {
	pid, ppid, pgrp int
	state           string
}

// live reports whether the process runs: zombies have exited (and released
// their memory) but wait for a parent to reap them.
func (s stat) live() bool { return s.state != "Z" && s.state != "X" }

// procStats reads the stat of every process.
func procStats() []stat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []stat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procStat(pid); ok {
			out = append(out, st)
		}
	}
	return out
}

// procStat reads /proc/<pid>/stat.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	// The command name in parentheses may contain spaces; fields follow the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return stat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return stat{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0]}, err1 == nil && err2 == nil
}

// processAlive reports whether pid is a live (non-zombie) process.
func processAlive(pid int) bool {
	st, ok := procStat(pid)
	return ok && st.live()
}

// servesDataDir reports whether pid is a live process working in dataDir, as
// a postmaster and its backends do. A postmaster.pid left by a killed server
// may name a pid that now belongs to something else entirely.
func servesDataDir(pid int, dataDir string) bool {
	if !processAlive(pid) {
		return false
	}
	cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
	if err != nil {
		// Not ours to inspect: rather keep its lock than break a live server.
		return true
	}
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = real
	}
	return cwd == dataDir
}
