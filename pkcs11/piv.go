package pkcs11

// The PIV backend: YubiKeys provisioned as test CPS cards and the emulated
// test CPS (testcards/piv), driven through piv-go without OpenSC.
//
// piv-go connects SCARD_SHARE_EXCLUSIVE and holds a transaction for as long
// as a *piv.YubiKey is open, which locks every other program on the desk
// (OpenSC, the practice software, our own card monitor) out of the card
// (shared/PIV-NOTES.md). So the token opens the card for one operation
// only — a certificate read, a PIN check, one signature — and closes it
// right after; one operation at a time per token.
//
// The price: the card's "PIN verified" state does not outlive the
// connection (and must not: see resetCard), so the token keeps the PIN
// given to Login in memory and presents it again before each signature of
// the authentication key. That is this backend's one difference from the
// PKCS#11 backend, where the card itself keeps the login. The PIN is kept
// only between a successful Login and Logout, Close or the first sign of
// the card's removal, then overwritten and dropped; a failed Login keeps
// nothing, and a kept PIN the card refuses is dropped at once, never
// presented twice.
//
// Removal is seen when an operation meets it (pulled mid-operation, or
// absent at the next one). A card pulled and reinserted between two
// operations leaves no trace piv-go can see; the serial number read at
// each signature catches another card (the PIN never goes to it), but the
// same card put back keeps the login. The agent's card monitor sees every
// removal and is expected to call Logout.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

// pivBusyWait bounds how long an operation waits for other software to let go
// of the card (piv-go needs it exclusively) before giving up. Programs on
// the desk hold a card for milliseconds per operation; one that keeps a
// session open (an opensc-pkcs11 session) will not let go in time.
const pivBusyWait = 2 * time.Second

// errPIVClosed is returned by every use of a closed token.
var errPIVClosed = errors.New("pkcs11: PIV token is closed")

// OpenPIV returns the token of the PIV card in reader. It checks that the
// card answers as a PIV application piv-go can drive (ErrNoToken if the
// reader is empty, unknown, or holds another kind of card) and keeps no
// connection open: see the top of this file.
func OpenPIV(ctx context.Context, reader string) (Token, error) {
	t := &pivToken{
		reader: reader,
		log:    slog.Default().With("backend", "piv", "reader", reader),
		lock:   make(chan struct{}, 1),
	}
	err := t.run(ctx, func(*pivCall) error {
		return t.withCard(ctx, "open", false, func(*piv.YubiKey) error { return nil })
	})
	if errors.Is(err, ErrCardRemoved) {
		// Nothing was there to begin with: for the caller, no token (and
		// not a removal, hence %v).
		return nil, fmt.Errorf("%w in %q: %v", ErrNoToken, reader, err)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// pivToken implements Token for one reader.
type pivToken struct {
	reader string
	log    *slog.Logger

	// lock serialises operations (one piv-go connection at a time) and
	// guards the fields below. It is a channel so that waiting for it can
	// end with a context.
	lock chan struct{}

	closed bool
	// pin is the PIN of the last successful Login, nil when logged out.
	pin []byte
	// loginCard is the card the PIN was verified on.
	loginCard pivCardID
	// epoch counts the removals (and Close) this token has seen: a signer
	// made before one refuses to sign after it.
	epoch uint64
}

// pivCardID tells one card from another between two connections: the serial
// number piv-go reads (GET SERIAL, YubiKey extension, which the emulated
// test CPS answers too). Cards whose serial cannot be read are not told
// apart (known false).
type pivCardID struct {
	serial uint32
	known  bool
}

// sameCard reports whether now may be the card that was. An unknown serial
// then means nothing to compare; an unknown serial now, when it was known,
// means another card.
func (was pivCardID) sameCard(now pivCardID) bool {
	return !was.known || (now.known && now.serial == was.serial)
}

func pivReadCardID(yk *piv.YubiKey) (pivCardID, error) {
	s, err := yk.Serial()
	if err != nil {
		if pivIsRemoval(err) {
			return pivCardID{}, err
		}
		return pivCardID{}, nil
	}
	return pivCardID{serial: s, known: true}, nil
}

func (t *pivToken) Reader() string { return t.reader }

// pivCall is one operation run for a caller who may stop waiting (its context
// ended) while the card is still busy: PC/SC calls cannot be interrupted.
// An operation that changes the token's state for the caller (Login keeping
// the PIN) does so only if deliver says the caller still waits, so that a
// caller told "deadline exceeded" never leaves a PIN behind.
type pivCall struct {
	mu        sync.Mutex
	abandoned bool
	delivered bool
}

// deliver reports whether the caller still waits; from then on the caller
// will wait for the result.
func (c *pivCall) deliver() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delivered = !c.abandoned
	return c.delivered
}

// abandon marks the call abandoned, unless the result was already
// delivered (then it returns false and the caller takes the result).
func (c *pivCall) abandon() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.delivered {
		return false
	}
	c.abandoned = true
	return true
}

