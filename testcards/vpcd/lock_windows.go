package vpcd

import (
	"context"
	"errors"
)

// LockReaders: vsmartcard-vpcd is a pcsc-lite driver; there is no vpcd to
// share on Windows.
func LockReaders(context.Context) (func(), error) {
	return nil, errors.New("vpcd readers exist only with pcsc-lite (Linux, macOS)")
}
