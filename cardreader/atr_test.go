package cardreader

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := decodeHexBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The expectations below were worked out by hand from ISO/IEC 7816-3 §8.2
// (Y nibbles announce TA/TB/TC/TD, K = T0 low nibble, TCK present as soon as
// a protocol other than T=0 is indicated), not copied from the parser.
func TestParseATRKnownCards(t *testing.T) {
	type group = InterfaceGroup
	tests := []struct {
		name       string
		atr        string
		conv       Convention
		groups     []group
		historical string
		protocols  []Protocol
		t15        bool
		tck        int // -1: absent
	}{
		{
			// T0 AC: Y1 = A (TB1, TD1), K = 12. TD1 40: T=0, Y2 = 4 (TC2).
			name: "CPS3 contact", atr: "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TB: 0x00, HasTB: true, TD: 0x40, HasTD: true},
				{Index: 2, TC: 0x2A, HasTC: true},
			},
			historical: "00 12 25 00 64 80 00 03 10 00 90 00",
			protocols:  []Protocol{ProtocolT0}, tck: -1,
		},
		{
			// T0 8F: TD1, K = 15. TD1 80: T=0, then TD2. TD2 01: T=1, nothing more.
			name: "CPS3 contactless", atr: "3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TD: 0x80, HasTD: true},
				{Index: 2, TD: 0x01, HasTD: true},
			},
			historical: "00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00",
			protocols:  []Protocol{ProtocolT0, ProtocolT1}, tck: 0x0E,
		},
		{
			// T0 9B: Y1 = 9 (TA1, TD1), K = 11. TA1 18 (Fi/Di), TD1 80, TD2 01.
			name: "CPS4 (DESIGN)", atr: "3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TA: 0x18, HasTA: true, TD: 0x80, HasTD: true},
				{Index: 2, TD: 0x01, HasTD: true},
			},
			historical: "00 12 25 00 64 80 04 01 00 00 90",
			protocols:  []Protocol{ProtocolT0, ProtocolT1}, tck: 0x44,
		},
		{
			// T0 DC: Y1 = D (TA1, TC1, TD1), K = 12. TD1 00: T=0, nothing more.
			name: "CPS4 (pcsc-tools)", atr: "3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TA: 0x18, HasTA: true, TC: 0xFF, HasTC: true, TD: 0x00, HasTD: true},
			},
			historical: "00 12 25 00 64 80 00 04 01 00 90 00",
			protocols:  []Protocol{ProtocolT0}, tck: -1,
		},
		{
			// T0 75: Y1 = 7 (TA1, TB1, TC1), K = 5; no TD1 so T=0 only.
			name: "Vitale 2", atr: "3B 75 13 00 00 44 09 EA 90 00",
			conv:       DirectConvention,
			groups:     []group{{Index: 1, TA: 0x13, HasTA: true, TB: 0x00, HasTB: true, TC: 0x00, HasTC: true}},
			historical: "44 09 EA 90 00",
			protocols:  []Protocol{ProtocolT0}, tck: -1,
		},
		{
			// T0 65: Y1 = 6 (TB1, TC1), K = 5.
			name: "Vitale 1", atr: "3F 65 25 00 2C 09 69 90 00",
			conv:       InverseConvention,
			groups:     []group{{Index: 1, TB: 0x25, HasTB: true, TC: 0x00, HasTC: true}},
			historical: "2C 09 69 90 00",
			protocols:  []Protocol{ProtocolT0}, tck: -1,
		},
		{
			// T0 8E: TD1, K = 14. Historical: 80, 5C + "DMP TEST CPS".
			name: "test CPS", atr: "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TD: 0x80, HasTD: true},
				{Index: 2, TD: 0x01, HasTD: true},
			},
			historical: "80 5C 44 4D 50 20 54 45 53 54 20 43 50 53",
			protocols:  []Protocol{ProtocolT0, ProtocolT1}, tck: 0xDC,
		},
		{
			// T0 FD: Y1 = F, K = 13. TD1 81: T=1, TD2 follows. TD2 31: T=1,
			// TA3 (IFSC FE) and TB3 (BWI/CWI 15) follow.
			name: "YubiKey 5 NFC (USB)", atr: "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TA: 0x13, HasTA: true, TB: 0x00, HasTB: true, TC: 0x00, HasTC: true, TD: 0x81, HasTD: true},
				{Index: 2, TD: 0x31, HasTD: true},
				{Index: 3, TA: 0xFE, HasTA: true, TB: 0x15, HasTB: true},
			},
			historical: "80 73 C0 21 C0 57 59 75 62 69 4B 65 79",
			protocols:  []Protocol{ProtocolT1}, tck: 0x40,
		},
		{
			name: "YubiKey 5 NFC (NFC)", atr: "3B 8D 80 01 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 F9",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TD: 0x80, HasTD: true},
				{Index: 2, TD: 0x01, HasTD: true},
			},
			historical: "80 73 C0 21 C0 57 59 75 62 69 4B 65 79",
			protocols:  []Protocol{ProtocolT0, ProtocolT1}, tck: 0xF9,
		},
		{
			name: "YubiKey 4", atr: "3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TA: 0x13, HasTA: true, TB: 0x00, HasTB: true, TC: 0x00, HasTC: true, TD: 0x81, HasTD: true},
				{Index: 2, TD: 0x31, HasTD: true},
				{Index: 3, TA: 0xFE, HasTA: true, TB: 0x15, HasTB: true},
			},
			historical: "59 75 62 69 6B 65 79 34",
			protocols:  []Protocol{ProtocolT1}, tck: 0xD4,
		},
		{
			// T0 90: TA1, TD1, K = 0. TD1 80: T=0, TD2. TD2 1F: T=15, TA3
			// (global). T=15 alone makes TCK mandatory.
			name: "T=0 with T=15 global bytes", atr: "3B 90 95 80 1F C3 59",
			conv: DirectConvention,
			groups: []group{
				{Index: 1, TA: 0x95, HasTA: true, TD: 0x80, HasTD: true},
				{Index: 2, TD: 0x1F, HasTD: true},
				{Index: 3, TA: 0xC3, HasTA: true},
			},
			protocols: []Protocol{ProtocolT0}, t15: true, tck: 0x59,
		},
		{
			name: "minimal", atr: "3B 00",
			conv:      DirectConvention,
			protocols: []Protocol{ProtocolT0}, tck: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustHex(t, tt.atr)
			a, err := ParseATR(raw)
			if err != nil {
				t.Fatalf("ParseATR: %v", err)
			}
			if got := a.Convention(); got != tt.conv {
				t.Errorf("Convention = %v, want %v", got, tt.conv)
			}
			if got := a.Groups(); !slices.Equal(got, tt.groups) {
				t.Errorf("Groups =\n %+v\nwant\n %+v", got, tt.groups)
			}
			if got, want := a.Historical(), mustHex(t, tt.historical); !bytes.Equal(got, want) {
				t.Errorf("Historical = % X, want % X", got, want)
			}
			if got := a.Protocols(); !slices.Equal(got, tt.protocols) {
				t.Errorf("Protocols = %v, want %v", got, tt.protocols)
			}
			if got := a.HasT15(); got != tt.t15 {
				t.Errorf("HasT15 = %v, want %v", got, tt.t15)
			}
			tck, has := a.TCK()
			if tt.tck < 0 && has {
				t.Errorf("TCK = %02X, want none", tck)
			}
			if tt.tck >= 0 && (!has || tck != byte(tt.tck)) {
				t.Errorf("TCK = %02X (present %v), want %02X", tck, has, tt.tck)
			}
			if got := a.String(); got != tt.atr {
				t.Errorf("String = %q, want %q", got, tt.atr)
			}
			if !bytes.Equal(a.Bytes(), raw) || !bytes.Equal(a.encode(), raw) {
				t.Errorf("Bytes/encode do not give back the input")
			}
		})
	}
}

