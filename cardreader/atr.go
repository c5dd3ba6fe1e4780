package cardreader

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// MaxATRLen is the longest answer to reset ISO/IEC 7816-3 allows: TS plus at
// most 32 further characters.
const MaxATRLen = 33

// Errors ParseATR reports, wrapped in an *ATRError that says where. Callers
// branch on them with errors.Is: a bad TCK, for instance, is worth logging as
// a flaky contact or a non-conforming card, not as an unknown card.
var (
	ErrATRTruncated = errors.New("ATR truncated")
	ErrATRBadTS     = errors.New("ATR has an invalid TS")
	ErrATRBadTCK    = errors.New("ATR check byte TCK does not match")
	ErrATRTrailing  = errors.New("ATR has bytes after its last character")
	ErrATRTooLong   = errors.New("ATR longer than 33 bytes")
)

// ATRError is a decoding failure at a given byte of the ATR.
type ATRError struct {
	Kind   error  // one of the ErrATR* values
	Offset int    // index of the byte at which decoding stopped
	Detail string // what was expected there, for logs
}

func (e *ATRError) Error() string {
	return fmt.Sprintf("cardreader: %v at byte %d: %s", e.Kind, e.Offset, e.Detail)
}

func (e *ATRError) Unwrap() error { return e.Kind }

// Convention is the bit convention announced by TS.
type Convention uint8

const (
	// DirectConvention: TS = 3B.
	DirectConvention Convention = iota + 1
	// InverseConvention: TS = 3F. PC/SC hands over the ATR already decoded,
	// so an inverse-convention card (the Vitale 1) shows 3F, never 03.
	InverseConvention
)

func (c Convention) String() string {
	switch c {
	case DirectConvention:
		return "direct"
	case InverseConvention:
		return "inverse"
	}
	return "invalid"
}

// Protocol is a transmission protocol type T announced in a TDi byte.
type Protocol uint8

const (
	ProtocolT0 Protocol = 0
	ProtocolT1 Protocol = 1
	// ProtocolT15 is not a protocol: it qualifies global interface bytes.
	// Protocols() leaves it out; HasT15 reports it.
	ProtocolT15 Protocol = 15
)

func (p Protocol) String() string { return "T=" + strconv.Itoa(int(p)) }

// InterfaceGroup holds the interface bytes TAi, TBi, TCi and TDi of group i.
// Which of them are present is announced by the high nibble of T0 (group 1)
// or of TD(i-1); a byte whose Has flag is false reads as 0.
type InterfaceGroup struct {
	Index                      int // i, from 1
	TA, TB, TC, TD             byte
	HasTA, HasTB, HasTC, HasTD bool
}

// presence is the Y nibble (high nibble of T0 or of the previous TD) that
// announces this group.
func (g InterfaceGroup) presence() byte {
	var y byte
	if g.HasTA {
		y |= 0x10
	}
	if g.HasTB {
		y |= 0x20
	}
	if g.HasTC {
		y |= 0x40
	}
	if g.HasTD {
		y |= 0x80
	}
	return y
}

// ATR is a decoded answer to reset (ISO/IEC 7816-3 §8). It is an immutable
// value: accessors return copies, so an ATR can be shared between goroutines
// and kept in events without aliasing the reader's buffer. The zero ATR is
// "no ATR": String is empty and Protocols is nil.
type ATR struct {
	raw        []byte
	groups     []InterfaceGroup
	historical []byte // slice of raw
	tck        byte
	hasTCK     bool
}

