//go:build unix && !linux && !darwin && !freebsd

package agent

import (
	"errors"
	"net"
)

var errNoPeerCred = errors.New("peer credentials unavailable on this system")

// peerUID: no peer credentials here, so the admin socket admits nobody.
func peerUID(*net.UnixConn) (int, error) { return -1, errNoPeerCred }
