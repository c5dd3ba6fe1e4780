package vpcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ebfe/scard"
)

// WaitPCSC waits until pcscd reports reader n with a card whose ATR is atr
// (present) or with no card (absent, atr ignored). It lets `sim insert` and
// tests return only once every PC/SC client can see the change.
func WaitPCSC(ctx context.Context, n int, present bool, atr []byte) error {
	reader := ReaderName(n)
	for {
		err := waitOnce(ctx, reader, present, atr)
		if err == nil || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("pcscd did not report %s %s: %w", reader, want(present), err)
			}
			return nil
		}
		// pcscd may be restarting or not yet listing the reader: retry
		// until the deadline rather than fail on the first refusal.
		select {
		case <-ctx.Done():
			return fmt.Errorf("pcscd did not report %s %s: %w", reader, want(present), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func want(present bool) string {
	if present {
		return "with the card"
	}
	return "empty"
}

func waitOnce(ctx context.Context, reader string, present bool, atr []byte) error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer sc.Release()
	// GetStatusChange blocks inside pcscd; Cancel is the only way out when
	// the caller gives up.
	stop := context.AfterFunc(ctx, func() { _ = sc.Cancel() })
	defer stop()
	rs := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	for {
		if err := sc.GetStatusChange(rs, -1); err != nil {
			if errors.Is(err, scard.ErrCancelled) && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		st := rs[0].EventState
		if st&scard.StateUnknown != 0 {
			return fmt.Errorf("no reader %q", reader)
		}
		if present && st&scard.StatePresent != 0 && bytes.Equal(rs[0].Atr, atr) {
			return nil
		}
		if !present && st&scard.StateEmpty != 0 {
			return nil
		}
		rs[0].CurrentState = st &^ scard.StateChanged
	}
}
