package apdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Command
		wantErr bool
	}{
		{"case 1", []byte{0x00, 0xA4, 0x04, 0x00}, Command{INS: 0xA4, P1: 4}, false},
		{"case 2 short", []byte{0x00, 0xC0, 0x00, 0x00, 0x10}, Command{INS: 0xC0, HasLe: true, Ne: 16}, false},
		{"case 2 Le=00 is 256", []byte{0x00, 0xFD, 0x00, 0x00, 0x00}, Command{INS: 0xFD, HasLe: true, Ne: 256}, false},
		{"case 3 short", []byte{0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32}, Command{INS: 0x20, P2: 0x80, Data: []byte{0x31, 0x32}}, false},
		{"case 4 short", []byte{0x00, 0xCB, 0x3F, 0xFF, 0x01, 0x7E, 0x08}, Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: []byte{0x7E}, HasLe: true, Ne: 8}, false},
		{"case 2 extended", []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00}, Command{INS: 0xB0, HasLe: true, Ne: 256, Extended: true}, false},
		{"case 2 extended 0000 is 65536", []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00}, Command{INS: 0xB0, HasLe: true, Ne: 65536, Extended: true}, false},
		{"case 3 extended", append([]byte{0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x00, 0x02}, 0xAA, 0xBB), Command{INS: 0xDB, P1: 0x3F, P2: 0xFF, Data: []byte{0xAA, 0xBB}, Extended: true}, false},
		{"case 4 extended", append([]byte{0x00, 0x87, 0x07, 0x9A, 0x00, 0x00, 0x01, 0xCC}, 0x01, 0x00), Command{INS: 0x87, P1: 7, P2: 0x9A, Data: []byte{0xCC}, HasLe: true, Ne: 256, Extended: true}, false},
		{"too short", []byte{0x00, 0xA4, 0x04}, Command{}, true},
		{"empty", nil, Command{}, true},
		{"Lc larger than data", []byte{0x00, 0x20, 0x00, 0x80, 0x08, 0x31}, Command{}, true},
		{"Lc smaller than data", []byte{0x00, 0x20, 0x00, 0x80, 0x01, 0x31, 0x32, 0x33}, Command{}, true},
		{"extended with 2 bytes after 00", []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x01}, Command{}, true},
		{"extended Lc 0", []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, Command{}, true},
		{"extended Lc past data", []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01}, Command{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrWrongLength) {
					t.Fatalf("Parse(% X) = %+v, %v; want ErrWrongLength", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(% X): %v", tt.in, err)
			}
			if got.CLA != tt.want.CLA || got.INS != tt.want.INS || got.P1 != tt.want.P1 || got.P2 != tt.want.P2 ||
				!bytes.Equal(got.Data, tt.want.Data) || got.Ne != tt.want.Ne || got.HasLe != tt.want.HasLe || got.Extended != tt.want.Extended {
				t.Fatalf("Parse(% X) = %+v, want %+v", tt.in, got, tt.want)
			}
			// Encoding what was parsed gives the bytes back.
			if enc := got.Bytes(); !bytes.Equal(enc, tt.in) {
				t.Fatalf("Bytes() = % X, want % X", enc, tt.in)
			}
		})
	}
}

func TestChained(t *testing.T) {
	if !(Command{CLA: 0x10}).Chained() || (Command{CLA: 0x00}).Chained() {
		t.Fatal("CLA bit 0x10 is the chaining bit")
	}
}

func TestStatusWords(t *testing.T) {
	if got := RetriesLeft(2); got != 0x63C2 {
		t.Errorf("RetriesLeft(2) = %v", got)
	}
	if got := RetriesLeft(-1); got != 0x63C0 {
		t.Errorf("RetriesLeft(-1) = %v", got)
	}
	if got := RetriesLeft(20); got != 0x63CF {
		t.Errorf("RetriesLeft(20) = %v", got)
	}
	if got := BytesAvailable(300); got != 0x6100 {
		t.Errorf("BytesAvailable(300) = %v", got)
	}
	if got := BytesAvailable(0x2A); got != 0x612A {
		t.Errorf("BytesAvailable(42) = %v", got)
	}
	data, sw, err := SplitResponse(Response([]byte{1, 2}, FileNotFound))
	if err != nil || sw != FileNotFound || !bytes.Equal(data, []byte{1, 2}) {
		t.Errorf("SplitResponse round trip = % X %v %v", data, sw, err)
	}
	if _, _, err := SplitResponse([]byte{0x90}); err == nil {
		t.Error("SplitResponse accepted a 1-byte response")
	}
}

func TestOutgoing(t *testing.T) {
	data := make([]byte, 600)
	for i := range data {
		data[i] = byte(i)
	}
	var o Outgoing
	var got []byte
	r := o.Start(data, 0)
	for {
		d, sw, _ := SplitResponse(r)
		got = append(got, d...)
		if sw == OK {
			break
		}
		if sw>>8 != 0x61 {
			t.Fatalf("unexpected SW %v", sw)
		}
		if want := min(len(data)-len(got), 256); int(sw&0xFF) != want%256 {
			t.Fatalf("61%02X announces the wrong count, %d left", sw&0xFF, len(data)-len(got))
		}
		r = o.Next(int(sw & 0xFF))
	}
	if !bytes.Equal(got, data) || o.Pending() {
		t.Fatalf("reassembled %d bytes, pending=%v", len(got), o.Pending())
	}
	// Le shorter than the object: the first Le bytes and 61xx.
	r = o.Start(data[:20], 8)
	d, sw, _ := SplitResponse(r)
	if !bytes.Equal(d, data[:8]) || sw != 0x610C {
		t.Fatalf("Le 8: % X %v", d, sw)
	}
	o.Reset()
	if o.Pending() {
		t.Fatal("Reset left a pending response")
	}
}

