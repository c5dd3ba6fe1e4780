package testcards

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// ProvisionOptions say how to turn a real PIV token into a test CPS.
type ProvisionOptions struct {
	// ManagementKey authorises key generation; piv-go's default 3DES key
	// when nil.
	ManagementKey []byte
}

// Provisioned reports what was written to the token.
type Provisioned struct {
	Serial uint32
	Certs  map[string]*x509.Certificate // by slot name: 9a, 9c, 9e
}

// Provision turns the PIV token in reader (a YubiKey, say) into a test CPS
// of the named persona: it generates the 9A and 9C RSA-2048 keys and a 9E
// P-256 key on the token, has the test PKI certify them with the persona's
// CPS identity, and stores the certificates. It overwrites those slots.
// The token keeps its own PIN: YubiKeys refuse PINs shorter than six
// characters, so a CPS's 4-digit PIN cannot be set on them.
func Provision(reader string, p *pki.PKI, name string, opt ProvisionOptions) (Provisioned, error) {
	pro, err := persona.LookupProfessional(name)
	if err != nil {
		return Provisioned{}, err
	}
	mk := opt.ManagementKey
	if mk == nil {
		mk = pivgo.DefaultManagementKey
	}
	yk, err := pivgo.Open(reader)
	if err != nil {
		return Provisioned{}, fmt.Errorf("open PIV token in %q: %w", reader, err)
	}
	defer yk.Close()
	out := Provisioned{Certs: map[string]*x509.Certificate{}}
	if out.Serial, err = yk.Serial(); err != nil {
		out.Serial = 0 // older tokens: the serial is informative only
	}
	plan := []struct {
		name  string
		slot  pivgo.Slot
		usage pki.Usage
		key   pivgo.Key
	}{
		{"9a", pivgo.SlotAuthentication, pki.UsageAuth, pivgo.Key{Algorithm: pivgo.AlgorithmRSA2048, PINPolicy: pivgo.PINPolicyOnce, TouchPolicy: pivgo.TouchPolicyNever}},
		{"9c", pivgo.SlotSignature, pki.UsageSign, pivgo.Key{Algorithm: pivgo.AlgorithmRSA2048, PINPolicy: pivgo.PINPolicyAlways, TouchPolicy: pivgo.TouchPolicyNever}},
		{"9e", pivgo.SlotCardAuthentication, pki.UsageCardAuth, pivgo.Key{Algorithm: pivgo.AlgorithmEC256, PINPolicy: pivgo.PINPolicyNever, TouchPolicy: pivgo.TouchPolicyNever}},
	}
	for _, s := range plan {
		pub, err := yk.GenerateKey(mk, s.slot, s.key)
		if err != nil {
			return out, fmt.Errorf("generate key in slot %s: %w", s.name, err)
		}
		cert, err := p.Issue(pro, s.usage, pub)
		if err != nil {
			return out, fmt.Errorf("certify slot %s: %w", s.name, err)
		}
		if err := yk.SetCertificate(mk, s.slot, cert); err != nil {
			return out, fmt.Errorf("store certificate in slot %s: %w", s.name, err)
		}
		out.Certs[s.name] = cert
	}
	return out, nil
}

// VerifyToken checks that the token in reader signs with its 9A key in a
// way the 9A certificate verifies, the end-to-end proof a provisioned token
// works. pin is the token's PIN.
func VerifyToken(reader, pin string, digest []byte) (*x509.Certificate, []byte, error) {
	yk, err := pivgo.Open(reader)
	if err != nil {
		return nil, nil, fmt.Errorf("open PIV token in %q: %w", reader, err)
	}
	defer yk.Close()
	cert, err := yk.Certificate(pivgo.SlotAuthentication)
	if err != nil {
		return nil, nil, fmt.Errorf("read the 9A certificate: %w", err)
	}
	priv, err := yk.PrivateKey(pivgo.SlotAuthentication, cert.PublicKey, pivgo.KeyAuth{PIN: pin})
	if err != nil {
		return nil, nil, err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("9A key cannot sign")
	}
	sig, err := signer.Sign(nil, digest, crypto.SHA256)
	if err != nil {
		return nil, nil, err
	}
	return cert, sig, nil
}
