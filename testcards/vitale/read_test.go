package vitale

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/persona"
)

// setFile replaces (or, with nil data, removes) an EF of a DF.
func setFile(d *df, fid uint16, data []byte) {
	for i := range d.efs {
		if d.efs[i].fid == fid {
			if data == nil {
				d.efs = append(d.efs[:i], d.efs[i+1:]...)
			} else {
				d.efs[i].data = data
			}
			return
		}
	}
	d.efs = append(d.efs, ef{fid, data})
}

// getResponseCard answers every response with data as 61xx first, the way a
// T=0 card answers case 4 commands.
type getResponseCard struct {
	c       *Card
	pending []byte
}

func (g *getResponseCard) Transmit(cmd []byte) []byte {
	if len(cmd) >= 2 && cmd[0] == 0x00 && cmd[1] == insGetResponse && len(g.pending) > 0 {
		ne := 256
		if len(cmd) == 5 && cmd[4] != 0 {
			ne = int(cmd[4])
		}
		n := min(ne, len(g.pending))
		part := g.pending[:n]
		g.pending = g.pending[n:]
		if len(g.pending) > 0 {
			return apdu.Response(part, apdu.BytesAvailable(len(g.pending)))
		}
		return apdu.Response(part, apdu.OK)
	}
	g.pending = nil
	data, sw, _ := apdu.SplitResponse(g.c.Transmit(cmd))
	if sw != apdu.OK || len(data) == 0 {
		return sw.Bytes()
	}
	// Hand the data out in two pieces to exercise the GET RESPONSE loop.
	g.pending = data
	return apdu.BytesAvailable(len(data)).Bytes()
}

// exactLeCard answers 6Cxx when Le asks for more than the file has left.
type exactLeCard struct{ c *Card }

func (e exactLeCard) Transmit(cmd []byte) []byte {
	r := e.c.Transmit(cmd)
	data, sw, _ := apdu.SplitResponse(r)
	if len(cmd) == 5 && cmd[1] == insReadBinary && sw == apdu.OK && len(data) < 256 && (cmd[4] == 0 || int(cmd[4]) > len(data)) {
		return []byte{0x6C, byte(len(data))}
	}
	return r
}

// endOfFileCard answers 6282 with the data of a read that ends the file.
type endOfFileCard struct{ c *Card }

func (e endOfFileCard) Transmit(cmd []byte) []byte {
	r := e.c.Transmit(cmd)
	data, sw, _ := apdu.SplitResponse(r)
	if cmd[1] == insReadBinary && sw == apdu.OK && len(data) < 256 {
		return apdu.Response(data, apdu.EndOfFile)
	}
	return r
}

// refuseCard answers sw to READ BINARY of one EF, as a file behind an access
// condition would.
type refuseCard struct {
	c    *Card
	fid  uint16
	sw   apdu.SW
	last uint16
}

func (r *refuseCard) Transmit(cmd []byte) []byte {
	if len(cmd) == 7 && cmd[1] == insSelect && cmd[2] == 0x02 {
		r.last = uint16(cmd[5])<<8 | uint16(cmd[6])
	}
	if cmd[1] == insReadBinary && r.last == r.fid {
		return r.sw.Bytes()
	}
	return r.c.Transmit(cmd)
}

type funcCard func([]byte) []byte

func (f funcCard) Transmit(cmd []byte) []byte { return f(cmd) }

func record(fields ...[]byte) []byte { return apdu.Encode(tagBeneficiary, fields...) }

func field(tag uint32, v string) []byte { return apdu.Encode(tag, []byte(v)) }

