package cardreader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The single persona's beneficiary record (DESIGN §7), written out byte by
// byte rather than built, so that the decoder is held to real-looking bytes
// and not only to what encodeTestTLV makes.
const singleRecordHex = "65 32" +
	" 93 0F 32 30 37 30 35 38 35 37 35 36 32 37 30 39 37" + // NIR 207058575627097
	" 80 0B 50 41 54 42 2D 51 55 41 54 52 45" + // PATB-QUATRE
	" 81 08 4C 41 55 52 45 4E 43 45" + // LAURENCE
	" 82 08 31 39 30 37 30 35 32 35" // 19070525

func singleWant() VitaleData {
	return VitaleData{
		Beneficiaries: []Beneficiary{{NIR: "207058575627097", Surname: "PATB-QUATRE", GivenName: "LAURENCE", BirthDate: "19070525"}},
		Card:          VitaleCard{ValidFrom: "20190610", Serial: "0000000000000102"},
	}
}

func vitaleField(tag uint32, v string) []byte { return encodeTestTLV(tag, []byte(v)) }

func vitaleRecord(nir, surname, given, birth string, extra ...[]byte) []byte {
	fields := append([][]byte{
		vitaleField(vitaleTagNIR, nir),
		vitaleField(vitaleTagSurname, surname),
		vitaleField(vitaleTagGivenName, given),
		vitaleField(vitaleTagBirthDate, birth),
	}, extra...)
	return encodeTestTLV(vitaleTagBeneficiary, fields...)
}

// familyRecords are the family persona's two beneficiaries as our emulator
// writes them, with nationality and its rank and quality tags.
func familyRecords() []byte {
	return append(
		vitaleRecord("275126322074974", "ADRUN", "ZOE", "19751231",
			vitaleField(vitaleTagNationality, "FR"), vitaleField(vitaleTagRank, "1"), vitaleField(vitaleTagQuality, "INSURED")),
		vitaleRecord("112046322012323", "ADRUN", "LEO", "20120410",
			vitaleField(vitaleTagNationality, "FR"), vitaleField(vitaleTagRank, "1"), vitaleField(vitaleTagQuality, "CHILD"))...)
}

func familyWant() VitaleData {
	return VitaleData{
		Beneficiaries: []Beneficiary{
			{NIR: "275126322074974", Surname: "ADRUN", GivenName: "ZOE", BirthDate: "19751231", Nationality: "FR", Rank: 1, Quality: "insured"},
			{NIR: "112046322012323", Surname: "ADRUN", GivenName: "LEO", BirthDate: "20120410", Nationality: "FR", Rank: 1, Quality: "child"},
		},
		Card: VitaleCard{ValidFrom: "20190610", Serial: "0000000000000102"},
	}
}

var (
	vitaleTestIndexMF  = []byte{0x00, 0x01}
	vitaleTestIndexApp = []byte{0x00, 0x02}
)

func vitaleAppEntry(index, aid []byte) []byte {
	return encodeTestTLV(vitaleTagAppEntry, index, []byte{0x00, 0x00}, aid)
}

func vitaleFileEntry(name string, index []byte, fid uint16) []byte {
	return encodeTestTLV(vitaleTagFileEntry, []byte(name), index, []byte{byte(fid >> 8), byte(fid)})
}

// vitaleTestPointers is EF 2001 as cardpeek reads it: MF_VITALE is application
// 0001 and holds "CARTE" (2002), VITALE is 0002 and holds "IDENTITE" (2004).
func vitaleTestPointers() []byte {
	return encodeTestTLV(vitaleTagPointers,
		encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexMF, vitaleMFAID), vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
		vitaleFileEntry("CARTE   ", vitaleTestIndexMF, 0x2002),
		vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2004))
}

// vitaleTestCard is a hand-built Vitale 2 card: MF_VITALE is the MF,
// VITALE a DF under it reachable by AID, each EF a transparent file read
// with READ BINARY that answers 6B00 from its end on. It answers over T=1
// (data and 9000 at once); the via* wrappers add T=0's ways.
type vitaleTestCard struct {
	mf, app map[uint16][]byte
	refuse  map[uint16]SW // READ BINARY answer of EFs behind an access condition
	inApp   bool
	cur     uint16
	ef      []byte
}

