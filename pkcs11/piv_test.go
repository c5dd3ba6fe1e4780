package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	emu "github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// The tests below run on the real stack: piv-go → pcscd → vpcd → the
// emulated test CPS (testcards/piv). They skip without pcscd and vpcd,
// and fail then under DMPAGENT_REQUIRE_PCSC=1.

func TestPIVCertificates(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	if tok.Reader() != pivReader {
		t.Errorf("Reader() = %q, want %q", tok.Reader(), pivReader)
	}
	for _, tc := range []struct {
		role Role
		want []byte
	}{
		{Authentication, c.keys.Auth.Cert.Raw},
		{Signature, c.keys.Sign.Cert.Raw},
	} {
		cert, err := tok.Certificate(pivCtx(t), tc.role)
		if err != nil {
			t.Fatalf("Certificate(%v): %v", tc.role, err)
		}
		if !bytes.Equal(cert.Raw, tc.want) {
			t.Errorf("Certificate(%v) is %q, not the PKI's", tc.role, cert.Subject)
		}
	}
	if got := c.card.PINTriesLeft(); got != 3 {
		t.Errorf("reading certificates touched the PIN counter: %d tries left", got)
	}
}

func TestPIVLoginAndSign(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	start := time.Now()
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatalf("Login: %v", err)
	}
	t.Logf("Login: %v", time.Since(start))
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.keys.Auth.Cert.PublicKey.(*rsa.PublicKey).Equal(s.Public()) {
		t.Fatal("signer's public key is not the certificate's")
	}
	for _, opts := range []crypto.SignerOpts{
		crypto.SHA256,
		&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, // what TLS 1.3 asks
		&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256},
	} {
		before := Signatures()
		start := time.Now()
		pivSignVerify(t, s, c.keys.Auth.Cert, "hello", opts)
		t.Logf("Sign %T: %v", opts, time.Since(start))
		if n := Signatures() - before; n != 1 {
			t.Errorf("Sign counted %d card signatures, want 1", n)
		}
	}
	if got := c.card.PINTriesLeft(); got != 3 {
		t.Errorf("%d PIN tries left after signing, want 3", got)
	}

	t.Run("concurrent signatures are serialised", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Go(func() {
				d := sha256.Sum256(fmt.Appendf(nil, "msg %d", i))
				sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(c.keys.Auth.Cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig)
				}
				errs <- err
			})
			if i%2 == 0 {
				wg.Go(func() {
					_, err := tok.Certificate(ctx, Signature)
					errs <- err
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("digest checks before the card", func(t *testing.T) {
		before := Signatures()
		for _, tc := range []struct {
			digest []byte
			opts   crypto.SignerOpts
		}{
			{make([]byte, 32), crypto.Hash(0)}, // piv-go would panic
			{make([]byte, 20), crypto.SHA256},
			{make([]byte, 32), nil},
		} {
			if _, err := s.Sign(rand.Reader, tc.digest, tc.opts); err == nil {
				t.Errorf("Sign(%d bytes, %v) succeeded", len(tc.digest), tc.opts)
			}
		}
		if n := Signatures() - before; n != 0 {
			t.Errorf("%d card signatures for refused digests", n)
		}
	})
}

func TestPIVSignatureKey(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)

	// No Login: the signature key takes the PIN at every use.
	s, err := tok.Signer(ctx, Signature, testcards.PIN)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		start := time.Now()
		pivSignVerify(t, s, c.keys.Sign.Cert, fmt.Sprint("document ", i), crypto.SHA256)
		t.Logf("signature-key Sign %d: %v", i, time.Since(start))
	}
	pivSignVerify(t, s, c.keys.Sign.Cert, "pss", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})

	if _, err := tok.Signer(ctx, Signature, ""); err == nil {
		t.Error("Signer(Signature) without a PIN succeeded")
	}

	t.Run("wrong PIN is presented once", func(t *testing.T) {
		bad, err := tok.Signer(ctx, Signature, "0000")
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		_, err = bad.Sign(rand.Reader, d[:], crypto.SHA256)
		var pe *PINError
		if !errors.As(err, &pe) || pe.TriesLeft != 2 {
			t.Fatalf("Sign with a wrong PIN: %v, want *PINError{2}", err)
		}
		_, err = bad.Sign(rand.Reader, d[:], crypto.SHA256)
		if err == nil {
			t.Fatal("second Sign with the refused PIN succeeded")
		}
		if got := c.card.PINTriesLeft(); got != 2 {
			t.Fatalf("the refused PIN was presented again: %d tries left, want 2", got)
		}
		// The good signer still works and resets the counter.
		pivSignVerify(t, s, c.keys.Sign.Cert, "after", crypto.SHA256)
		if got := c.card.PINTriesLeft(); got != 3 {
			t.Errorf("%d tries left after a right PIN, want 3", got)
		}
	})
}

