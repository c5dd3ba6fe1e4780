//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/dmpagent/dmpagent/testcards/cardtest"
)

// softHSMPaths are where distributions put SoftHSM 2's module.
var softHSMPaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian, multiarch
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian arm64
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora
	"/usr/local/lib/softhsm/libsofthsm2.so",             // from source, Homebrew
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// Test token layout. The labels are the Cryptolib CPS's (moduleRoles in
// module_common.go), so that SoftHSM walks the path a real CPS takes; the
// CKA_IDs are deliberately not PIV's 01/02.
const (
	softLabel  = "dmpagent-test"
	softPIN    = "1234"
	softSOPIN  = "12345678"
	softAuthID = "a1"
	softSignID = "b2"
)

// softToken is a SoftHSM token holding an RSA-2048 authentication key
// (CPS_PRIV_AUT) and a P-256 signature key (CPS_PRIV_SIG), with their
// certificates.
type softToken struct {
	m       *Module
	rsaKey  *rsa.PrivateKey
	rsaCert *x509.Certificate
	ecKey   *ecdsa.PrivateKey
	ecCert  *x509.Certificate
}

func needSoftHSM(t *testing.T, what string) {
	t.Helper()
	if os.Getenv(cardtest.RequireEnv) == "1" {
		t.Fatalf("%s missing but %s=1 (make test installs it)", what, cardtest.RequireEnv)
	}
	t.Skipf("%s missing: apt-get install softhsm2 (make test does)", what)
}

// newSoftHSM builds the token in t's temporary directory and loads SoftHSM
// on it. SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and a module is
// initialised once per process: so one test function per process may call
// this (TestSoftHSM), and puts everything SoftHSM in its subtests.
func newSoftHSM(t *testing.T) *softToken {
	t.Helper()
	var lib string
	for _, p := range softHSMPaths {
		if _, err := os.Stat(p); err == nil {
			lib = p
			break
		}
	}
	if lib == "" {
		needSoftHSM(t, "SoftHSM 2 module")
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		needSoftHSM(t, "softhsm2-util")
	}
	modules.Lock()
	_, loaded := modules.byPath[filepath.Clean(lib)]
	modules.Unlock()
	if loaded {
		t.Fatal("SoftHSM is already initialised in this process, on another configuration: only TestSoftHSM may load it")
	}

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	softWrite(t, conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"))
	t.Setenv("SOFTHSM2_CONF", conf)

	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("softhsm2-util", args...).CombinedOutput(); err != nil {
			t.Fatalf("softhsm2-util %v: %v\n%s", args[0], err, out)
		}
	}
	run("--init-token", "--free", "--label", softLabel, "--pin", softPIN, "--so-pin", softSOPIN)

	st := &softToken{}
	var err error
	if st.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if st.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	st.rsaCert = softSelfSigned(t, "dmpagent test RSA", st.rsaKey)
	st.ecCert = softSelfSigned(t, "dmpagent test P-256", st.ecKey)
	for _, k := range []struct {
		key       crypto.Signer
		label, id string
	}{{st.rsaKey, "CPS_PRIV_AUT", softAuthID}, {st.ecKey, "CPS_PRIV_SIG", softSignID}} {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, k.label+".pem")
		softWrite(t, f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		run("--import", f, "--token", softLabel, "--label", k.label, "--id", k.id, "--pin", softPIN)
	}

	if st.m, err = LoadModule(lib); err != nil {
		t.Fatal(err)
	}
	// The certificates go in through the module itself: no pkcs11-tool
	// needed beside SoftHSM.
	slotID := softSlot(t, st.m)
	sh, err := st.m.ctx.OpenSession(slotID, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer st.m.ctx.CloseSession(sh)
	if err := st.m.ctx.Login(sh, p11.CKU_USER, softPIN); err != nil {
		t.Fatal(err)
	}
	defer st.m.ctx.Logout(sh)
	for _, c := range []struct {
		cert      *x509.Certificate
		label, id string
	}{{st.rsaCert, "Certificat d'Authentification CPS", softAuthID}, {st.ecCert, "Certificat de Signature CPS", softSignID}} {
		id := softHex(t, c.id)
		if _, err := st.m.ctx.CreateObject(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE),
			p11.NewAttribute(p11.CKA_CERTIFICATE_TYPE, p11.CKC_X_509),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, false),
			p11.NewAttribute(p11.CKA_LABEL, c.label),
			p11.NewAttribute(p11.CKA_ID, id),
			p11.NewAttribute(p11.CKA_SUBJECT, c.cert.RawSubject),
			p11.NewAttribute(p11.CKA_ISSUER, c.cert.RawIssuer),
			p11.NewAttribute(p11.CKA_VALUE, c.cert.Raw),
		}); err != nil {
			t.Fatalf("create certificate object %s: %v", c.label, err)
		}
	}
	return st
}

