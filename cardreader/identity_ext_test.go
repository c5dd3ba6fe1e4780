package cardreader_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// TestIdentityFromTestPKI reads the identity of every CPS persona from the
// certificates the simulation really uses: as the test PKI issues them, and
// as the emulated card hands out its authentication certificate to GET DATA.
func TestIdentityFromTestPKI(t *testing.T) {
	p, err := pki.LoadOrCreate(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	pros := persona.Professionals()
	if len(pros) == 0 {
		t.Fatal("no CPS personas")
	}
	for _, pro := range pros {
		t.Run(pro.Name, func(t *testing.T) {
			keys, err := p.Card(pro.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, kp := range []struct {
				slot string
				kp   pki.KeyPair
			}{{"9A", keys.Auth}, {"9C", keys.Sign}, {"9E", keys.CardAuth}} {
				id, err := cardreader.IdentityFromCertificate(kp.kp.Cert)
				if err != nil {
					t.Fatalf("slot %s: %v", kp.slot, err)
				}
				checkPersonaIdentity(t, "slot "+kp.slot, id, pro, p)
			}

			card, err := testcards.NewCPS(p, pro.Name)
			if err != nil {
				t.Fatal(err)
			}
			obj := readEmulatedAuthCertificate(t, card)
			cert, err := cardreader.ParsePIVCertificateObject(obj)
			if err != nil {
				t.Fatalf("ParsePIVCertificateObject: %v", err)
			}
			if !cert.Equal(keys.Auth.Cert) {
				t.Fatal("the card's 5FC105 object holds another certificate than the PKI's 9A one")
			}
			id, err := cardreader.IdentityFromCertificate(cert)
			if err != nil {
				t.Fatal(err)
			}
			checkPersonaIdentity(t, "card", id, pro, p)
		})
	}
}

func checkPersonaIdentity(t *testing.T, where string, id cardreader.Identity, pro persona.Professional, p *pki.PKI) {
	t.Helper()
	if id.IDNat != pro.IDNat || id.Number != pro.IDNat[1:] || id.Kind != cardreader.KindRPPS ||
		id.Surname != pro.Surname || id.GivenName != pro.GivenName || id.Profession != pro.ProfessionLabel {
		t.Errorf("%s: identity %q %q %q %q %q %q, want persona %+v",
			where, id.IDNat, id.Number, id.Kind, id.Surname, id.GivenName, id.Profession, pro)
	}
	if id.IssuerCN != p.PersonCA.Subject.CommonName || id.IssuerLevel != cardreader.LevelFort || !id.Test {
		t.Errorf("%s: issuer %q level %q test %v", where, id.IssuerCN, id.IssuerLevel, id.Test)
	}
	if err := id.Valid(time.Now()); err != nil {
		t.Errorf("%s: %v", where, err)
	}
}

// readEmulatedAuthCertificate talks to the emulated card as the PC/SC code
// will: SELECT PIV, GET DATA 5FC105, then GET RESPONSE while it says 61xx.
func readEmulatedAuthCertificate(t *testing.T, card *piv.Card) []byte {
	t.Helper()
	sel := append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(piv.AID))}, piv.AID...)
	if resp := card.Transmit(append(sel, 0x00)); !bytes.HasSuffix(resp, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT PIV: % X", resp)
	}
	var data []byte
	resp := card.Transmit(cardreader.PIVAuthCertificateCommand())
	for range 64 { // a 3 KB certificate takes about 12 parts
		if len(resp) < 2 {
			t.Fatalf("response % X has no status word", resp)
		}
		n := len(resp) - 2
		data = append(data, resp[:n]...)
		switch sw1, sw2 := resp[n], resp[n+1]; {
		case sw1 == 0x90 && sw2 == 0x00:
			return data
		case sw1 == 0x61:
			resp = card.Transmit([]byte{0x00, 0xC0, 0x00, 0x00, sw2})
		default:
			t.Fatalf("GET DATA: status %02X%02X", sw1, sw2)
		}
	}
	t.Fatal("card still answering 61xx after 64 parts")
	return nil
}