func TestPIVWrongPIN(t *testing.T) {
	t.Run("wrong then right", func(t *testing.T) {
		c := pivInsertCPS(t, "gp")
		tok := pivOpen(t)
		ctx := pivCtx(t)
		var pe *PINError
		if err := tok.Login(ctx, "0000"); !errors.As(err, &pe) || pe.TriesLeft != 2 {
			t.Fatalf("Login(wrong) = %v, want *PINError{TriesLeft: 2}", err)
		}
		if got := c.card.PINTriesLeft(); got != 2 {
			t.Fatalf("card: %d tries left, want 2", got)
		}
		if err := tok.Login(ctx, testcards.PIN); err != nil {
			t.Fatalf("Login(right) after one wrong: %v", err)
		}
		if got := c.card.PINTriesLeft(); got != 3 {
			t.Errorf("card: %d tries left after the right PIN, want 3", got)
		}
		s, err := tok.Signer(ctx, Authentication, "")
		if err != nil {
			t.Fatal(err)
		}
		pivSignVerify(t, s, c.keys.Auth.Cert, "ok", crypto.SHA256)
	})

	t.Run("three wrong block the card", func(t *testing.T) {
		c := pivInsertCPS(t, "gp")
		tok := pivOpen(t)
		ctx := pivCtx(t)
		for _, want := range []int{2, 1} {
			err := tok.Login(ctx, "9999")
			var pe *PINError
			if !errors.As(err, &pe) || pe.TriesLeft != want {
				t.Fatalf("Login(wrong) = %v, want *PINError{TriesLeft: %d}", err, want)
			}
			if errors.Is(err, ErrPINBlocked) {
				t.Fatalf("Login(wrong) = %v, blocked too early", err)
			}
			if got := c.card.PINTriesLeft(); got != want {
				t.Fatalf("card: %d tries left, want %d", got, want)
			}
		}
		err := tok.Login(ctx, "9999")
		if !errors.Is(err, ErrPINBlocked) {
			t.Fatalf("third wrong Login = %v, want ErrPINBlocked", err)
		}
		if got := c.card.PINTriesLeft(); got != 0 {
			t.Fatalf("card: %d tries left, want 0", got)
		}
		// Blocked: even the right PIN is refused, without a PINError.
		err = tok.Login(ctx, testcards.PIN)
		if !errors.Is(err, ErrPINBlocked) {
			t.Fatalf("Login(right) on a blocked card = %v, want ErrPINBlocked", err)
		}
		s, err := tok.Signer(ctx, Authentication, "")
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("x"))
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("Sign after failed logins = %v, want ErrNotLoggedIn", err)
		}
	})
}

func TestPIVNotLoggedIn(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	sign := func() error {
		_, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		return err
	}
	before := Signatures()
	if err := sign(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Sign before Login = %v, want ErrNotLoggedIn", err)
	}
	if n := Signatures() - before; n != 0 {
		t.Errorf("Sign before Login asked the card for %d signatures", n)
	}

	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	if err := sign(); err != nil {
		t.Fatalf("Sign after Login: %v", err)
	}
	if err := tok.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sign(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Sign after Logout = %v, want ErrNotLoggedIn", err)
	}

	// A failed Login drops the previous one too.
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	if err := tok.Login(ctx, "0000"); err == nil {
		t.Fatal("Login(wrong) succeeded")
	}
	if err := sign(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Sign after a failed Login = %v, want ErrNotLoggedIn", err)
	}
	if got := c.card.PINTriesLeft(); got != 2 {
		t.Errorf("card: %d tries left, want 2 (one wrong Login, no PIN presented since)", got)
	}
}

