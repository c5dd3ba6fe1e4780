//go:build cgo

package pkcs11

// The PKCS#11 module backend: the Cryptolib CPS in production, OpenSC for
// the emulated test CPS, SoftHSM in unit tests. miekg/pkcs11 needs cgo; a
// build without it gets the stub in module_nocgo.go.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// Module is a loaded and initialised PKCS#11 module. There is one per
// module path in a process (PKCS#11 allows one C_Initialize per process),
// shared by every caller, and it is never finalised: finalising would end
// every other caller's sessions, and a failed login is no reason to.
type Module struct {
	path string
	ctx  *p11.Ctx
}

var modules struct {
	sync.Mutex
	byPath map[string]*Module
}

// LoadModule loads and initialises the PKCS#11 module at path, once per
// process: later calls with the same path return the same *Module. A
// missing file gives an error matching fs.ErrNotExist. A bare file name (no
// directory) is left to the system's library search.
func LoadModule(path string) (*Module, error) {
	if path == "" {
		return nil, errors.New("pkcs11: no PKCS#11 module path configured")
	}
	bare := !strings.ContainsAny(path, `/\`)
	key := path
	if !bare {
		key = filepath.Clean(path)
	}
	modules.Lock()
	defer modules.Unlock()
	if m := modules.byPath[key]; m != nil {
		return m, nil
	}
	if !bare {
		if _, err := os.Stat(key); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("pkcs11: PKCS#11 module %s is not installed: %w", key, err)
			}
			return nil, fmt.Errorf("pkcs11: PKCS#11 module %s: %w", key, err)
		}
	}
	c := p11.New(key)
	if c == nil {
		// miekg/pkcs11 keeps dlopen's reason to itself.
		return nil, fmt.Errorf("pkcs11: cannot load %s: not found by the library search, not a PKCS#11 module, "+
			"built for another architecture, or missing one of its own libraries", key)
	}
	// OS locking: the agent calls the module from several goroutines.
	err := c.Initialize(p11.InitializeWithFlags(p11.CKF_OS_LOCKING_OK))
	if err != nil && !p11Code(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c.Destroy()
		return nil, fmt.Errorf("pkcs11: initialise %s: %w", key, err)
	}
	m := &Module{path: key, ctx: c}
	if info, err := c.GetInfo(); err == nil {
		moduleLog().Info("pkcs11: module loaded", "path", key,
			"library", trimPadding(info.LibraryDescription), "manufacturer", trimPadding(info.ManufacturerID),
			"version", fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor))
		if openSCHangsOnPull(trimPadding(info.ManufacturerID), info.LibraryVersion.Major, info.LibraryVersion.Minor) {
			moduleLog().Warn("pkcs11: OpenSC before 0.24 can hang for good when a card is pulled during a signature "+
				"(OpenSC issue #2707); install OpenSC 0.24 or later", "path", key)
		}
	}
	if modules.byPath == nil {
		modules.byPath = make(map[string]*Module)
	}
	modules.byPath[key] = m
	return m, nil
}

// Path is the module's file, as LoadModule cleaned it.
func (m *Module) Path() string { return m.path }

// Slots lists the module's slots, with or without a token. For OpenSC this
// is also what makes it look for new readers and cards.
func (m *Module) Slots(ctx context.Context) ([]Slot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := m.ctx.GetSlotList(false)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: list slots: %w", err)
	}
	slots := make([]Slot, 0, len(ids))
	for _, id := range ids {
		info, err := m.ctx.GetSlotInfo(id)
		if err != nil {
			if p11Code(err, p11.CKR_SLOT_ID_INVALID, p11.CKR_DEVICE_REMOVED) {
				continue // a reader unplugged between the two calls
			}
			return nil, fmt.Errorf("pkcs11: slot %d: %w", id, err)
		}
		s := Slot{ID: id, Reader: trimPadding(info.SlotDescription), TokenPresent: info.Flags&p11.CKF_TOKEN_PRESENT != 0}
		if s.TokenPresent {
			ti, err := m.ctx.GetTokenInfo(id)
			switch {
			case err == nil:
				s.TokenLabel, s.TokenSerial = trimPadding(ti.Label), trimPadding(ti.SerialNumber)
			case p11Code(err, p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_DEVICE_REMOVED):
				s.TokenPresent = false
			default:
				// A card the module cannot read (a Vitale card under
				// OpenSC: CKR_TOKEN_NOT_RECOGNIZED) is still in its reader;
				// Open says why it cannot use it.
				moduleLog().Debug("pkcs11: token unreadable", "slot", id, "reader", s.Reader, "err", err)
			}
		}
		slots = append(slots, s)
	}
	return slots, nil
}

// Open returns the token in the slot of a PC/SC reader (see slotForReader
// for the match), ErrNoToken when there is no such slot or no card in it.
// Nothing is sent to the card until the token is used.
func (m *Module) Open(ctx context.Context, reader string) (Token, error) {
	return m.open(ctx, &moduleToken{reader: reader})
}

// OpenLabel returns the token labelled label, for modules whose tokens have
// no reader (SoftHSM); ErrNoToken when none has that label.
func (m *Module) OpenLabel(ctx context.Context, label string) (Token, error) {
	return m.open(ctx, &moduleToken{label: label})
}

func (m *Module) open(ctx context.Context, t *moduleToken) (Token, error) {
	t.m, t.sem = m, make(chan struct{}, 1)
	s, err := t.locate(ctx)
	if err != nil {
		return nil, err
	}
	t.serial = s.TokenSerial
	return t, nil
}

// moduleToken is a Token on one card through a module. Like yubikey-agent,
// it holds one session under one lock and reopens it lazily at the next use
// after losing it; nothing runs in the background.
type moduleToken struct {
	m      *Module
	reader string // PC/SC reader (Open), or "" (OpenLabel)
	label  string // token label (OpenLabel)
	// serial is the token serial seen at Open: a card with another serial
	// in the same reader is another professional's, not this token.
	serial string

	sem      chan struct{} // the lock, taken with a context; guards what follows
	closed   bool
	open     bool
	slot     uint
	sh       p11.SessionHandle
	loggedIn bool // a Login of ours succeeded on this session's card
	certs    map[Role]*moduleCert
	mechs    map[uint]bool
}

type moduleCert struct {
	cert *x509.Certificate
	id   []byte // CKA_ID, shared with the private key
}

var errModuleTokenClosed = errors.New("pkcs11: token closed")

func (t *moduleToken) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *moduleToken) unlock() { <-t.sem }

func (t *moduleToken) Reader() string { return t.reader }

// locate finds the token's slot now: slot IDs can change when readers come
// and go, the reader name (or the label) does not.
func (t *moduleToken) locate(ctx context.Context) (Slot, error) {
	slots, err := t.m.Slots(ctx)
	if err != nil {
		return Slot{}, err
	}
	var s Slot
	if t.reader != "" {
		if s, err = slotForReader(slots, t.reader); err != nil {
			return Slot{}, err
		}
		if !s.TokenPresent {
			return Slot{}, fmt.Errorf("%w: no card in reader %q", ErrNoToken, t.reader)
		}
	} else {
		found := false
		for _, c := range slots {
			if c.TokenPresent && c.TokenLabel == t.label {
				s, found = c, true
				break
			}
		}
		if !found {
			return Slot{}, fmt.Errorf("%w: no token labelled %q", ErrNoToken, t.label)
		}
	}
	// Slots keeps unreadable cards; this says why one is unusable.
	if _, err := t.m.ctx.GetTokenInfo(s.ID); err != nil {
		return Slot{}, fmt.Errorf("%w: %s: %w", ErrNoToken, t.name(), err)
	}
	return s, nil
}

// name is the token as logs and errors show it.
func (t *moduleToken) name() string {
	if t.reader != "" {
		return fmt.Sprintf("reader %q", t.reader)
	}
	return fmt.Sprintf("token %q", t.label)
}

// session returns the open session, opening one on the same card if there
// is none.
func (t *moduleToken) session(ctx context.Context) (p11.SessionHandle, error) {
	if t.closed {
		return 0, errModuleTokenClosed
	}
	if t.open {
		return t.sh, nil
	}
	s, err := t.locate(ctx)
	if err != nil {
		if errors.Is(err, ErrNoToken) {
			return 0, fmt.Errorf("%w: %w", ErrCardRemoved, err)
		}
		return 0, err
	}
	if s.TokenSerial != t.serial {
		return 0, fmt.Errorf("%w: %s now holds another card (serial %s, was %s)", ErrCardRemoved, t.name(), s.TokenSerial, t.serial)
	}
	// Read-only: the agent never writes to the card.
	sh, err := t.m.ctx.OpenSession(s.ID, p11.CKF_SERIAL_SESSION)
	if err != nil {
		if p11Code(err, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT) {
			return 0, fmt.Errorf("pkcs11: open session on %s: %w: %w", t.name(), ErrCardRemoved, err)
		}
		return 0, fmt.Errorf("pkcs11: open session on %s: %w", t.name(), err)
	}
	t.slot, t.sh, t.open = s.ID, sh, true
	return sh, nil
}

// lostCodes say that the session is gone: the card left
// (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT) or the module closed the
// session when it noticed that it had (the others).
var lostCodes = []uint{p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT,
	p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED}

// transmissionFailures are what a card pulled in the middle of a command
// looks like until the PC/SC stack notices that it left: OpenSC (0.23 and
// 0.26 alike) answers CKR_GENERAL_ERROR while pcscd still lists the card.
var transmissionFailures = []uint{p11.CKR_DEVICE_ERROR, p11.CKR_FUNCTION_FAILED, p11.CKR_GENERAL_ERROR}

func p11Lost(err error) bool { return p11Code(err, lostCodes...) }

type loss int

const (
	notLost     loss = iota
	staleHandle      // the module refused the handle: the call did not run
	cardLeft         // the card left the reader
)

// loss classifies the error of a call on the session. A transmission
// failure counts as the card leaving when the slot shows no card within a
// second: pcscd polls some readers (vpcd among them) every 0.4 s.
func (t *moduleToken) loss(ctx context.Context, err error) loss {
	switch {
	case p11Code(err, p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED):
		return staleHandle
	case p11Code(err, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT):
		return cardLeft
	case p11Code(err, transmissionFailures...):
		for deadline := time.Now().Add(time.Second); ; time.Sleep(100 * time.Millisecond) {
			if !t.present(ctx) {
				return cardLeft
			}
			if time.Now().After(deadline) {
				return notLost
			}
		}
	}
	return notLost
}

// drop forgets the session and everything tied to the card: the login
// (a reinserted card needs a new one), the certificates and mechanisms.
//
// It does not call C_CloseSession: the module has closed the session
// already, or will when it notices that the card left; and closing the last
// session makes OpenSC log out, which talks to a card that may be half gone
// (where OpenSC 0.23 can deadlock: OpenSC issue #2707).
func (t *moduleToken) drop(cause error) {
	if t.open {
		moduleLog().Info("pkcs11: card session dropped", "token", t.name(), "cause", p11CodeName(cause))
	}
	t.open, t.loggedIn, t.certs, t.mechs = false, false, nil, nil
}

// present reports whether this token's card is in its slot now.
func (t *moduleToken) present(ctx context.Context) bool {
	s, err := t.locate(ctx)
	return err == nil && s.TokenPresent && s.TokenSerial == t.serial
}

// do runs f on the session. If the session turns out lost, it is dropped;
// with the card still (or again) there, f runs once more on a new session,
// else the result is ErrCardRemoved. Only for operations that are harmless
// to repeat or that the module refused before the card saw them: reading
// objects, and a Login refused by its handle or meant for a card that has
// since come back.
//
// A Login is never presented twice to a card that may have counted it: a
// card pulled during the VERIFY is still absent when present() looks, right
// after the failure (pcscd notices a reinsertion no sooner than its next
// poll), so the answer is ErrCardRemoved. A repeat happens only when the
// card was already back before the call, which the module then refused
// for its stale session without reaching the card.
func (t *moduleToken) do(ctx context.Context, op string, f func(p11.SessionHandle) error) error {
	for attempt := 0; ; attempt++ {
		sh, err := t.session(ctx)
		if err != nil {
			return err
		}
		err = f(sh)
		if err == nil || t.loss(ctx, err) == notLost {
			return err
		}
		t.drop(err)
		if attempt > 0 || !t.present(ctx) {
			return fmt.Errorf("pkcs11: %s on %s: %w: %w", op, t.name(), ErrCardRemoved, err)
		}
	}
}

func (t *moduleToken) Login(ctx context.Context, pin string) error {
	if pin == "" {
		return fmt.Errorf("%w: empty PIN", ErrPINFormat)
	}
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	return t.do(ctx, "login", func(sh p11.SessionHandle) error {
		return t.login(sh, p11.CKU_USER, pin)
	})
}

// login presents the PIN once and types the module's answer. The PIN
// appears in no error and no log.
func (t *moduleToken) login(sh p11.SessionHandle, userType uint, pin string) error {
	err := t.m.ctx.Login(sh, userType, pin)
	switch {
	case err == nil, p11Code(err, p11.CKR_USER_ALREADY_LOGGED_IN):
		if userType == p11.CKU_USER {
			t.loggedIn = true
		}
		return nil
	case p11Code(err, p11.CKR_PIN_INCORRECT):
		// The flags are the module's only word on how many tries remain,
		// read right after the failure.
		var perr error = &PINError{TriesLeft: -1}
		if info, ierr := t.m.ctx.GetTokenInfo(t.slot); ierr == nil {
			perr = pinFlagsError(info.Flags)
		}
		// OpenSC's PIV driver raises no flag before the final try; a PIV
		// card says the count itself to an empty VERIFY.
		if pe, ok := perr.(*PINError); ok && pe.TriesLeft < 0 && t.reader != "" {
			if n, ok := pivPINRetries(t.reader); ok {
				perr = &PINError{TriesLeft: n}
			}
		}
		return fmt.Errorf("%w: %w", perr, err)
	case p11Code(err, p11.CKR_PIN_LOCKED):
		return fmt.Errorf("%w: %w", ErrPINBlocked, err)
	case p11Code(err, p11.CKR_PIN_LEN_RANGE, p11.CKR_PIN_INVALID):
		return fmt.Errorf("%w: %w", ErrPINFormat, err)
	}
	return fmt.Errorf("pkcs11: login on %s: %w", t.name(), err)
}

func (t *moduleToken) Logout(ctx context.Context) error {
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	wasLoggedIn := t.loggedIn
	t.loggedIn = false
	if !t.open {
		return nil
	}
	err := t.m.ctx.Logout(t.sh)
	switch {
	case err == nil, p11Code(err, p11.CKR_USER_NOT_LOGGED_IN):
	case p11Lost(err):
		t.drop(err) // no session, no login: what was asked
		return nil
	default:
		return fmt.Errorf("pkcs11: logout on %s: %w", t.name(), err)
	}
	if wasLoggedIn {
		return t.cardForgetsPIN()
	}
	return nil
}

// cardForgetsPIN resets the card after a logout. A module may log out
// without telling the card: OpenSC's PIV driver sends nothing, and the card
// stays verified for as long as OpenSC keeps its connection, which is as
// long as the module is loaded (see resetCard). The module finds out at its
// next call and reconnects. A token without a reader (SoftHSM) has no card
// to reset.
func (t *moduleToken) cardForgetsPIN() error {
	if t.reader == "" {
		return nil
	}
	if err := resetCard(t.reader); err != nil && !errors.Is(err, ErrCardRemoved) {
		return fmt.Errorf("pkcs11: reset the card in %s after logout: %w", t.name(), err)
	}
	return nil
}

func (t *moduleToken) Close() error {
	if err := t.lock(context.Background()); err != nil {
		return err
	}
	defer t.unlock()
	if t.closed {
		return nil
	}
	var err error
	if t.open {
		// Closing the last session also logs out (PKCS#11 §5.6), as far as
		// the module goes: the card is reset too.
		cerr := t.m.ctx.CloseSession(t.sh)
		switch {
		case cerr != nil && !p11Lost(cerr):
			err = fmt.Errorf("pkcs11: close session on %s: %w", t.name(), cerr)
		case cerr == nil && t.loggedIn:
			err = t.cardForgetsPIN()
		}
	}
	t.closed, t.open, t.loggedIn, t.certs, t.mechs = true, false, false, nil, nil
	return err
}

func (t *moduleToken) Certificate(ctx context.Context, role Role) (*x509.Certificate, error) {
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	co, err := t.certificate(ctx, role)
	if err != nil {
		return nil, err
	}
	return co.cert, nil
}

// certificate returns role's certificate object, from the cache filled for
// the current session.
func (t *moduleToken) certificate(ctx context.Context, role Role) (*moduleCert, error) {
	if co := t.certs[role]; co != nil && t.open {
		return co, nil
	}
	names, ok := moduleRoles[role]
	if !ok {
		return nil, fmt.Errorf("pkcs11: unknown role %v", role)
	}
	var co *moduleCert
	err := t.do(ctx, "read certificate", func(sh p11.SessionHandle) (err error) {
		co, err = t.findCertificate(sh, role, names)
		return err
	})
	if err != nil {
		return nil, err
	}
	if t.certs == nil {
		t.certs = make(map[Role]*moduleCert)
	}
	t.certs[role] = co
	return co, nil
}

// findCertificate finds role's certificate: by its label (Cryptolib CPS,
// OpenSC PIV, our SoftHSM test tokens); else through the role's private key
// found by label, whose CKA_ID the certificate shares; else by the PIV
// CKA_ID. Private keys are often invisible before login (OpenSC lists 9A's
// only after it), which is why the key is not the first way in.
func (t *moduleToken) findCertificate(sh p11.SessionHandle, role Role, names moduleRoleObjects) (*moduleCert, error) {
	for _, l := range names.certLabels {
		if co, err := t.certWhere(sh, p11.NewAttribute(p11.CKA_LABEL, l)); co != nil || err != nil {
			return co, err
		}
	}
	for _, l := range names.keyLabels {
		keys, err := t.objects(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_LABEL, l),
		}, 1)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			continue
		}
		id, err := t.attribute(sh, keys[0], p11.CKA_ID)
		if err != nil {
			return nil, err
		}
		if len(id) > 0 {
			if co, err := t.certWhere(sh, p11.NewAttribute(p11.CKA_ID, id)); co != nil || err != nil {
				return co, err
			}
		}
	}
	if co, err := t.certWhere(sh, p11.NewAttribute(p11.CKA_ID, []byte{names.pivID})); co != nil || err != nil {
		return co, err
	}
	return nil, fmt.Errorf("%w: no %v certificate on %s", ErrNoKey, role, t.name())
}

// certWhere returns the first X.509 certificate matching attr, or nil.
func (t *moduleToken) certWhere(sh p11.SessionHandle, attr *p11.Attribute) (*moduleCert, error) {
	objs, err := t.objects(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE),
		p11.NewAttribute(p11.CKA_CERTIFICATE_TYPE, p11.CKC_X_509),
		attr,
	}, 1)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	attrs, err := t.m.ctx.GetAttributeValue(sh, objs[0], []*p11.Attribute{
		p11.NewAttribute(p11.CKA_VALUE, nil),
		p11.NewAttribute(p11.CKA_ID, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("pkcs11: read certificate: %w", err)
	}
	co := &moduleCert{}
	for _, a := range attrs {
		switch a.Type {
		case p11.CKA_VALUE:
			if co.cert, err = x509.ParseCertificate(a.Value); err != nil {
				return nil, fmt.Errorf("pkcs11: certificate on %s: %w", t.name(), err)
			}
		case p11.CKA_ID:
			co.id = a.Value
		}
	}
	if co.cert == nil {
		return nil, fmt.Errorf("pkcs11: certificate on %s has no value", t.name())
	}
	return co, nil
}

// objects returns up to max handles of the objects matching template.
func (t *moduleToken) objects(sh p11.SessionHandle, template []*p11.Attribute, max int) ([]p11.ObjectHandle, error) {
	if err := t.m.ctx.FindObjectsInit(sh, template); err != nil {
		return nil, fmt.Errorf("pkcs11: find objects: %w", err)
	}
	objs, _, err := t.m.ctx.FindObjects(sh, max)
	if ferr := t.m.ctx.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: find objects: %w", err)
	}
	return objs, nil
}

// attribute reads one attribute; nil when the object lacks it.
func (t *moduleToken) attribute(sh p11.SessionHandle, o p11.ObjectHandle, typ uint) ([]byte, error) {
	attrs, err := t.m.ctx.GetAttributeValue(sh, o, []*p11.Attribute{p11.NewAttribute(typ, nil)})
	if p11Code(err, p11.CKR_ATTRIBUTE_TYPE_INVALID, p11.CKR_ATTRIBUTE_SENSITIVE) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: read attribute 0x%x: %w", typ, err)
	}
	if len(attrs) == 0 {
		return nil, nil
	}
	return attrs[0].Value, nil
}

// mechanisms lists what the token offers, once per session.
func (t *moduleToken) mechanisms(ctx context.Context) (map[uint]bool, error) {
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	if t.mechs != nil && t.open {
		return t.mechs, nil
	}
	var mechs map[uint]bool
	err := t.do(ctx, "list mechanisms", func(p11.SessionHandle) error {
		list, err := t.m.ctx.GetMechanismList(t.slot)
		if err != nil {
			return err
		}
		mechs = make(map[uint]bool, len(list))
		for _, m := range list {
			mechs[m.Mechanism] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.mechs = mechs
	return mechs, nil
}

func (t *moduleToken) Signer(ctx context.Context, role Role, pin string) (crypto.Signer, error) {
	if role == Signature && pin == "" {
		return nil, fmt.Errorf("%w: the signature key needs the PIN", ErrPINFormat)
	}
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	co, err := t.certificate(ctx, role)
	if err != nil {
		return nil, err
	}
	switch co.cert.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("pkcs11: %v key of type %T is not supported", role, co.cert.PublicKey)
	}
	s := &moduleSigner{t: t, role: role, pub: co.cert.PublicKey}
	if role == Signature {
		s.pin = pin
	}
	return s, nil
}

// sign makes one private-key operation with role's key. When the session
// is lost (the card was pulled, and maybe put back, since the last use or
// during this one), the result is ErrCardRemoved if the slot shows no card
// of this token's serial; else the card came back and the session is
// reopened once: the authentication key then meets ErrNotLoggedIn (its
// login went with the old session) and the signature key, which carries its
// PIN, signs on the card now present (see do for why that never presents
// a PIN twice to a card that may have counted it).
func (t *moduleToken) sign(role Role, pin string, pub crypto.PublicKey, mech *p11.Mechanism, input []byte) ([]byte, error) {
	ctx := context.Background() // crypto.Signer has none
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	defer t.unlock()
	var stale error
	for attempt := 0; ; attempt++ {
		sig, err := t.signOnce(ctx, role, pin, pub, mech, input)
		if err == nil {
			return sig, nil
		}
		if errors.Is(err, ErrCardRemoved) {
			return nil, err // found out by session or do
		}
		switch t.loss(ctx, err) {
		case notLost:
			if stale != nil && errors.Is(err, ErrNotLoggedIn) {
				return nil, fmt.Errorf("%w (the card's session was lost: %w)", err, stale)
			}
			return nil, err
		case cardLeft, staleHandle:
			t.drop(err)
			if attempt > 0 || !t.present(ctx) {
				return nil, fmt.Errorf("pkcs11: sign on %s: %w: %w", t.name(), ErrCardRemoved, err)
			}
			stale = err
		}
	}
}

// signOnce is one attempt.
func (t *moduleToken) signOnce(ctx context.Context, role Role, pin string, pub crypto.PublicKey, mech *p11.Mechanism, input []byte) (sig []byte, err error) {
	sh, err := t.session(ctx)
	if err != nil {
		return nil, err
	}
	co, err := t.certificate(ctx, role)
	if err != nil {
		return nil, err
	}
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(co.cert.PublicKey) {
		return nil, fmt.Errorf("%w: the card in %s is not the one this signer was made for", ErrCardRemoved, t.name())
	}
	if role == Authentication && !t.loggedIn {
		return nil, ErrNotLoggedIn
	}
	if role == Signature && !t.loggedIn {
		// PKCS#11 puts the context-specific login on top of a user login
		// (OpenSC refuses it otherwise). Log in for this signature only:
		// signing a document must not leave the authentication key usable.
		if err := t.login(sh, p11.CKU_USER, pin); err != nil {
			return nil, err
		}
		defer func() {
			t.loggedIn = false
			if err != nil && (p11Lost(err) || p11Code(err, transmissionFailures...)) {
				return // the login went with the card: no logout to a card half gone
			}
			_ = t.m.ctx.Logout(sh)
			if rerr := t.cardForgetsPIN(); rerr != nil {
				// The signature, if made, stands; the card may still
				// hold the PIN, which the log must say.
				moduleLog().Error("pkcs11: the card may still hold the PIN after a signature-key signature", "token", t.name(), "err", rerr)
			}
		}()
	}
	key, alwaysAuth, err := t.privateKey(sh, role, co)
	if err != nil {
		return nil, err
	}
	op := sh
	if alwaysAuth {
		if role != Signature {
			return nil, fmt.Errorf("pkcs11: the %v key on %s asks for the PIN at every use, which only the signature key may", role, t.name())
		}
		// PKCS#11 v2 cannot cancel a signing operation, and a failed
		// context-specific login leaves it active: on a session of its own,
		// closed below, it ends whatever happens. The login state is the
		// token's, shared by both sessions.
		if op, err = t.m.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION); err != nil {
			return nil, fmt.Errorf("pkcs11: open signing session on %s: %w", t.name(), err)
		}
		defer func() { _ = t.m.ctx.CloseSession(op) }()
	}
	if err := t.m.ctx.SignInit(op, []*p11.Mechanism{mech}, key); err != nil {
		return nil, t.signError(sh, err)
	}
	if alwaysAuth {
		if err := t.login(op, p11.CKU_CONTEXT_SPECIFIC, pin); err != nil {
			// OpenSC 0.23 closes every session of the slot after a
			// wrong context-specific PIN, and the login with them: the
			// next use must find out here, not on a dead handle.
			if _, serr := t.m.ctx.GetSessionInfo(sh); p11Lost(serr) {
				t.drop(serr)
			}
			return nil, err
		}
	}
	countSignature()
	if sig, err = t.m.ctx.Sign(op, input); err != nil {
		return nil, t.signError(sh, err)
	}
	return sig, nil
}

// signError types a failed C_SignInit or C_Sign.
func (t *moduleToken) signError(sh p11.SessionHandle, err error) error {
	if p11Code(err, p11.CKR_USER_NOT_LOGGED_IN) {
		// The card forgot the PIN behind the module's back (another
		// process reset it: PIV-NOTES). Log out too, or the next Login
		// meets CKR_USER_ALREADY_LOGGED_IN and verifies nothing.
		_ = t.m.ctx.Logout(sh)
		t.loggedIn = false
		return fmt.Errorf("pkcs11: sign on %s: %w: %w", t.name(), ErrNotLoggedIn, err)
	}
	return fmt.Errorf("pkcs11: sign on %s: %w", t.name(), err)
}

// privateKey finds role's private key now, after login: by the CKA_ID of
// its certificate, else by the role's key label. It also says whether the
// key wants the PIN at every use (CKA_ALWAYS_AUTHENTICATE: CPS_PRIV_SIG,
// OpenSC's 9C).
func (t *moduleToken) privateKey(sh p11.SessionHandle, role Role, co *moduleCert) (p11.ObjectHandle, bool, error) {
	var keys []p11.ObjectHandle
	var err error
	if len(co.id) > 0 {
		keys, err = t.objects(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_ID, co.id),
		}, 1)
		if err != nil {
			return 0, false, err
		}
	}
	for _, l := range moduleRoles[role].keyLabels {
		if len(keys) > 0 {
			break
		}
		keys, err = t.objects(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_LABEL, l),
		}, 1)
		if err != nil {
			return 0, false, err
		}
	}
	if len(keys) == 0 {
		if !t.loggedIn {
			return 0, false, ErrNotLoggedIn
		}
		return 0, false, fmt.Errorf("%w: no %v private key on %s", ErrNoKey, role, t.name())
	}
	v, err := t.attribute(sh, keys[0], p11.CKA_ALWAYS_AUTHENTICATE)
	if err != nil {
		return 0, false, err
	}
	return keys[0], len(v) == 1 && v[0] != 0, nil
}

// moduleSigner is a crypto.Signer (and crypto.MessageSigner) on a token's
// key.
type moduleSigner struct {
	t    *moduleToken
	role Role
	pub  crypto.PublicKey
	pin  string // Signature only: presented at every Sign, gone with the signer
}

func (s *moduleSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs a digest: RSA PKCS#1 v1.5 through CKM_RSA_PKCS with the
// DigestInfo built here, RSA-PSS through CKM_RSA_PKCS_PSS (*rsa.PSSOptions),
// ECDSA through CKM_ECDSA with the result in ASN.1 DER. These mechanisms sign
// what they are given, which is what a digest-taking crypto.Signer needs;
// OpenSC, SoftHSM and the Cryptolib offer them.
func (s *moduleSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	mech, input, err := s.digestMechanism(digest, opts)
	if err != nil {
		return nil, err
	}
	return s.finish(s.t.sign(s.role, s.pin, s.pub, mech, input))
}

func (s *moduleSigner) digestMechanism(digest []byte, opts crypto.SignerOpts) (*p11.Mechanism, []byte, error) {
	h := opts.HashFunc()
	switch pub := s.pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if len(digest) != h.Size() {
				return nil, nil, fmt.Errorf("pkcs11: %d-byte digest for %v", len(digest), h)
			}
			hashMech, mgf, sLen, err := pssParams(h, pss.SaltLength)
			if err != nil {
				return nil, nil, err
			}
			return p11.NewMechanism(p11.CKM_RSA_PKCS_PSS, p11.NewPSSParams(hashMech, mgf, sLen)), digest, nil
		}
		input, err := pkcs1Input(h, digest)
		if err != nil {
			return nil, nil, err
		}
		return p11.NewMechanism(p11.CKM_RSA_PKCS, nil), input, nil
	case *ecdsa.PublicKey:
		if h != 0 && len(digest) != h.Size() {
			return nil, nil, fmt.Errorf("pkcs11: %d-byte digest for %v", len(digest), h)
		}
		return p11.NewMechanism(p11.CKM_ECDSA, nil), ecdsaInput(digest, pub.Curve.Params().BitSize), nil
	}
	return nil, nil, fmt.Errorf("pkcs11: unsupported key type %T", s.pub)
}

// SignMessage signs a whole message. It moduleHashes here and signs the digest
// when the token offers the digest mechanism Sign uses; a token that offers
// only hash-and-sign mechanisms (CKM_SHA256_RSA_PKCS, as the Cryptolib is
// documented with) gets the message itself. Callers that hold the message
// reach this through crypto.SignMessage.
func (s *moduleSigner) SignMessage(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	mechs, err := s.t.mechanisms(context.Background())
	if err != nil {
		return nil, err
	}
	return s.signMessage(rand, msg, opts, mechs)
}

func (s *moduleSigner) signMessage(rand io.Reader, msg []byte, opts crypto.SignerOpts, mechs map[uint]bool) ([]byte, error) {
	h := opts.HashFunc()
	if h == 0 {
		return s.Sign(rand, msg, opts) // unhashed, as Sign takes it
	}
	hm, ok := moduleHashes[h]
	if !ok || !h.Available() {
		return nil, fmt.Errorf("pkcs11: unsupported hash %v", h)
	}
	pss, isPSS := opts.(*rsa.PSSOptions)
	var digestMech, messageMech uint
	switch s.pub.(type) {
	case *rsa.PublicKey:
		digestMech, messageMech = p11.CKM_RSA_PKCS, hm.rsaPKCS
		if isPSS {
			digestMech, messageMech = p11.CKM_RSA_PKCS_PSS, hm.rsaPSS
		}
	case *ecdsa.PublicKey:
		digestMech, messageMech = p11.CKM_ECDSA, hm.ecdsaHash
	}
	if mechs[digestMech] || !mechs[messageMech] {
		d := h.New()
		d.Write(msg)
		return s.Sign(rand, d.Sum(nil), opts)
	}
	var params []byte
	if isPSS {
		hashMech, mgf, sLen, err := pssParams(h, pss.SaltLength)
		if err != nil {
			return nil, err
		}
		params = p11.NewPSSParams(hashMech, mgf, sLen)
	}
	return s.finish(s.t.sign(s.role, s.pin, s.pub, p11.NewMechanism(messageMech, params), msg))
}

// finish turns a module's signature into crypto.Signer's form.
func (s *moduleSigner) finish(sig []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if _, ok := s.pub.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// p11Code reports whether err carries one of the CKR codes.
func p11Code(err error, codes ...uint) bool {
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if uint(e) == c {
			return true
		}
	}
	return false
}

// p11CodeName is the CKR name of err for logs ("CKR_DEVICE_REMOVED"), or its
// text for other errors.
func p11CodeName(err error) string {
	var e p11.Error
	if errors.As(err, &e) {
		return e.Error()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// logger is read at each use, so that the process's slog default applies.
func moduleLog() *slog.Logger { return slog.Default() }
