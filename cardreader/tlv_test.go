package cardreader

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// encodeTestTLV builds a BER-TLV object with the shortest length form. The
// package has no encoder (the agent only reads card data); tests use this
// one to build card contents, and TestEncodeTestTLV pins it to literal bytes
// so that a mistake here cannot hide one in the parser.
func encodeTestTLV(tag uint32, parts ...[]byte) []byte {
	v := bytes.Join(parts, nil)
	var out []byte
	switch {
	case tag > 0xFFFF:
		out = append(out, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		out = append(out, byte(tag>>8), byte(tag))
	default:
		out = append(out, byte(tag))
	}
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, v...)
}

func TestEncodeTestTLV(t *testing.T) {
	for _, tt := range []struct {
		got  []byte
		want string
	}{
		{encodeTestTLV(0x80, []byte("AB")), "80 02 41 42"},
		{encodeTestTLV(0x5F2F, []byte{1}, []byte{2}), "5F 2F 02 01 02"},
		{encodeTestTLV(0x5FC105), "5F C1 05 00"},
		{encodeTestTLV(0x53, make([]byte, 0x80))[:3], "53 81 80"},
		{encodeTestTLV(0x53, make([]byte, 0x100))[:4], "53 82 01 00"},
		{encodeTestTLV(0x53, make([]byte, 0x10000))[:5], "53 83 01 00 00"},
	} {
		if want := mustHex(t, tt.want); !bytes.Equal(tt.got, want) {
			t.Errorf("% X, want % X", tt.got, want)
		}
	}
}