// newVitaleTestCard holds identity in EF 2004, 00-padded to 512 bytes as a
// fixed-size EF is, so a read takes several 256-byte steps.
func newVitaleTestCard(identity []byte) *vitaleTestCard {
	if len(identity) < 512 {
		identity = append(bytes.Clone(identity), make([]byte, 512-len(identity))...)
	}
	return &vitaleTestCard{
		mf: map[uint16][]byte{
			0x2002: encodeTestTLV(vitaleTagCard, vitaleField(vitaleTagValidFrom, "20190610")),
			0x2F02: vitaleHex("5A 08 00 00 00 00 00 00 01 02"),
		},
		app: map[uint16][]byte{
			0x2001: vitaleTestPointers(),
			0x2004: identity,
		},
		refuse: map[uint16]SW{},
	}
}

func vitaleHex(s string) []byte {
	b, err := decodeHexBytes(s)
	if err != nil {
		panic(err)
	}
	return b
}

func swBytes(s SW) []byte { return []byte{byte(s >> 8), byte(s)} }

func (c *vitaleTestCard) transmit(cmd []byte) ([]byte, error) {
	if len(cmd) < 4 {
		return swBytes(0x6700), nil
	}
	if cmd[0] != 0x00 {
		return swBytes(0x6E00), nil
	}
	switch cmd[1] {
	case insSelect:
		if len(cmd) < 5 || len(cmd) < 5+int(cmd[4]) {
			return swBytes(0x6700), nil
		}
		data := cmd[5 : 5+int(cmd[4])]
		switch {
		case cmd[2] == 0x04 && bytes.Equal(data, vitaleAID):
			c.inApp, c.ef = true, nil
		case cmd[2] == 0x04 && bytes.Equal(data, vitaleMFAID):
			c.inApp, c.ef = false, nil
		case cmd[2] == 0x02 && len(data) == 2:
			fid := uint16(data[0])<<8 | uint16(data[1])
			files := c.mf
			if c.inApp {
				files = c.app
			}
			ef, ok := files[fid]
			if !ok {
				return swBytes(0x6A82), nil
			}
			c.cur, c.ef = fid, ef
		default:
			return swBytes(0x6A82), nil
		}
		return swBytes(SWOK), nil
	case insReadBinary:
		if c.ef == nil {
			return swBytes(0x6986), nil
		}
		if s, ok := c.refuse[c.cur]; ok {
			return swBytes(s), nil
		}
		off := int(cmd[2])<<8 | int(cmd[3])
		ne := 256
		if len(cmd) == 5 && cmd[4] != 0 {
			ne = int(cmd[4])
		}
		if off >= len(c.ef) {
			return swBytes(0x6B00), nil
		}
		return append(bytes.Clone(c.ef[off:min(off+ne, len(c.ef))]), 0x90, 0x00), nil
	}
	return swBytes(0x6D00), nil
}

// viaGetResponse makes a card answer as a T=0 card answers case 4
// commands: 61xx first, the data through GET RESPONSE.
func viaGetResponse(tx TransmitFunc) TransmitFunc {
	var pending []byte
	return func(cmd []byte) ([]byte, error) {
		if len(cmd) == 5 && cmd[1] == insGetResponse && len(pending) > 0 {
			ne := int(cmd[4])
			if ne == 0 {
				ne = 256
			}
			part := bytes.Clone(pending[:min(ne, len(pending))])
			pending = pending[len(part):]
			if len(pending) > 0 {
				return append(part, 0x61, byte(min(len(pending), 256))), nil
			}
			return append(part, 0x90, 0x00), nil
		}
		pending = nil
		r, err := tx(cmd)
		if err != nil || len(r) <= 2 || !bytes.HasSuffix(r, swBytes(SWOK)) {
			return r, err
		}
		pending = r[:len(r)-2]
		return []byte{0x61, byte(min(len(pending), 256))}, nil
	}
}

