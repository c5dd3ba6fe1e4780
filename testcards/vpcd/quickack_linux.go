package vpcd

import (
	"io"
	"net"
	"syscall"
)

// quickAckReader re-arms TCP_QUICKACK before every read. vpcd writes each
// frame's length and payload separately; with Nagle on its side and delayed
// ACKs on ours, every APDU would otherwise stall ~40 ms. Linux clears the
// option after use, hence once per read.
func quickAckReader(c net.Conn) io.Reader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return readerFunc(func(p []byte) (int, error) {
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
		return c.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