func TestParseTLV(t *testing.T) {
	long := func(n int) []byte { return bytes.Repeat([]byte{0xAB}, n) }
	tests := []struct {
		name    string
		in      []byte
		tag     uint32
		value   []byte
		rest    []byte
		errText string // set when ErrMalformedTLV is expected
	}{
		{name: "one-byte tag", in: []byte{0x93, 0x02, 0x31, 0x32, 0x99}, tag: 0x93, value: []byte("12"), rest: []byte{0x99}},
		{name: "empty value", in: []byte{0x80, 0x00}, tag: 0x80, value: []byte{}, rest: []byte{}},
		{name: "two-byte tag", in: []byte{0x5F, 0x2F, 0x01, 0x07}, tag: 0x5F2F, value: []byte{7}, rest: []byte{}},
		{name: "three-byte tag", in: []byte{0x5F, 0xC1, 0x05, 0x00}, tag: 0x5FC105, value: []byte{}, rest: []byte{}},
		{name: "constructed tag", in: []byte{0x7F, 0x21, 0x00}, tag: 0x7F21, value: []byte{}, rest: []byte{}},
		{name: "1F then low tag byte", in: []byte{0x1F, 0x00, 0x00}, tag: 0x1F00, value: []byte{}, rest: []byte{}},
		{name: "length 81", in: append([]byte{0x53, 0x81, 0x80}, long(0x80)...), tag: 0x53, value: long(0x80), rest: []byte{}},
		{name: "length 81 non-minimal", in: []byte{0x53, 0x81, 0x01, 0xAB}, tag: 0x53, value: long(1), rest: []byte{}},
		{name: "length 82", in: append([]byte{0x53, 0x82, 0x01, 0x00}, long(0x101)...), tag: 0x53, value: long(0x100), rest: []byte{0xAB}},
		{name: "length 83", in: append([]byte{0x53, 0x83, 0x01, 0x00, 0x01}, long(0x10001)...), tag: 0x53, value: long(0x10001), rest: []byte{}},
		{name: "empty input", in: nil, errText: "missing tag"},
		{name: "truncated two-byte tag", in: []byte{0x5F}, errText: "truncated tag"},
		{name: "truncated three-byte tag", in: []byte{0x5F, 0xC1}, errText: "truncated tag"},
		{name: "tag over three bytes", in: []byte{0x5F, 0xC1, 0x85, 0x01, 0x00}, errText: "longer than 3 bytes"},
		{name: "missing length", in: []byte{0x53}, errText: "missing length"},
		{name: "80 indefinite length", in: []byte{0x53, 0x80, 0x01, 0x00, 0x00}, errText: "length form 80"},
		{name: "84 length", in: []byte{0x53, 0x84, 0, 0, 0, 1, 0xAB}, errText: "length form 84"},
		{name: "FF length", in: []byte{0x53, 0xFF}, errText: "length form FF"},
		{name: "truncated 81", in: []byte{0x53, 0x81}, errText: "truncated length"},
		{name: "truncated 82", in: []byte{0x53, 0x82, 0x01}, errText: "truncated length"},
		{name: "truncated 83", in: []byte{0x53, 0x83, 0x01, 0x00}, errText: "truncated length"},
		{name: "short length past end", in: []byte{0x53, 0x05, 0x01}, errText: "length 5 past the 1 bytes left"},
		{name: "81 length past end", in: append([]byte{0x53, 0x81, 0x90}, long(0x8F)...), errText: "length 144 past"},
		{name: "83 length past end", in: []byte{0x53, 0x83, 0xFF, 0xFF, 0xFF}, errText: "length 16777215 past the 0 bytes left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := ParseTLV(tt.in)
			if tt.errText != "" {
				if !errors.Is(err, ErrMalformedTLV) || !bytes.Contains([]byte(err.Error()), []byte(tt.errText)) {
					t.Fatalf("err = %v, want ErrMalformedTLV saying %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Tag != tt.tag || !bytes.Equal(got.Value, tt.value) || !bytes.Equal(rest, tt.rest) {
				t.Fatalf("tag %X value % X rest % X, want tag %X value % X rest % X", got.Tag, got.Value, rest, tt.tag, tt.value, tt.rest)
			}
		})
	}
}

// TestParseTLVValueCapacity: a caller appending to a value (building a
// command from it, say) must not overwrite the objects after it.
func TestParseTLVValueCapacity(t *testing.T) {
	in := []byte{0x80, 0x01, 0xAA, 0x81, 0x01, 0xBB}
	first, _, err := ParseTLV(in)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(first.Value, 0xEE)
	if in[3] != 0x81 {
		t.Fatalf("append to a value overwrote the next tag: % X", in)
	}
}

func TestParseTLVs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []TLV
		bad  bool
	}{
		{name: "empty", in: "", want: nil},
		{name: "record fields", in: "93 02 31 32 80 00 5F 2F 01 07", want: []TLV{
			{0x93, []byte("12")}, {0x80, []byte{}}, {0x5F2F, []byte{7}}}},
		{name: "nested kept whole", in: "65 04 80 02 41 42", want: []TLV{{0x65, mustHex(t, "80 02 41 42")}}},
		{name: "zero padding parses as tag 00", in: "80 01 41 00 00", want: []TLV{{0x80, []byte("A")}, {0x00, []byte{}}}},
		{name: "second object truncated", in: "80 01 41 81 05 42", bad: true},
		{name: "trailing tag byte", in: "80 01 41 5F", bad: true},
		{name: "trailing indefinite length", in: "80 01 41 81 80", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTLVs(mustHex(t, tt.in))
			if tt.bad {
				if !errors.Is(err, ErrMalformedTLV) || got != nil {
					t.Fatalf("= %v, %v; want nil, ErrMalformedTLV", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("= %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFindTLV(t *testing.T) {
	tlvs := []TLV{{0x82, []byte{}}, {0x81, []byte{1}}, {0x81, []byte{2}}}
	if v, ok := FindTLV(tlvs, 0x81); !ok || !bytes.Equal(v, []byte{1}) {
		t.Errorf("FindTLV 81 = % X, %v; want the first 81", v, ok)
	}
	if v, ok := FindTLV(tlvs, 0x82); !ok || v == nil {
		t.Errorf("FindTLV 82 = %v, %v; want an empty, present value", v, ok)
	}
	if _, ok := FindTLV(tlvs, 0x5F81); ok {
		t.Error("FindTLV found an absent tag")
	}
}

// FuzzParseTLVs: parsing never panics; object by object, ParseTLV agrees
// with ParseTLVs; the raw bytes of the objects parsed before any error parse
// again to the same objects; and re-encoding each object in the shortest
// form reads back as the same tag and value (so the tag number is a faithful
// image of the tag bytes).
func FuzzParseTLVs(f *testing.F) {
	for _, s := range []string{
		// The single persona's beneficiary record.
		"65 32 93 0F 32 30 37 30 35 38 35 37 35 36 32 37 30 39 37 80 0B 50 41 54 42 2D 51 55 41 54 52 45 81 08 4C 41 55 52 45 4E 43 45 82 08 31 39 30 37 30 35 32 35",
		"E0 1A A0 0A 82 08 00 01 00 00 D2 50 00 00 80 0C 49 44 45 4E 54 49 54 45 00 02 20 04",
		"5F C1 05 00 7F 21 00 53 81 01 AA 53 82 00 01 BB 53 83 00 00 01 CC",
		"53 80 00 00",
		"5F C1 85 01 00",
		"53 83 FF FF FF",
		"00 00 FF",
	} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Long inputs add nothing the headers of short ones do not (a
		// length is checked against what is left, not read through), and
		// Go's minimisation of each new multi-kilobyte input stalled
		// 20-second runs for most of their time.
		if len(in) > 1024 {
			return
		}
		all, errAll := ParseTLVs(in)
		var objs []TLV
		var raw []byte
		b := in
		var errOne error
		for len(b) > 0 {
			o, rest, err := ParseTLV(b)
			if err != nil {
				errOne = err
				break
			}
			if len(rest) >= len(b) {
				t.Fatalf("ParseTLV consumed nothing of % X", b)
			}
			raw = append(raw, b[:len(b)-len(rest)]...)
			objs = append(objs, o)
			b = rest
		}
		if (errAll == nil) != (errOne == nil) {
			t.Fatalf("ParseTLVs err %v, object by object %v", errAll, errOne)
		}
		if errAll != nil && !errors.Is(errAll, ErrMalformedTLV) {
			t.Fatalf("error %v is not ErrMalformedTLV", errAll)
		}
		if errAll == nil && !reflect.DeepEqual(all, objs) {
			t.Fatalf("ParseTLVs %v, object by object %v", all, objs)
		}
		again, err := ParseTLVs(raw)
		if err != nil || len(again) != len(objs) {
			t.Fatalf("re-parse of % X: %d objects, %v; want %d", raw, len(again), err, len(objs))
		}
		for i, o := range objs {
			if again[i].Tag != o.Tag || !bytes.Equal(again[i].Value, o.Value) {
				t.Fatalf("object %d: re-parsed %X % X, first %X % X", i, again[i].Tag, again[i].Value, o.Tag, o.Value)
			}
			enc, rest, err := ParseTLV(encodeTestTLV(o.Tag, o.Value))
			if err != nil || len(rest) != 0 || enc.Tag != o.Tag || !bytes.Equal(enc.Value, o.Value) {
				t.Fatalf("object %d (%X, %d bytes) re-encoded reads back as %X, %d bytes, %v", i, o.Tag, len(o.Value), enc.Tag, len(enc.Value), err)
			}
		}
	})
}
