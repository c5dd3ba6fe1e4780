//go:build !windows

package sim

import (
	"os/exec"
	"syscall"
)

// detach starts the daemon in a session of its own, so closing the terminal
// that ran `sim up` (SIGHUP) or a Ctrl-C there does not take the cards out.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
