package apdu

import "github.com/dmpagent/dmpagent/cardreader"

// The parser is the agent's own (cardreader): the emulators and the host
// must agree on what well-formed BER-TLV is, so there is one parser. The
// card side adds only the encoder below.

// TLV is one BER-TLV data object. Tag holds the tag bytes as a number
// (5F C1 05 is 0x5FC105).
type TLV = cardreader.TLV

// ErrMalformedTLV is returned for truncated or over-long encodings; the
// emulators answer such data with 6A80.
var ErrMalformedTLV = cardreader.ErrMalformedTLV

// ParseTLVs decodes a sequence of BER-TLV objects (see cardreader.ParseTLVs).
func ParseTLVs(b []byte) ([]TLV, error) { return cardreader.ParseTLVs(b) }

// ParseTLV decodes the first BER-TLV object of b and returns the remainder.
func ParseTLV(b []byte) (TLV, []byte, error) { return cardreader.ParseTLV(b) }

// Find returns the value of the first object with the given tag.
func Find(tlvs []TLV, tag uint32) ([]byte, bool) { return cardreader.FindTLV(tlvs, tag) }

// Encode builds a BER-TLV object with the shortest (DER) length encoding,
// which Go's encoding/asn1 and piv-go insist on. The value is the
// concatenation of parts.
func Encode(tag uint32, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n+7)
	switch {
	case tag > 0xFFFF:
		out = append(out, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		out = append(out, byte(tag>>8), byte(tag))
	default:
		out = append(out, byte(tag))
	}
	out = AppendLength(out, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// AppendLength appends a DER length.
func AppendLength(out []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(out, byte(n))
	case n <= 0xFF:
		return append(out, 0x81, byte(n))
	case n <= 0xFFFF:
		return append(out, 0x82, byte(n>>8), byte(n))
	default:
		return append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}
