package testcards_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/vitale"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// TestPIVGoDrivesEmulatedCPS runs piv-go, unmodified, against the emulated
// CPS through pcscd: open, read the 9A certificate, sign with 9A, 9C and 9E.
func TestPIVGoDrivesEmulatedCPS(t *testing.T) {
	p := cardtest.PKI(t)
	card, err := testcards.NewCPS(p, "gp")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 0, card, vpcd.Faults{})

	yk, err := pivgo.Open(vpcd.ReaderName(0))
	if err != nil {
		t.Fatal(err)
	}
	defer yk.Close()

	cert, err := yk.Certificate(pivgo.SlotAuthentication)
	if err != nil {
		t.Fatal(err)
	}
	gp, _ := persona.LookupProfessional("gp")
	if !strings.Contains(cert.Subject.String(), "CN="+gp.IDNat) {
		t.Errorf("9A certificate subject %q lacks CN=%s", cert.Subject, gp.IDNat)
	}
	keys, _ := p.Card("gp")
	if !cert.Equal(keys.Auth.Cert) {
		t.Error("9A certificate read through piv-go differs from the PKI's")
	}

	digest := sha256.Sum256([]byte("consent receipt"))
	for _, tc := range []struct {
		name string
		slot pivgo.Slot
		key  pivgo.KeyAuth
		opts crypto.SignerOpts
	}{
		{"9A RSA PKCS#1 v1.5", pivgo.SlotAuthentication, pivgo.KeyAuth{PIN: testcards.PIN}, crypto.SHA256},
		{"9A RSA PSS", pivgo.SlotAuthentication, pivgo.KeyAuth{PIN: testcards.PIN}, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"9C RSA, PIN always", pivgo.SlotSignature, pivgo.KeyAuth{PIN: testcards.PIN}, crypto.SHA256},
		{"9E ECDSA P-256, no PIN", pivgo.SlotCardAuthentication, pivgo.KeyAuth{}, crypto.SHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := yk.Certificate(tc.slot)
			if err != nil {
				t.Fatal(err)
			}
			priv, err := yk.PrivateKey(tc.slot, c.PublicKey, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := c.PublicKey.(type) {
			case *rsa.PublicKey:
				if pss, ok := tc.opts.(*rsa.PSSOptions); ok {
					err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss)
				} else {
					err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					err = errors.New("ECDSA signature does not verify")
				}
			}
			if err != nil {
				t.Fatalf("signature does not verify with the certificate's key: %v", err)
			}
		})
	}
}

// TestPIVGoWrongPIN checks piv-go sees the retry counter (63Cx) and the
// blocked state (6983) and that the PUK unblocks.
func TestPIVGoWrongPIN(t *testing.T) {
	card, err := testcards.NewCPS(cardtest.PKI(t), "nurse")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 0, card, vpcd.Faults{})
	yk, err := pivgo.Open(vpcd.ReaderName(0))
	if err != nil {
		t.Fatal(err)
	}
	defer yk.Close()
	for want := 2; want >= 0; want-- {
		err := yk.VerifyPIN("9999")
		var ae pivgo.AuthErr
		if !errors.As(err, &ae) || ae.Retries != want {
			t.Fatalf("wrong PIN: got %v, want AuthErr with %d retries", err, want)
		}
	}
	if err := yk.VerifyPIN(testcards.PIN); err == nil {
		t.Fatal("a blocked PIN accepted the right PIN")
	}
	if n, err := yk.Retries(); err != nil || n != 0 {
		t.Fatalf("Retries() = %d, %v; want 0", n, err)
	}
	if err := yk.Unblock(testcards.PUK, "4321"); err != nil {
		t.Fatalf("unblock with the PUK: %v", err)
	}
	if err := yk.VerifyPIN("4321"); err != nil {
		t.Fatalf("new PIN after unblock: %v", err)
	}
	if card.PINTriesLeft() != 3 {
		t.Fatalf("tries left after unblock = %d, want 3", card.PINTriesLeft())
	}
}

// TestVitaleThroughPCSC reads both beneficiaries of the family card back
// through pcscd with raw APDUs.
func TestVitaleThroughPCSC(t *testing.T) {
	card, err := testcards.NewVitale("family")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 1, card, vpcd.Faults{})

	ctx, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Release()
	c, err := ctx.Connect(vpcd.ReaderName(1), scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(scard.LeaveCard)
	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Atr) != string(vitale.ATR) {
		t.Fatalf("ATR % X, want % X", st.Atr, vitale.ATR)
	}
	got, err := cardreader.ReadVitaleWith(c.Transmit)
	if err != nil {
		t.Fatal(err)
	}
	fam, _ := persona.LookupPatient("family")
	if len(got.Beneficiaries) != len(fam.Beneficiaries) {
		t.Fatalf("read %d beneficiaries, want %d", len(got.Beneficiaries), len(fam.Beneficiaries))
	}
	for i, want := range fam.Beneficiaries {
		b := got.Beneficiaries[i]
		if b.NIR != want.NIR || b.BirthDate != want.BirthDate || !strings.EqualFold(b.Surname, want.Surname) {
			t.Errorf("beneficiary %d = %+v, want NIR %s born %s %s", i, b, want.NIR, want.BirthDate, want.Surname)
		}
	}
}