// viaExactLe answers 6Cxx when READ BINARY asks for more than is left.
func viaExactLe(tx TransmitFunc) TransmitFunc {
	return func(cmd []byte) ([]byte, error) {
		r, err := tx(cmd)
		if err == nil && len(cmd) == 5 && cmd[1] == insReadBinary && bytes.HasSuffix(r, swBytes(SWOK)) {
			if n := len(r) - 2; n < 256 && (cmd[4] == 0 || int(cmd[4]) > n) {
				return []byte{0x6C, byte(n)}, nil
			}
		}
		return r, err
	}
}

// viaEndOfFile answers 6282 (end of file reached) with a short last read.
func viaEndOfFile(tx TransmitFunc) TransmitFunc {
	return func(cmd []byte) ([]byte, error) {
		r, err := tx(cmd)
		if err == nil && cmd[1] == insReadBinary && bytes.HasSuffix(r, swBytes(SWOK)) && len(r)-2 < 256 {
			r = append(r[:len(r)-2], 0x62, 0x82)
		}
		return r, err
	}
}

func TestReadVitaleWith(t *testing.T) {
	single := vitaleHex(singleRecordHex)
	withIdentity := func(b []byte) TransmitFunc { return newVitaleTestCard(b).transmit }
	withCard := func(edit func(c *vitaleTestCard)) TransmitFunc {
		c := newVitaleTestCard(single)
		edit(c)
		return c.transmit
	}
	withPointers := func(b []byte) TransmitFunc {
		return withCard(func(c *vitaleTestCard) { c.app[0x2001] = b })
	}
	onlyBeneficiaries := func(d VitaleData) *VitaleData { d.Card = VitaleCard{}; return &d }
	corsican := "185032A123456"
	if k, err := NIRKey(corsican); err != nil {
		t.Fatal(err)
	} else {
		corsican += string([]byte{byte('0' + k/10), byte('0' + k%10)})
	}
	ioErr := errors.New("reader unplugged")
	pL := func(nir string) []byte { return vitaleRecord(nir, "P", "L", "19070525") }
	pLWant := func(b Beneficiary) *VitaleData {
		d := singleWant()
		d.Beneficiaries = []Beneficiary{b}
		return &d
	}

	tests := []struct {
		name    string
		tx      TransmitFunc
		want    *VitaleData // checked when set
		wantErr error       // errors.Is
		errText string      // substring
	}{
		{name: "single, literal bytes", tx: withIdentity(single), want: vitaleDataPtr(singleWant())},
		{name: "family with rank and quality", tx: withIdentity(familyRecords()), want: vitaleDataPtr(familyWant())},
		{name: "61xx and GET RESPONSE", tx: viaGetResponse(withIdentity(familyRecords())), want: vitaleDataPtr(familyWant())},
		{name: "6Cxx asks for the exact length", tx: viaExactLe(withIdentity(familyRecords())), want: vitaleDataPtr(familyWant())},
		{name: "6282 at end of file", tx: viaEndOfFile(withIdentity(familyRecords())), want: vitaleDataPtr(familyWant())},
		{name: "three steps, short last", tx: withIdentity(append(bytes.Clone(single), make([]byte, 700-len(single))...)), want: vitaleDataPtr(singleWant())},
		{name: "FF padding", tx: withIdentity(append(bytes.Clone(single), bytes.Repeat([]byte{0xFF}, 600)...)), want: vitaleDataPtr(singleWant())},
		{name: "Corsican NIR", tx: withIdentity(pL(corsican)), want: pLWant(Beneficiary{NIR: corsican, Surname: "P", GivenName: "L", BirthDate: "19070525"})},
		{name: "trailing spaces and 00 dropped", tx: withIdentity(vitaleRecord("207058575627097 ", "PATB-QUATRE  ", "LAURENCE\x00\x00", "19070525")), want: vitaleDataPtr(singleWant())},
		{name: "Latin-1 name", tx: withIdentity(encodeTestTLV(vitaleTagBeneficiary, vitaleField(vitaleTagNIR, "207058575627097"),
			vitaleField(vitaleTagSurname, "P"), []byte{vitaleTagGivenName, 3, 'Z', 'o', 0xE9}, vitaleField(vitaleTagBirthDate, "19070525"))),
			want: pLWant(Beneficiary{NIR: "207058575627097", Surname: "P", GivenName: "Zoé", BirthDate: "19070525"})},
		{name: "unknown birth day", tx: withIdentity(vitaleRecord("207058575627097", "P", "L", "19070500")),
			want: pLWant(Beneficiary{NIR: "207058575627097", Surname: "P", GivenName: "L", BirthDate: "19070500"})},
		{name: "tags 83/84 used otherwise", tx: withIdentity(vitaleRecord("207058575627097", "P", "L", "19070525",
			vitaleField(vitaleTagRank, "20240101"), []byte{vitaleTagQuality, 2, 0x01, 0x02})),
			want: pLWant(Beneficiary{NIR: "207058575627097", Surname: "P", GivenName: "L", BirthDate: "19070525"})},
		{name: "not a Vitale card", tx: func([]byte) ([]byte, error) { return swBytes(0x6A82), nil }, wantErr: ErrNotVitale},
		{name: "card knows no SELECT", tx: func([]byte) ([]byte, error) { return swBytes(0x6D00), nil }, wantErr: ErrNotVitale},
		{name: "bad NIR key", tx: withIdentity(pL("207058575627098")), wantErr: ErrNIRKey},
		{name: "NIR too short", tx: withIdentity(pL("20705857562709")), errText: "NIR has 14 characters"},
		{name: "NIR not digits", tx: withIdentity(pL("2070585756X7097")), errText: "not 13 digits"},
		{name: "no NIR", tx: withIdentity(encodeTestTLV(vitaleTagBeneficiary, vitaleField(vitaleTagSurname, "P"),
			vitaleField(vitaleTagGivenName, "L"), vitaleField(vitaleTagBirthDate, "19070525"))), errText: "no NIR"},
		{name: "no surname", tx: withIdentity(encodeTestTLV(vitaleTagBeneficiary, vitaleField(vitaleTagNIR, "207058575627097"),
			vitaleField(vitaleTagGivenName, "L"), vitaleField(vitaleTagBirthDate, "19070525"))), errText: "no surname"},
		{name: "blank given name", tx: withIdentity(vitaleRecord("207058575627097", "P", "   ", "19070525")), errText: "empty given name"},
		{name: "control byte in name", tx: withIdentity(vitaleRecord("207058575627097", "PATB\x01", "L", "19070525")), errText: "control byte 01"},
		{name: "C1 control byte in name", tx: withIdentity(vitaleRecord("207058575627097", "P", "L\x85", "19070525")), errText: "control byte 85"},
		{name: "no birth date", tx: withIdentity(encodeTestTLV(vitaleTagBeneficiary, vitaleField(vitaleTagNIR, "207058575627097"),
			vitaleField(vitaleTagSurname, "P"), vitaleField(vitaleTagGivenName, "L"))), errText: "no birth date"},
		{name: "birth date not digits", tx: withIdentity(vitaleRecord("207058575627097", "P", "L", "1907-05-")), errText: "not YYYYMMDD"},
		{name: "birth date too long", tx: withIdentity(vitaleRecord("207058575627097", "P", "L", "190705251")), errText: "not YYYYMMDD"},
		{name: "record damaged after a good one", tx: withCard(func(c *vitaleTestCard) {
			c.app[0x2004] = append(bytes.Clone(single), 0x65, 0x20, 0x93) // unpadded: the 65 runs past the end
		}), wantErr: ErrMalformedTLV},
		{name: "record inner TLV damaged", tx: withIdentity(vitaleHex("65 03 93 05 32")), errText: "beneficiary 1"},
		{name: "file not TLV from its start is skipped", tx: withIdentity(vitaleHex("5F C1 85 01 00")), wantErr: ErrNoBeneficiary},
		{name: "transport error", tx: func([]byte) ([]byte, error) { return nil, ioErr }, wantErr: ioErr},
		{name: "one-byte response", tx: func([]byte) ([]byte, error) { return []byte{0x90}, nil }, errText: "no status word"},
		{name: "pointer table not E0", tx: withPointers(encodeTestTLV(0xE1)), errText: "want E0"},
		{name: "pointer table truncated", tx: withPointers(vitaleTestPointers()[:20]), wantErr: ErrMalformedTLV},
		{name: "pointer table names an unknown application", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			vitaleFileEntry("IDENTITE", []byte{0, 9}, 0x2004))), errText: "does not list"},
		{name: "pointer table short file entry", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			encodeTestTLV(vitaleTagFileEntry, []byte("IDENTITE"), vitaleTestIndexApp, []byte{0x20}))), errText: "want 12"},
		{name: "pointer table AID too short", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, []byte{0xD2, 0x50, 0x00, 0x00})))), errText: "application entry of 8 bytes"},
		{name: "pointer table lists too many files", tx: withPointers(encodeTestTLV(vitaleTagPointers, append(
			[][]byte{encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID))},
			slices.Repeat([][]byte{vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2004)}, vitaleMaxFiles+1)...)...)),
			errText: "more than 32"},
		{name: "pointer table lists only VITALE", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2004))), want: onlyBeneficiaries(singleWant())},
		{name: "repeated application index read once", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID), vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2004))), want: onlyBeneficiaries(singleWant())},
		{name: "listed file missing", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2009))), wantErr: ErrNoBeneficiary},
		{name: "application that will not select is skipped", tx: withPointers(encodeTestTLV(vitaleTagPointers,
			encodeTestTLV(vitaleTagAppList, vitaleAppEntry(vitaleTestIndexMF, []byte{0xD2, 0x50, 0x00, 0x00, 0x02, 'X'}), vitaleAppEntry(vitaleTestIndexApp, vitaleAID)),
			vitaleFileEntry("OTHER   ", vitaleTestIndexMF, 0x2004),
			vitaleFileEntry("IDENTITE", vitaleTestIndexApp, 0x2004))), want: onlyBeneficiaries(singleWant())},
		{name: "identity file refused", tx: withCard(func(c *vitaleTestCard) { c.refuse[0x2004] = 0x6982 }), wantErr: ErrNoBeneficiary},
		{name: "card file refused", tx: withCard(func(c *vitaleTestCard) { c.refuse[0x2002] = 0x6982 }),
			want: &VitaleData{Beneficiaries: singleWant().Beneficiaries, Card: VitaleCard{Serial: "0000000000000102"}}},
		{name: "PAN missing", tx: withCard(func(c *vitaleTestCard) { delete(c.mf, 0x2F02) }),
			want: &VitaleData{Beneficiaries: singleWant().Beneficiaries, Card: VitaleCard{ValidFrom: "20190610"}}},
		{name: "PAN not BCD", tx: withCard(func(c *vitaleTestCard) { c.mf[0x2F02] = vitaleHex("5A 02 12 A4") }),
			want: &VitaleData{Beneficiaries: singleWant().Beneficiaries, Card: VitaleCard{ValidFrom: "20190610"}}},
		{name: "odd PAN", tx: withCard(func(c *vitaleTestCard) { c.mf[0x2F02] = vitaleHex("5A 02 12 3F") }),
			want: &VitaleData{Beneficiaries: singleWant().Beneficiaries, Card: VitaleCard{ValidFrom: "20190610", Serial: "123"}}},
		{name: "start of validity not a date", tx: withCard(func(c *vitaleTestCard) {
			c.mf[0x2002] = encodeTestTLV(vitaleTagCard, vitaleField(vitaleTagValidFrom, "soon"))
		}), errText: "start of validity"},
		{name: "endless file", tx: func(cmd []byte) ([]byte, error) {
			if cmd[1] == insReadBinary {
				return append(bytes.Repeat([]byte{0xE0}, 256), 0x90, 0x00), nil
			}
			return swBytes(SWOK), nil
		}, errText: "pointer table"},
		{name: "endless 61xx", tx: func([]byte) ([]byte, error) { return []byte{0x61, 0x00}, nil }, wantErr: errTooManyCommands},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadVitaleWith(tt.tx)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want one saying %q", err, tt.errText)
				}
			case err != nil:
				t.Fatal(err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "cardreader: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, *tt.want) {
				t.Errorf("ReadVitaleWith =\n%+v\nwant\n%+v", got, *tt.want)
			}
		})
	}
}

