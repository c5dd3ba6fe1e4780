// Package piv emulates a PIV card application (NIST SP 800-73-4) well enough
// that OpenSC's PIV driver, pkcs11-tool with opensc-pkcs11.so and piv-go
// drive it unmodified. It is the body of the emulated "test CPS": slot 9A
// holds the authentication key, 9C the signature key, 9E an ECC P-256 card
// authentication key, each with a certificate from the test PKI.
//
// What real tools send, and the answers that work, are recorded in
// shared/PIV-NOTES.md; the comments below name the tool that needs each
// behaviour.
package piv

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards/apdu"
)

// ATR is the emulated test CPS's answer to reset, the one cardreader's
// identification table knows (see cardreader.TestCPSATR for why these
// bytes).
var ATR = cardreader.TestCPSATR()

// AID is the full PIV application identifier; SELECT accepts any prefix of
// at least the 5-byte RID, because OpenSC sends 9 bytes and piv-go 5.
var AID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// Key references (SP 800-73-4 table 4b).
const (
	SlotAuthentication     byte = 0x9A
	SlotSignature          byte = 0x9C
	SlotKeyManagement      byte = 0x9D
	SlotCardAuthentication byte = 0x9E
	refPIN                 byte = 0x80
	refPUK                 byte = 0x81
	refManagement          byte = 0x9B
)

// Algorithm identifiers (SP 800-78-4).
const (
	AlgRSA2048 byte = 0x07
	AlgECCP256 byte = 0x11
)

// PIN policies, as YubiKey metadata reports them (piv-go reads them).
const (
	PINNever  byte = 1
	PINOnce   byte = 2
	PINAlways byte = 3
)

// Key is a private key in a slot with its certificate.
type Key struct {
	Signer    crypto.Signer // *rsa.PrivateKey (2048 bits) or *ecdsa.PrivateKey (P-256)
	Cert      *x509.Certificate
	PINPolicy byte // PINNever, PINOnce or PINAlways
}

// Config describes one card.
type Config struct {
	Keys    map[byte]Key // by slot: 9A, 9C, 9D, 9E
	PIN     string       // 4 to 8 characters; CPS cards use 4 digits
	PUK     string       // 8 characters
	Tries   int          // PIN and PUK tries before blocking; 3 when zero
	Serial  uint32       // reported by GET SERIAL and in the CHUID GUID
	Version [3]byte      // reported by GET VERSION; 5.7.1 when zero
}

// Card is an emulated PIV card. It is safe for concurrent use: the vpcd
// transport calls Transmit while a status query may read PIN counters.
type Card struct {
	mu      sync.Mutex
	keys    map[byte]Key
	objects map[uint32][]byte // tag → full BER-TLV object as GET DATA returns it
	serial  uint32
	version [3]byte
	tries   int

	pin, puk         []byte // padded to 8 bytes with FF
	pinLeft, pukLeft int

	// Volatile state, cleared by Reset (power off, power on, reset).
	selected    bool
	pinVerified bool
	// pinFresh is set by a successful VERIFY and consumed by the next use of
	// a PIN-always key (9C): SP 800-73-4 asks for the PIN right before it.
	pinFresh bool
	in       apdu.Incoming
	out      apdu.Outgoing
}

// New builds a card from its configuration.
func New(cfg Config) (*Card, error) {
	if cfg.Tries == 0 {
		cfg.Tries = 3
	}
	if cfg.Version == ([3]byte{}) {
		cfg.Version = [3]byte{5, 7, 1}
	}
	pin, err := padPIN([]byte(cfg.PIN), 4)
	if err != nil {
		return nil, fmt.Errorf("piv: PIN: %w", err)
	}
	puk, err := padPIN([]byte(cfg.PUK), 6)
	if err != nil {
		return nil, fmt.Errorf("piv: PUK: %w", err)
	}
	c := &Card{
		keys:    map[byte]Key{},
		objects: map[uint32][]byte{},
		serial:  cfg.Serial,
		version: cfg.Version,
		tries:   cfg.Tries,
		pin:     pin, puk: puk,
		pinLeft: cfg.Tries, pukLeft: cfg.Tries,
	}
	for slot, k := range cfg.Keys {
		if _, ok := certObjectTag[slot]; !ok {
			return nil, fmt.Errorf("piv: no certificate object for slot %02X", slot)
		}
		if _, err := algorithmOf(k.Signer.Public()); err != nil {
			return nil, fmt.Errorf("piv: slot %02X: %w", slot, err)
		}
		// rawRSA computes with the CRT over exactly two primes.
		if r, ok := k.Signer.(*rsa.PrivateKey); ok {
			if err := r.Validate(); err != nil || len(r.Primes) != 2 {
				return nil, fmt.Errorf("piv: slot %02X: want a valid two-prime RSA key", slot)
			}
		}
		c.keys[slot] = k
	}
	c.buildObjects()
	c.resetLocked()
	return c, nil
}

