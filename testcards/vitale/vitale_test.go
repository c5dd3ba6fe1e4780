package vitale

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

var _ vpcd.Card = (*Card)(nil)

// txOf adapts an emulator to the host side's send function.
func txOf(c interface{ Transmit([]byte) []byte }) func([]byte) ([]byte, error) {
	return func(cmd []byte) ([]byte, error) { return c.Transmit(cmd), nil }
}

func mustPatient(t testing.TB, name string) persona.Patient {
	t.Helper()
	p, err := persona.LookupPatient(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// want is what ReadVitaleWith must return for a persona: its beneficiaries with names
// as the card spells them.
func want(p persona.Patient) cardreader.VitaleData {
	c := cardreader.VitaleData{Card: cardreader.VitaleCard{ValidFrom: p.ValidFrom, Serial: p.CardSerial}}
	for _, b := range p.Beneficiaries {
		c.Beneficiaries = append(c.Beneficiaries, cardreader.Beneficiary{
			NIR:         b.NIR,
			Surname:     CardText(b.Surname),
			GivenName:   CardText(b.GivenName),
			BirthDate:   b.BirthDate,
			Nationality: "FR",
			Rank:        b.Rank,
			Quality:     b.Quality,
		})
	}
	return c
}

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadPersonas(t *testing.T) {
	for _, tt := range []struct {
		name  string
		count int
	}{{"family", 2}, {"single", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPatient(t, tt.name)
			got, err := cardreader.ReadVitaleWith(txOf(New(p)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Beneficiaries) != tt.count {
				t.Fatalf("got %d beneficiaries, want %d", len(got.Beneficiaries), tt.count)
			}
			if w := want(p); !reflect.DeepEqual(got, w) {
				t.Errorf("ReadVitaleWith =\n%+v\nwant\n%+v", got, w)
			}
		})
	}
}

func TestCardText(t *testing.T) {
	for in, out := range map[string]string{
		"Zoé":         "ZOE",
		"Léo":         "LEO",
		"PATB-QUATRE": "PATB-QUATRE",
		"Laurence":    "LAURENCE",
		"Cœur d’Ïle":  "COEUR D'ILE",
		"Łukasz":      "?UKASZ",
		"a\tb":        "A?B",
	} {
		if got := CardText(in); got != out {
			t.Errorf("CardText(%q) = %q, want %q", in, got, out)
		}
	}
}

// TestSelectVitaleBare9000 pins the exact answer opensc-tool shows over T=0.
func TestSelectVitaleBare9000(t *testing.T) {
	c := New(mustPatient(t, "single"))
	for _, cmd := range []string{
		"00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45",    // cardpeek before Le was added, opensc-tool
		"00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45 00", // cardpeek's newest apdu.lua
	} {
		if got := c.Transmit(h(cmd)); !bytes.Equal(got, []byte{0x90, 0x00}) {
			t.Errorf("%s → % X, want 90 00", cmd, got)
		}
	}
}

func TestATR(t *testing.T) {
	c := New(mustPatient(t, "single"))
	a := c.ATR()
	if len(a) != 10 || !bytes.Equal(a[:5], h("3B 75 13 00 00")) || a[5]&0xF0 != 0x40 || !bytes.Equal(a[6:], h("09 EA 90 00")) {
		t.Fatalf("ATR % X does not match 3B 75 13 00 00 4x 09 EA 90 00", a)
	}
	a[0] = 0
	if c.ATR()[0] != 0x3B || ATR[0] != 0x3B {
		t.Error("ATR() hands out the card's own slice")
	}
}

// TestStatusWords runs each sequence on a fresh card; only the last
// command's answer is checked.
func TestStatusWords(t *testing.T) {
	const (
		selVitale = "00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45"
		selMF     = "00 A4 04 00 0E D2 50 00 00 02 4D 46 5F 56 49 54 41 4C 45"
		sel2001   = "00 A4 02 00 02 20 01"
		sel2004   = "00 A4 02 00 02 20 04"
	)
	tests := []struct {
		name string
		seq  []string
		want string // whole response, hex
	}{
		{"empty", []string{""}, "6700"},
		{"three bytes", []string{"00 A4 04"}, "6700"},
		{"CLA 80", []string{"80 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "6E00"},
		{"CLA FF get UID", []string{"FF CA 00 00 00"}, "6E00"},
		{"CLA 0C secure messaging", []string{"0C B0 00 00 00"}, "6E00"},
		{"CLA 10 chaining", []string{"10 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "6E00"},
		{"CLA 01 logical channel", []string{"01 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "6E00"},
		{"GET DATA", []string{"00 CA 01 00 00"}, "6D00"},
		{"VERIFY: no PIN", []string{"00 20 00 80 04 31 32 33 34"}, "6D00"},
		{"READ RECORD", []string{selVitale, sel2004, "00 B2 01 04 00"}, "6D00"},
		{"GET CHALLENGE", []string{"00 84 00 00 08"}, "6D00"},
		{"PIV AID", []string{"00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00"}, "6A82"},
		{"PIV RID only", []string{"00 A4 04 00 05 A0 00 00 03 08"}, "6A82"},
		{"coolkey AID", []string{"00 A4 04 00 07 62 76 01 FF 00 00 00 00"}, "6A82"},
		{"muscle AID", []string{"00 A4 04 00 06 A0 00 00 00 01 01"}, "6A82"},
		{"VITALE prefix", []string{"00 A4 04 00 05 D2 50 00 00 02"}, "6A82"},
		{"VITALE with extra byte", []string{"00 A4 04 00 0C D2 50 00 00 02 56 49 54 41 4C 45 00 00"}, "6A82"},
		{"SELECT AID Lc too long", []string{"00 A4 04 00 0B D2 50"}, "6700"},
		{"SELECT AID Lc too short", []string{"00 A4 04 00 02 D2 50 00 00 02 56 49 54 41 4C 45"}, "6700"},
		{"SELECT AID no data", []string{"00 A4 04 00 00"}, "6700"},
		{"SELECT AID Lc only", []string{"00 A4 04 00 0B"}, "6700"},
		{"SELECT AID 17 bytes", []string{"00 A4 04 00 11 D2 50 00 00 02 56 49 54 41 4C 45 00 00 00 00 00 00"}, "6700"},
		{"SELECT extended", []string{"00 A4 04 00 00 00 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "6700"},
		{"SELECT next occurrence", []string{"00 A4 04 02 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "6A86"},
		{"SELECT P2 FCP", []string{"00 A4 04 04 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "9000"},
		{"SELECT P2 no data", []string{"00 A4 04 0C 0B D2 50 00 00 02 56 49 54 41 4C 45"}, "9000"},
		{"SELECT P1 08 path", []string{"00 A4 08 00 02 2F 00"}, "6A86"},
		{"SELECT P1 01 child DF", []string{"00 A4 01 00 02 20 00"}, "6A86"},
		{"MF_VITALE", []string{selMF}, "9000"},
		{"MF by 3F00", []string{"00 A4 00 00 02 3F 00"}, "9000"},
		{"MF empty P1 00", []string{"00 A4 00 00"}, "9000"},
		{"EF 2001 outside VITALE", []string{sel2001}, "6A82"},
		{"EF 2001 in VITALE", []string{selVitale, sel2001}, "9000"},
		{"EF 2001 by P1 00", []string{selVitale, "00 A4 00 00 02 20 01"}, "9000"},
		{"EF unknown", []string{selVitale, "00 A4 02 00 02 20 03"}, "6A82"},
		{"EF id 3 bytes", []string{selVitale, "00 A4 02 00 03 20 01 00"}, "6700"},
		{"EF id 1 byte", []string{selVitale, "00 A4 02 00 01 20"}, "6700"},
		{"P1 00 4 bytes", []string{"00 A4 00 00 04 3F 00 2F 00"}, "6700"},
		{"DIR from MF after reset", []string{"00 A4 02 00 02 2F 00"}, "9000"},
		{"DIR not in VITALE", []string{selVitale, "00 A4 02 00 02 2F 00"}, "6A82"},
		{"READ BINARY no EF", []string{"00 B0 00 00 00"}, "6986"},
		{"READ BINARY app only", []string{selVitale, "00 B0 00 00 00"}, "6986"},
		{"READ BINARY after failed SELECT", []string{selVitale, "00 A4 02 00 02 20 03", "00 B0 00 00 00"}, "6986"},
		{"READ BINARY past end", []string{selVitale, sel2004, "00 B0 02 00 00"}, "6B00"},
		{"READ BINARY far past end", []string{selVitale, sel2004, "00 B0 7F FF 00"}, "6B00"},
		{"READ BINARY with data", []string{selVitale, sel2004, "00 B0 00 00 01 00"}, "6700"},
		{"READ BINARY extended", []string{selVitale, sel2004, "00 B0 00 00 00 01 00"}, "6700"},
		{"READ BINARY SFI", []string{selVitale, "00 B0 82 00 00"}, "6A82"},
		{"READ BINARY bad SFI bits", []string{selVitale, "00 B0 E2 00 00"}, "6A86"},
		{"READ BINARY 4 bytes", []string{selVitale, sel2004, "00 B0 00 FC 04"}, "00000000 9000"},
		{"GET RESPONSE nothing pending", []string{selVitale, "00 C0 00 00 00"}, "6985"},
		{"READ BINARY short pointer file", []string{selVitale, sel2001, "00 B0 00 00 05"}, hex.EncodeToString(pointerTable()[:5]) + "9000"},
		{"failed SELECT keeps selection", []string{selVitale, sel2001, "00 A4 04 00 05 A0 00 00 03 08", "00 B0 00 00 05"}, hex.EncodeToString(pointerTable()[:5]) + "9000"},
	}
	p := mustPatient(t, "family")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(p)
			var got []byte
			for _, cmd := range tt.seq {
				got = c.Transmit(h(cmd))
			}
			if w := h(tt.want); !bytes.Equal(got, w) {
				t.Errorf("% X, want % X", got, w)
			}
		})
	}
}

func TestReadBinarySteps(t *testing.T) {
	c := New(mustPatient(t, "family"))
	c.Transmit(h("00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45"))
	c.Transmit(h("00 A4 02 00 02 20 04"))
	var file []byte
	for _, step := range []struct {
		cmd  string
		n    int
		want apdu.SW
	}{
		{"00 B0 00 00 00", 256, apdu.OK},
		{"00 B0 01 00 00", 256, apdu.OK},
		{"00 B0 02 00 00", 0, apdu.WrongP1P2},
		{"00 B0 01 F0", 16, apdu.OK}, // no Le: T=0 sends P3 = 00, 256 asked, 16 left
		{"00 B0 00 00 10", 16, apdu.OK},
	} {
		data, sw, err := apdu.SplitResponse(c.Transmit(h(step.cmd)))
		if err != nil || sw != step.want || len(data) != step.n {
			t.Fatalf("%s → %d bytes %v (%v), want %d bytes %v", step.cmd, len(data), sw, err, step.n, step.want)
		}
		if len(file) < 512 {
			file = append(file, data...)
		}
	}
	if len(file) != 512 || file[0] != 0x65 || file[511] != 0 {
		t.Errorf("identity file: %d bytes starting %02X, ending %02X", len(file), file[0], file[len(file)-1])
	}
}

func TestResetClearsSelection(t *testing.T) {
	c := New(mustPatient(t, "family"))
	for _, cmd := range []string{"00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45", "00 A4 02 00 02 20 04"} {
		if r := c.Transmit(h(cmd)); !bytes.Equal(r, []byte{0x90, 0x00}) {
			t.Fatalf("%s → % X", cmd, r)
		}
	}
	if _, sw, _ := apdu.SplitResponse(c.Transmit(h("00 B0 00 00 00"))); sw != apdu.OK {
		t.Fatalf("read before reset: %v", sw)
	}
	c.Reset()
	if r := c.Transmit(h("00 B0 00 00 00")); !bytes.Equal(r, swNoCurrentEF.Bytes()) {
		t.Errorf("READ BINARY after reset → % X, want 6986", r)
	}
	// The MF is current again: VITALE's files are out of reach, the MF's in.
	if r := c.Transmit(h("00 A4 02 00 02 20 04")); !bytes.Equal(r, apdu.FileNotFound.Bytes()) {
		t.Errorf("SELECT 2004 after reset → % X, want 6A82", r)
	}
	if r := c.Transmit(h("00 A4 02 00 02 2F 02")); !bytes.Equal(r, apdu.OK.Bytes()) {
		t.Errorf("SELECT 2F02 after reset → % X, want 9000", r)
	}
}

// TestCardpeekSequence replays what vitale_2.lua sends, with the newest
// apdu.lua (Le 00 on SELECT), and checks every step it needs succeeds.
func TestCardpeekSequence(t *testing.T) {
	c := New(mustPatient(t, "family"))
	ok := func(cmd string) []byte {
		t.Helper()
		data, sw, err := apdu.SplitResponse(c.Transmit(h(cmd)))
		if err != nil || sw != apdu.OK {
			t.Fatalf("%s → %v %v", cmd, sw, err)
		}
		return data
	}
	ok("00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45 00")
	ok("00 A4 02 00 02 20 01 00")
	if got := ok("00 B0 00 00 00"); !bytes.Equal(got, pointerTable()) {
		t.Fatalf("EF 2001 = % X", got)
	}
	ok("00 A4 04 00 0E D2 50 00 00 02 4D 46 5F 56 49 54 41 4C 45 00")
	for _, fid := range []string{"20 02", "2F 00", "2F 02"} {
		ok("00 A4 02 00 02 " + fid + " 00")
		if len(ok("00 B0 00 00 00")) == 0 {
			t.Errorf("EF %s empty", fid)
		}
	}
}

func TestEmptyPatient(t *testing.T) {
	_, err := cardreader.ReadVitaleWith(txOf(New(persona.Patient{Name: "nobody", ValidFrom: "20200101"})))
	if err == nil || !strings.Contains(err.Error(), cardreader.ErrNoBeneficiary.Error()) {
		t.Errorf("ReadVitaleWith of an empty card: %v", err)
	}
}

// FuzzTransmit feeds arbitrary APDU sequences to the emulator: it must never
// panic, always answer a status word, give data only with 9000, leave the
// command untouched, and be a fresh card again after a reset. That last check
// compares the whole card with a new one rather than reading it back: a read
// per input made each run slow enough that Go's input minimisation (which
// reruns the target for every way of cutting bytes out of an input) stalled
// 20-second runs for most of their time; TestReadPersonas covers reading a
// fresh card.
func FuzzTransmit(f *testing.F) {
	seq := func(cmds ...string) []byte {
		out := []byte{0}
		for _, c := range cmds {
			b := h(c)
			out = append(out, byte(len(b)))
			out = append(out, b...)
		}
		return out
	}
	f.Add(seq("00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45", "00 A4 02 00 02 20 01", "00 B0 00 00 00"))
	f.Add(seq("00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45 00", "00 A4 02 00 02 20 04", "00 B0 01 00 00", "00 B0 02 00 00"))
	f.Add(seq("00 A4 00 00 02 3F 00", "00 A4 02 00 02 2F 02", "00 B0 00 00 04", "00 C0 00 00 00"))
	f.Add(seq("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00", "FF CA 00 00 00", "00 B0 82 00 00", "00 A4 04 00 00 00 02 3F 00"))
	f.Add(seq("", "00", "00 A4 04 00 FF"))
	patients := persona.Patients()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		i := int(in[0]) % len(patients)
		c := New(patients[i])
		in = in[1:]
		for len(in) > 0 {
			n := min(int(in[0]), len(in)-1)
			cmd := append([]byte(nil), in[1:1+n]...)
			in = in[1+n:]
			orig := bytes.Clone(cmd)
			resp := c.Transmit(cmd)
			if !bytes.Equal(cmd, orig) {
				t.Fatalf("Transmit changed its command")
			}
			if len(resp) < 2 {
				t.Fatalf("% X → % X: no status word", cmd, resp)
			}
			sw1 := resp[len(resp)-2]
			if !(sw1 >= 0x61 && sw1 <= 0x6F) && !(sw1 >= 0x90 && sw1 <= 0x9F) {
				t.Fatalf("% X → % X: SW1 %02X is no status", cmd, resp, sw1)
			}
			if len(resp) > 2 && !bytes.Equal(resp[len(resp)-2:], []byte{0x90, 0x00}) {
				t.Fatalf("% X → % X: data with an error status", cmd, resp)
			}
			if len(resp) > 2+256 {
				t.Fatalf("% X → %d bytes, more than a short APDU carries", cmd, len(resp))
			}
		}
		c.Reset()
		if !reflect.DeepEqual(c, New(patients[i])) {
			t.Fatal("after the sequence and a reset the card differs from a new one")
		}
	})
}