func TestIncoming(t *testing.T) {
	var in Incoming
	if _, done, sw := in.Add(Command{CLA: 0x10, INS: 0x87, P1: 7, P2: 0x9A, Data: []byte{1, 2}}); done || sw != OK {
		t.Fatal("first chained part")
	}
	full, done, sw := in.Add(Command{CLA: 0x00, INS: 0x87, P1: 7, P2: 0x9A, Data: []byte{3}})
	if !done || sw != OK || !bytes.Equal(full.Data, []byte{1, 2, 3}) {
		t.Fatalf("chain end: %+v %v %v", full, done, sw)
	}
	in.Add(Command{CLA: 0x10, INS: 0x87, P1: 7, P2: 0x9A, Data: []byte{1}})
	if _, done, sw := in.Add(Command{INS: 0x20, P2: 0x80}); done || sw != LastCommandExpected || in.Pending() {
		t.Fatalf("a chain changing INS: done=%v sw=%v pending=%v", done, sw, in.Pending())
	}
	big := make([]byte, 255)
	for i := 0; ; i++ {
		_, _, sw := in.Add(Command{CLA: 0x10, INS: 0x87, Data: big})
		if sw == WrongLength {
			if in.Pending() || i*255 > MaxChained {
				t.Fatalf("over-long chain stopped at %d bytes, pending=%v", i*255, in.Pending())
			}
			break
		}
	}
}

func TestTLV(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 255, 256, 65535, 65536} {
		v := bytes.Repeat([]byte{0xAB}, n)
		for _, tag := range []uint32{0x53, 0x5F2F, 0x5FC105} {
			enc := Encode(tag, v[:n/2], v[n/2:])
			got, rest, err := ParseTLV(append(enc, 0x99))
			if err != nil || got.Tag != tag || !bytes.Equal(got.Value, v) || !bytes.Equal(rest, []byte{0x99}) {
				t.Fatalf("tag %X len %d: %v tag %X len %d rest % X", tag, n, err, got.Tag, len(got.Value), rest)
			}
		}
	}
	// Minimal (DER) lengths, which piv-go's asn1 parsing insists on.
	if enc := Encode(0x70, make([]byte, 200)); !bytes.Equal(enc[:3], []byte{0x70, 0x81, 200}) {
		t.Fatalf("length 200 encoded as % X", enc[:3])
	}
	bad := [][]byte{
		{0x5F},             // truncated tag
		{0x5F, 0xC1},       // truncated tag
		{0x5F, 0xC1, 0x85}, // tag longer than 3 bytes
		{0x53},             // missing length
		{0x53, 0x80},       // indefinite length
		{0x53, 0x84, 0, 0, 0, 1},
		{0x53, 0x82, 0x01}, // truncated length
		{0x53, 0x05, 0x01}, // value past the end
	}
	for _, b := range bad {
		if _, err := ParseTLVs(b); !errors.Is(err, ErrMalformedTLV) {
			t.Errorf("ParseTLVs(% X) = %v, want ErrMalformedTLV", b, err)
		}
	}
	tlvs, err := ParseTLVs([]byte{0x82, 0x00, 0x81, 0x02, 0xAA, 0xBB})
	if err != nil || len(tlvs) != 2 {
		t.Fatal(err)
	}
	if v, ok := Find(tlvs, 0x81); !ok || !bytes.Equal(v, []byte{0xAA, 0xBB}) {
		t.Fatal("Find 81")
	}
	if _, ok := Find(tlvs, 0x85); ok {
		t.Fatal("Find found an absent tag")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range [][]byte{
		{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00},
		{0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x08},
		{0x00, 0x20, 0x00, 0x80, 0x00},
		{0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00},
		{0x00, 0x87, 0x07, 0x9A, 0x00, 0x00, 0x01, 0xCC, 0x01, 0x00},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to an APDU that parses the same way.
		c2, err := Parse(c.Bytes())
		if err != nil || !bytes.Equal(c2.Data, c.Data) || c2.Ne != c.Ne || c2.HasLe != c.HasLe || c2.INS != c.INS {
			t.Fatalf("% X parsed as %+v, re-encoded as % X, parsed again as %+v, %v", b, c, c.Bytes(), c2, err)
		}
	})
}

func FuzzParseTLVs(f *testing.F) {
	f.Add([]byte{0x53, 0x82, 0x01, 0x00})
	f.Add([]byte{0x7C, 0x24, 0x82, 0x00, 0x81, 0x20})
	f.Add([]byte{0x5F, 0xC1, 0x05, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		tlvs, err := ParseTLVs(b)
		if err != nil {
			return
		}
		// Re-encoding with minimal lengths gives back what parsed; it is
		// never longer than the input, which may use long forms.
		var enc []byte
		for _, x := range tlvs {
			enc = append(enc, Encode(x.Tag, x.Value)...)
		}
		again, err := ParseTLVs(enc)
		if err != nil || len(again) != len(tlvs) || len(enc) > len(b) {
			t.Fatalf("% X: re-encoded % X: %v", b, enc, err)
		}
		for i := range tlvs {
			if again[i].Tag != tlvs[i].Tag || !bytes.Equal(again[i].Value, tlvs[i].Value) {
				t.Fatalf("object %d changed in the round trip", i)
			}
		}
	})
}