func TestPIVCardPulled(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pullAt picks the APDU that pulls the card, from the commands
		// a successful signature sent (1-based).
		pullAt func(t *testing.T, ins []byte) int
	}{
		{"at the first APDU", func(*testing.T, []byte) int { return 1 }},
		{"during GENERAL AUTHENTICATE", func(t *testing.T, ins []byte) int {
			i := slices.Index(ins, 0x87)
			if i < 0 {
				t.Fatalf("no GENERAL AUTHENTICATE among % X", ins)
			}
			return i + 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pivInsertCPS(t, "gp")
			tok := pivOpen(t)
			ctx := pivCtx(t)
			if err := tok.Login(ctx, testcards.PIN); err != nil {
				t.Fatal(err)
			}
			s, err := tok.Signer(ctx, Authentication, "")
			if err != nil {
				t.Fatal(err)
			}
			c.rec.take()
			pivSignVerify(t, s, c.keys.Auth.Cert, "calibration", crypto.SHA256)
			ins := c.rec.take()
			n := tc.pullAt(t, ins)
			t.Logf("a signature sends % X; pulling at APDU %d", ins, n)

			c.slot.SetFaults(vpcd.Faults{PullAfter: n})
			d := sha256.Sum256([]byte("pulled"))
			start := time.Now()
			_, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
			elapsed := time.Since(start)
			t.Logf("Sign with the card pulled: %v after %v", err, elapsed)
			if !errors.Is(err, ErrCardRemoved) {
				t.Fatalf("Sign = %v, want ErrCardRemoved", err)
			}
			if elapsed > 3*time.Second {
				t.Errorf("ErrCardRemoved took %v", elapsed)
			}
			select {
			case <-c.slot.Pulled():
			default:
				t.Fatal("the fault did not pull the card")
			}
			if tok.(*pivToken).pin != nil {
				t.Error("the PIN is still kept after the card left")
			}

			// A fresh card in the same reader: the old login is gone.
			pivWaitEmpty(t)
			c2 := pivInsertCPS(t, "gp")
			s2, err := tok.Signer(ctx, Authentication, "")
			if err != nil {
				t.Fatalf("Signer after reinsertion: %v", err)
			}
			if _, err := s2.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
				t.Fatalf("Sign after reinsertion = %v, want ErrNotLoggedIn", err)
			}
			if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrCardRemoved) {
				t.Errorf("old signer after reinsertion = %v, want ErrCardRemoved", err)
			}
			if err := tok.Login(ctx, testcards.PIN); err != nil {
				t.Fatalf("Login after reinsertion: %v", err)
			}
			pivSignVerify(t, s2, c2.keys.Auth.Cert, "again", crypto.SHA256)
		})
	}
}

// A card swapped for another between two operations is never seen removed
// by the token; the kept PIN must not go to the newcomer.
func TestPIVCardSwapped(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Remove(t, c.slot, 0)
	other := pivInsertCPS(t, "nurse") // same PIN, other serial
	other.rec.take()
	d := sha256.Sum256([]byte("x"))
	if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrCardRemoved) {
		t.Fatalf("Sign on another card = %v, want ErrCardRemoved", err)
	}
	if ins := other.rec.take(); slices.Contains(ins, 0x20) || slices.Contains(ins, 0x87) {
		t.Errorf("the other card got a VERIFY or a signature request: % X", ins)
	}
	s2, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Sign with a new signer = %v, want ErrNotLoggedIn", err)
	}
}

func TestPIVCardFreeBetweenOperations(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	pivExclusive(t, "after OpenPIV")
	if _, err := tok.Certificate(ctx, Authentication); err != nil {
		t.Fatal(err)
	}
	pivExclusive(t, "after Certificate")
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	pivExclusive(t, "after Login")
	pivOpenSC(t, c.card.ATR(), "after Login")
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	pivSignVerify(t, s, c.keys.Auth.Cert, "one", crypto.SHA256)
	pivExclusive(t, "after an authentication signature")
	pivOpenSC(t, c.card.ATR(), "after an authentication signature")
	sig, err := tok.Signer(ctx, Signature, testcards.PIN)
	if err != nil {
		t.Fatal(err)
	}
	pivSignVerify(t, sig, c.keys.Sign.Cert, "two", crypto.SHA256)
	pivExclusive(t, "after a signature-key signature")
	// The others' connections did not cost the login.
	pivSignVerify(t, s, c.keys.Auth.Cert, "three", crypto.SHA256)
}

