package cardreader

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// knownATRs is every ATR the table is meant to recognise, with what it must
// say. FuzzParseATR and FuzzIdentify use it as their seed corpus.
var knownATRs = []struct {
	name  string
	atr   string
	typ   CardType
	model Model
	probe bool
}{
	{"CPS3 contact", "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00", TypeCPS, ModelCPS3, false},
	{"CPS3 contactless", "3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0E", TypeCPS, ModelCPS3Contactless, false},
	{"CPS4 (DESIGN)", "3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44", TypeCPS, ModelCPS4, false},
	{"CPS4 (pcsc-tools)", "3B DC 18 FF 00 00 12 25 00 64 80 00 04 01 00 90 00", TypeCPS, ModelCPS4, false},
	{"CPx variant (pcsc-tools)", "3B AC 00 40 2A 00 12 25 00 64 80 82 02 12 00 90 00", TypeCPS, ModelCPSOther, false},
	{"test CPS", "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DC", TypeCPS, ModelTestCPS, false},
	{"Vitale 2 x=3", "3B 75 13 00 00 43 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 2 x=4", "3B 75 13 00 00 44 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 2 x=9", "3B 75 13 00 00 49 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 2 x=C", "3B 75 13 00 00 4C 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 2 x=0", "3B 75 13 00 00 40 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 2 x=F", "3B 75 13 00 00 4F 09 EA 90 00", TypeVitale, ModelVitale2, false},
	{"Vitale 1 2C 09 69", "3F 65 25 00 2C 09 69 90 00", TypeVitale, ModelVitale1, false},
	{"Vitale 1 22 09 F9", "3F 65 25 00 22 09 F9 90 00", TypeVitale, ModelVitale1, false},
	{"Vitale 1 52 09 6A", "3F 65 25 00 52 09 6A 90 00", TypeVitale, ModelVitale1, false},
	{"Vitale 1 A4 09 6A", "3F 65 25 00 A4 09 6A 90 00", TypeVitale, ModelVitale1, false},
	{"YubiKey 5 NFC (USB)", "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40", TypePIV, ModelPIV, true},
	{"YubiKey 5 NFC (NFC)", "3B 8D 80 01 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 F9", TypePIV, ModelPIV, true},
	{"YubiKey 4", "3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", TypePIV, ModelPIV, true},
	{"YubiKey NEO", "3B FC 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 4E 45 4F 72 33 E1", TypePIV, ModelPIV, true},
}

func TestIdentifyKnown(t *testing.T) {
	for _, tt := range knownATRs {
		t.Run(tt.name, func(t *testing.T) {
			id := Identify(mustHex(t, tt.atr))
			if id.Err != nil {
				t.Fatalf("Err = %v", id.Err)
			}
			if id.Type != tt.typ || id.Model != tt.model || id.NeedsProbe != tt.probe {
				t.Errorf("got %s/%s probe=%v, want %s/%s probe=%v", id.Type, id.Model, id.NeedsProbe, tt.typ, tt.model, tt.probe)
			}
			if id.Name == "" || id.Description == "" {
				t.Errorf("no name or description: %+v", id)
			}
			if id.ATR.String() != tt.atr {
				t.Errorf("ATR = %v", id.ATR)
			}
		})
	}
}

func TestIdentifyTestCPSExported(t *testing.T) {
	id := Identify(TestCPSATR())
	if id.Model != ModelTestCPS || id.Type != TypeCPS {
		t.Fatalf("TestCPSATR identifies as %v", id)
	}
	// piv-go refuses T=0-only cards: the test CPS must keep offering T=1.
	if !id.ATR.Offers(ProtocolT1) {
		t.Error("test CPS ATR does not offer T=1")
	}
	TestCPSATR()[0] = 0
	if Identify(TestCPSATR()).Model != ModelTestCPS {
		t.Error("TestCPSATR returned the package's own slice")
	}
}

