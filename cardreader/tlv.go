package cardreader

import (
	"errors"
	"fmt"
)

// TLV is one BER-TLV data object. Tag holds the tag bytes as a number
// (5F C1 05 is 0x5FC105), so that callers compare tags with one constant
// rather than byte slices.
type TLV struct {
	Tag   uint32
	Value []byte
}

// ErrMalformedTLV reports truncated or over-long encodings. Card data is
// untrusted input: every such fault is this error, never a panic.
var ErrMalformedTLV = errors.New("cardreader: malformed BER-TLV")

// ParseTLVs decodes a sequence of BER-TLV objects. It accepts tags of up to
// three bytes and definite lengths of up to three bytes, which covers every
// object a PIV or Vitale card carries; anything longer is refused rather
// than guessed at. Values alias b.
func ParseTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		t, rest, err := ParseTLV(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

// ParseTLV decodes the first BER-TLV object of b and returns the remainder.
// The value aliases b, with its capacity cut at its end so that appending
// to it cannot overwrite the objects that follow.
func ParseTLV(b []byte) (TLV, []byte, error) {
	tag, n, err := parseTag(b)
	if err != nil {
		return TLV{}, nil, err
	}
	b = b[n:]
	l, n, err := parseLength(b)
	if err != nil {
		return TLV{}, nil, err
	}
	b = b[n:]
	if l > len(b) {
		return TLV{}, nil, fmt.Errorf("%w: length %d past the %d bytes left", ErrMalformedTLV, l, len(b))
	}
	return TLV{Tag: tag, Value: b[:l:l]}, b[l:], nil
}

func parseTag(b []byte) (uint32, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: missing tag", ErrMalformedTLV)
	}
	tag := uint32(b[0])
	if b[0]&0x1F != 0x1F {
		return tag, 1, nil
	}
	for i := 1; i < 3; i++ {
		if i >= len(b) {
			return 0, 0, fmt.Errorf("%w: truncated tag", ErrMalformedTLV)
		}
		tag = tag<<8 | uint32(b[i])
		if b[i]&0x80 == 0 {
			return tag, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: tag longer than 3 bytes", ErrMalformedTLV)
}

// parseLength accepts the non-minimal long forms (81 05) as well as DER:
// cards are not always DER-strict, and the value is unambiguous either way.
// The indefinite form 80 is refused: no card object we read uses it, and
// it would need end-of-contents scanning.
func parseLength(b []byte) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: missing length", ErrMalformedTLV)
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	n := int(b[0] & 0x7F)
	if n == 0 || n > 3 {
		return 0, 0, fmt.Errorf("%w: length form %02X", ErrMalformedTLV, b[0])
	}
	if len(b) < 1+n {
		return 0, 0, fmt.Errorf("%w: truncated length", ErrMalformedTLV)
	}
	l := 0
	for _, c := range b[1 : 1+n] {
		l = l<<8 | int(c)
	}
	return l, 1 + n, nil
}

// FindTLV returns the value of the first object with the given tag.
func FindTLV(tlvs []TLV, tag uint32) ([]byte, bool) {
	for _, t := range tlvs {
		if t.Tag == tag {
			return t.Value, true
		}
	}
	return nil, false
}