func TestParseATRErrors(t *testing.T) {
	long := make([]byte, 40)
	long[0], long[1] = 0x3B, 0x0F
	tests := []struct {
		name   string
		atr    []byte
		want   error
		offset int
	}{
		{"empty", nil, ErrATRTruncated, 0},
		{"TS only", []byte{0x3B}, ErrATRTruncated, 1},
		{"TS 00", []byte{0x00, 0x00}, ErrATRBadTS, 0},
		{"TS 03 (inverse not decoded)", []byte{0x03, 0x00}, ErrATRBadTS, 0},
		{"40 bytes", long, ErrATRTooLong, MaxATRLen},
		{"34 bytes", append([]byte{0x3B, 0x0F}, make([]byte, 32)...), ErrATRTooLong, MaxATRLen},
		// T0 F0 announces TA1 TB1 TC1 TD1; only two are there.
		{"truncated interface bytes", mustHex(t, "3B F0 13 00"), ErrATRTruncated, 4},
		// TD1 81 announces TD2, missing.
		{"truncated TD chain", mustHex(t, "3B 80 81"), ErrATRTruncated, 3},
		{"truncated historical", mustHex(t, "3B 75 13 00 00 44 09 EA 90"), ErrATRTruncated, 9},
		{"missing TCK", mustHex(t, "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53"), ErrATRTruncated, 18},
		{"wrong TCK", mustHex(t, "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DD"), ErrATRBadTCK, 18},
		{"TCK on a T=0 card", mustHex(t, "3B 75 13 00 00 44 09 EA 90 00 00"), ErrATRTrailing, 10},
		{"trailing after TCK", mustHex(t, "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC 00"), ErrATRTrailing, 19},
		{"random", mustHex(t, "3B 5A A5 C3 17"), ErrATRTruncated, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseATR(tt.atr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var ae *ATRError
			if !errors.As(err, &ae) {
				t.Fatalf("err %T is not an *ATRError", err)
			}
			if ae.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (%v)", ae.Offset, tt.offset, err)
			}
			if a.String() != "" || a.Protocols() != nil {
				t.Errorf("failed parse returned a non-zero ATR %v", a)
			}
		})
	}
}

