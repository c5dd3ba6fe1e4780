package dmp

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// sharedPKI is the test IGC-Santé shared by the test processes.
func sharedPKI(t testing.TB) *pki.PKI { return cardtest.PKI(t) }

func testActor(t testing.TB, name string) Actor {
	t.Helper()
	p, err := persona.LookupProfessional(name)
	if err != nil {
		t.Fatal(err)
	}
	return Actor{Professional: Professional{
		IDNat: p.IDNat, Surname: p.Surname, GivenName: p.GivenName, Profession: p.ProfessionCode,
		ProfessionLabel: p.ProfessionLabel, Specialty: p.Specialty, StructureID: p.StructureID,
		StructureName: p.StructureName, Sector: p.Sector,
	}}
}

var testSoftware = Software{Name: "dmpagent", Version: "test", ID: "1.2.250.1.999.1", Homologation: "TEST-0001"}

var testINS = INS{Value: "207058575627097", OID: OIDINSNIRTest}

func TestVIHF(t *testing.T) {
	p := sharedPKI(t)
	card, err := p.Card("gp")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hash crypto.Hash
		mode AccessMode
	}{
		{"sha256", crypto.SHA256, ModeNormal},
		{"sha1", crypto.SHA1, ModeNormal},
		{"break-glass", crypto.SHA256, ModeBreakGlass},
		{"centre15", crypto.SHA256, ModeCentre15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			actor := testActor(t, "gp")
			actor.Mode = tc.mode
			if tc.mode == ModeBreakGlass {
				actor.Reason = "patient inconscient aux urgences"
			}
			now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			a, err := BuildVIHF(actor, &testINS, testSoftware, now, card.Sign.Key, []*x509.Certificate{card.Sign.Cert, p.PersonCA}, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			env := BuildEnvelope(Addressing{MessageID: NewMessageID(), To: "https://localhost/x", Action: "urn:x", ReplyTo: AnonymousAddress}, a,
				[]byte(`<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><query:ResponseOption returnType="LeafClass"/><rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"/></query:AdhocQueryRequest>`))
			v, err := ParseVIHF(env)
			if err != nil {
				t.Fatal(err)
			}
			if v.Signature == nil || !v.Signature.Certificate.Equal(card.Sign.Cert) || v.Signature.Hash != tc.hash {
				t.Fatalf("signature %+v", v.Signature)
			}
			want := actor.Professional
			got := v.Professional
			if got.IDNat != want.IDNat || got.Profession != want.Profession || got.Specialty != want.Specialty ||
				got.StructureID != want.StructureID || got.Sector != want.Sector {
				t.Fatalf("professional: got %+v want %+v", got, want)
			}
			if v.Mode != tc.mode || v.Reason != actor.Reason || *v.Patient != testINS || v.Software != testSoftware ||
				v.Version != "3.0" || v.AuthMode != "DIRECTE" || !v.IssueInstant.Equal(now) || v.Issuer != card.Sign.Cert.Subject.String() {
				t.Fatalf("vihf %+v", v)
			}
			if err := schemas.Available(); err != nil {
				t.Log(err)
			} else if err := schemas.ValidateKind(context.Background(), "XDS", env); err != nil {
				t.Fatal(err)
			}
			xmlsecVerify(t, p, env, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", "ID")
			// Any change to a signed attribute breaks the signature.
			tampered := strings.Replace(string(env), ">"+actor.Professional.StructureID+"<", ">499900000000001<", 1)
			if _, err := ParseVIHF([]byte(tampered)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered VIHF: %v", err)
			}
		})
	}
}

func TestVIHFRefusals(t *testing.T) {
	p := sharedPKI(t)
	card, _ := p.Card("gp")
	certs := []*x509.Certificate{card.Sign.Cert}
	now := time.Now()
	noReason := testActor(t, "gp")
	noReason.Mode = ModeBreakGlass
	noSpecialty := testActor(t, "gp")
	noSpecialty.Specialty = ""
	badMode := testActor(t, "gp")
	badMode.Mode = "urgence"
	for name, a := range map[string]Actor{"break-glass without reason": noReason, "physician without specialty": noSpecialty, "unknown mode": badMode} {
		if _, err := BuildVIHF(a, nil, testSoftware, now, card.Sign.Key, certs, crypto.SHA256); err == nil {
			t.Errorf("%s: built", name)
		}
	}
	env := BuildEnvelope(Addressing{Action: "x"}, nil, []byte(`<x xmlns="urn:x"/>`))
	if _, err := ParseVIHF(env); !errors.Is(err, ErrNoVIHF) {
		t.Fatalf("no VIHF: %v", err)
	}
}

// xmlsecVerify checks a signed document with xmlsec1 against the test root.
func xmlsecVerify(t *testing.T, p *pki.PKI, doc []byte, idNode, idAttr string) {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Skip("xmlsec1 not installed")
	}
	f := filepath.Join(t.TempDir(), "signed.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("xmlsec1", "--verify", "--id-attr:"+idAttr, idNode,
		"--trusted-pem", p.RootFile(), "--untrusted-pem", p.IntermediatesFile(), f).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --verify: %v\n%s", err, out)
	}
}

func FuzzParseVIHF(f *testing.F) {
	p := sharedPKI(f)
	card, _ := p.Card("gp")
	a, err := BuildVIHF(testActor(f, "gp"), &testINS, testSoftware, time.Now(), card.Sign.Key, []*x509.Certificate{card.Sign.Cert}, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(BuildEnvelope(Addressing{Action: "a", MessageID: "m"}, a, []byte(`<x xmlns="urn:x"/>`)))
	f.Add(BuildEnvelope(Addressing{Action: "a"}, nil, []byte(`<x xmlns="urn:x"/>`)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := ParseVIHF(msg)
		if err == nil && v == nil {
			t.Fatal("nil VIHF without error")
		}
		if err == nil && v.Signature != nil && v.Signature.Certificate == nil {
			t.Fatal("verified signature without certificate")
		}
	})
}
