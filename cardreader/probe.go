package cardreader

import (
	"errors"
	"fmt"

	"github.com/ebfe/scard"
)

// probeCard confirms what card's ATR suggested by selecting ProbeAID, in one
// shared-mode transaction; a PIV token whose authentication certificate is a
// CPS one becomes a test CPS. It blocks until the card answers or is gone; the
// monitor bounds the wait. The result is a new CardInfo: card confirmed
// (Probed), or unknown with the reason. lost reports a card that stopped
// answering mid-exchange, which is what a pulled card looks like before
// pcscd notices it is gone: the monitor then waits a moment for the removal
// before reporting the card as one that stopped answering.
func probeCard(reader string, card *CardInfo) (_ *CardInfo, lost bool) {
	var sw SW
	var cps bool
	err := withCard(reader, func(c *Card) error {
		cmd := append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(card.ProbeAID))}, card.ProbeAID...)
		resp, err := c.Transmit(append(cmd, 0x00))
		if err != nil {
			return err
		}
		if len(resp) < 2 || !validSW1(resp[len(resp)-2]) {
			return errGarbage
		}
		sw = SW(resp[len(resp)-2])<<8 | SW(resp[len(resp)-1])
		if card.Type == TypePIV && (sw == SWOK || sw&0xFF00 == 0x6100) {
			// A PIV token may be provisioned as a test CPS: its public
			// authentication certificate says so. Anything else it
			// holds leaves it a plain PIV card.
			_, err := readPIVIdentity(c.Transmit)
			cps = err == nil
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNoCard):
		return unknownCard(card, "card removed during identification"), false
	case errors.Is(err, ErrCardRemoved), errors.Is(err, scard.ErrNotTransacted), errors.Is(err, scard.ErrCommError):
		return unknownCard(card, "card stopped answering during identification"), true
	case errors.Is(err, ErrCardBusy):
		return unknownCard(card, "card in exclusive use by another application; not probed"), false
	case errors.Is(err, errGarbage):
		return unknownCard(card, "card answered garbage to the identification probe"), false
	case err != nil:
		return unknownCard(card, "identification probe failed: "+err.Error()), false
	case sw != SWOK && sw&0xFF00 != 0x6100:
		return unknownCard(card, fmt.Sprintf("card refused SELECT of application %X (%s)", card.ProbeAID, sw)), false
	}
	out := *card
	out.NeedsProbe = false
	out.Probed = true
	if cps {
		out.Type, out.Model = TypeCPS, ModelTestCPS
		out.Name += " (test CPS)"
		out.Description = "PIV token provisioned as a test CPS: " + out.Description
	}
	return &out, false
}

// validSW1 reports whether b can start a status word: ISO/IEC 7816-4 uses
// 61 to 6F and 90 to 9F.
func validSW1(b byte) bool { return (b >= 0x61 && b <= 0x6F) || (b >= 0x90 && b <= 0x9F) }

var errGarbage = errors.New("cardreader: response is not an APDU response")
