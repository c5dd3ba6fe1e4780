//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ebfe/scard"
	p11 "github.com/miekg/pkcs11"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// openSCEnv names another OpenSC module to test against (a newer build).
const openSCEnv = "DMPAGENT_OPENSC_MODULE"

func loadOpenSC(t *testing.T) *Module {
	t.Helper()
	p := os.Getenv(openSCEnv)
	if p == "" {
		p = OpenSCModulePath()
	}
	if p != "" {
		m, err := LoadModule(p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if os.Getenv(cardtest.RequireEnv) == "1" {
		t.Fatalf("opensc-pkcs11.so missing but %s=1 (make test installs opensc-pkcs11)", cardtest.RequireEnv)
	}
	t.Skip("opensc-pkcs11.so missing: apt-get install opensc-pkcs11 (make test does)")
	return nil
}

func newGP(t *testing.T, p *pki.PKI) *piv.Card {
	t.Helper()
	card, err := testcards.NewCPS(p, "gp")
	if err != nil {
		t.Fatal(err)
	}
	return card
}

// tokenFlags names the PIN flags of the token in slot, for the log.
func tokenFlags(m *Module, slot uint) string {
	ti, err := m.ctx.GetTokenInfo(slot)
	if err != nil {
		return err.Error()
	}
	var names []string
	for _, f := range []struct {
		bit  uint
		name string
	}{{p11.CKF_USER_PIN_COUNT_LOW, "COUNT_LOW"}, {p11.CKF_USER_PIN_FINAL_TRY, "FINAL_TRY"}, {p11.CKF_USER_PIN_LOCKED, "LOCKED"}} {
		if ti.Flags&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return fmt.Sprintf("%#x [%s]", ti.Flags, strings.Join(names, " "))
}

// openSCChildEnv marks the child process in which TestOpenSC runs.
const openSCChildEnv = "DMPAGENT_OPENSC_CHILD"

// TestOpenSC drives the module backend through the real stack: OpenSC's
// opensc-pkcs11.so, pcscd, vpcd and the emulated test CPS.
//
// It runs in a child process of its own. OpenSC keeps a shared PC/SC
// connection to every card it has seen until C_Finalize, and a Module is
// never finalised; piv-go, which the PIV tests of this package use, needs
// the card exclusively and would then meet ErrCardBusy. The agent likewise
// uses one backend per card.
func TestOpenSC(t *testing.T) {
	if os.Getenv(openSCChildEnv) == "1" {
		testOpenSC(t)
		return
	}
	args := []string{"-test.run=^TestOpenSC$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), openSCChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child process:\n%s", out)
	switch {
	case err != nil:
		t.Fatalf("TestOpenSC in its child process: %v", err)
	case bytes.Contains(out, []byte("--- SKIP: TestOpenSC ")):
		t.Skip("skipped in the child process (see its output)")
	case !bytes.Contains(out, []byte("--- PASS: TestOpenSC ")):
		t.Fatal("the child process did not run TestOpenSC")
	}
}

func testOpenSC(t *testing.T) {
	p := cardtest.PKI(t)
	keys, err := p.Card("gp")
	if err != nil {
		t.Fatal(err)
	}
	card := newGP(t, p)
	slot := cardtest.Insert(t, 0, card, vpcd.Faults{}) // skips without pcscd + vpcd
	m := loadOpenSC(t)
	logs := watchModuleLogs(t)
	var errs []error // every error returned, checked for PINs at the end
	ctx := context.Background()
	reader := vpcd.ReaderName(0)
	authPub := keys.Auth.Cert.PublicKey.(*rsa.PublicKey)
	signPub := keys.Sign.Cert.PublicKey.(*rsa.PublicKey)
	digest := softDigest(crypto.SHA256, "consentement du patient")
	pss := &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}

	var slotID uint
	t.Run("Slots", func(t *testing.T) {
		slots, err := m.Slots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range slots {
			t.Logf("slot %d: reader %q present=%v label %q serial %q", s.ID, s.Reader, s.TokenPresent, s.TokenLabel, s.TokenSerial)
			if s.Reader == reader && s.TokenPresent {
				found, slotID = true, s.ID
			}
		}
		if !found {
			t.Fatalf("no slot described %q with a token", reader)
		}
	})

	start := time.Now()
	tok, err := m.Open(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	t.Logf("Open: %v", time.Since(start))
	if tok.Reader() != reader {
		t.Errorf("Reader() = %q, want %q", tok.Reader(), reader)
	}

	t.Run("Certificates", func(t *testing.T) {
		for role, want := range map[Role]*x509.Certificate{Authentication: keys.Auth.Cert, Signature: keys.Sign.Cert} {
			start := time.Now()
			c, err := tok.Certificate(ctx, role)
			if err != nil {
				t.Fatalf("%v: %v", role, err)
			}
			t.Logf("%v certificate: %v", role, time.Since(start))
			if !bytes.Equal(c.Raw, want.Raw) {
				t.Errorf("%v: got %q, not the PKI's certificate", role, c.Subject)
			}
		}
	})

	auth, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("NotLoggedIn", func(t *testing.T) {
		_, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("Sign before Login = %v, want ErrNotLoggedIn", err)
		}
	})

	t.Run("PINFormat", func(t *testing.T) {
		for _, bad := range []string{"123456789", "12"} { // PIV: 4 to 8
			err := tok.Login(ctx, bad)
			errs = append(errs, err)
			if !errors.Is(err, ErrPINFormat) {
				t.Errorf("Login(%d digits) = %v, want ErrPINFormat", len(bad), err)
			}
		}
		if n := card.PINTriesLeft(); n != 3 {
			t.Errorf("the card counted a malformed PIN: %d tries left", n)
		}
	})

	t.Run("LoginAndSign", func(t *testing.T) {
		start := time.Now()
		if err := tok.Login(ctx, testcards.PIN); err != nil {
			t.Fatal(err)
		}
		t.Logf("Login: %v", time.Since(start))
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			d := softDigest(h, "ordonnance")
			before, start := Signatures(), time.Now()
			sig, err := auth.Sign(rand.Reader, d, h)
			if err != nil {
				t.Fatalf("PKCS#1 v1.5 %v: %v", h, err)
			}
			t.Logf("PKCS#1 v1.5 %v: %v", h, time.Since(start))
			if n := Signatures() - before; n != 1 {
				t.Errorf("signature counter moved by %d, want 1", n)
			}
			if err := rsa.VerifyPKCS1v15(authPub, h, d, sig); err != nil {
				t.Errorf("PKCS#1 v1.5 %v: %v", h, err)
			}
		}
		start = time.Now()
		sig, err := auth.Sign(rand.Reader, digest, pss)
		if err != nil {
			t.Fatalf("PSS: %v", err)
		}
		t.Logf("PSS SHA-256: %v", time.Since(start))
		if err := rsa.VerifyPSS(authPub, crypto.SHA256, digest, sig, pss); err != nil {
			t.Errorf("PSS: %v", err)
		}
	})

	t.Run("HashAndSign", func(t *testing.T) {
		// CKM_SHA256_RSA_PKCS(_PSS), the Cryptolib's documented way, on
		// OpenSC: the message goes to the module.
		msg := []byte("<SubmissionSet/>")
		d := softDigest(crypto.SHA256, string(msg))
		only := map[uint]bool{p11.CKM_SHA256_RSA_PKCS: true, p11.CKM_SHA256_RSA_PKCS_PSS: true}
		sig, err := auth.(*moduleSigner).signMessage(rand.Reader, msg, crypto.SHA256, only)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(authPub, crypto.SHA256, d, sig); err != nil {
			t.Error(err)
		}
		sig, err = auth.(*moduleSigner).signMessage(rand.Reader, msg, pss, only)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPSS(authPub, crypto.SHA256, d, sig, pss); err != nil {
			t.Error(err)
		}
	})

	t.Run("SignatureKey", func(t *testing.T) {
		sign, err := tok.Signer(ctx, Signature, testcards.PIN)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sig, err := sign.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("signature key, PKCS#1 v1.5 with its PIN: %v", time.Since(start))
		if err := rsa.VerifyPKCS1v15(signPub, crypto.SHA256, digest, sig); err != nil {
			t.Error(err)
		}
		if sig, err = sign.Sign(rand.Reader, digest, pss); err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPSS(signPub, crypto.SHA256, digest, sig, pss); err != nil {
			t.Error(err)
		}

		wrong, err := tok.Signer(ctx, Signature, "9876")
		if err != nil {
			t.Fatal(err)
		}
		_, err = wrong.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		var pe *PINError
		if !errors.As(err, &pe) {
			t.Fatalf("signature key, wrong PIN: %v, want *PINError", err)
		}
		t.Logf("signature key, wrong PIN: %v (card: %d tries left)", err, card.PINTriesLeft())
		// OpenSC 0.23 answers a wrong context-specific PIN by closing
		// every session of the slot: the login is gone with them, and the
		// token must say so rather than fail on a dead handle.
		_, err = auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("authentication after a wrong signature PIN: %v, want ErrNotLoggedIn", err)
		}
		if err := tok.Login(ctx, testcards.PIN); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Sign(rand.Reader, digest, crypto.SHA256); err != nil {
			t.Errorf("authentication after a new Login: %v", err)
		}
		// The card resets its counter at the next right PIN.
		if _, err := sign.Sign(rand.Reader, digest, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		if n := card.PINTriesLeft(); n != 3 {
			t.Errorf("card has %d tries left after a right PIN, want 3", n)
		}
	})

	t.Run("SignatureKeyWithoutLogin", func(t *testing.T) {
		if err := tok.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		signWithSignatureKey(t, tok, signPub, digest)
		_, err = auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("authentication after a signature-key signature = %v, want ErrNotLoggedIn", err)
		}
	})

	t.Run("LogoutForgetsPIN", func(t *testing.T) {
		// OpenSC's PIV logout sends nothing and leaves the card verified
		// for whatever program connects next: Logout must make the card
		// itself forget the PIN.
		if err := tok.Login(ctx, testcards.PIN); err != nil {
			t.Fatal(err)
		}
		if !cardPINVerified(t, reader) {
			t.Fatal("the card does not show the PIN verified after Login: the check below proves nothing")
		}
		if err := tok.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		if cardPINVerified(t, reader) {
			t.Error("the card still has the PIN verified after Logout")
		}
		if _, err := auth.Sign(rand.Reader, digest, crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("Sign after Logout = %v, want ErrNotLoggedIn", err)
		}
		// The token is usable again after the reset.
		if err := tok.Login(ctx, testcards.PIN); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.Sign(rand.Reader, digest, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		if err := tok.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		// A signature-key signature logs in for itself and must leave
		// the card as unverified as it found it.
		signWithSignatureKey(t, tok, signPub, digest)
		if cardPINVerified(t, reader) {
			t.Error("the card still has the PIN verified after a signature-key signature")
		}
	})

	t.Run("WrongPINs", func(t *testing.T) {
		t.Logf("token flags before: %s", tokenFlags(m, slotID))
		want := []int{2, 1, 0}
		for i := range 3 {
			err := tok.Login(ctx, "9876")
			errs = append(errs, err)
			flags := tokenFlags(m, slotID)
			t.Logf("wrong PIN #%d: %v; token flags %s; card: %d tries left", i+1, err, flags, card.PINTriesLeft())
			if n := card.PINTriesLeft(); n != want[i] {
				t.Fatalf("card has %d tries left, want %d", n, want[i])
			}
			var pe *PINError
			switch i {
			case 0:
				// OpenSC's PIV driver raises no flag before the final try.
				if !errors.As(err, &pe) || (pe.TriesLeft != -1 && pe.TriesLeft != 2) {
					t.Errorf("first wrong PIN: %v, want *PINError with -1 or 2 tries", err)
				}
			case 1:
				if !errors.As(err, &pe) || pe.TriesLeft != 1 {
					t.Errorf("second wrong PIN: %v, want *PINError{1}", err)
				}
			case 2:
				if !errors.Is(err, ErrPINBlocked) {
					t.Errorf("third wrong PIN: %v, want ErrPINBlocked", err)
				}
			}
		}
		err := tok.Login(ctx, testcards.PIN)
		errs = append(errs, err)
		if !errors.Is(err, ErrPINBlocked) {
			t.Errorf("right PIN on a blocked card: %v, want ErrPINBlocked", err)
		}
	})

	// The blocked card leaves; a new card of the same professional comes.
	// (Cards go in and out here, not in subtests, whose end would remove
	// them.)
	cardtest.Remove(t, slot, 0)
	card = newGP(t, p)
	slot = cardtest.Insert(t, 0, card, vpcd.Faults{})

	t.Run("FreshCard", func(t *testing.T) {
		// The same token reopens its session on the new card.
		start := time.Now()
		err := tok.Login(ctx, testcards.PIN)
		t.Logf("Login on the new card: %v, %v", err, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(authPub, crypto.SHA256, digest, sig); err != nil {
			t.Error(err)
		}
	})

	// The card leaves and comes back while the token is idle and logged
	// in: its session is stale, which only the next call finds out.
	cardtest.Remove(t, slot, 0)
	card = newGP(t, p)
	slot = cardtest.Insert(t, 0, card, vpcd.Faults{})

	t.Run("StaleSession", func(t *testing.T) {
		_, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		t.Logf("Sign on a stale session: %v", err)
		if !errors.Is(err, ErrNotLoggedIn) || !p11Code(err, p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT) {
			t.Errorf("Sign on a reinserted card = %v, want ErrNotLoggedIn carrying the CKR code", err)
		}
		loginAndSign(t, tok, auth, authPub, digest)
	})

	t.Run("RemovedBetweenOperations", func(t *testing.T) {
		cardtest.Remove(t, slot, 0)
		start := time.Now()
		_, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		t.Logf("Sign with no card: %v after %v", err, time.Since(start))
		if !errors.Is(err, ErrCardRemoved) {
			t.Errorf("Sign with no card = %v, want ErrCardRemoved", err)
		}
		err = tok.Login(ctx, testcards.PIN)
		errs = append(errs, err)
		if !errors.Is(err, ErrCardRemoved) {
			t.Errorf("Login with no card = %v, want ErrCardRemoved", err)
		}
	})

	card = newGP(t, p)
	slot = cardtest.Insert(t, 0, card, vpcd.Faults{})

	t.Run("Reinserted", func(t *testing.T) {
		// A reinserted card needs a new Login: no PIN is kept.
		_, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
		errs = append(errs, err)
		if !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("Sign on the reinserted card before Login = %v, want ErrNotLoggedIn", err)
		}
		t.Logf("Login + Sign on the reinserted card: %v", loginAndSign(t, tok, auth, authPub, digest))
	})

	t.Run("PulledDuringSignature", func(t *testing.T) {
		// The card leaves in the middle of an APDU of the signature.
		// OpenSC before 0.24 deadlocks (the calling thread, for good)
		// when the card leaves during most of the signing APDUs of the
		// authentication key: sc_lock hides the failure of PIV's applet
		// check and sc_unlock then keeps card->mutex (OpenSC issue #2707,
		// fixed by commit d449fee in 0.24). The one point it survives is
		// the signature key's first signing APDU, the third the card sees
		// (GET DATA and VERIFY come first): that is what runs there.
		signer, pullAt, what := auth, 1, "authentication key, 1st APDU"
		if info, err := m.ctx.GetInfo(); err == nil && info.LibraryVersion.Major == 0 && info.LibraryVersion.Minor < 24 {
			sign, err := tok.Signer(ctx, Signature, testcards.PIN)
			if err != nil {
				t.Fatal(err)
			}
			signer, pullAt, what = sign, 3, "signature key, 3rd APDU (OpenSC < 0.24)"
		}
		slot.SetFaults(vpcd.Faults{PullAfter: pullAt})
		start := time.Now()
		_, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
		elapsed := time.Since(start)
		errs = append(errs, err)
		t.Logf("Sign with the card pulled (%s): %v after %v", what, err, elapsed)
		select {
		case <-slot.Pulled():
		default:
			t.Fatal("the card was not pulled during the signature")
		}
		if !errors.Is(err, ErrCardRemoved) {
			t.Errorf("Sign = %v, want ErrCardRemoved", err)
		}
		if elapsed > 10*time.Second {
			t.Errorf("ErrCardRemoved took %v", elapsed)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := vpcd.WaitPCSC(wctx, 0, false, nil); err != nil {
			t.Fatal(err)
		}
	})

	card = newGP(t, p)
	slot = cardtest.Insert(t, 0, card, vpcd.Faults{})

	t.Run("AfterPull", func(t *testing.T) {
		t.Logf("Login + Sign on a fresh card after the pull: %v", loginAndSign(t, tok, auth, authPub, digest))
		signWithSignatureKey(t, tok, signPub, digest)
	})

	t.Run("NoPINInErrorsOrLogs", func(t *testing.T) {
		logs.noPIN(t, errs, testcards.PIN, "9876", "123456789")
	})
}

// cardPINVerified asks the PIV card in reader, over a PC/SC connection of
// its own as any other program would, whether its PIN is verified now
// (VERIFY without data: 9000 when it is).
func cardPINVerified(t *testing.T, reader string) bool {
	t.Helper()
	card, release, err := pcscConnect(reader)
	if err != nil {
		t.Fatal(err)
	}
	defer release(scard.LeaveCard)
	if resp, err := card.Transmit(pivSelectCommand); err != nil || len(resp) < 2 {
		t.Fatalf("SELECT PIV: % X, %v", resp, err)
	}
	resp, err := card.Transmit([]byte{0x00, 0x20, 0x00, 0x80})
	if err != nil || len(resp) != 2 {
		t.Fatalf("VERIFY status: % X, %v", resp, err)
	}
	return resp[0] == 0x90 && resp[1] == 0x00
}

// loginAndSign logs tok in with the right PIN and checks a signature of
// digest by the authentication key, verified with pub; it returns how long
// both took.
func loginAndSign(t *testing.T, tok Token, auth crypto.Signer, pub *rsa.PublicKey, digest []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if err := tok.Login(context.Background(), testcards.PIN); err != nil {
		t.Fatal(err)
	}
	sig, err := auth.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
		t.Error(err)
	}
	return elapsed
}

// signWithSignatureKey checks a signature of digest by the signature key,
// which gets the PIN with the signer, verified with pub.
func signWithSignatureKey(t *testing.T, tok Token, pub *rsa.PublicKey, digest []byte) {
	t.Helper()
	sign, err := tok.Signer(context.Background(), Signature, testcards.PIN)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
		t.Error(err)
	}
}