func TestParseATRHex(t *testing.T) {
	want := TestCPSATR()
	for _, s := range []string{
		"3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC",
		"3b:8e:80:01:80:5c:44:4d:50:20:54:45:53:54:20:43:50:53:dc",
		"3B8E8001805C444D502054455354204350 53DC",
		"  3B 8E 80 01\t80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC\n",
	} {
		a, err := ParseATRHex(s)
		if err != nil {
			t.Errorf("ParseATRHex(%q): %v", s, err)
			continue
		}
		if !bytes.Equal(a.Bytes(), want) {
			t.Errorf("ParseATRHex(%q) = %v", s, a)
		}
	}
	for _, s := range []string{
		"3 B 00", // each token must hold whole bytes, not be glued back
		"3B8E8001805C444D5020544553542043505 3DC",
		"3B 0G",
		"3B-00",
	} {
		if _, err := ParseATRHex(s); err == nil {
			t.Errorf("ParseATRHex(%q) accepted", s)
		}
	}
}

func TestATRIsAValue(t *testing.T) {
	raw := TestCPSATR()
	a, err := ParseATR(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[6] = 'X'
	a.Historical()[0] = 0xFF
	a.Bytes()[0] = 0xFF
	if a.String() != "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC" {
		t.Errorf("ATR changed through an alias: %v", a)
	}
}

func TestProtocolsDedupAndOffers(t *testing.T) {
	// TD1 81 (T=1), TD2 31 (T=1 again, TA3 TB3), TD3 absent.
	a, err := ParseATRHex("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Offers(ProtocolT1) || a.Offers(ProtocolT0) {
		t.Errorf("Offers: T=1 %v, T=0 %v", a.Offers(ProtocolT1), a.Offers(ProtocolT0))
	}
	if got := ProtocolT1.String(); got != "T=1" {
		t.Errorf("Protocol String = %q", got)
	}
}

func FuzzParseATR(f *testing.F) {
	for _, s := range knownATRs {
		f.Add(mustHex(f, s.atr))
	}
	f.Add([]byte{})
	f.Add([]byte{0x3B})
	f.Add([]byte{0x3F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseATR(b)
		if err != nil {
			var ae *ATRError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T is not an *ATRError: %v", err, err)
			}
			return
		}
		if got := a.encode(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded % X, input % X", got, b)
		}
		if len(a.Historical()) != int(b[1]&0x0F) {
			t.Fatalf("%d historical bytes, T0 says %d", len(a.Historical()), b[1]&0x0F)
		}
		if len(a.Protocols()) == 0 {
			t.Fatal("no protocol")
		}
		back, err := ParseATRHex(a.String())
		if err != nil || !bytes.Equal(back.Bytes(), b) {
			t.Fatalf("String %q does not parse back: %v", a.String(), err)
		}
	})
}