// ParseATR decodes an ATR as PC/SC reports it (SCardStatus, reader state),
// strictly: every byte must be accounted for and TCK, when required, must be
// right. Strictness is deliberate; identification matches on exact bytes, and
// an ATR that does not decode is more likely a bad contact than a new card.
func ParseATR(b []byte) (ATR, error) {
	if len(b) > MaxATRLen {
		return ATR{}, &ATRError{ErrATRTooLong, MaxATRLen, fmt.Sprintf("%d bytes", len(b))}
	}
	if len(b) == 0 {
		return ATR{}, &ATRError{ErrATRTruncated, 0, "TS expected, ATR is empty"}
	}
	switch b[0] {
	case 0x3B, 0x3F:
	default:
		return ATR{}, &ATRError{ErrATRBadTS, 0, fmt.Sprintf("TS is %02X, want 3B (direct) or 3F (inverse)", b[0])}
	}
	if len(b) < 2 {
		return ATR{}, &ATRError{ErrATRTruncated, 1, "T0 expected"}
	}
	raw := append([]byte(nil), b...)
	a := ATR{raw: raw}

	t0 := raw[1]
	y := t0 & 0xF0
	k := int(t0 & 0x0F)
	pos := 2
	// TCK is present as soon as any protocol other than T=0 is indicated,
	// T=15 included (ISO/IEC 7816-3 §8.2.5).
	needTCK := false
	for i := 1; ; i++ {
		g := InterfaceGroup{Index: i}
		for _, f := range [...]struct {
			bit  byte
			name string
			v    *byte
			has  *bool
		}{
			{0x10, "TA", &g.TA, &g.HasTA},
			{0x20, "TB", &g.TB, &g.HasTB},
			{0x40, "TC", &g.TC, &g.HasTC},
			{0x80, "TD", &g.TD, &g.HasTD},
		} {
			if y&f.bit == 0 {
				continue
			}
			if pos >= len(raw) {
				return ATR{}, &ATRError{ErrATRTruncated, pos, f.name + strconv.Itoa(i) + " expected"}
			}
			*f.v, *f.has = raw[pos], true
			pos++
		}
		if y == 0 {
			// T0 or the last TD announced no further interface bytes.
			break
		}
		a.groups = append(a.groups, g)
		if !g.HasTD {
			break
		}
		if g.TD&0x0F != 0 {
			needTCK = true
		}
		y = g.TD & 0xF0
	}

	if len(raw)-pos < k {
		return ATR{}, &ATRError{ErrATRTruncated, len(raw), fmt.Sprintf("%d historical bytes announced by T0, %d left", k, len(raw)-pos)}
	}
	a.historical = raw[pos : pos+k : pos+k]
	pos += k

	if needTCK {
		if pos >= len(raw) {
			return ATR{}, &ATRError{ErrATRTruncated, pos, "TCK expected (a protocol other than T=0 is indicated)"}
		}
		a.tck, a.hasTCK = raw[pos], true
		var x byte
		for _, c := range raw[1 : pos+1] {
			x ^= c
		}
		if x != 0 {
			return ATR{}, &ATRError{ErrATRBadTCK, pos, fmt.Sprintf("TCK is %02X, want %02X", raw[pos], raw[pos]^x)}
		}
		pos++
	}
	if pos != len(raw) {
		return ATR{}, &ATRError{ErrATRTrailing, pos, fmt.Sprintf("%d byte(s) after the last announced character", len(raw)-pos)}
	}
	return a, nil
}

// ParseATRHex decodes an ATR written in hex, as configuration files, logs and
// pcsc_scan show it: "3B 8E 80 01 …", "3b:8e:80:01…" or "3B8E8001…".
func ParseATRHex(s string) (ATR, error) {
	b, err := decodeHexBytes(s)
	if err != nil {
		return ATR{}, err
	}
	return ParseATR(b)
}