// padPIN pads a PIN or PUK to 8 bytes with FF, as VERIFY carries it.
func padPIN(p []byte, minLen int) ([]byte, error) {
	if len(p) < minLen || len(p) > 8 {
		return nil, fmt.Errorf("%d characters; want %d to 8", len(p), minLen)
	}
	if bytes.IndexByte(p, 0xFF) >= 0 {
		return nil, fmt.Errorf("contains FF")
	}
	out := bytes.Repeat([]byte{0xFF}, 8)
	copy(out, p)
	return out, nil
}

// ATR implements vpcd.Card.
func (c *Card) ATR() []byte { return bytes.Clone(ATR) }

// Reset implements vpcd.Card: a power cycle ends the security session.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *Card) resetLocked() {
	// PIV is the default application, as on YubiKeys: OpenSC asks for the
	// discovery object before it selects anything.
	c.selected = true
	c.pinVerified, c.pinFresh = false, false
	c.in.Reset()
	c.out.Reset()
}

// PINTriesLeft returns the PIN tries left (0: blocked).
func (c *Card) PINTriesLeft() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinLeft
}

// PUKTriesLeft returns the PUK tries left (0: blocked).
func (c *Card) PUKTriesLeft() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pukLeft
}

// Instruction bytes.
const (
	insSelect      = 0xA4
	insGetData     = 0xCB
	insGetResponse = 0xC0
	insVerify      = 0x20
	insChangeRef   = 0x24
	insResetRetry  = 0x2C
	insGeneralAuth = 0x87
	insGetVersion  = 0xFD // YubiKey extension, needed by piv-go's Open
	insGetSerial   = 0xF8 // YubiKey extension
	insGetMetadata = 0xF7 // YubiKey extension, piv-go reads PIN policies
	insAttest      = 0xF9 // YubiKey extension; 6D00 makes piv-go assume PIN-always
)

// Transmit implements vpcd.Card.
func (c *Card) Transmit(raw []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd, err := apdu.Parse(raw)
	if err != nil {
		c.out.Reset()
		c.in.Reset()
		return apdu.WrongLength.Bytes()
	}
	// Only CLA 00 and its chained form 10 exist here. Coolkey and muscle
	// probe with CLA B0, which has the chaining bit set: reject it before
	// anything looks at chaining.
	if cmd.CLA&^0x10 != 0x00 {
		return apdu.CLANotSupported.Bytes()
	}
	if cmd.INS == insGetResponse {
		if !c.out.Pending() {
			return apdu.ConditionsNotSatisfied.Bytes()
		}
		return c.out.Next(cmd.Ne)
	}
	c.out.Reset()
	if cmd.Chained() || c.in.Pending() {
		if cmd.INS != insGeneralAuth && cmd.INS != insVerify && cmd.INS != insChangeRef && cmd.INS != insResetRetry {
			c.in.Reset()
			if cmd.Chained() {
				return apdu.ChainingNotSupported.Bytes()
			}
		} else {
			full, done, sw := c.in.Add(cmd)
			if !done {
				return sw.Bytes()
			}
			cmd = full
		}
	}
	if cmd.INS == insSelect {
		return c.sel(cmd)
	}
	if !c.selected {
		return apdu.INSNotSupported.Bytes()
	}
	switch cmd.INS {
	case insGetData:
		return c.getData(cmd)
	case insVerify:
		return c.verify(cmd)
	case insChangeRef:
		return c.changeReference(cmd)
	case insResetRetry:
		return c.resetRetry(cmd)
	case insGeneralAuth:
		return c.generalAuthenticate(cmd)
	case insGetVersion:
		return c.reply(c.version[:], cmd.Ne)
	case insGetSerial:
		s := c.serial
		return c.reply([]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}, cmd.Ne)
	case insGetMetadata:
		return c.metadata(cmd)
	}
	return apdu.INSNotSupported.Bytes()
}

// reply answers with data, handing out what exceeds Ne through GET RESPONSE.
func (c *Card) reply(data []byte, ne int) []byte {
	return c.out.Start(data, ne)
}

func (c *Card) sel(cmd apdu.Command) []byte {
	if cmd.P1 != 0x04 {
		// Selection by file id or path (IAS-ECC probes with P1=09): this
		// card has no file system.
		return apdu.FileNotFound.Bytes()
	}
	if len(cmd.Data) < 5 || !bytes.HasPrefix(AID, cmd.Data) {
		// A failed SELECT leaves the current application selected (ISO
		// 7816-4), so a probe by another driver costs OpenSC nothing.
		return apdu.FileNotFound.Bytes()
	}
	c.selected = true
	// Application property template: the PIX with its version. OpenSC
	// fails the card on an empty 9000 unless a discovery object exists.
	return c.reply(apdu.Encode(0x61,
		apdu.Encode(0x4F, AID[5:]),
		apdu.Encode(0x79, apdu.Encode(0x4F, AID[:5])),
	), cmd.Ne)
}