// run runs op holding the token's lock, returning early (op goes on in the
// background, still holding the lock) when ctx ends.
func (t *pivToken) run(ctx context.Context, op func(*pivCall) error) error {
	select {
	case t.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("pkcs11: PIV %q: %w", t.reader, ctx.Err())
	}
	c := &pivCall{}
	done := make(chan error, 1)
	go func() {
		defer func() { <-t.lock }()
		if t.closed {
			done <- errPIVClosed
			return
		}
		done <- op(c)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if c.abandon() {
			return fmt.Errorf("pkcs11: PIV %q: %w", t.reader, ctx.Err())
		}
		return <-done
	}
}

// withCard opens the card, runs f and closes it. When pinUsed, the card is
// then reset so that the PIN verified state dies with our connection (see
// resetCard). Errors come back classified (classify).
func (t *pivToken) withCard(ctx context.Context, op string, pinUsed bool, f func(*piv.YubiKey) error) error {
	start := time.Now()
	yk, err := t.open(ctx)
	if err != nil {
		return t.classify(op, err)
	}
	err = f(yk)
	if cerr := yk.Close(); cerr != nil && err == nil && !pivIsRemoval(cerr) {
		// The operation is done; the connection's end is only worth a
		// line, since pcscd drops the handle with the context anyway.
		t.log.Debug("PIV card close", "op", op, "err", cerr)
	}
	if pinUsed && !pivIsRemoval(err) {
		switch rerr := resetCard(t.reader); {
		case pivIsRemoval(rerr):
			// Whatever f did, the card has gone since.
			t.cardGone(op)
		case rerr != nil:
			t.log.Warn("PIV card not reset after PIN use: another program may find the PIN verified",
				"op", op, "err", rerr)
		}
	}
	t.log.Debug("PIV card operation", "op", op, "duration", time.Since(start), "err", err)
	return t.classify(op, err)
}

