package cardreader

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotPIV: the card has no PIV application, so its certificate cannot be
// read here. A real CPS (IAS-ECC) is such a card: its public certificate
// objects are read through the PKCS#11 module (package pkcs11), which hands
// them to IdentityFromCertificate.
var ErrNotPIV = errors.New("cardreader: card has no PIV application")

// ReadIdentity reads the professional's identity from the authentication
// certificate of the PIV card in reader (our emulated test CPS, or a YubiKey
// provisioned as one), with no PIN: the certificate is public. It holds the
// card for one transaction.
func ReadIdentity(ctx context.Context, reader string) (Identity, error) {
	var id Identity
	err := WithCard(ctx, reader, func(c *Card) error {
		var err error
		id, err = readPIVIdentity(c.Transmit)
		return err
	})
	return id, err
}

// readPIVIdentity selects the PIV application and reads and parses the PIV
// Authentication certificate (9A).
func readPIVIdentity(tx TransmitFunc) (Identity, error) {
	s := newAPDUSession(tx)
	sel := append([]byte{0x00, insSelect, 0x04, 0x00, byte(len(pivAID))}, pivAID...)
	_, sw, err := s.send(append(sel, 0x00), true)
	if err != nil {
		return Identity{}, err
	}
	if sw != SWOK {
		return Identity{}, fmt.Errorf("%w (SELECT answered %s)", ErrNotPIV, sw)
	}
	obj, sw, err := s.send(PIVAuthCertificateCommand(), true)
	if err != nil {
		return Identity{}, err
	}
	if sw != SWOK {
		return Identity{}, fmt.Errorf("cardreader: reading the PIV authentication certificate: %w", &SWError{Step: "GET DATA 5FC105", SW: sw})
	}
	cert, err := ParsePIVCertificateObject(obj)
	if err != nil {
		return Identity{}, err
	}
	return IdentityFromCertificate(cert)
}

// DirectVitale reads Vitale 2 cards over PC/SC with the public layout
// (ReadVitaleWith); it is the VitaleReader the agent uses until a licensed
// SESAM-Vitale backend replaces it.
type DirectVitale struct{}

var _ VitaleReader = DirectVitale{}

// ReadVitale reads the card in reader within one transaction: the practice
// software may read the same card right before or after.
func (DirectVitale) ReadVitale(ctx context.Context, reader string) (VitaleData, error) {
	var data VitaleData
	err := WithCard(ctx, reader, func(c *Card) error {
		var err error
		data, err = ReadVitaleWith(c.Transmit)
		return err
	})
	return data, err
}
