//go:build !linux

package vpcd

import (
	"io"
	"net"
)

// quickAckReader: TCP_QUICKACK is Linux-only, and vpcd runs on Linux.
func quickAckReader(c net.Conn) io.Reader { return c }
