package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/go-piv/piv-go/v2/piv"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	emu "github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// pivReader is the vpcd reader the PIV tests put their cards in.
var pivReader = vpcd.ReaderName(0)

// pivRecorder wraps an emulated card and records the instruction byte of
// every APDU that reaches it, so a test can aim a PullAfter fault at one
// command whatever the commands before it.
type pivRecorder struct {
	vpcd.Card
	mu   sync.Mutex
	ins  []byte
	hook func(cmd []byte) // called before the card answers; may block
}

func (r *pivRecorder) Transmit(cmd []byte) []byte {
	r.mu.Lock()
	if len(cmd) > 1 {
		r.ins = append(r.ins, cmd[1])
	}
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(cmd)
	}
	return r.Card.Transmit(cmd)
}

func (r *pivRecorder) setHook(f func(cmd []byte)) {
	r.mu.Lock()
	r.hook = f
	r.mu.Unlock()
}

// take returns the instructions recorded since the last take.
func (r *pivRecorder) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	ins := r.ins
	r.ins = nil
	return ins
}

// pivCard is an emulated test CPS in reader 0.
type pivCard struct {
	card *emu.Card
	rec  *pivRecorder
	slot *vpcd.Slot
	keys pki.CardKeys
}

// pivInsertCPS puts a fresh test CPS of the named persona (PIN 1234) in
// reader 0; it is removed when the test ends.
func pivInsertCPS(t testing.TB, persona string) pivCard {
	t.Helper()
	cardtest.Lock(t)
	p := cardtest.PKI(t)
	card, err := testcards.NewCPS(p, persona)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := p.Card(persona)
	if err != nil {
		t.Fatal(err)
	}
	return pivInsert(t, card, keys)
}

func pivInsert(t testing.TB, card *emu.Card, keys pki.CardKeys) pivCard {
	t.Helper()
	rec := &pivRecorder{Card: card}
	slot := cardtest.Insert(t, 0, rec, vpcd.Faults{})
	return pivCard{card: card, rec: rec, slot: slot, keys: keys}
}

// pivOpen opens the token of reader 0 and closes it when the test ends.
func pivOpen(t testing.TB) Token {
	t.Helper()
	tok, err := OpenPIV(context.Background(), pivReader)
	if err != nil {
		t.Fatalf("OpenPIV: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func pivCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pivWaitEmpty waits until pcscd sees reader 0 empty (a pulled card).
func pivWaitEmpty(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := vpcd.WaitPCSC(ctx, 0, false, nil); err != nil {
		t.Fatal(err)
	}
}

// pivSignVerify signs a SHA-256 digest of msg with opts and checks the
// signature with cert's key.
func pivSignVerify(t *testing.T, s crypto.Signer, cert *x509.Certificate, msg string, opts crypto.SignerOpts) {
	t.Helper()
	digest := sha256.Sum256([]byte(msg))
	sig, err := s.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		t.Fatalf("Sign(%T): %v", opts, err)
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// With the salt length the signer was asked for (Auto detects it).
			err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: pss.SaltLength})
		} else {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			err = errors.New("ECDSA signature does not verify")
		}
	default:
		t.Fatalf("certificate key %T", pub)
	}
	if err != nil {
		t.Fatalf("signature (%T) does not verify with the certificate: %v", opts, err)
	}
}

// pivExclusive is another program taking the card exclusively (as piv-go
// or a second agent would) between two operations of the token. It also
// asks the card whether the PIN is verified: our connection must not have
// left that state behind for whoever connects next.
func pivExclusive(t *testing.T, when string) {
	t.Helper()
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	c, err := sc.Connect(pivReader, scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		t.Fatalf("%s: another program cannot take the card exclusively: %v", when, err)
	}
	defer c.Disconnect(scard.LeaveCard)
	if _, err := c.Transmit(pivSelectCommand); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Transmit([]byte{0x00, 0x20, 0x00, 0x80}) // VERIFY without data: PIN status
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(resp, []byte{0x90, 0x00}) {
		t.Errorf("%s: the next program finds the PIN verified (VERIFY status 9000)", when)
	}
}

// pivCustomCard builds an emulated PIV card with the given PIN and keys in
// 9A and 9C (self-signed certificates).
func pivCustomCard(t *testing.T, pin string, serial uint32, auth, sign crypto.Signer) (*emu.Card, pki.CardKeys) {
	t.Helper()
	keys := pki.CardKeys{
		Auth: pki.KeyPair{Key: auth, Cert: pivSelfSigned(t, auth, "PIV test auth")},
		Sign: pki.KeyPair{Key: sign, Cert: pivSelfSigned(t, sign, "PIV test sign")},
	}
	card, err := emu.New(emu.Config{
		PIN: pin, PUK: "12345678", Serial: serial,
		Keys: map[byte]emu.Key{
			emu.SlotAuthentication: {Signer: auth, Cert: keys.Auth.Cert, PINPolicy: emu.PINOnce},
			emu.SlotSignature:      {Signer: sign, Cert: keys.Sign.Cert, PINPolicy: emu.PINAlways},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return card, keys
}

func pivSelfSigned(t *testing.T, key crypto.Signer, cn string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func pivECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// errTestAuth is what piv-go returns for a refused PIN.
func errTestAuth(retries int) error { return piv.AuthErr{Retries: retries} }
