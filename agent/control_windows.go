package agent

import (
	"net"
	"os"
	"path/filepath"
)

// listenControl opens the admin socket. Windows has AF_UNIX sockets since
// Windows 10 1803 but no peer credentials on them: the socket lives in the
// agent's data directory, whose ACL (set by the installer) admits only
// SYSTEM and Administrators, which is the same check made by the file
// system instead of by the socket.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	return net.Listen("unix", path)
}
