package consent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

func receipt(idNat string, at time.Time) Receipt {
	return Receipt{Scope: ScopeCreate, PatientINS: "207058575627097", INSOID: "1.2.250.1.213.1.4.10", VitaleCard: "0000000000000102",
		BeneficiaryRank: 1, ProfessionalIDNat: idNat, Time: at,
		Consent: Consent{Given: true, InformationProvided: true, Oppositions: Oppositions{Centre15: true}}}
}

func gpKeys(t testing.TB) (*pki.PKI, pki.KeyPair) {
	p := cardtest.PKI(t)
	keys, err := p.Card("gp")
	if err != nil {
		t.Fatal(err)
	}
	return p, keys.Sign
}

func TestRoundTrip(t *testing.T) {
	p, sign := gpKeys(t)
	data, err := Sign(sign.Key, []*x509.Certificate{sign.Cert, p.PersonCA}, receipt("899900063480", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(data, VerifyOptions{Roots: p.RootPool()})
	if err != nil {
		t.Fatal(err)
	}
	if !validID(v.Receipt.ID) || v.Receipt.PatientINS != "207058575627097" || !v.Receipt.Consent.Oppositions.Centre15 || v.Receipt.Version != 1 {
		t.Fatalf("%+v", v.Receipt)
	}
	s, err := NewStore(filepath.Join(t.TempDir(), "consents"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(v.Receipt.ID, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(v.Receipt.ID, data); err == nil {
		t.Fatal("a receipt was overwritten")
	}
	got, err := s.Get(v.Receipt.ID)
	if err != nil || string(got) != string(data) {
		t.Fatal(err)
	}
	ids, _ := s.List()
	if len(ids) != 1 {
		t.Fatalf("list %v", ids)
	}
	for _, bad := range []string{"../x", "a/b", "cr_../../etc", "cr_" + strings.Repeat("g", 32), ""} {
		if err := s.Put(bad, data); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
		if _, err := s.Get(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v", bad, err)
		}
	}
}

// tamper rewrites one member of the JWS.
func tamper(t *testing.T, data []byte, member string, edit func([]byte) []byte) []byte {
	t.Helper()
	var j map[string]string
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	raw, err := b64.DecodeString(j[member])
	if err != nil {
		t.Fatal(err)
	}
	j[member] = b64.EncodeToString(edit(raw))
	out, _ := json.Marshal(j)
	return out
}

func TestRefusals(t *testing.T) {
	p, sign := gpKeys(t)
	chain := []*x509.Certificate{sign.Cert, p.PersonCA}
	good, err := Sign(sign.Key, chain, receipt("899900063480", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	wrongPro, err := Sign(sign.Key, chain, receipt("899900070011", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	late, err := Sign(sign.Key, chain, receipt("899900063480", sign.Cert.NotAfter.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	foreign := x509.NewCertPool()
	foreign.AddCert(p.ServiceCA) // another branch of the PKI
	cases := []struct {
		name  string
		data  []byte
		roots *x509.CertPool
		want  func(error) bool
	}{
		{"payload edited", tamper(t, good, "payload", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "207058575627097", "275126322074974", 1))
		}), nil, is(ErrBadSignature)},
		{"signature edited", tamper(t, good, "signature", func(b []byte) []byte { b[10] ^= 1; return b }), nil, is(ErrBadSignature)},
		{"header edited", tamper(t, good, "protected", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "RS256", "PS256", 1))
		}), nil, is(ErrBadSignature)},
		{"alg none", tamper(t, good, "protected", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "RS256", "none", 1))
		}), nil, is(ErrUnsupportedAlgorithm)},
		{"not JSON", []byte("eyJ.eyJ.sig"), nil, is(ErrMalformed)},
		{"extra member", []byte(strings.Replace(string(good), `{"protected"`, `{"header":{},"protected"`, 1)), nil, is(ErrMalformed)},
		{"foreign roots", good, foreign, func(err error) bool { var c *ChainError; return errors.As(err, &c) }},
		{"another professional", wrongPro, nil, is(ErrWrongProfessional)},
		{"certificate expired at receipt time", late, nil, func(err error) bool { var c *ChainError; return errors.As(err, &c) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			roots := c.roots
			if roots == nil {
				roots = p.RootPool()
			}
			_, err := Verify(c.data, VerifyOptions{Roots: roots})
			if !c.want(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

// TestECDSA: PIV test tokens may hold P-256 keys.
func TestECDSA(t *testing.T) {
	p := cardtest.PKI(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pro, _ := persona.LookupProfessional("nurse")
	cert, err := p.Issue(pro, pki.UsageSign, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	data, err := Sign(key, []*x509.Certificate{cert, p.PersonCA}, receipt(pro.IDNat, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(data, VerifyOptions{Roots: p.RootPool()}); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(key, []*x509.Certificate{p.PersonCA}, receipt(pro.IDNat, time.Time{})); err == nil {
		t.Fatal("signed with a certificate that is not the key's")
	}
}

// TestOpenSSLVerifies: the signature is plain RSA PKCS#1 v1.5 SHA-256 over
// the JWS signing input, as any tool checks it.
func TestOpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl missing")
	}
	p, sign := gpKeys(t)
	data, err := Sign(sign.Key, []*x509.Certificate{sign.Cert, p.PersonCA}, receipt("899900063480", time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	var j jws
	json.Unmarshal(data, &j)
	dir := t.TempDir()
	sig, _ := b64.DecodeString(j.Signature)
	pub, _ := x509.MarshalPKIXPublicKey(sign.Cert.PublicKey)
	os.WriteFile(filepath.Join(dir, "input"), []byte(j.Protected+"."+j.Payload), 0o600)
	os.WriteFile(filepath.Join(dir, "sig"), sig, 0o600)
	os.WriteFile(filepath.Join(dir, "pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	out, err := exec.Command("openssl", "dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"), "-signature",
		filepath.Join(dir, "sig"), filepath.Join(dir, "input")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl: %v %s", err, out)
	}
	// The chain in x5c is what openssl verify accepts too.
	hdr, _ := b64.DecodeString(j.Protected)
	var h header
	json.Unmarshal(hdr, &h)
	leaf, _ := base64.StdEncoding.DecodeString(h.X5C[0])
	os.WriteFile(filepath.Join(dir, "leaf.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), 0o600)
	out, err = exec.Command("openssl", "verify", "-CAfile", p.RootFile(), "-untrusted", p.IntermediatesFile(), filepath.Join(dir, "leaf.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v %s", err, out)
	}
}

func FuzzVerify(f *testing.F) {
	p, sign := gpKeys(f)
	good, err := Sign(sign.Key, []*x509.Certificate{sign.Cert, p.PersonCA}, receipt("899900063480", time.Time{}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"protected":"e30","payload":"e30","signature":"AA"}`))
	roots := p.RootPool()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Verify(data, VerifyOptions{Roots: roots})
		if err == nil && v.Receipt.ProfessionalIDNat != "899900063480" {
			t.Fatalf("accepted a receipt of %s", v.Receipt.ProfessionalIDNat)
		}
	})
}
