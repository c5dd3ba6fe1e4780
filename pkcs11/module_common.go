package pkcs11

// What the PKCS#11 module backend shares with its !cgo stub (module_nocgo.go):
// the slot description type, its errors, and the pure encodings around a
// signature (DigestInfo, PSS parameters, ECDSA DER, PIN flags, slot↔reader
// matching), kept here so that they compile and are tested without a module.

import (
	"crypto"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"

	p11 "github.com/miekg/pkcs11"
)

// Slot is one slot of a PKCS#11 module as the module describes it.
type Slot struct {
	ID uint
	// Reader is the PC/SC reader the slot stands for: OpenSC and the
	// Cryptolib CPS use the reader name as the slot description. For
	// readerless modules (SoftHSM) it is whatever the module writes there.
	Reader       string
	TokenPresent bool
	TokenLabel   string
	TokenSerial  string
}

// moduleRoleObjects names the objects of one role on the tokens we know.
type moduleRoleObjects struct {
	// certLabels and keyLabels: the Cryptolib CPS labels first, then
	// OpenSC's PIV labels. Our SoftHSM test tokens reuse the Cryptolib's
	// labels, so that they walk the path a real CPS does; no label exists
	// for tests only.
	certLabels []string
	keyLabels  []string
	// pivID is the CKA_ID OpenSC gives the PIV slot of the role (9A → 01,
	// 9C → 02): the last resort when no label is known.
	pivID byte
}

var moduleRoles = map[Role]moduleRoleObjects{
	Authentication: {
		certLabels: []string{"Certificat d'Authentification CPS", "Certificate for PIV Authentication"},
		keyLabels:  []string{"CPS_PRIV_AUT", "PIV AUTH key"},
		pivID:      0x01,
	},
	Signature: {
		certLabels: []string{"Certificat de Signature CPS", "Certificate for Digital Signature"},
		keyLabels:  []string{"CPS_PRIV_SIG", "SIGN key"},
		pivID:      0x02,
	},
}

// trimPadding removes the blank (and, from sloppy modules, NUL) padding of
// PKCS#11's fixed-width text fields.
func trimPadding(s string) string { return strings.Trim(s, " \x00") }

// slotDescriptionLen is the width of CK_SLOT_INFO.slotDescription: a
// longer PC/SC reader name cannot fit in it.
const slotDescriptionLen = 64

// slotForReader picks the slot that stands for a PC/SC reader.
//
// An exact match of the (trimmed) slot description wins: that is what OpenSC
// ("Virtual PCD 00 00") and the Cryptolib CPS write. Failing that, one
// fallback, taken only when exactly one slot qualifies so that it can never
// pick the wrong reader: the description is the reader name cut at the 64
// bytes of the field, or a decorated form that contains the whole reader name
// (a module that adds its own prefix or suffix). Among several slots of one
// reader (OpenSC can reserve more than one), the one with a token wins.
func slotForReader(slots []Slot, reader string) (Slot, error) {
	reader = trimPadding(reader)
	if reader == "" {
		return Slot{}, fmt.Errorf("%w: empty reader name", ErrNoToken)
	}
	pick := func(match func(desc string) bool) []Slot {
		var found []Slot
		for _, s := range slots {
			if match(trimPadding(s.Reader)) {
				found = append(found, s)
			}
		}
		return found
	}
	found := pick(func(d string) bool { return d == reader })
	if len(found) == 0 {
		found = pick(func(d string) bool {
			if d == "" {
				return false
			}
			truncated := len(reader) > slotDescriptionLen && trimPadding(reader[:slotDescriptionLen]) == d
			return truncated || strings.Contains(d, reader)
		})
		if len(distinctDescriptions(found)) > 1 {
			return Slot{}, fmt.Errorf("%w: reader %q matches several slots", ErrNoToken, reader)
		}
	}
	if len(found) == 0 {
		return Slot{}, fmt.Errorf("%w: no slot for reader %q", ErrNoToken, reader)
	}
	for _, s := range found {
		if s.TokenPresent {
			return s, nil
		}
	}
	return found[0], nil
}

func distinctDescriptions(slots []Slot) map[string]bool {
	d := make(map[string]bool)
	for _, s := range slots {
		d[trimPadding(s.Reader)] = true
	}
	return d
}

// pinFlagsError turns the token flags read right after CKR_PIN_INCORRECT
// into the caller's error. PKCS#11 gives no count, only three flags:
//   - CKF_USER_PIN_LOCKED: blocked (the wrong PIN used up the last try);
//   - CKF_USER_PIN_FINAL_TRY: one try left;
//   - CKF_USER_PIN_COUNT_LOW: "an incorrect PIN was entered at least once
//     since the last successful login". We read it as 2 tries left: the cards
//     this agent serves (CPS, our PIV test CPS, a YubiKey as shipped) have 3
//     tries, and with 3 tries "low but not final" can only mean 2. On a card
//     with more tries this understates what is left, which is the safe side.
//     (OpenSC's PIV driver never sets it: after one wrong PIN it reports no
//     flag at all, so the caller gets -1.)
//   - none of them: unknown (-1).
func pinFlagsError(flags uint) error {
	switch {
	case flags&p11.CKF_USER_PIN_LOCKED != 0:
		return ErrPINBlocked
	case flags&p11.CKF_USER_PIN_FINAL_TRY != 0:
		return &PINError{TriesLeft: 1}
	case flags&p11.CKF_USER_PIN_COUNT_LOW != 0:
		return &PINError{TriesLeft: 2}
	}
	return &PINError{TriesLeft: -1}
}

