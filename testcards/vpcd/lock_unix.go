//go:build unix

package vpcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockReaders takes the machine-wide lock on vpcd's readers. vpcd serves
// one card per reader and queues any second client silently, so two
// emulators (the sim daemon and a test, or two tests) must never share the
// readers. The lock is an flock: it dies with its process, so a crashed
// holder never wedges the next one.
func LockReaders(ctx context.Context) (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), "dmpagent-vpcd.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("vpcd readers are held by another process (a running `dmpagent sim`? stop it with `dmpagent sim down`): %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
