//go:build unix

package agent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// listenControl opens the admin socket: a Unix socket in a directory only
// the agent's user can enter, whose every connection is also checked by
// the peer's credentials (root or the agent's own user).
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		// A socket left by an agent that died; a live agent would have
		// failed on the API port first.
		os.Remove(path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	return &peerCheckedListener{UnixListener: ln.(*net.UnixListener)}, nil
}

type peerCheckedListener struct {
	*net.UnixListener
}

// Accept drops connections from other users before any byte is read.
func (l *peerCheckedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && (uid == 0 || uid == os.Geteuid()) {
			return c, nil
		}
		c.Close()
	}
}
