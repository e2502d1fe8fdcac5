//go:build unix && !linux

package localsvc

import "syscall"

// sysProcAttr puts the child in its own process group. Only Linux has a parent
// death signal, so elsewhere a crashed parent may leave its servers running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// groupAlive reports whether process group pgid still has a member.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

// descendants would list the descendants of pid; without /proc we do not
// look, and Kill reaches only the process group.
func descendants(pid int) []int { return nil }

// processAlive reports whether pid is a live process.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// servesDataDir reports whether pid may be a server working in dataDir;
// without /proc we cannot tell, so any live process counts.
func servesDataDir(pid int, dataDir string) bool { return processAlive(pid) }
