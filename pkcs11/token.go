package pkcs11

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// Role names one of a CPS card's two keys.
type Role int

const (
	// Authentication is the key that authenticates the professional in
	// mutual TLS: CPS_PRIV_AUT on a CPS, slot 9A on a PIV test token.
	Authentication Role = iota
	// Signature is the key that signs documents and consent receipts:
	// CPS_PRIV_SIG on a CPS, slot 9C on a PIV test token. The card asks for
	// the PIN before every use of it.
	Signature
)

func (r Role) String() string {
	switch r {
	case Authentication:
		return "authentication"
	case Signature:
		return "signature"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Token is one card reached through one backend: a PKCS#11 module (the
// Cryptolib CPS, OpenSC, SoftHSM) or PIV (piv-go). It is safe for concurrent
// use. Nothing in it retries a PIN, and nothing keeps a PIN beyond what the
// backend documents.
type Token interface {
	// Reader is the PC/SC reader the card is in ("" for a token with no
	// reader, such as SoftHSM).
	Reader() string
	// Certificate returns the certificate of role's key. It is public: no
	// login is needed.
	Certificate(ctx context.Context, role Role) (*x509.Certificate, error)
	// Login presents the user PIN once. A wrong PIN gives *PINError, a
	// blocked card ErrPINBlocked; either way the token stays usable for
	// the next attempt, which is the caller's decision.
	Login(ctx context.Context, pin string) error
	// Signer returns a signer for role's key. The authentication key needs
	// a successful Login first (else ErrNotLoggedIn at Sign). The signature
	// key asks for the PIN at every use: pin is presented for each Sign of
	// this signer and forgotten with it; it is ignored for Authentication.
	Signer(ctx context.Context, role Role, pin string) (crypto.Signer, error)
	// Logout ends the login; Close releases everything the token holds.
	Logout(ctx context.Context) error
	Close() error
}

// PINError is a wrong PIN. TriesLeft is what the card says remains before
// it blocks, or -1 when it does not say.
type PINError struct {
	TriesLeft int
}

func (e *PINError) Error() string {
	if e.TriesLeft < 0 {
		return "pkcs11: wrong PIN"
	}
	return fmt.Sprintf("pkcs11: wrong PIN, %d tries left", e.TriesLeft)
}

// Errors callers branch on.
var (
	// ErrPINBlocked: too many wrong PINs; only the PUK (or the card's
	// issuer) can unblock the card.
	ErrPINBlocked = errors.New("pkcs11: PIN blocked")
	// ErrCardRemoved: the card left its reader; its session and login are
	// gone, and a reinserted card needs a new Login.
	ErrCardRemoved = errors.New("pkcs11: card removed")
	// ErrNotLoggedIn: a signature was asked of the authentication key
	// before Login.
	ErrNotLoggedIn = errors.New("pkcs11: not logged in")
	// ErrNoToken: no token in that reader (or of that label).
	ErrNoToken = errors.New("pkcs11: no token")
	// ErrNoKey: the token has no key or certificate for the role.
	ErrNoKey = errors.New("pkcs11: no such key on the token")
	// ErrCardBusy: another program (or another backend of this one: PIV
	// and a PKCS#11 module cannot share a card, PIV-NOTES) holds the card
	// exclusively, and kept it past the wait.
	ErrCardBusy = errors.New("pkcs11: card in exclusive use by another program")
	// ErrPINFormat: the PIN was refused without being checked against
	// the card (empty, or the module's CKR_PIN_LEN_RANGE/CKR_PIN_INVALID).
	// No try was used.
	ErrPINFormat = errors.New("pkcs11: the PIN has the wrong length or characters")
)

// signatures counts the private-key operations sent to cards by every
// backend in this process, successful or not.
var signatures atomic.Uint64

// Signatures returns how many private-key operations this process has asked
// of cards: the figure that shows whether TLS session reuse works (one
// professional session of many requests should cost one).
func Signatures() uint64 { return signatures.Load() }

// countSignature is called by each backend right before it asks the card
// for a private-key operation.
func countSignature() { signatures.Add(1) }