func TestIdentifyNotMatching(t *testing.T) {
	tests := []struct {
		name  string
		atr   string
		model Model
		err   error
	}{
		// One byte changed in the CPS3 ATR where the CPx family mask is free:
		// still a CPS, but not known to be a CPS3.
		{"CPS3 historical 00→01", "3B AC 00 40 2A 00 12 25 00 64 80 01 03 10 00 90 00", ModelCPSOther, nil},
		// One byte changed where the family mask is fixed: not a CPS at all.
		{"CPS3 historical 25→26", "3B AC 00 40 2A 00 12 26 00 64 80 00 03 10 00 90 00", ModelUnknown, nil},
		{"CPS3 TC2 2A→2B", "3B AC 00 40 2B 00 12 25 00 64 80 00 03 10 00 90 00", ModelCPSOther, nil},
		{"CPS3 last byte 00→01", "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 01", ModelUnknown, nil},
		// smartcard_list.txt "Card used in public French hospital": CPS3 CL
		// prefix, different tail.
		{"CPS3 CL look-alike", "3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 FF FF FF E3", ModelUnknown, nil},
		{"CPS3 CL wrong TCK", "3B 8F 80 01 00 31 B8 64 04 B0 EC C1 73 94 01 80 82 90 00 0F", ModelUnknown, ErrATRBadTCK},
		{"CPS4 wrong TCK", "3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 45", ModelUnknown, ErrATRBadTCK},
		{"CPS4 one byte changed, TCK fixed", "3B 9B 18 80 01 00 12 25 00 64 80 04 02 00 00 90 47", ModelUnknown, nil},
		{"test CPS wrong TCK", "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 53 DD", ModelUnknown, ErrATRBadTCK},
		{"test CPS other text", "3B 8E 80 01 80 5C 44 4D 50 20 54 45 53 54 20 43 50 54 DB", ModelUnknown, nil},
		{"Vitale 2 with 5x", "3B 75 13 00 00 54 09 EA 90 00", ModelUnknown, nil},
		{"Vitale 2 EA→FA", "3B 75 13 00 00 45 09 FA 90 00", ModelUnknown, nil},
		{"Vitale 2 in inverse", "3F 75 13 00 00 44 09 EA 90 00", ModelUnknown, nil},
		{"Vitale 2 plus TCK", "3B 75 13 00 00 44 09 EA 90 00 00", ModelUnknown, ErrATRTrailing},
		{"France Telecom 3F 65 25 08", "3F 65 25 08 22 04 68 90 00", ModelUnknown, nil},
		{"Vitale 1 prefix, direct", "3B 65 25 00 2C 09 69 90 00", ModelUnknown, nil},
		// YubiKey 5 NFC through an ACR122U: "YubiKe" then FF, no full name.
		{"YubiKey truncated name", "3B 8D 80 01 80 73 C0 21 C0 57 59 75 62 69 4B 65 FF 7F", ModelUnknown, nil},
		{"PIVKey (not named YubiKey)", "3B FC 18 00 00 81 31 80 45 90 67 46 4A 00 64 16 06 F2 72 7E 00 E0", ModelUnknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := Identify(mustHex(t, tt.atr))
			if id.Model != tt.model {
				t.Errorf("Model = %s (%s), want %s", id.Model, id.Name, tt.model)
			}
			if tt.model == ModelUnknown && id.Type != TypeUnknown {
				t.Errorf("Type = %s, want unknown", id.Type)
			}
			if !errors.Is(id.Err, tt.err) || (tt.err == nil && id.Err != nil) {
				t.Errorf("Err = %v, want %v", id.Err, tt.err)
			}
		})
	}
}

func TestIdentifyGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 20)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 0x3B // past TS, so that the garbage reaches the decoder
	long := bytes.Repeat([]byte{0x3B}, 40)
	tests := []struct {
		name string
		atr  []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"1 byte", []byte{0x3B}},
		{"40 bytes", long},
		{"random", random},
		{"TS 00", []byte{0x00, 0xAC, 0x00, 0x40}},
		{"truncated interface bytes", []byte{0x3B, 0xFD, 0x13, 0x00}},
		{"truncated historical", mustHex(t, "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := Identify(tt.atr)
			if id.Type != TypeUnknown || id.Model != ModelUnknown || id.NeedsProbe {
				t.Errorf("got %+v", id)
			}
			var ae *ATRError
			if !errors.As(id.Err, &ae) {
				t.Errorf("Err = %v, want an *ATRError", id.Err)
			}
			if id.String() != "unknown" {
				t.Errorf("String = %q", id.String())
			}
		})
	}
}

// TestTableNoTies keeps the table's outcome independent of row order: on
// every ATR the tests know, the winner beats every other matching row of a
// different model outright.
func TestTableNoTies(t *testing.T) {
	for _, k := range knownATRs {
		a, err := ParseATRHex(k.atr)
		if err != nil {
			t.Fatal(err)
		}
		var matched []*Entry
		for i := range knownCards {
			if knownCards[i].match(a) {
				matched = append(matched, &knownCards[i])
			}
		}
		for i, e := range matched {
			for _, f := range matched[i+1:] {
				if e.Model == f.Model {
					continue
				}
				se, sf := e.specificity(), f.specificity()
				if !se.beats(sf) && !sf.beats(se) {
					t.Errorf("%s: rows %q and %q tie", k.name, e.Name, f.Name)
				}
			}
		}
	}
}

func TestTableConsistent(t *testing.T) {
	typeOf := map[Model]CardType{}
	for _, e := range KnownCards() {
		if e.Name == "" || e.Description == "" || e.Type == "" || e.Model == "" {
			t.Errorf("incomplete row %+v", e)
		}
		if prev, ok := typeOf[e.Model]; ok && prev != e.Type {
			t.Errorf("model %s is both %s and %s", e.Model, prev, e.Type)
		}
		typeOf[e.Model] = e.Type
		if e.NeedsProbe != (len(e.ProbeAID) > 0) {
			t.Errorf("%s: NeedsProbe %v with ProbeAID % X", e.Name, e.NeedsProbe, e.ProbeAID)
		}
		if len(e.ATR.Mask) != 0 && len(e.ATR.Mask) != len(e.ATR.Value) {
			t.Errorf("%s: mask and value lengths differ", e.Name)
		}
	}
}