func vitaleDataPtr(d VitaleData) *VitaleData { return &d }

// TestReadVitaleCommands pins the APDUs sent to a plain card: the sequence
// cardpeek sends, so a card that answers cardpeek answers the agent.
func TestReadVitaleCommands(t *testing.T) {
	card := newVitaleTestCard(vitaleHex(singleRecordHex))
	var got []string
	_, err := ReadVitaleWith(func(cmd []byte) ([]byte, error) {
		got = append(got, hexSpaced(cmd))
		return card.transmit(cmd)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45", // SELECT VITALE
		"00 A4 02 00 02 20 01", "00 B0 00 00 00",          // pointer table, shorter than 256
		"00 A4 04 00 0E D2 50 00 00 02 4D 46 5F 56 49 54 41 4C 45", // MF_VITALE
		"00 A4 02 00 02 20 02", "00 B0 00 00 00", // CARTE
		"00 A4 02 00 02 2F 02", "00 B0 00 00 00", // PAN
		"00 A4 04 00 0B D2 50 00 00 02 56 49 54 41 4C 45",
		"00 A4 02 00 02 20 04", "00 B0 00 00 00", "00 B0 01 00 00", "00 B0 02 00 00", // IDENTITE: 512 bytes, then 6B00
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadVitaleSWError(t *testing.T) {
	card := newVitaleTestCard(vitaleHex(singleRecordHex))
	delete(card.app, 0x2001)
	_, err := ReadVitaleWith(card.transmit)
	var swe *SWError
	if !errors.As(err, &swe) || swe.SW != 0x6A82 || swe.Step != "SELECT EF 2001" {
		t.Fatalf("err = %v, want an SWError for SELECT EF 2001 with 6A82", err)
	}
	if got := err.Error(); got != "cardreader: vitale: SELECT EF 2001: card answered 6A82" {
		t.Errorf("message %q", got)
	}

	card = newVitaleTestCard(vitaleHex(singleRecordHex))
	card.refuse[0x2001] = 0x6982
	if _, err := ReadVitaleWith(card.transmit); !errors.As(err, &swe) || swe.SW != 0x6982 || swe.Step != "READ BINARY EF 2001" {
		t.Fatalf("err = %v, want an SWError for READ BINARY EF 2001 with 6982", err)
	}
}

// TestVitaleErrorsKeepHealthDataOut: errors get logged, and DESIGN §4 keeps
// NIRs and names out of logs. Each card below fails on a record that holds
// them.
func TestVitaleErrorsKeepHealthDataOut(t *testing.T) {
	const nir, surname, given = "207058575627097", "PATB-QUATRE", "LAURENCE"
	for _, rec := range [][]byte{
		vitaleRecord("207058575627098", surname, given, "19070525"),
		vitaleRecord("2070585756270", surname, given, "19070525"),
		vitaleRecord("20705857562X097", surname, given, "19070525"),
		vitaleRecord(nir, surname+"\x01", given, "19070525"),
		vitaleRecord(nir, surname, given+"\x7F", "19070525"),
		vitaleRecord(nir, surname, given, "1907052"),
		append(vitaleRecord(nir, surname, given, "19070525"), 0x65, 0x05, 0x93, 0x0F, 0x32),
	} {
		_, err := ReadVitaleWith(newVitaleTestCard(rec).transmit)
		if err == nil {
			t.Fatalf("record % X read without error", rec)
		}
		for _, s := range []string{"2070585756", "PATB", "LAURENCE", "1907052"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q carries %q", err, s)
			}
		}
	}
}

// vitaleTranscript records a card's responses to ReadVitaleWith in
// FuzzReadVitale's input format: each response as a 2-byte length and its
// bytes.
func vitaleTranscript(tx TransmitFunc) []byte {
	var out []byte
	_, _ = ReadVitaleWith(func(cmd []byte) ([]byte, error) {
		r, err := tx(cmd)
		out = binary.BigEndian.AppendUint16(out, uint16(len(r)))
		return append(out, r...), err
	})
	return out
}

// checkVitaleData holds decoded data to what the decoder promises whatever
// the card sent.
func checkVitaleData(t *testing.T, d VitaleData) {
	t.Helper()
	for _, b := range d.Beneficiaries {
		if !ValidNIR(b.NIR) {
			t.Fatalf("accepted NIR %q", b.NIR)
		}
		if !vitaleDate([]byte(b.BirthDate)) {
			t.Fatalf("accepted birth date %q", b.BirthDate)
		}
		if b.Surname == "" || b.GivenName == "" {
			t.Fatalf("accepted an empty name: %+v", b)
		}
		for _, s := range []string{b.Surname, b.GivenName, b.Nationality, b.Quality} {
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || (r >= 0x7F && r < 0xA0) }) {
				t.Fatalf("accepted control characters in %q", s)
			}
		}
		if b.Rank < 0 || b.Rank > 99 {
			t.Fatalf("rank %d", b.Rank)
		}
	}
	if d.Card.ValidFrom != "" && !vitaleDate([]byte(d.Card.ValidFrom)) {
		t.Fatalf("accepted start of validity %q", d.Card.ValidFrom)
	}
	if !vitaleDigits([]byte(d.Card.Serial)) {
		t.Fatalf("serial %q", d.Card.Serial)
	}
}