// TestParseATRGenerated builds well-formed ATRs from random structures (a
// builder independent of the parser) and checks that the parser reads the
// structure back. The fuzz targets mostly see malformed input; this covers
// the deep valid ones, T=15 and TCK included.
func TestParseATRGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for n := 0; n < 20000; n++ {
		ts := byte(0x3B)
		if rng.IntN(2) == 1 {
			ts = 0x3F
		}
		var groups []InterfaceGroup
		ngroups := rng.IntN(5)
		for i := 1; i <= ngroups; i++ {
			g := InterfaceGroup{Index: i}
			g.HasTA, g.HasTB, g.HasTC = rng.IntN(2) == 1, rng.IntN(2) == 1, rng.IntN(2) == 1
			g.TA, g.TB, g.TC = byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())
			if i < ngroups {
				g.HasTD = true
				g.TD = []byte{0, 1, 1, 15, 2, 14}[rng.IntN(6)]
			}
			if !g.HasTA {
				g.TA = 0
			}
			if !g.HasTB {
				g.TB = 0
			}
			if !g.HasTC {
				g.TC = 0
			}
			groups = append(groups, g)
		}
		// A group with nothing in it cannot be announced: drop trailing
		// empty groups (and the TD pointing at them).
		for len(groups) > 0 && groups[len(groups)-1].presence() == 0 {
			groups = groups[:len(groups)-1]
			if len(groups) > 0 {
				last := &groups[len(groups)-1]
				last.HasTD, last.TD = false, 0
			}
		}
		hist := make([]byte, rng.IntN(16))
		for i := range hist {
			hist[i] = byte(rng.Uint32())
		}

		var y1 byte
		if len(groups) > 0 {
			y1 = groups[0].presence()
		}
		b := []byte{ts, y1 | byte(len(hist))}
		var want []Protocol
		needTCK := false
		for i := range groups {
			g := &groups[i]
			for _, f := range []struct {
				has bool
				v   byte
			}{{g.HasTA, g.TA}, {g.HasTB, g.TB}, {g.HasTC, g.TC}} {
				if f.has {
					b = append(b, f.v)
				}
			}
			if g.HasTD {
				if i+1 < len(groups) {
					g.TD |= groups[i+1].presence()
				}
				b = append(b, g.TD)
				p := Protocol(g.TD & 0x0F)
				if p != ProtocolT0 {
					needTCK = true
				}
				if p != ProtocolT15 && !slices.Contains(want, p) {
					want = append(want, p)
				}
			}
		}
		b = append(b, hist...)
		if needTCK {
			var x byte
			for _, c := range b[1:] {
				x ^= c
			}
			b = append(b, x)
		}
		if len(want) == 0 {
			want = []Protocol{ProtocolT0}
		}
		if len(b) > MaxATRLen {
			continue
		}

		a, err := ParseATR(b)
		if err != nil {
			t.Fatalf("% X: %v", b, err)
		}
		if !slices.Equal(a.Groups(), groups) {
			t.Fatalf("% X: groups\n %+v\nwant\n %+v", b, a.Groups(), groups)
		}
		if !bytes.Equal(a.Historical(), hist) || !slices.Equal(a.Protocols(), want) {
			t.Fatalf("% X: historical % X protocols %v", b, a.Historical(), a.Protocols())
		}
		if _, has := a.TCK(); has != needTCK {
			t.Fatalf("% X: TCK present %v, want %v", b, has, needTCK)
		}
		if !bytes.Equal(a.encode(), b) {
			t.Fatalf("% X: re-encoded % X", b, a.encode())
		}
	}
}