// open connects piv-go to the card, waiting up to pivBusyWait (or ctx) while
// another program holds it.
//
// pivSelect first checks, over a connection of our own, that a PIV
// application answers: piv-go's Open leaves its exclusive connection and
// transaction open for good when its own SELECT fails (piv-go v2.6.0,
// client.Open), which would lock every program out of the reader until
// this process exits. After the check, only a card pulled in the
// milliseconds before piv-go's SELECT can still trigger that leak.
func (t *pivToken) open(ctx context.Context) (*piv.YubiKey, error) {
	deadline := time.Now().Add(pivBusyWait)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := pivSelect(t.reader)
		var yk *piv.YubiKey
		if err == nil {
			yk, err = piv.Open(t.reader)
			if err != nil && pivLeaksConnection(err) {
				t.log.Error("piv-go kept an exclusive connection to the reader after a failed open; "+
					"no program can use this reader until the agent restarts", "err", err)
			}
		}
		if err == nil || !pivIsBusy(err) || time.Now().After(deadline) {
			return yk, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// classify turns what piv-go or PC/SC said into the package's errors, and
// forgets the login when the card is gone. Errors never carry the PIN:
// neither piv-go's nor PC/SC's messages contain it.
func (t *pivToken) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("pkcs11: PIV %s on %q", op, t.reader)
	var auth piv.AuthErr
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", where, err)
	case pivIsRemoval(err):
		t.cardGone(op)
		if errors.Is(err, ErrCardRemoved) {
			return fmt.Errorf("%s: %w", where, err)
		}
		return fmt.Errorf("%s: %w (%w)", where, ErrCardRemoved, err)
	case errors.As(err, &auth):
		if auth.Retries == 0 {
			return fmt.Errorf("%s: %w (%w)", where, ErrPINBlocked, err)
		}
		return fmt.Errorf("%s: %w", where, &PINError{TriesLeft: auth.Retries})
	case errors.Is(err, piv.ErrNotFound):
		return fmt.Errorf("%s: %w (%w)", where, ErrNoKey, err)
	case pivIsBusy(err):
		if errors.Is(err, ErrCardBusy) {
			return fmt.Errorf("%s: waited %v: %w", where, pivBusyWait, err)
		}
		return fmt.Errorf("%s: waited %v: %w (%w)", where, pivBusyWait, ErrCardBusy, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// cardGone drops the login: the card left (or another card came), and a
// reinserted card needs a new Login.
func (t *pivToken) cardGone(op string) {
	if t.pin != nil {
		t.log.Info("PIV card removed: login dropped", "op", op)
	}
	t.forgetPIN()
	t.epoch++
}

func (t *pivToken) forgetPIN() {
	clear(t.pin)
	t.pin = nil
	t.loginCard = pivCardID{}
}

// piv-go wraps PC/SC return codes in an unexported type whose only public
// face is its message (from piv-go's pcsc_errors.go, the same on every
// OS), so these fragments are what can be matched.
var (
	pivRemovalMessages = []string{
		"smart card has been removed",                // SCARD_W_REMOVED_CARD
		"no Smart Card is currently in the device",   // SCARD_E_NO_SMARTCARD
		"power has been removed from the smart card", // SCARD_W_UNPOWERED_CARD
		"reader is not currently available",          // SCARD_E_READER_UNAVAILABLE (reader unplugged)
		"reader name is not recognized",              // SCARD_E_UNKNOWN_READER (reader unplugged)
		// SCARD_E_NOT_TRANSACTED: what pcscd answers when the reader
		// driver loses the card mid-APDU.
		"end a non-existent transaction",
		// piv-go's own error for an answer without a status word: vpcd
		// answers nothing when the card is pulled mid-APDU.
		"scard response too short",
	}
	pivBusyMessage = "other connections outstanding" // SCARD_E_SHARING_VIOLATION
)

func pivIsRemoval(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrCardRemoved) {
		return true
	}
	msg := err.Error()
	for _, m := range pivRemovalMessages {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

func pivIsBusy(err error) bool {
	return err != nil && (errors.Is(err, ErrCardBusy) || strings.Contains(err.Error(), pivBusyMessage))
}

// pivLeaksConnection recognises the piv.Open failures that return after
// SCardConnect succeeded without closing the connection (see open).
func pivLeaksConnection(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "beginning smart card transaction") || strings.HasPrefix(msg, "selecting piv applet")
}

// pivSlot maps a role to its PIV slot and the PIN policy the card applies:
// passing the policy spares piv-go asking the card (GET METADATA, ATTEST).
func pivSlot(role Role) (piv.Slot, piv.PINPolicy, error) {
	switch role {
	case Authentication:
		return piv.SlotAuthentication, piv.PINPolicyOnce, nil
	case Signature:
		return piv.SlotSignature, piv.PINPolicyAlways, nil
	}
	return piv.Slot{}, 0, fmt.Errorf("pkcs11: PIV: unknown role %v", role)
}

func (t *pivToken) Certificate(ctx context.Context, role Role) (*x509.Certificate, error) {
	slot, _, err := pivSlot(role)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	err = t.run(ctx, func(*pivCall) error {
		return t.withCard(ctx, "read "+role.String()+" certificate", false, func(yk *piv.YubiKey) error {
			var err error
			cert, err = yk.Certificate(slot)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return cert, nil
}

// Login verifies pin with the card (VERIFY) and keeps it for the signatures
// of the authentication key. It replaces any earlier login: whatever the
// outcome, the previous PIN is dropped first.
func (t *pivToken) Login(ctx context.Context, pin string) error {
	if len(pin) == 0 || len(pin) > 8 {
		// PIV pads the PIN to 8 bytes; the card is not asked, so no try
		// is spent.
		return fmt.Errorf("pkcs11: PIV login on %q: %w: a PIN has 1 to 8 characters", t.reader, ErrPINFormat)
	}
	return t.run(ctx, func(c *pivCall) error {
		t.forgetPIN()
		var id pivCardID
		err := t.withCard(ctx, "login", true, func(yk *piv.YubiKey) error {
			if err := ctx.Err(); err != nil {
				return err // the caller gave up: do not spend a try for nobody
			}
			if err := yk.VerifyPIN(pin); err != nil {
				return err
			}
			var err error
			id, err = pivReadCardID(yk)
			return err
		})
		if err != nil {
			return err
		}
		if c.deliver() {
			t.pin, t.loginCard = []byte(pin), id
		}
		return nil
	})
}

func (t *pivToken) Logout(ctx context.Context) error {
	return t.run(ctx, func(*pivCall) error {
		t.forgetPIN()
		return nil
	})
}

// Close drops the login and ends the token; it waits for an operation in
// progress.
func (t *pivToken) Close() error {
	t.lock <- struct{}{}
	defer func() { <-t.lock }()
	t.forgetPIN()
	t.closed = true
	t.epoch++
	return nil
}

// Signer reads role's certificate for its public key and returns a signer
// bound to this card. For Signature, pin is kept by the signer and
// presented before each of its signatures; it is forgotten when the card
// refuses it, when the card is removed, or with the signer.
func (t *pivToken) Signer(ctx context.Context, role Role, pin string) (crypto.Signer, error) {
	slot, policy, err := pivSlot(role)
	if err != nil {
		return nil, err
	}
	if role == Signature && (len(pin) == 0 || len(pin) > 8) {
		return nil, fmt.Errorf("pkcs11: PIV %q: the signature key needs the PIN (1 to 8 characters) for each use", t.reader)
	}
	s := &pivSigner{t: t, role: role, slot: slot, policy: policy}
	err = t.run(ctx, func(*pivCall) error {
		s.epoch = t.epoch
		return t.withCard(ctx, "read "+role.String()+" key", false, func(yk *piv.YubiKey) error {
			cert, err := yk.Certificate(slot)
			if err != nil {
				return err
			}
			s.pub = cert.PublicKey
			s.card, err = pivReadCardID(yk)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	switch s.pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("pkcs11: PIV %q: %v key of type %T is not supported", t.reader, role, s.pub)
	}
	if role == Signature {
		s.pin = []byte(pin)
	}
	return s, nil
}

// pivSigner signs with one slot of the token's card.
type pivSigner struct {
	t      *pivToken
	role   Role
	slot   piv.Slot
	policy piv.PINPolicy
	pub    crypto.PublicKey
	card   pivCardID // the card the key was read from
	epoch  uint64    // the token's epoch when the signer was made

	// Signature only, guarded by t.lock: the PIN presented at each
	// signature, and why it was forgotten.
	pin     []byte
	refused error
}

func (s *pivSigner) Public() crypto.PublicKey { return s.pub }

// Sign asks the card for one signature. RSA takes PKCS #1 v1.5 (opts a
// crypto.Hash) or PSS (opts *rsa.PSSOptions); piv-go pads in software and
// the card computes the raw RSA operation. ECDSA returns ASN.1 DER. The
// signature is checked against the certificate's key before it is returned.
//
// crypto.Signer has no context: Sign waits for the token's other
// operations, and for other programs to release the card for up to
// pivBusyWait.
func (s *pivSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	t := s.t
	if err := pivCheckDigest(s.pub, digest, opts); err != nil {
		return nil, fmt.Errorf("pkcs11: PIV signature with the %s key on %q: %w", s.role, t.reader, err)
	}
	if rnd == nil {
		rnd = rand.Reader // PSS salt; piv-go would panic on nil
	}
	var sig []byte
	err := t.run(context.Background(), func(*pivCall) error {
		var err error
		sig, err = s.sign(rnd, digest, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := pivVerifySignature(s.pub, digest, sig, opts); err != nil {
		return nil, fmt.Errorf("pkcs11: PIV signature with the %s key on %q does not verify with the certificate's key: %w", s.role, t.reader, err)
	}
	return sig, nil
}

// sign runs with the token's lock held.
func (s *pivSigner) sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	t := s.t
	op := "signature with the " + s.role.String() + " key"
	if s.epoch != t.epoch {
		s.forgetPIN(nil)
		return nil, fmt.Errorf("pkcs11: PIV %s on %q: %w since this signer was made; get a new one", op, t.reader, ErrCardRemoved)
	}
	var pin []byte
	switch s.role {
	case Authentication:
		if t.pin == nil {
			return nil, fmt.Errorf("pkcs11: PIV %s on %q: %w", op, t.reader, ErrNotLoggedIn)
		}
		pin = t.pin
	case Signature:
		if s.pin == nil {
			return nil, fmt.Errorf("pkcs11: PIV %s on %q: the card refused this signer's PIN; it is not presented again: %w", op, t.reader, s.refused)
		}
		pin = s.pin
	}
	var sig []byte
	err := t.withCard(context.Background(), op, true, func(yk *piv.YubiKey) error {
		// The PIN goes only to the card it was given for: another card in
		// the reader (swapped between two operations) would count it as
		// a wrong try, or worse accept it.
		id, err := pivReadCardID(yk)
		if err != nil {
			return err
		}
		if !s.card.sameCard(id) || (s.role == Authentication && !t.loginCard.sameCard(id)) {
			return fmt.Errorf("%w: another card is in the reader", ErrCardRemoved)
		}
		// Go strings cannot be wiped: this copy lives until collected.
		// The kept []byte is what Logout, Close and removal overwrite.
		priv, err := yk.PrivateKey(s.slot, s.pub, piv.KeyAuth{PIN: string(pin), PINPolicy: s.policy})
		if err != nil {
			return err
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return fmt.Errorf("piv-go key for %T cannot sign", s.pub)
		}
		// Counted before piv-go presents the PIN, so a refused PIN
		// counts too (piv-go verifies and signs in one call).
		countSignature()
		sig, err = signer.Sign(rnd, digest, opts)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrPINBlocked) || errors.As(err, new(*PINError)) {
			// Never present a refused PIN again.
			if s.role == Authentication {
				t.log.Info("PIV card refused the kept PIN: login dropped")
				t.forgetPIN()
			} else {
				s.forgetPIN(err)
			}
		}
		return nil, err
	}
	return sig, nil
}

func (s *pivSigner) forgetPIN(why error) {
	clear(s.pin)
	s.pin = nil
	if why == nil {
		why = ErrCardRemoved
	}
	s.refused = why
}

// pivCheckDigest refuses, before the card is involved, what piv-go would
// mishandle: it panics on crypto.Hash(0) for RSA, and does not check that
// opts' hash matches the digest for ECDSA.
func pivCheckDigest(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		return errors.New("no signer options (hash)")
	}
	h := opts.HashFunc()
	switch pub.(type) {
	case *rsa.PublicKey:
		if h == 0 || !h.Available() {
			return fmt.Errorf("RSA signature needs a known hash, got %v", h)
		}
	case *ecdsa.PublicKey:
		if h == 0 {
			if len(digest) == 0 {
				return errors.New("empty digest")
			}
			return nil
		}
	}
	if h.Size() != len(digest) {
		return fmt.Errorf("digest of %d bytes for %v", len(digest), h)
	}
	return nil
}

// pivVerifySignature checks the card's answer with the public key: a card
// that computed wrong (or holds another key than its certificate says)
// must not hand the TLS peer a bad signature.
func pivVerifySignature(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// Same options as the signature: an explicit salt length is
			// checked, Auto accepts the salt piv-go chose.
			return rsa.VerifyPSS(k, opts.HashFunc(), digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(k, opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

var (
	_ Token         = (*pivToken)(nil)
	_ crypto.Signer = (*pivSigner)(nil)
)