// FuzzReadVitale answers ReadVitaleWith's commands with arbitrary bytes: it
// must end (the session's bounds), never panic, and return only data that
// passes its own checks.
func FuzzReadVitale(f *testing.F) {
	for _, rec := range [][]byte{vitaleHex(singleRecordHex), familyRecords()} {
		f.Add(vitaleTranscript(newVitaleTestCard(rec).transmit))
		f.Add(vitaleTranscript(viaGetResponse(newVitaleTestCard(rec).transmit)))
		f.Add(vitaleTranscript(viaExactLe(newVitaleTestCard(rec).transmit)))
	}
	f.Add([]byte{0, 2, 0x61, 0x00, 0, 1, 0x90})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadVitaleWith(func([]byte) ([]byte, error) {
			if len(in) < 2 {
				return nil, errors.New("end of input")
			}
			n := min(int(binary.BigEndian.Uint16(in)), len(in)-2)
			r := in[2 : 2+n]
			in = in[2+n:]
			return r, nil
		})
		if err != nil {
			return
		}
		if len(got.Beneficiaries) == 0 {
			t.Fatal("success without a beneficiary")
		}
		checkVitaleData(t, got)
	})
}

// FuzzVitaleRecords feeds arbitrary bytes as the content of a record file
// (IDENTITE, CARTE) to the record scan: it must not panic, and whatever it
// keeps, even before failing on a later record, passes the decoder's checks.
func FuzzVitaleRecords(f *testing.F) {
	single := vitaleHex(singleRecordHex)
	for _, s := range [][]byte{
		single,
		append(bytes.Clone(single), make([]byte, 300)...),
		familyRecords(),
		append(bytes.Clone(single), familyRecords()...),
		encodeTestTLV(vitaleTagCard, vitaleField(vitaleTagValidFrom, "20190610")),
		vitaleRecord("185032A123456"+"00", "P", "L", "19070500"),
		vitaleRecord("207058575627098", "PATB-QUATRE", "LAURENCE", "19070525"),
		append(bytes.Clone(single), 0x65, 0x20, 0x93),
		vitaleHex("65 03 93 05 32"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d VitaleData
		err := d.scan(in, "IDENTITE")
		if err != nil && !strings.HasPrefix(err.Error(), "cardreader: vitale: ") {
			t.Fatalf("error %q lacks the prefix", err)
		}
		checkVitaleData(t, d)
	})
}
