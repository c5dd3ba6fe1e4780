package pkcs11

// What the PIV backend asks of PC/SC around piv-go, over connections of its
// own in shared mode (github.com/ebfe/scard, as cardreader uses; only
// Connect, Transmit and Disconnect, never GetStatusChange, which
// cardreader's monitor must own alone).

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
	card, release, err := pivConnect(reader)
	if err != nil {
		return err
	}
	defer release(scard.LeaveCard)
	resp, err := card.Transmit(pivSelectCommand)
	if err != nil {
		return pivPCSCError(err)
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

// pivResetCard resets the card in reader once piv-go has let go of it.
//
// piv-go's Close leaves the card powered and untouched (SCARD_LEAVE_CARD),
// and the card keeps its PIN verified state for as long as it stays
// powered: with pcscd about 0.5 s, until it powers an unused card off, and
// with services that do not power cards down, indefinitely. Any program
// connecting meanwhile could use the authentication key without the PIN,
// so every operation that presented the PIN ends with a reset. Shared mode,
// so that a program that slipped in between is reset too (it gets
// SCARD_W_RESET_CARD and reconnects), rather than let it keep the state.
func pivResetCard(reader string) error {
	_, release, err := pivConnect(reader)
	if err != nil {
		return err
	}
	return pivPCSCError(release(scard.ResetCard))
}

// pivConnect connects to the card in reader in shared mode, with a PC/SC
// context of its own; release disconnects with disp, releases the context
// and returns the disconnection's error.
func pivConnect(reader string) (card *scard.Card, release func(scard.Disposition) error, err error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, nil, fmt.Errorf("PC/SC: %w", err)
	}
	card, err = sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		sc.Release()
		return nil, nil, pivPCSCError(err)
	}
	release = func(disp scard.Disposition) error {
		defer sc.Release()
		return card.Disconnect(disp)
	}
	return card, release, nil
}

func pivPCSCError(err error) error {
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
