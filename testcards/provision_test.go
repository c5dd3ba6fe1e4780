package testcards_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"testing"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// TestProvisionToken turns a real PIV token into a test CPS. It overwrites
// the token's 9A, 9C and 9E slots, so it runs only when
// DMPAGENT_TEST_TOKEN names the token's reader (and DMPAGENT_TEST_TOKEN_PIN
// gives its PIN, the YubiKey default 123456 otherwise).
func TestProvisionToken(t *testing.T) {
	reader := os.Getenv("DMPAGENT_TEST_TOKEN")
	if reader == "" {
		t.Skip("hardware test: set DMPAGENT_TEST_TOKEN to the reader name of a PIV token whose slots may be overwritten")
	}
	pin := os.Getenv("DMPAGENT_TEST_TOKEN_PIN")
	if pin == "" {
		pin = "123456"
	}
	p, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := testcards.Provision(reader, p, "gp", testcards.ProvisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Certs["9a"].Verify(x509VerifyOptions(p)); err != nil {
		t.Fatalf("9A certificate does not chain to the test root: %v", err)
	}
	digest := sha256.Sum256([]byte("provisioned"))
	cert, sig, err := testcards.VerifyToken(reader, pin, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(res.Certs["9a"]) {
		t.Fatal("the token returns another 9A certificate than the one stored")
	}
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("the token's 9A signature does not verify: %v", err)
	}
}

func x509VerifyOptions(p *pki.PKI) x509.VerifyOptions {
	inter := x509.NewCertPool()
	inter.AddCert(p.PersonCA)
	return x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