// pivOpenSC has OpenSC, another program on the desk, use the card.
func pivOpenSC(t *testing.T, atr []byte, when string) {
	t.Helper()
	path, err := exec.LookPath("opensc-tool")
	if err != nil {
		if os.Getenv(cardtest.RequireEnv) == "1" {
			t.Fatalf("opensc-tool not installed (%s=1)", cardtest.RequireEnv)
		}
		t.Logf("%s: opensc-tool not installed, not checked", when)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--reader", pivReader, "--atr").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: opensc-tool --atr: %v\n%s", when, err, out)
	}
	norm := strings.NewReplacer(":", "", " ", "", "\n", "").Replace(strings.ToUpper(string(out)))
	if !strings.Contains(norm, strings.ToUpper(hex.EncodeToString(atr))) {
		t.Errorf("%s: opensc-tool printed %q, not the card's ATR % X", when, out, atr)
	}
}

// While another program holds the card exclusively, operations wait a
// little, then fail without touching the login.
func TestPIVCardBusy(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	held, err := sc.Connect(pivReader, scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("busy"))
	start := time.Now()
	_, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	t.Logf("Sign on a held card: %v after %v", err, time.Since(start))
	if !errors.Is(err, ErrCardBusy) {
		t.Fatalf("Sign on a card held by another program = %v, want ErrCardBusy", err)
	}
	// Released within the wait: the operation goes through.
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Disconnect(scard.LeaveCard)
	}()
	pivSignVerify(t, s, c.keys.Auth.Cert, "after release", crypto.SHA256)
}

func TestPIVECDSA(t *testing.T) {
	cardtest.Lock(t)
	card, keys := pivCustomCard(t, "123456", 4242, pivECKey(t), pivECKey(t))
	pivInsert(t, card, keys)
	tok := pivOpen(t)
	ctx := pivCtx(t)
	if err := tok.Login(ctx, "123456"); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	pivSignVerify(t, s, keys.Auth.Cert, "ec auth", crypto.SHA256)
	sig, err := tok.Signer(ctx, Signature, "123456")
	if err != nil {
		t.Fatal(err)
	}
	pivSignVerify(t, sig, keys.Sign.Cert, "ec sign", crypto.SHA256)
}