func softSlot(t *testing.T, m *Module) uint {
	t.Helper()
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range slots {
		if ti, err := m.ctx.GetTokenInfo(id); err == nil && trimPadding(ti.Label) == softLabel {
			return id
		}
	}
	t.Fatalf("SoftHSM lists no token %q", softLabel)
	return 0
}

func softSelfSigned(t *testing.T, cn string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Country: []string{"FR"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
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

func softWrite(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func softHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSoftHSM drives the module backend through SoftHSM 2: loading,
// slots, certificates by the Cryptolib's labels, login errors, and every
// signature scheme, each verified with the certificate's public key.
func TestSoftHSM(t *testing.T) {
	logs := watchModuleLogs(t) // before LoadModule: its log line is checked too
	st := newSoftHSM(t)
	ctx := context.Background()
	var errs []error // every error returned, checked for PINs at the end

	t.Run("LoadModule", func(t *testing.T) {
		m2, err := LoadModule(st.m.Path() + "/../libsofthsm2.so")
		if err != nil || m2 != st.m {
			t.Errorf("second LoadModule of the same file = %p, %v; want the same *Module %p", m2, err, st.m)
		}
		var wg sync.WaitGroup
		got := make([]*Module, 8)
		for i := range got {
			wg.Go(func() { got[i], _ = LoadModule(st.m.Path()) })
		}
		wg.Wait()
		for i, m := range got {
			if m != st.m {
				t.Errorf("concurrent LoadModule #%d = %p, want %p", i, m, st.m)
			}
		}
		_, err = LoadModule(filepath.Join(t.TempDir(), "libcps3_pkcs11_lux.so"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing module: %v, want fs.ErrNotExist", err)
		}
		t.Logf("missing module: %v", err)
		_, err = LoadModule(filepath.Join(t.TempDir()))
		if err == nil {
			t.Error("a directory loaded as a module")
		}
	})

	t.Run("Slots", func(t *testing.T) {
		slots, err := st.m.Slots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range slots {
			t.Logf("slot %d: reader %q present=%v label %q serial %q", s.ID, s.Reader, s.TokenPresent, s.TokenLabel, s.TokenSerial)
			found = found || (s.TokenPresent && s.TokenLabel == softLabel && s.TokenSerial != "")
		}
		if !found {
			t.Errorf("no slot with token %q", softLabel)
		}
		_, err = st.m.OpenLabel(ctx, "no such token")
		if !errors.Is(err, ErrNoToken) {
			t.Errorf("OpenLabel(unknown) = %v, want ErrNoToken", err)
		}
		_, err = st.m.Open(ctx, "No Such Reader 00 00")
		if !errors.Is(err, ErrNoToken) {
			t.Errorf("Open(unknown reader) = %v, want ErrNoToken", err)
		}
	})

	tok, err := st.m.OpenLabel(ctx, softLabel)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if tok.Reader() != "" {
		t.Errorf("Reader() = %q for a readerless token", tok.Reader())
	}

	t.Run("Certificates", func(t *testing.T) {
		for role, want := range map[Role][]byte{Authentication: st.rsaCert.Raw, Signature: st.ecCert.Raw} {
			c, err := tok.Certificate(ctx, role)
			if err != nil {
				t.Fatalf("%v: %v", role, err)
			}
			if !bytes.Equal(c.Raw, want) {
				t.Errorf("%v: got certificate %q", role, c.Subject)
			}
		}
		if _, err := tok.Certificate(ctx, Role(7)); err == nil {
			t.Error("Certificate(Role(7)) succeeded")
		}
	})

	auth, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("consentement du patient"))

	t.Run("NotLoggedIn", func(t *testing.T) {
		_, err := auth.Sign(rand.Reader, digest[:], crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("Sign before Login = %v, want ErrNotLoggedIn", err)
		}
	})

	t.Run("Login", func(t *testing.T) {
		err := tok.Login(ctx, "9876")
		errs = append(errs, err)
		var pe *PINError
		if !errors.As(err, &pe) {
			t.Fatalf("wrong PIN: %v, want *PINError", err)
		}
		// SoftHSM blocks nothing but sets CKF_USER_PIN_COUNT_LOW.
		t.Logf("wrong PIN: %v", err)
		// SoftHSM answers CKR_PIN_INCORRECT to any length: the module's
		// CKR_PIN_LEN_RANGE is tested through OpenSC.
		err = tok.Login(ctx, "")
		errs = append(errs, err)
		if !errors.Is(err, ErrPINFormat) {
			t.Errorf("Login(\"\") = %v, want ErrPINFormat", err)
		}
		// The module is not broken by the failures: the right PIN works.
		if err := tok.Login(ctx, softPIN); err != nil {
			t.Fatal(err)
		}
		if err := tok.Login(ctx, softPIN); err != nil {
			t.Errorf("second Login (CKR_USER_ALREADY_LOGGED_IN) = %v, want nil", err)
		}
	})

	rsaPub := &st.rsaKey.PublicKey
	t.Run("RSA-PKCS1v15", func(t *testing.T) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1} {
			d := softDigest(h, "ordonnance")
			before := Signatures()
			sig, err := auth.Sign(rand.Reader, d, h)
			if err != nil {
				t.Fatalf("%v: %v", h, err)
			}
			if n := Signatures() - before; n != 1 {
				t.Errorf("%v: signature counter moved by %d, want 1", h, n)
			}
			if err := rsa.VerifyPKCS1v15(rsaPub, h, d, sig); err != nil {
				t.Errorf("%v: %v", h, err)
			}
		}
	})

	t.Run("RSA-PSS", func(t *testing.T) {
		for _, c := range []struct {
			h    crypto.Hash
			salt int
		}{{crypto.SHA256, rsa.PSSSaltLengthEqualsHash}, {crypto.SHA256, rsa.PSSSaltLengthAuto}, {crypto.SHA384, rsa.PSSSaltLengthEqualsHash}, {crypto.SHA512, rsa.PSSSaltLengthAuto}} {
			d := softDigest(c.h, "TLS 1.3 CertificateVerify")
			sig, err := auth.Sign(rand.Reader, d, &rsa.PSSOptions{Hash: c.h, SaltLength: c.salt})
			if err != nil {
				t.Fatalf("%v salt %d: %v", c.h, c.salt, err)
			}
			// EqualsHash on verification: the salt must be exactly the hash length, as TLS 1.3 demands.
			if err := rsa.VerifyPSS(rsaPub, c.h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
				t.Errorf("%v salt %d: %v", c.h, c.salt, err)
			}
		}
	})

	t.Run("ECDSA", func(t *testing.T) {
		sign, err := tok.Signer(ctx, Signature, softPIN)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
			d := softDigest(h, "compte rendu")
			sig, err := sign.Sign(rand.Reader, d, h)
			if err != nil {
				t.Fatalf("%v: %v", h, err)
			}
			if !ecdsa.VerifyASN1(&st.ecKey.PublicKey, d, sig) {
				t.Errorf("%v: ECDSA signature does not verify", h)
			}
		}
	})

	t.Run("SignMessage", func(t *testing.T) {
		sign, err := tok.Signer(ctx, Signature, softPIN)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("<SubmissionSet/>")
		d := softDigest(crypto.SHA256, string(msg))
		pss := &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
		verify := map[string]func(sig []byte) error{
			"pkcs1": func(sig []byte) error { return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d, sig) },
			"pss":   func(sig []byte) error { return rsa.VerifyPSS(rsaPub, crypto.SHA256, d, sig, pss) },
			"ecdsa": func(sig []byte) error {
				if !ecdsa.VerifyASN1(&st.ecKey.PublicKey, d, sig) {
					return errors.New("ECDSA signature does not verify")
				}
				return nil
			},
		}
		cases := []struct {
			name   string
			signer crypto.Signer
			opts   crypto.SignerOpts
		}{{"pkcs1", auth, crypto.SHA256}, {"pss", auth, pss}, {"ecdsa", sign, crypto.SHA256}}
		// Through crypto.SignMessage: SoftHSM offers the digest mechanisms,
		// so this moduleHashes here.
		for _, c := range cases {
			sig, err := crypto.SignMessage(c.signer, rand.Reader, msg, c.opts)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if err := verify[c.name](sig); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
		// As on a token that offers hash-and-sign mechanisms only (the
		// Cryptolib is documented with CKM_SHA256_RSA_PKCS): the message
		// goes to the module where it offers the mechanism (SoftHSM: RSA,
		// not ECDSA-SHA256), else it is hashed here.
		mechs, err := tok.(*moduleToken).mechanisms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		only := make(map[uint]bool)
		for m := range mechs {
			if m != p11.CKM_RSA_PKCS && m != p11.CKM_RSA_PKCS_PSS && m != p11.CKM_ECDSA {
				only[m] = true
			}
		}
		if !only[p11.CKM_SHA256_RSA_PKCS] || !only[p11.CKM_SHA256_RSA_PKCS_PSS] {
			t.Fatal("SoftHSM offers no CKM_SHA256_RSA_PKCS(_PSS): the hash-and-sign path goes untested")
		}
		for _, c := range cases {
			sig, err := c.signer.(*moduleSigner).signMessage(rand.Reader, msg, c.opts, only)
			if err != nil {
				t.Fatalf("%s, hash-and-sign: %v", c.name, err)
			}
			if err := verify[c.name](sig); err != nil {
				t.Errorf("%s, hash-and-sign: %v", c.name, err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		fail := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				sig, err := auth.Sign(rand.Reader, digest[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig)
				}
				if err != nil {
					fail <- err
				}
			})
		}
		wg.Wait()
		close(fail)
		for err := range fail {
			t.Error(err)
		}
	})

	t.Run("SignatureKeyWithoutLogin", func(t *testing.T) {
		// The signature key carries its PIN: it signs without a prior
		// Login, and leaves the token logged out after.
		if err := tok.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		sign, err := tok.Signer(ctx, Signature, "9876")
		if err != nil {
			t.Fatal(err)
		}
		_, err = sign.Sign(rand.Reader, digest[:], crypto.SHA256)
		errs = append(errs, err)
		var pe *PINError
		if !errors.As(err, &pe) {
			t.Errorf("signature with a wrong PIN = %v, want *PINError", err)
		}
		if sign, err = tok.Signer(ctx, Signature, softPIN); err != nil {
			t.Fatal(err)
		}
		sig, err := sign.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&st.ecKey.PublicKey, digest[:], sig) {
			t.Error("ECDSA signature does not verify")
		}
		_, err = auth.Sign(rand.Reader, digest[:], crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("authentication after a signature-key signature = %v, want ErrNotLoggedIn", err)
		}
		if _, err := tok.Signer(ctx, Signature, ""); !errors.Is(err, ErrPINFormat) {
			t.Errorf("Signer(Signature, no PIN) = %v, want ErrPINFormat", err)
		}
	})

	t.Run("Close", func(t *testing.T) {
		tok2, err := st.m.OpenLabel(ctx, softLabel)
		if err != nil {
			t.Fatal(err)
		}
		if err := tok2.Login(ctx, softPIN); err != nil {
			t.Fatal(err)
		}
		if err := tok2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tok2.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := tok2.Login(ctx, softPIN); err == nil {
			t.Error("Login after Close succeeded")
		}
	})

	t.Run("NoPINInErrorsOrLogs", func(t *testing.T) {
		logs.noPIN(t, errs, softPIN, "9876")
	})
}

func softDigest(h crypto.Hash, s string) []byte {
	d := h.New()
	d.Write([]byte(s))
	return d.Sum(nil)
}