// digestInfoPrefix holds the DER DigestInfo headers of RFC 8017 §9.2 note 1:
// CKM_RSA_PKCS pads whatever it is given, so the DigestInfo is ours to build.
// SHA-1 stays for the XAdES signatures the real DMP still sees (DESIGN §6).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// pkcs1Input is what CKM_RSA_PKCS signs for a PKCS#1 v1.5 signature of
// digest: its DigestInfo, or the bytes as they are for hash 0 and MD5SHA1
// (the same convention as rsa.SignPKCS1v15).
func pkcs1Input(h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 || h == crypto.MD5SHA1 {
		if h == crypto.MD5SHA1 && len(digest) != h.Size() {
			return nil, fmt.Errorf("pkcs11: %d-byte digest for %v", len(digest), h)
		}
		return digest, nil
	}
	prefix, ok := digestInfoPrefix[h]
	if !ok {
		return nil, fmt.Errorf("pkcs11: no PKCS#1 v1.5 encoding for hash %v", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("pkcs11: %d-byte digest for %v", len(digest), h)
	}
	return append(append(make([]byte, 0, len(prefix)+len(digest)), prefix...), digest...), nil
}

// moduleHashMechs maps a hash to its PKCS#11 digest mechanism, its MGF1 generator,
// and the hash-and-sign mechanisms used when a module signs messages but
// not digests.
type moduleHashMechs struct {
	digest, mgf                uint
	rsaPKCS, rsaPSS, ecdsaHash uint
}

var moduleHashes = map[crypto.Hash]moduleHashMechs{
	crypto.SHA1:   {p11.CKM_SHA_1, p11.CKG_MGF1_SHA1, p11.CKM_SHA1_RSA_PKCS, p11.CKM_SHA1_RSA_PKCS_PSS, p11.CKM_ECDSA_SHA1},
	crypto.SHA224: {p11.CKM_SHA224, p11.CKG_MGF1_SHA224, p11.CKM_SHA224_RSA_PKCS, p11.CKM_SHA224_RSA_PKCS_PSS, p11.CKM_ECDSA_SHA224},
	crypto.SHA256: {p11.CKM_SHA256, p11.CKG_MGF1_SHA256, p11.CKM_SHA256_RSA_PKCS, p11.CKM_SHA256_RSA_PKCS_PSS, p11.CKM_ECDSA_SHA256},
	crypto.SHA384: {p11.CKM_SHA384, p11.CKG_MGF1_SHA384, p11.CKM_SHA384_RSA_PKCS, p11.CKM_SHA384_RSA_PKCS_PSS, p11.CKM_ECDSA_SHA384},
	crypto.SHA512: {p11.CKM_SHA512, p11.CKG_MGF1_SHA512, p11.CKM_SHA512_RSA_PKCS, p11.CKM_SHA512_RSA_PKCS_PSS, p11.CKM_ECDSA_SHA512},
}

// pssParams gives the CK_RSA_PKCS_PSS_PARAMS fields for opts: the same hash
// for the message and MGF1, and a salt as long as the hash when the caller
// lets the signer choose (rsa.PSSSaltLengthAuto) or asks for exactly that
// (rsa.PSSSaltLengthEqualsHash) — what TLS 1.3 requires (RFC 8446 §4.2.3).
func pssParams(h crypto.Hash, saltLength int) (hashMech, mgf, sLen uint, err error) {
	m, ok := moduleHashes[h]
	if !ok {
		return 0, 0, 0, fmt.Errorf("pkcs11: no RSA-PSS with hash %v", h)
	}
	switch {
	case saltLength == 0 || saltLength == -1: // PSSSaltLengthAuto, PSSSaltLengthEqualsHash
		sLen = uint(h.Size())
	case saltLength > 0:
		sLen = uint(saltLength)
	default:
		return 0, 0, 0, fmt.Errorf("pkcs11: invalid PSS salt length %d", saltLength)
	}
	return m.digest, m.mgf, sLen, nil
}

// ecdsaInput cuts a digest longer than the curve order the way ECDSA does
// (leftmost bits), for modules that refuse a longer CKM_ECDSA input. Only
// whole bytes are cut: for P-256 and P-384 that is exact, and P-521's order
// is longer than any hash.
func ecdsaInput(digest []byte, curveBits int) []byte {
	if n := curveBits / 8; curveBits%8 == 0 && len(digest) > n {
		return digest[:n]
	}
	return digest
}

// ecdsaDER converts CKM_ECDSA's raw r‖s (each half the length) into the
// ASN.1 SEQUENCE crypto.Signer callers expect.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("pkcs11: ECDSA signature of %d bytes is not r‖s", len(raw))
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(raw[:n]),
		new(big.Int).SetBytes(raw[n:]),
	})
}

// openSCHangsOnPull reports an OpenSC whose C_Sign never returns when the
// card leaves during most APDUs of a PIV signature: sc_unlock keeps the
// card's mutex after a failed applet check (issue #2707, fixed in 0.24 by
// commit d449fee). Nothing in the process can use the module after that.
func openSCHangsOnPull(manufacturer string, major, minor byte) bool {
	return strings.HasPrefix(manufacturer, "OpenSC") && major == 0 && minor < 24
}