// TestRead runs the agent's decoder (cardreader) against emulated cards
// damaged in ways only this package's internals can build.
func TestRead(t *testing.T) {
	family := mustPatient(t, "family")
	withNIR := func(nir string) persona.Patient {
		p := mustPatient(t, "single")
		p.Beneficiaries[0].NIR = nir
		return p
	}
	withIdentity := func(data []byte) *Card {
		c := New(family)
		setFile(&c.vitale, FIDIdentity, data)
		return c
	}
	withPointers := func(data []byte) *Card {
		c := New(family)
		setFile(&c.vitale, FIDPointers, data)
		return c
	}
	good := identityRecords(family.Beneficiaries)
	corsican := "185032A123456"
	if k, err := persona.NIRKey(corsican); err != nil {
		t.Fatal(err)
	} else {
		corsican += fmt.Sprintf("%02d", k)
	}
	laurence := record(field(tagNIR, "207058575627097"), field(tagSurname, "PATB-QUATRE"),
		[]byte{tagGivenName, 4, 'Z', 'o', 0xE9, ' '}, field(tagBirthDate, "19070525"))
	ioErr := errors.New("reader unplugged")

	tests := []struct {
		name    string
		card    interface{ Transmit([]byte) []byte }
		tx      func([]byte) ([]byte, error) // instead of card
		want    *cardreader.VitaleData       // checked when set
		wantErr error                        // errors.Is
		errText string                       // substring
	}{
		{name: "family", card: New(family), want: ptr(want(family))},
		{name: "61xx and GET RESPONSE", card: &getResponseCard{c: New(family)}, want: ptr(want(family))},
		{name: "6Cxx asks for the exact length", card: exactLeCard{New(family)}, want: ptr(want(family))},
		{name: "6282 at end of file", card: endOfFileCard{New(family)}, want: ptr(want(family))},
		{name: "three steps, short last", card: withIdentity(append(bytes.Clone(good), make([]byte, 700-len(good))...)), want: ptr(want(family))},
		{name: "no padding", card: withIdentity(good), want: ptr(want(family))},
		{name: "FF padding", card: withIdentity(append(bytes.Clone(good), bytes.Repeat([]byte{0xFF}, 300)...)), want: ptr(want(family))},
		{name: "not a Vitale card", card: funcCard(func([]byte) []byte { return []byte{0x6A, 0x82} }), wantErr: cardreader.ErrNotVitale},
		{name: "card knows no SELECT", card: funcCard(func([]byte) []byte { return []byte{0x6D, 0x00} }), wantErr: cardreader.ErrNotVitale},
		{name: "bad NIR key", card: New(withNIR("207058575627098")), wantErr: cardreader.ErrNIRKey},
		{name: "NIR too short", card: New(withNIR("20705857562709")), errText: "NIR has 14 characters"},
		{name: "NIR not digits", card: New(withNIR("2070585756X7097")), errText: "not 13 digits"},
		{name: "Corsican NIR", card: New(withNIR(corsican)), want: ptr(want(withNIR(corsican)))},
		{name: "transport error", tx: func([]byte) ([]byte, error) { return nil, ioErr }, wantErr: ioErr},
		{name: "one-byte response", card: funcCard(func([]byte) []byte { return []byte{0x90} }), errText: "no status word"},
		{name: "pointer table not E0", card: withPointers(apdu.Encode(0xE1)), errText: "want E0"},
		{name: "pointer table truncated", card: withPointers(pointerTable()[:20]), errText: "malformed"},
		{name: "pointer table names an unknown application", card: withPointers(apdu.Encode(tagPointers,
			apdu.Encode(tagAppList, apdu.Encode(tagAppEntry, []byte{0, 2, 0, 0}, AIDVitale)),
			apdu.Encode(tagFileEntry, []byte("IDENTITE"), []byte{0, 9, 0x20, 0x04}))), errText: "does not list"},
		{name: "pointer table short file entry", card: withPointers(apdu.Encode(tagPointers,
			apdu.Encode(tagAppList, apdu.Encode(tagAppEntry, []byte{0, 2, 0, 0}, AIDVitale)),
			apdu.Encode(tagFileEntry, []byte("IDENTITE"), []byte{0, 2, 0x20}))), errText: "want 12"},
		{name: "pointer table lists only VITALE", card: withPointers(apdu.Encode(tagPointers,
			apdu.Encode(tagAppList, apdu.Encode(tagAppEntry, []byte{0, 2, 0, 0}, AIDVitale)),
			apdu.Encode(tagFileEntry, []byte("IDENTITE"), []byte{0, 2, 0x20, 0x04}))),
			want: &cardreader.VitaleData{Beneficiaries: want(family).Beneficiaries}},
		{name: "listed file missing", card: withPointers(apdu.Encode(tagPointers,
			apdu.Encode(tagAppList, apdu.Encode(tagAppEntry, []byte{0, 2, 0, 0}, AIDVitale)),
			apdu.Encode(tagFileEntry, []byte("IDENTITE"), []byte{0, 2, 0x20, 0x09}))), wantErr: cardreader.ErrNoBeneficiary},
		{name: "listed file not TLV is ignored", card: withPointers(apdu.Encode(tagPointers,
			apdu.Encode(tagAppList, apdu.Encode(tagAppEntry, []byte{0, 2, 0, 0}, AIDVitale)),
			apdu.Encode(tagFileEntry, []byte("POINTERS"), []byte{0, 2, 0x20, 0x01}),
			apdu.Encode(tagFileEntry, []byte("NOTTLV  "), []byte{0, 2, 0x20, 0x04}),
			apdu.Encode(tagFileEntry, []byte("IDENTITE"), []byte{0, 2, 0x20, 0x04}))),
			want: &cardreader.VitaleData{Beneficiaries: append(want(family).Beneficiaries, want(family).Beneficiaries...)}},
		{name: "identity file refused", card: &refuseCard{c: New(family), fid: FIDIdentity, sw: apdu.SecurityNotSatisfied}, wantErr: cardreader.ErrNoBeneficiary},
		{name: "card file refused", card: &refuseCard{c: New(family), fid: FIDCard, sw: apdu.SecurityNotSatisfied},
			want: &cardreader.VitaleData{Beneficiaries: want(family).Beneficiaries, Card: cardreader.VitaleCard{Serial: family.CardSerial}}},
		{name: "Latin-1 name", card: withIdentity(laurence), want: &cardreader.VitaleData{
			Beneficiaries: []cardreader.Beneficiary{{NIR: "207058575627097", Surname: "PATB-QUATRE", GivenName: "Zoé", BirthDate: "19070525"}},
			Card:          want(family).Card}},
		{name: "control byte in name", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "PATB\x01"), field(tagGivenName, "L"), field(tagBirthDate, "19070525"))), errText: "control byte 01"},
		{name: "no surname", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagGivenName, "L"), field(tagBirthDate, "19070525"))), errText: "no surname"},
		{name: "blank given name", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "P"), field(tagGivenName, "   "), field(tagBirthDate, "19070525"))), errText: "empty given name"},
		{name: "no NIR", card: withIdentity(record(field(tagSurname, "P"), field(tagGivenName, "L"),
			field(tagBirthDate, "19070525"))), errText: "no NIR"},
		{name: "no birth date", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "P"), field(tagGivenName, "L"))), errText: "no birth date"},
		{name: "birth date not digits", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "P"), field(tagGivenName, "L"), field(tagBirthDate, "1907-05-"))), errText: "not YYYYMMDD"},
		{name: "unknown birth day", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "P"), field(tagGivenName, "L"), field(tagBirthDate, "19070500"))), want: &cardreader.VitaleData{
			Beneficiaries: []cardreader.Beneficiary{{NIR: "207058575627097", Surname: "P", GivenName: "L", BirthDate: "19070500"}},
			Card:          want(family).Card}},
		{name: "record damaged after a good one", card: withIdentity(append(bytes.Clone(laurence), 0x65, 0x20, 0x93)), errText: "malformed"},
		{name: "record inner TLV damaged", card: withIdentity([]byte{0x65, 0x03, 0x93, 0x05, 0x32}), errText: "beneficiary 1"},
		{name: "tags 83/84 used otherwise", card: withIdentity(record(field(tagNIR, "207058575627097"),
			field(tagSurname, "P"), field(tagGivenName, "L"), field(tagBirthDate, "19070525"),
			field(tagRank, "20240101"), []byte{tagQuality, 2, 0x01, 0x02})), want: &cardreader.VitaleData{
			Beneficiaries: []cardreader.Beneficiary{{NIR: "207058575627097", Surname: "P", GivenName: "L", BirthDate: "19070525"}},
			Card:          want(family).Card}},
		{name: "PAN not BCD", card: func() *Card {
			c := New(family)
			setFile(&c.mf, FIDPAN, apdu.Encode(tagPAN, []byte{0x12, 0xA4}))
			return c
		}(), want: &cardreader.VitaleData{Beneficiaries: want(family).Beneficiaries, Card: cardreader.VitaleCard{ValidFrom: family.ValidFrom}}},
		{name: "odd PAN", card: func() *Card {
			c := New(family)
			setFile(&c.mf, FIDPAN, panFile("123"))
			return c
		}(), want: &cardreader.VitaleData{Beneficiaries: want(family).Beneficiaries, Card: cardreader.VitaleCard{ValidFrom: family.ValidFrom, Serial: "123"}}},
		{name: "start of validity not a date", card: func() *Card {
			c := New(family)
			setFile(&c.mf, FIDCard, apdu.Encode(tagCard, field(tagValidFrom, "soon")))
			return c
		}(), errText: "start of validity"},
		{name: "endless file", card: funcCard(func(cmd []byte) []byte {
			if cmd[1] == insReadBinary {
				return apdu.Response(bytes.Repeat([]byte{0xE0}, 256), apdu.OK)
			}
			return apdu.OK.Bytes()
		}), errText: "pointer table"},
		{name: "endless 61xx", card: funcCard(func([]byte) []byte { return []byte{0x61, 0x00} }), errText: "still answering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := tt.tx
			if tx == nil {
				tx = txOf(tt.card)
			}
			got, err := cardreader.ReadVitaleWith(tx)
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
			if tt.want != nil && !reflect.DeepEqual(got, *tt.want) {
				t.Errorf("ReadVitaleWith =\n%+v\nwant\n%+v", got, *tt.want)
			}
		})
	}
}