// decodeHexBytes reads hex with optional whitespace or colon separators.
// Each separated token must hold whole bytes, so that a typo such as "3 B"
// is refused rather than silently read as 3B.
func decodeHexBytes(s string) ([]byte, error) {
	var out []byte
	for tok := range strings.FieldsFuncSeq(s, isHexSeparator) {
		b, err := hex.DecodeString(tok)
		if err != nil {
			return nil, fmt.Errorf("cardreader: bad hex %q in %q: %w", tok, s, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

func isHexSeparator(r rune) bool { return r == ':' || unicode.IsSpace(r) }

// Bytes returns a copy of the ATR as received.
func (a ATR) Bytes() []byte { return append([]byte(nil), a.raw...) }

// TS returns the initial character (3B or 3F), 0 for the zero ATR.
func (a ATR) TS() byte {
	if len(a.raw) == 0 {
		return 0
	}
	return a.raw[0]
}

// Convention returns the convention TS announces.
func (a ATR) Convention() Convention {
	switch a.TS() {
	case 0x3B:
		return DirectConvention
	case 0x3F:
		return InverseConvention
	}
	return 0
}

// T0 returns the format byte: Y1 in the high nibble, K (the number of
// historical bytes) in the low one.
func (a ATR) T0() byte {
	if len(a.raw) < 2 {
		return 0
	}
	return a.raw[1]
}

// Groups returns the interface byte groups in order (group 1 first); it is
// empty when T0 announces no interface bytes.
func (a ATR) Groups() []InterfaceGroup { return append([]InterfaceGroup(nil), a.groups...) }

// Historical returns a copy of the historical bytes (ISO/IEC 7816-4 §8.1.1):
// where card makers put the product name, hence what identification of
// vendor families (YubiKey…) looks at.
func (a ATR) Historical() []byte { return append([]byte(nil), a.historical...) }

// TCK returns the check byte and whether the ATR carries one.
func (a ATR) TCK() (byte, bool) { return a.tck, a.hasTCK }

// Protocols returns the protocols the card offers, in the order its TDi bytes
// announce them (the first is the one used when no PPS is made), without
// duplicates and without T=15. With no TD1 the card offers T=0 only, which is
// what this returns; so does an ATR whose TD bytes announce only T=15, an
// invalid offer read the most conservative way.
func (a ATR) Protocols() []Protocol {
	if len(a.raw) == 0 {
		return nil
	}
	var ps []Protocol
	var seen uint16
	for _, g := range a.groups {
		if !g.HasTD {
			continue
		}
		p := Protocol(g.TD & 0x0F)
		if p == ProtocolT15 || seen&(1<<p) != 0 {
			continue
		}
		seen |= 1 << p
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return []Protocol{ProtocolT0}
	}
	return ps
}

// Offers reports whether the card offers protocol p. piv-go, for one, needs
// T=1 and fails with SCARD_E_PROTO_MISMATCH on a T=0-only card.
func (a ATR) Offers(p Protocol) bool {
	for _, q := range a.Protocols() {
		if q == p {
			return true
		}
	}
	return false
}

// HasT15 reports whether a TDi announces global interface bytes (T=15).
func (a ATR) HasT15() bool {
	for _, g := range a.groups {
		if g.HasTD && g.TD&0x0F == 0x0F {
			return true
		}
	}
	return false
}

// String returns the ATR as upper-case hex bytes separated by spaces, the
// form pcsc_scan and smartcard_list.txt use, so that logs can be pasted into
// either.
func (a ATR) String() string { return hexSpaced(a.raw) }

func hexSpaced(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(b)-1)
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, digits[c>>4], digits[c&0x0F])
	}
	return string(out)
}

// encode rebuilds the ATR from its decoded parts alone (convention, groups,
// historical bytes), recomputing T0, the Y nibbles of the TD bytes and TCK.
// It exists so that the fuzz target can hold the decoder to "every byte
// accounted for": encode(ParseATR(b)) must give back b.
func (a ATR) encode() []byte {
	if len(a.raw) == 0 {
		return nil
	}
	var out []byte
	switch a.Convention() {
	case DirectConvention:
		out = append(out, 0x3B)
	case InverseConvention:
		out = append(out, 0x3F)
	default:
		return nil
	}
	var y1 byte
	if len(a.groups) > 0 {
		y1 = a.groups[0].presence()
	}
	out = append(out, y1|byte(len(a.historical)&0x0F))
	needTCK := false
	for i, g := range a.groups {
		if g.HasTA {
			out = append(out, g.TA)
		}
		if g.HasTB {
			out = append(out, g.TB)
		}
		if g.HasTC {
			out = append(out, g.TC)
		}
		if g.HasTD {
			var next byte
			if i+1 < len(a.groups) {
				next = a.groups[i+1].presence()
			}
			out = append(out, next|g.TD&0x0F)
			if g.TD&0x0F != 0 {
				needTCK = true
			}
		}
	}
	out = append(out, a.historical...)
	if needTCK {
		var x byte
		for _, c := range out[1:] {
			x ^= c
		}
		out = append(out, x)
	}
	return out
}
