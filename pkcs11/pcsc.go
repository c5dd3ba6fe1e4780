package pkcs11

// What the backends ask of PC/SC themselves, over connections of their own
// in shared mode (github.com/ebfe/scard, as cardreader uses; only Connect,
// Transmit and Disconnect, never GetStatusChange, which cardreader's
// monitor must own alone): the PIV backend's check before piv-go opens the
// card, and the reset that makes a card forget its PIN, which both
// backends need (see resetCard).

import (
	"errors"
	"fmt"

	"github.com/ebfe/scard"
)

// pivSelectCommand is the SELECT piv-go sends: the PIV RID, no Le.
var pivSelectCommand = []byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08}

// pivSelect checks that the card in reader answers a PIV SELECT, so that
// piv-go's own SELECT does not fail (see pivToken.open for why that
// matters). A missing card, a vanished reader and a card without PIV all
// come back as ErrCardRemoved: for a token, its PIV card is gone.
func pivSelect(reader string) error {
	card, release, err := pcscConnect(reader)
	if err != nil {
		return err
	}
	defer release(scard.LeaveCard)
	resp, err := card.Transmit(pivSelectCommand)
	if err != nil {
		return pcscError(err)
	}
	if len(resp) < 2 {
		// vpcd answers nothing for a card pulled mid-APDU.
		return fmt.Errorf("%w: the card stopped answering", ErrCardRemoved)
	}
	sw1, sw2 := resp[len(resp)-2], resp[len(resp)-1]
	if (sw1 == 0x90 && sw2 == 0x00) || sw1 == 0x61 {
		return nil
	}
	return fmt.Errorf("%w: the card in the reader has no PIV application (SELECT answered %02X%02X)", ErrCardRemoved, sw1, sw2)
}

// pivPINRetries asks a PIV card how many PIN tries remain: VERIFY with no
// data answers 63Cx (x tries) without spending one, or 9000 when the PIN
// is verified (SP 800-73-4 3.2.1). ok is false for a card that is not PIV
// or does not say.
func pivPINRetries(reader string) (n int, ok bool) {
	card, release, err := pcscConnect(reader)
	if err != nil {
		return 0, false
	}
	defer release(scard.LeaveCard)
	if resp, err := card.Transmit(pivSelectCommand); err != nil || len(resp) < 2 || (resp[len(resp)-2] != 0x90 && resp[len(resp)-2] != 0x61) {
		return 0, false
	}
	resp, err := card.Transmit([]byte{0x00, 0x20, 0x00, 0x80})
	if err != nil || len(resp) != 2 || resp[0] != 0x63 || resp[1]&0xF0 != 0xC0 {
		return 0, false
	}
	return int(resp[1] & 0x0F), true
}

// resetCard resets the card in reader, so that it forgets its verified PIN.
//
// A card keeps its PIN verified for as long as it stays powered: with pcscd
// about 0.5 s after the last program lets go of it, and indefinitely while
// one keeps a connection (OpenSC does, for as long as its module is
// loaded) or with services that do not power cards down. piv-go's Close
// leaves the card as it is, and OpenSC's PIV logout sends nothing. Any
// program connecting meanwhile could use the authentication key without
// the PIN, so every PIV operation that presented the PIN, and every logout
// through a module, ends with a reset. Shared mode, so that a program that
// slipped in between is reset too (it gets SCARD_W_RESET_CARD and
// reconnects) rather than keep the state.
func resetCard(reader string) error {
	_, release, err := pcscConnect(reader)
	if err != nil {
		return err
	}
	return pcscError(release(scard.ResetCard))
}

// pcscConnect connects to the card in reader in shared mode, with a PC/SC
// context of its own; release disconnects with disp, releases the context
// and returns the disconnection's error.
func pcscConnect(reader string) (card *scard.Card, release func(scard.Disposition) error, err error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, nil, fmt.Errorf("PC/SC: %w", err)
	}
	card, err = sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		sc.Release()
		return nil, nil, pcscError(err)
	}
	release = func(disp scard.Disposition) error {
		defer sc.Release()
		return card.Disconnect(disp)
	}
	return card, release, nil
}

func pcscError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, scard.ErrNoSmartcard), errors.Is(err, scard.ErrRemovedCard),
		errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable),
		errors.Is(err, scard.ErrNoReadersAvailable), errors.Is(err, scard.ErrUnpoweredCard):
		return fmt.Errorf("%w (%w)", ErrCardRemoved, err)
	case errors.Is(err, scard.ErrSharingViolation):
		return fmt.Errorf("%w (%w)", ErrCardBusy, err)
	}
	return fmt.Errorf("PC/SC: %w", err)
}
