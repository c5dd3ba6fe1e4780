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

// waitOnce polls pcscd until the reader shows the wanted state. It does not
// use SCardGetStatusChange on purpose: ebfe/scard's unix GetStatusChange
// writes a package-level map without a lock, so two goroutines of one
// process waiting at once can crash the process, and the monitor under test
// (cardreader) is the one that must own that call. Connecting in shared mode
// to read the card's status costs pcscd a few round trips per poll, which
// only tests and the simulator pay.
func waitOnce(ctx context.Context, reader string, present bool, atr []byte) error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer sc.Release()
	for {
		ok, err := readerIs(sc, reader, present, atr)
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// pollInterval is far below pcscd's own 400 ms polling of vpcd, so it adds
// little to the time a test waits.
const pollInterval = 10 * time.Millisecond

// readerIs reports whether reader holds a card with the given ATR (present)
// or is empty (!present).
func readerIs(sc *scard.Context, reader string, present bool, atr []byte) (bool, error) {
	card, err := sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	switch {
	case errors.Is(err, scard.ErrNoSmartcard), errors.Is(err, scard.ErrRemovedCard):
		return !present, nil
	case errors.Is(err, scard.ErrUnresponsiveCard), errors.Is(err, scard.ErrUnpoweredCard):
		// A card is in but gives no usable answer to reset: present, with
		// no ATR to compare.
		return present && atr == nil, nil
	case errors.Is(err, scard.ErrSharingViolation):
		// Someone holds it exclusively: a card is there, ATR unknown.
		return present && atr == nil, nil
	case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable):
		return false, fmt.Errorf("no reader %q", reader)
	case err != nil:
		return false, err
	}
	defer card.Disconnect(scard.LeaveCard)
	st, err := card.Status()
	if err != nil {
		if errors.Is(err, scard.ErrRemovedCard) || errors.Is(err, scard.ErrResetCard) {
			return false, nil // changing under us: poll again
		}
		return false, err
	}
	return present && (atr == nil || bytes.Equal(st.Atr, atr)), nil
}
