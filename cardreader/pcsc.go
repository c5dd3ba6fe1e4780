package cardreader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ebfe/scard"
)

// This file and its per-OS companions are the only ones that talk PC/SC.
//
// One trap of github.com/ebfe/scard shapes the rest: on Linux and macOS its
// GetStatusChange records reader names in a package-level map without a
// lock, so two goroutines of one process inside GetStatusChange at once can
// crash the process ("concurrent map writes"). The Monitor is therefore the
// only caller of GetStatusChange, and only one Monitor runs per process
// (statusOwner); card operations never wait on status changes.

// pnpReader is the pseudo-reader whose state changes when a reader is
// plugged or unplugged (PC/SC part 5, pcsc-lite and Windows; not macOS).
const pnpReader = `\\?PnP?\Notification`

// Errors card operations return; each wraps the PC/SC error that caused it,
// so errors.Is works with both these and scard's codes.
var (
	// ErrNoService: the PC/SC service is not running (pcscd stopped or
	// restarting; Windows stops its smart-card service with the last
	// reader).
	ErrNoService = errors.New("cardreader: PC/SC service unavailable")
	// ErrNoReader: no reader of that name (unplugged, or never there).
	ErrNoReader = errors.New("cardreader: no such reader")
	// ErrNoCard: the reader is empty.
	ErrNoCard = errors.New("cardreader: no card in the reader")
	// ErrCardRemoved: the card was pulled while in use, or stopped
	// answering in the middle of an exchange, which is how a pulled card
	// looks until the reader notices (vpcd answers nothing at all).
	ErrCardRemoved = errors.New("cardreader: card removed")
	// ErrCardBusy: another application holds the card exclusively.
	ErrCardBusy = errors.New("cardreader: card in exclusive use by another application")
	// ErrCardMute: the card gives no usable answer to reset.
	ErrCardMute = errors.New("cardreader: card does not answer")
	// ErrMonitorRunning: a second Monitor was started in this process.
	ErrMonitorRunning = errors.New("cardreader: a monitor already runs in this process")
)

// pcscError turns a PC/SC error into one of the errors above (wrapping
// both), or returns it wrapped with the operation when none fits.
func pcscError(op string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case isServiceGone(err):
		kind = ErrNoService
	case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable),
		errors.Is(err, scard.ErrNoReadersAvailable):
		kind = ErrNoReader
	case errors.Is(err, scard.ErrNoSmartcard):
		kind = ErrNoCard
	case errors.Is(err, scard.ErrRemovedCard):
		kind = ErrCardRemoved
	case errors.Is(err, scard.ErrSharingViolation):
		kind = ErrCardBusy
	case errors.Is(err, scard.ErrUnresponsiveCard), errors.Is(err, scard.ErrUnpoweredCard),
		errors.Is(err, scard.ErrUnsupportedCard):
		kind = ErrCardMute
	default:
		return fmt.Errorf("cardreader: %s: %w", op, err)
	}
	if errors.Is(err, kind) { // already ours
		return err
	}
	return fmt.Errorf("%w (%s: %w)", kind, op, err)
}

// isServiceGone reports the errors after which a PC/SC context is dead and
// only a new one can help: the service stopped or restarted (pcsc-lite
// answers a context of the dead pcscd with an invalid handle), or the
// transport to it broke.
func isServiceGone(err error) bool {
	return errors.Is(err, scard.ErrNoService) || errors.Is(err, scard.ErrServiceStopped) ||
		errors.Is(err, scard.ErrInvalidHandle) || errors.Is(err, scard.ErrShutdown) ||
		errors.Is(err, scard.ErrCommError) || errors.Is(err, scard.ErrInternalError)
}

// statusContext is what the Monitor needs of a PC/SC context; a seam so the
// monitor's recovery from errors that pcsc-lite never produces on demand
// (Windows' SCARD_E_SERVICE_STOPPED, for one) can be tested. The real
// implementation is *scard.Context.
type statusContext interface {
	ListReaders() ([]string, error)
	GetStatusChange(states []scard.ReaderState, timeout time.Duration) error
	Cancel() error
	Release() error
}

func establishSystem() (statusContext, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// listReaders returns the reader names, treating "no readers" as the empty
// list it is.
func listReaders(c statusContext) ([]string, error) {
	rs, err := c.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	return rs, err
}

// statusOwner makes sure only one Monitor per process calls
// GetStatusChange (see the top of this file).
var statusOwner = make(chan struct{}, 1)

func claimStatus() (release func(), err error) {
	select {
	case statusOwner <- struct{}{}:
		return func() { <-statusOwner }, nil
	default:
		return nil, ErrMonitorRunning
	}
}

// Card is a connection to the card in one reader, in shared mode and inside
// a transaction: the card is ours only for as long as the function given to
// WithCard runs, so other software on the desk (the practice software
// reading the Vitale card itself) gets it right after.
type Card struct {
	reader string
	atr    []byte
	h      *scard.Card
}

// Reader is the name of the reader the card is in.
func (c *Card) Reader() string { return c.reader }

// ATR is the card's answer to reset as the reader reported it on connect.
func (c *Card) ATR() []byte { return append([]byte(nil), c.atr...) }

// Transmit sends one command APDU and returns the response with its status
// word.
func (c *Card) Transmit(cmd []byte) ([]byte, error) {
	resp, err := c.h.Transmit(cmd)
	if err != nil {
		return nil, pcscError("transmit", err)
	}
	if len(resp) == 0 {
		return nil, fmt.Errorf("%w (empty response: the card stopped answering)", ErrCardRemoved)
	}
	return resp, nil
}

// WithCard connects to the card in reader, begins a transaction, runs fn and
// ends the transaction and the connection, leaving the card powered and
// untouched for the next application. If another application reset the card
// before fn could start, it reconnects once; a card reset or pulled while fn
// runs gives fn's error (ErrCardRemoved for a pulled card) and is not
// retried, since fn may not be safe to repeat.
//
// A card that does not answer cannot be interrupted (PC/SC has no way to
// cancel a transmission); when ctx ends first, WithCard returns ctx's error
// and the connection is closed in the background once the card or the
// reader gives up.
func WithCard(ctx context.Context, reader string, fn func(*Card) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- withCard(reader, fn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("cardreader: %s: %w", reader, ctx.Err())
	}
}

// withCard is WithCard without the context: it returns when the card does.
func withCard(reader string, fn func(*Card) error) error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return pcscError("establish context", err)
	}
	defer sc.Release()
	h, err := sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		return pcscError("connect", err)
	}
	defer h.Disconnect(scard.LeaveCard)
	if err := beginTransaction(h); err != nil {
		return err
	}
	defer h.EndTransaction(scard.LeaveCard)
	st, err := h.Status()
	if err != nil {
		return pcscError("status", err)
	}
	return fn(&Card{reader: reader, atr: st.Atr, h: h})
}

// beginTransaction begins a transaction, reconnecting once when another
// application has reset the card since we connected: the reset is theirs,
// the card is still there.
func beginTransaction(h *scard.Card) error {
	err := h.BeginTransaction()
	if errors.Is(err, scard.ErrResetCard) {
		if err = h.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard); err != nil {
			return pcscError("reconnect", err)
		}
		err = h.BeginTransaction()
	}
	return pcscError("begin transaction", err)
}