func TestReadSWError(t *testing.T) {
	c := New(mustPatient(t, "family"))
	setFile(&c.vitale, FIDPointers, nil)
	_, err := cardreader.ReadVitaleWith(txOf(c))
	var swe *cardreader.SWError
	if !errors.As(err, &swe) || swe.SW != cardreader.SW(apdu.FileNotFound) || swe.Step != "SELECT EF 2001" {
		t.Fatalf("err = %v, want an SWError for SELECT EF 2001 with 6A82", err)
	}
	if got := err.Error(); got != "cardreader: vitale: SELECT EF 2001: card answered 6A82" {
		t.Errorf("message %q", got)
	}
}

// TestErrorsKeepHealthDataOut checks what DESIGN §4 asks of logs: an error
// from a card with a bad NIR names neither the NIR nor the names.
func TestErrorsKeepHealthDataOut(t *testing.T) {
	p := mustPatient(t, "single")
	p.Beneficiaries[0].NIR = "207058575627098"
	_, err := cardreader.ReadVitaleWith(txOf(New(p)))
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"2070585756270", "PATB", "LAURENCE"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q carries %q", err, s)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// transcript records the responses a card gives to ReadVitaleWith, in
// FuzzRead's input format: each response as a 2-byte length and its bytes.
func transcript(c interface{ Transmit([]byte) []byte }) []byte {
	var out []byte
	_, _ = cardreader.ReadVitaleWith(func(cmd []byte) ([]byte, error) {
		r := c.Transmit(cmd)
		out = binary.BigEndian.AppendUint16(out, uint16(len(r)))
		out = append(out, r...)
		return r, nil
	})
	return out
}

// FuzzRead answers ReadVitaleWith's commands with arbitrary bytes, seeded
// with what this emulator answers (cardreader's FuzzReadVitale has only
// hand-built cards): it must end, never panic, and accept only NIRs with a
// right key.
func FuzzRead(f *testing.F) {
	for _, p := range persona.Patients() {
		f.Add(transcript(New(p)))
		f.Add(transcript(&getResponseCard{c: New(p)}))
		f.Add(transcript(exactLeCard{New(p)}))
	}
	f.Add([]byte{0, 2, 0x61, 0x00, 0, 1, 0x90})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := cardreader.ReadVitaleWith(func([]byte) ([]byte, error) {
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
		for _, b := range got.Beneficiaries {
			if !persona.ValidNIR(b.NIR) {
				t.Fatalf("accepted NIR %q", b.NIR)
			}
		}
	})
}
