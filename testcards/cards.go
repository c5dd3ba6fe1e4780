// Package testcards holds the simulated cards testers and vendors use in
// place of real ANS test cards: emulated CPS cards (a PIV applet carrying a
// CPS identity from the test PKI) and Vitale 2 cards, plugged into a real
// pcscd through vsmartcard-vpcd.
//
// Sub-packages: apdu (command/response and BER-TLV codec), vpcd (the
// transport to pcscd), piv and vitale (the card applications), pki (the
// IGC-Santé look-alike test PKI), persona (the fixed identities), sim (the
// simulator daemon behind `dmpagent sim`) and cardtest (helpers for Go tests
// on the real PC/SC stack).
package testcards

import (
	"fmt"
	"strconv"

	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vitale"
)

// Test card secrets, as on ANS test cards.
const (
	PIN = "1234"
	PUK = "12345678"
)

// NewCPS returns a fresh emulated test CPS for the named professional
// persona: 9A authentication key (PIN once), 9C signature key (PIN before
// every use, as on a real CPS), 9E card authentication key (no PIN).
func NewCPS(p *pki.PKI, name string) (*piv.Card, error) {
	pro, err := persona.LookupProfessional(name)
	if err != nil {
		return nil, err
	}
	keys, err := p.Card(name)
	if err != nil {
		return nil, err
	}
	return piv.New(piv.Config{
		PIN:    PIN,
		PUK:    PUK,
		Serial: serialOf(pro.IDNat),
		Keys: map[byte]piv.Key{
			piv.SlotAuthentication:     {Signer: keys.Auth.Key, Cert: keys.Auth.Cert, PINPolicy: piv.PINOnce},
			piv.SlotSignature:          {Signer: keys.Sign.Key, Cert: keys.Sign.Cert, PINPolicy: piv.PINAlways},
			piv.SlotCardAuthentication: {Signer: keys.CardAuth.Key, Cert: keys.CardAuth.Cert, PINPolicy: piv.PINNever},
		},
	})
}

// NewVitale returns an emulated Vitale 2 card for the named patient persona.
func NewVitale(name string) (*vitale.Card, error) {
	pat, err := persona.LookupPatient(name)
	if err != nil {
		return nil, err
	}
	return vitale.New(pat), nil
}

// serialOf derives the card serial from the idNat, so each persona's card
// keeps the same serial (and PKCS#11 token serial) across runs.
func serialOf(idNat string) uint32 {
	n, err := strconv.ParseUint(idNat[max(0, len(idNat)-9):], 10, 64)
	if err != nil {
		panic(fmt.Sprintf("persona idNat %q is not numeric", idNat))
	}
	return uint32(n)
}