func TestKnownCardsIsACopy(t *testing.T) {
	KnownCards()[0].ATR.Value[0] = 0
	if Identify(mustHex(t, knownATRs[0].atr)).Model != knownATRs[0].model {
		t.Error("KnownCards shares its bytes with the built-in table")
	}
}

func TestIdentifyWithExtraEntry(t *testing.T) {
	table := append(KnownCards(), Entry{
		Name:  "site CPS3 batch",
		Type:  TypeCPS,
		Model: ModelCPS3,
		ATR:   mustPattern("3B AC 00 40 2A 00 12 25 00 64 80 82 02 12 00 90 00"),
	})
	id := IdentifyWith(table, mustHex(t, "3B AC 00 40 2A 00 12 25 00 64 80 82 02 12 00 90 00"))
	if id.Model != ModelCPS3 || id.Name != "site CPS3 batch" {
		t.Errorf("exact configured row lost to the family mask: %v / %s", id, id.Model)
	}
}

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in     string
		value  string
		mask   string
		prefix bool
	}{
		{"3B 75 13 00 00 4x 09 EA 90 00", "3B 75 13 00 00 40 09 EA 90 00", "FF FF FF FF FF F0 FF FF FF FF", false},
		{"3f:65:25:00 *", "3F 65 25 00", "FF FF FF FF", true},
		{"3B .. X1 …", "3B 00 01", "FF 00 0F", true},
		{"*", "", "", true},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.in)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", tt.in, err)
			continue
		}
		if !bytes.Equal(p.Value, mustHex(t, tt.value)) || !bytes.Equal(p.Mask, mustHex(t, tt.mask)) || p.Prefix != tt.prefix {
			t.Errorf("ParsePattern(%q) = % X / % X / %v", tt.in, p.Value, p.Mask, p.Prefix)
		}
	}
	for _, s := range []string{"", "3B * 00", "3B 7", "3B 7G", "3B-00"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) accepted", s)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	p := mustPattern("3B 75 13 00 00 4x 09 EA 90 00")
	for x := range 16 {
		atr := mustHex(t, fmt.Sprintf("3B 75 13 00 00 4%X 09 EA 90 00", x))
		if !p.Match(atr) {
			t.Errorf("x=%X does not match", x)
		}
	}
	if p.Match(mustHex(t, "3B 75 13 00 00 44 09 EA 90")) || p.Match(mustHex(t, "3B 75 13 00 00 44 09 EA 90 00 00")) {
		t.Error("an exact pattern matched another length")
	}
	// A hand-built pattern without a mask compares every bit.
	if !(Pattern{Value: []byte{0x3B}}).Match([]byte{0x3B}) || (Pattern{Value: []byte{0x3B}}).Match([]byte{0x3F}) {
		t.Error("nil mask is not all-ones")
	}
}

func TestContainsFold(t *testing.T) {
	for _, tt := range []struct {
		hay, needle string
		want        bool
	}{
		{"YubiKey", "yubikey", true},
		{"\x80sYubikeyNEO", "yubikey", true},
		{"YubiKe\xff", "yubikey", false},
		{"", "", true},
		{"abc", "", true},
		{"\xd9ubikey", "yubikey", false}, // no Unicode folding of binary bytes
	} {
		if got := containsFold([]byte(tt.hay), tt.needle); got != tt.want {
			t.Errorf("containsFold(%q, %q) = %v", tt.hay, tt.needle, got)
		}
	}
}

func FuzzIdentify(f *testing.F) {
	for _, k := range knownATRs {
		f.Add(mustHex(f, k.atr))
	}
	f.Add([]byte{})
	f.Add([]byte{0x3F, 0x65, 0x25, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		id := Identify(b)
		_, err := ParseATR(b)
		if (err == nil) != (id.Err == nil) {
			t.Fatalf("Identify Err %v, ParseATR err %v", id.Err, err)
		}
		if id.Err != nil && (id.Type != TypeUnknown || id.Model != ModelUnknown) {
			t.Fatalf("undecodable ATR identified as %s/%s", id.Type, id.Model)
		}
		switch id.Type {
		case TypeCPS, TypeVitale, TypePIV, TypeUnknown:
		default:
			t.Fatalf("Type %q is not an API value", id.Type)
		}
		if (id.Type == TypeUnknown) != (id.Model == ModelUnknown) {
			t.Fatalf("Type %s with Model %s", id.Type, id.Model)
		}
		if id.NeedsProbe && len(id.ProbeAID) == 0 {
			t.Fatal("probe needed without an AID")
		}
	})
}