// The PIN must appear in no error and no log line, whatever happens.
func TestPIVNoPINInErrorsOrLogs(t *testing.T) {
	const (
		pin      = "73519864"
		wrongPIN = "86420135"
		wrongSig = "24681357"
	)
	var logs bytes.Buffer
	var logMu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	cardtest.Lock(t)
	p := cardtest.PKI(t)
	gp, err := p.Card("gp")
	if err != nil {
		t.Fatal(err)
	}
	card, keys := pivCustomCard(t, pin, 7351, gp.Auth.Key, gp.Sign.Key)
	c := pivInsert(t, card, keys)
	tok := pivOpen(t)
	ctx := pivCtx(t)
	d := sha256.Sum256([]byte("x"))

	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	note(tok.Login(ctx, wrongPIN))
	note(tok.Login(ctx, pin))
	auth, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	c.rec.take()
	_, err = auth.Sign(rand.Reader, d[:], crypto.SHA256)
	note(err)
	ga := slices.Index(c.rec.take(), 0x87)
	if ga < 0 {
		t.Fatal("no GENERAL AUTHENTICATE in a signature")
	}
	bad, err := tok.Signer(ctx, Signature, wrongSig)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = bad.Sign(rand.Reader, d[:], crypto.SHA256)
		note(err)
	}
	_, err = auth.Sign(rand.Reader, d[:], crypto.Hash(0))
	note(err)
	c.slot.SetFaults(vpcd.Faults{PullAfter: ga + 1})
	_, err = auth.Sign(rand.Reader, d[:], crypto.SHA256)
	note(err)
	_, err = auth.Sign(rand.Reader, d[:], crypto.SHA256)
	note(err)
	if len(errs) < 5 {
		t.Fatalf("only %d errors to inspect: %v", len(errs), errs)
	}

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, "PIV card operation") {
		t.Fatalf("no debug log captured; nothing checked:\n%s", out)
	}
	texts := []string{out}
	for _, err := range errs {
		texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	for _, secret := range []string{pin, wrongPIN, wrongSig} {
		for _, form := range []string{secret, hex.EncodeToString([]byte(secret)), strings.ToUpper(hex.EncodeToString([]byte(secret)))} {
			for _, text := range texts {
				if strings.Contains(text, form) {
					t.Errorf("PIN %s (as %q) appears in: %s", secret, form, text)
				}
			}
		}
	}
	t.Logf("checked %d errors and %d bytes of logs", len(errs), len(out))
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestPIVOpenNoToken(t *testing.T) {
	cardtest.Lock(t)
	if _, err := OpenPIV(pivCtx(t), pivReader); !errors.Is(err, ErrNoToken) {
		t.Errorf("OpenPIV(empty reader) = %v, want ErrNoToken", err)
	}
	if _, err := OpenPIV(pivCtx(t), "No Such Reader 00 00"); !errors.Is(err, ErrNoToken) {
		t.Errorf("OpenPIV(unknown reader) = %v, want ErrNoToken", err)
	}
	// Cards without PIV. For a T=1 one, piv-go's own SELECT would fail
	// and leave the reader locked for good (piv-go v2.6.0's Open): the
	// token must refuse first and leave the reader free.
	v, err := testcards.NewVitale("family")
	if err != nil {
		t.Fatal(err)
	}
	for _, card := range []struct {
		name string
		card vpcd.Card
	}{
		{"Vitale card (T=0)", v},
		{"T=1 card without PIV", pivNoApplet{}},
	} {
		t.Run(card.name, func(t *testing.T) {
			slot := cardtest.Insert(t, 0, card.card, vpcd.Faults{})
			_, err := OpenPIV(pivCtx(t), pivReader)
			if !errors.Is(err, ErrNoToken) {
				t.Errorf("OpenPIV = %v, want ErrNoToken", err)
			}
			sc, err := scard.EstablishContext()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Release()
			h, err := sc.Connect(pivReader, scard.ShareExclusive, scard.ProtocolAny)
			if err != nil {
				t.Fatalf("the reader is not free after OpenPIV refused the card: %v", err)
			}
			h.Disconnect(scard.LeaveCard)
			cardtest.Remove(t, slot, 0)
		})
	}
}

// pivNoApplet is a T=1 card (the test CPS's ATR) that knows no
// application: every command gets 6A82.
type pivNoApplet struct{}

func (pivNoApplet) ATR() []byte              { return emu.ATR }
func (pivNoApplet) Transmit(_ []byte) []byte { return []byte{0x6A, 0x82} }
func (pivNoApplet) Reset()                   {}

// A Login whose caller gave up (context ended) while the card was checking
// the PIN keeps no PIN, even though the card accepted it.
func TestPIVLoginAbandoned(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	verifying, release := make(chan struct{}), make(chan struct{})
	c.rec.setHook(func(cmd []byte) {
		if len(cmd) > 5 && cmd[1] == 0x20 { // VERIFY with a PIN
			close(verifying)
			<-release
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tok.Login(ctx, testcards.PIN) }()
	select {
	case <-verifying:
	case err := <-done:
		t.Fatalf("Login returned before VERIFY reached the card: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("VERIFY never reached the card")
	}
	cancel()
	start := time.Now()
	err := <-done
	t.Logf("Login cancelled mid-VERIFY: %v after %v", err, time.Since(start))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Login = %v, want context.Canceled", err)
	}
	c.rec.setHook(nil)
	close(release) // the card now accepts the PIN
	// Signer waits for the abandoned login to finish with the card.
	s, err := tok.Signer(pivCtx(t), Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.card.PINTriesLeft(); got != 3 {
		t.Errorf("%d tries left, want 3 (the abandoned PIN was right)", got)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Sign after an abandoned Login = %v, want ErrNotLoggedIn", err)
	}
}

func TestPIVClose(t *testing.T) {
	pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	kept := tok.(*pivToken).pin
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, make([]byte, len(kept))) {
		t.Error("Close did not overwrite the kept PIN")
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err == nil {
		t.Error("Sign after Close succeeded")
	}
	if err := tok.Login(ctx, testcards.PIN); err == nil {
		t.Error("Login after Close succeeded")
	}
}

func TestPIVErrorClassification(t *testing.T) {
	tok := &pivToken{reader: "r", log: slog.New(slog.DiscardHandler), pin: []byte("1234")}
	for _, tc := range []struct {
		err     error
		removed bool
		is      error
	}{
		// piv-go's messages for PC/SC codes, as piv-go formats them.
		{errors.New("verify pin: transmitting request: the smart card has been removed, so further communication is not possible"), true, ErrCardRemoved},
		{errors.New("connecting to smart card: the operation requires a Smart Card, but no Smart Card is currently in the device"), true, ErrCardRemoved},
		{errors.New("command failed: transmitting request: an attempt was made to end a non-existent transaction"), true, ErrCardRemoved},
		{errors.New("command failed: scard response too short: 0"), true, ErrCardRemoved},
		{errors.New("connecting to smart card: the specified reader name is not recognized"), true, ErrCardRemoved},
		{errors.New("connecting to smart card: the smart card cannot be accessed because of other connections outstanding"), false, nil},
		{fmt.Errorf("verify pin: %w", errTestAuth(2)), false, nil},
		{errors.New("getting yubikey version: expected response to have 3 bytes, got: 0"), false, nil},
	} {
		tok.pin = []byte("1234")
		got := tok.classify("op", tc.err)
		if errors.Is(got, ErrCardRemoved) != tc.removed {
			t.Errorf("classify(%q) = %v; removed want %v", tc.err, got, tc.removed)
		}
		if (tok.pin == nil) != tc.removed {
			t.Errorf("classify(%q): PIN kept = %v", tc.err, tok.pin != nil)
		}
	}
	for _, tc := range []struct {
		retries int
		blocked bool
	}{{2, false}, {1, false}, {0, true}} {
		got := tok.classify("login", fmt.Errorf("verify pin: %w", errTestAuth(tc.retries)))
		var pe *PINError
		switch {
		case tc.blocked && !errors.Is(got, ErrPINBlocked):
			t.Errorf("AuthErr{%d} → %v, want ErrPINBlocked", tc.retries, got)
		case !tc.blocked && (!errors.As(got, &pe) || pe.TriesLeft != tc.retries):
			t.Errorf("AuthErr{%d} → %v, want *PINError{%d}", tc.retries, got, tc.retries)
		}
	}
}

// The reset that ends each PIN use must not look like a removal to the
// agent's card monitor, which would then end the professional's session.
func TestPIVResetIsNotARemoval(t *testing.T) {
	c := pivInsertCPS(t, "gp")
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan cardreader.Event, 64)
	done := make(chan error, 1)
	go func() { done <- cardreader.NewMonitor(cardreader.MonitorConfig{}).Run(ctx, events) }()
	t.Cleanup(func() { cancel(); <-done })
	next := func(kind cardreader.EventKind, within time.Duration) bool {
		timeout := time.After(within)
		for {
			select {
			case ev := <-events:
				if ev.Reader == pivReader && ev.Kind == kind {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	if !next(cardreader.CardInserted, 5*time.Second) {
		t.Fatal("the monitor did not report the card")
	}

	tok := pivOpen(t)
	if err := tok.Login(pivCtx(t), testcards.PIN); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Signer(pivCtx(t), Authentication, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		pivSignVerify(t, s, c.keys.Auth.Cert, "x", crypto.SHA256)
	}
	// pcscd polls vpcd every 400 ms or so: give it time to report.
	if next(cardreader.CardRemoved, 1500*time.Millisecond) {
		t.Fatal("the monitor reported the card removed after Login and signatures")
	}
	// The monitor does see a real removal.
	cardtest.Remove(t, c.slot, 0)
	if !next(cardreader.CardRemoved, 5*time.Second) {
		t.Fatal("the monitor did not report the removal")
	}
}
