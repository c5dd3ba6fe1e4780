package cardreader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// VitaleReader reads the beneficiaries of the Vitale card in a reader.
//
// Real products read Vitale cards through the licensed SESAM-Vitale API; the
// agent reads the card's public layout directly (ReadVitaleWith), which is
// enough for the simulation and for cards whose layout matches cardpeek's
// description, but no promise for every card generation in the field.
// Consumers depend on this interface, not on the direct reader, so that a
// SESAM-Vitale backend can replace it without touching them.
type VitaleReader interface {
	ReadVitale(ctx context.Context, reader string) (VitaleData, error)
}

// Beneficiary is one person as a Vitale card describes them.
type Beneficiary struct {
	NIR         string // 13 characters and the 2-digit key, key checked
	Surname     string
	GivenName   string
	BirthDate   string // YYYYMMDD as stored; day or month may be 00
	Nationality string // raw value of tag 90; empty when absent
	// Rank and Quality come from tags only our emulator writes (no public
	// source says where a real card keeps them); a real card leaves them 0
	// and "".
	Rank    int
	Quality string
}

// VitaleCard is what a Vitale card says about itself.
type VitaleCard struct {
	ValidFrom string // YYYYMMDD, start of validity; empty when absent
	Serial    string // digits of the PAN in EF 2F02; empty when unreadable
}

// VitaleData is everything ReadVitaleWith decodes from a card.
type VitaleData struct {
	Beneficiaries []Beneficiary
	Card          VitaleCard
}

// Errors a caller may branch on.
var (
	// ErrNotVitale: the card refused SELECT of the VITALE application.
	ErrNotVitale = errors.New("cardreader: vitale: no VITALE application on the card")
	// ErrNIRKey: a beneficiary's NIR does not match its control key.
	ErrNIRKey = errors.New("cardreader: vitale: NIR control key does not match")
	// ErrNoBeneficiary: the card was read but holds no beneficiary record.
	ErrNoBeneficiary = errors.New("cardreader: vitale: no beneficiary record on the card")
)

// SWError reports a status word the Vitale reading sequence cannot go on
// after.
type SWError struct {
	Step string
	SW   SW
}

func (e *SWError) Error() string {
	return fmt.Sprintf("cardreader: vitale: %s: card answered %s", e.Step, e.SW)
}

// The Vitale 2 layout as cardpeek's vitale_2.lua reads it (DESIGN §5; the
// sources are listed in testcards/vitale's package doc, whose emulator
// writes the same layout).
var (
	vitaleAID   = []byte{0xD2, 0x50, 0x00, 0x00, 0x02, 'V', 'I', 'T', 'A', 'L', 'E'}
	vitaleMFAID = []byte{0xD2, 0x50, 0x00, 0x00, 0x02, 'M', 'F', '_', 'V', 'I', 'T', 'A', 'L', 'E'}
)

const (
	vitaleFIDPointers uint16 = 0x2001 // in VITALE, not listed in the table
	vitaleFIDPAN      uint16 = 0x2F02 // in MF_VITALE, not listed in the table
)

const (
	vitaleTagPointers    = 0xE0 // EF 2001: the whole table
	vitaleTagAppList     = 0xA0 // EF 2001: the applications
	vitaleTagAppEntry    = 0x82 // in A0: index(2) ?(2) AID
	vitaleTagFileEntry   = 0x80 // in E0: name(8) index(2) FID(2)
	vitaleTagBeneficiary = 0x65
	vitaleTagNIR         = 0x93
	vitaleTagSurname     = 0x80
	vitaleTagGivenName   = 0x81
	vitaleTagBirthDate   = 0x82
	vitaleTagNationality = 0x90
	vitaleTagRank        = 0x83 // our emulator's
	vitaleTagQuality     = 0x84 // our emulator's
	vitaleTagCard        = 0x66
	vitaleTagValidFrom   = 0x80 // in 66
	vitaleTagPAN         = 0x5A // ISO 7816-6
)

// Bounds that keep a misbehaving card (or a fuzzer) from holding a read for
// long, on top of the session's own: a transparent EF addressed by a 15-bit
// offset has at most 32 KiB, which 128 steps of 256 bytes cover.
const (
	vitaleMaxFileSize = 0x8000
	vitaleMaxFiles    = 32
)

// ReadVitaleWith reads a Vitale 2 card the way cardpeek does: SELECT
// VITALE, read the pointer table EF 2001, then every file it lists, each in
// 256-byte steps, plus PAN 2F02 in MF_VITALE. tx sends one command APDU;
// ReadVitaleWith completes the T=0 dialogue (61xx, 6Cxx) itself, as a card
// may answer either.
//
// Names and NIRs never appear in its errors: errors get logged, health data
// must not be.
func ReadVitaleWith(tx TransmitFunc) (VitaleData, error) {
	r := vitaleHost{newAPDUSession(tx)}
	if sw, err := r.selectAID(vitaleAID); err != nil {
		return VitaleData{}, err
	} else if sw != SWOK {
		return VitaleData{}, fmt.Errorf("%w (SELECT answered %s)", ErrNotVitale, sw)
	}
	if err := r.mustSelectEF(vitaleFIDPointers, "SELECT EF 2001"); err != nil {
		return VitaleData{}, err
	}
	table, sw, err := r.readEF()
	if err != nil {
		return VitaleData{}, err
	}
	if sw != SWOK {
		return VitaleData{}, &SWError{"READ BINARY EF 2001", sw}
	}
	apps, files, err := parseVitalePointers(table)
	if err != nil {
		return VitaleData{}, err
	}

	var out VitaleData
	var skipped int
	for _, app := range apps {
		var mine []vitaleFileRef
		for _, f := range files {
			if f.app == app.index {
				mine = append(mine, f)
			}
		}
		isMF := bytes.Equal(app.aid, vitaleMFAID)
		if len(mine) == 0 && !isMF {
			continue
		}
		// Like cardpeek, a file the card will not give is skipped: files
		// behind access conditions exist on real cards.
		sw, err := r.selectAID(app.aid)
		if err != nil {
			return VitaleData{}, err
		}
		if sw != SWOK {
			skipped += len(mine)
			continue
		}
		for _, f := range mine {
			data, ok, err := r.readFile(f.fid)
			if err != nil {
				return VitaleData{}, err
			}
			if !ok {
				skipped++
				continue
			}
			if err := out.scan(data, f.name); err != nil {
				return VitaleData{}, err
			}
		}
		if isMF {
			data, ok, err := r.readFile(vitaleFIDPAN)
			if err != nil {
				return VitaleData{}, err
			}
			if ok {
				out.Card.Serial = parseVitalePAN(data)
			}
		}
	}
	if len(out.Beneficiaries) == 0 {
		return VitaleData{}, fmt.Errorf("%w (%d listed files unreadable)", ErrNoBeneficiary, skipped)
	}
	return out, nil
}

// vitaleHost is the card dialogue of one ReadVitaleWith call.
type vitaleHost struct{ s *apduSession }

// selectAID sends no Le: cardpeek's older apdu.lua and opensc-tool do not,
// and a Vitale card over T=0 answers a bare 9000 either way.
func (r vitaleHost) selectAID(aid []byte) (SW, error) {
	cmd := append([]byte{0x00, insSelect, 0x04, 0x00, byte(len(aid))}, aid...)
	_, sw, err := r.s.send(cmd, false)
	return sw, err
}

func (r vitaleHost) selectEF(fid uint16) (SW, error) {
	_, sw, err := r.s.send([]byte{0x00, insSelect, 0x02, 0x00, 0x02, byte(fid >> 8), byte(fid)}, false)
	return sw, err
}

func (r vitaleHost) mustSelectEF(fid uint16, step string) error {
	sw, err := r.selectEF(fid)
	if err == nil && sw != SWOK {
		err = &SWError{step, sw}
	}
	return err
}

// readFile selects an EF of the current DF and reads it; ok is false when the
// card refuses either step.
func (r vitaleHost) readFile(fid uint16) ([]byte, bool, error) {
	sw, err := r.selectEF(fid)
	if err != nil || sw != SWOK {
		return nil, false, err
	}
	data, sw, err := r.readEF()
	return data, err == nil && sw == SWOK, err
}

// readEF reads the current EF in 256-byte steps, as cardpeek's read_bin does:
// a step shorter than 256 bytes ends the file, and so does an error status
// after the first step (the card says the offset is past the end; reading
// the size from an FCI would need one the card does not send). The status
// returned is 9000 whenever some data came back.
func (r vitaleHost) readEF() ([]byte, SW, error) {
	var total []byte
	for off := 0; off < vitaleMaxFileSize; off += 256 {
		data, sw, err := r.s.send([]byte{0x00, insReadBinary, byte(off >> 8), byte(off), 0x00}, true)
		if err != nil {
			return nil, 0, err
		}
		total = append(total, data...)
		if len(data) != 256 || sw != SWOK {
			if len(total) > 0 {
				return total, SWOK, nil
			}
			return nil, sw, nil
		}
	}
	return total, SWOK, nil
}

type vitaleAppRef struct {
	index [2]byte
	aid   []byte
}

type vitaleFileRef struct {
	name string
	app  [2]byte
	fid  uint16
}

// parseVitalePointers decodes EF 2001: E0 { A0 { 82 index(2) ?(2) AID … }
// 80 name(8) index(2) FID(2) … }. Trailing padding after E0 is ignored.
func parseVitalePointers(b []byte) ([]vitaleAppRef, []vitaleFileRef, error) {
	top, _, err := ParseTLV(b)
	if err != nil {
		return nil, nil, fmt.Errorf("cardreader: vitale: pointer table: %w", err)
	}
	if top.Tag != vitaleTagPointers {
		return nil, nil, fmt.Errorf("cardreader: vitale: pointer table starts with tag %X, want E0", top.Tag)
	}
	items, err := ParseTLVs(top.Value)
	if err != nil {
		return nil, nil, fmt.Errorf("cardreader: vitale: pointer table: %w", err)
	}
	var apps []vitaleAppRef
	var files []vitaleFileRef
	for _, it := range items {
		switch it.Tag {
		case vitaleTagAppList:
			entries, err := ParseTLVs(it.Value)
			if err != nil {
				return nil, nil, fmt.Errorf("cardreader: vitale: pointer table applications: %w", err)
			}
			for _, e := range entries {
				if e.Tag != vitaleTagAppEntry {
					continue
				}
				// An AID has 5 to 16 bytes (ISO 7816-5).
				if len(e.Value) < 4+5 || len(e.Value) > 4+16 {
					return nil, nil, fmt.Errorf("cardreader: vitale: pointer table: application entry of %d bytes", len(e.Value))
				}
				a := vitaleAppRef{index: [2]byte(e.Value[:2]), aid: e.Value[4:]}
				// A repeated index would read the same files twice.
				if !slices.ContainsFunc(apps, func(b vitaleAppRef) bool { return b.index == a.index }) {
					apps = append(apps, a)
				}
			}
		case vitaleTagFileEntry:
			if len(it.Value) < 12 {
				return nil, nil, fmt.Errorf("cardreader: vitale: pointer table: file entry of %d bytes, want 12", len(it.Value))
			}
			v := it.Value
			files = append(files, vitaleFileRef{
				name: strings.TrimRight(string(vitalePrintable(v[:8])), " "),
				app:  [2]byte(v[8:10]),
				fid:  uint16(v[10])<<8 | uint16(v[11]),
			})
		}
	}
	if len(files) > vitaleMaxFiles {
		return nil, nil, fmt.Errorf("cardreader: vitale: pointer table lists %d files, more than %d", len(files), vitaleMaxFiles)
	}
	for _, f := range files {
		if !slices.ContainsFunc(apps, func(a vitaleAppRef) bool { return a.index == f.app }) {
			return nil, nil, fmt.Errorf("cardreader: vitale: pointer table: file %q names application %X, which it does not list", f.name, f.app)
		}
	}
	return apps, files, nil
}

// vitalePrintable keeps the bytes a file name may show and replaces the
// others, so an error message never carries control bytes.
func vitalePrintable(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '.'
		}
		out[i] = c
	}
	return out
}

// scan collects the 65 and 66 templates at the top of a file. A file that
// is not a TLV list from its first byte is someone else's and is left alone;
// one that breaks after a record is a damaged record file.
func (d *VitaleData) scan(data []byte, name string) error {
	found := false
	for len(data) > 0 && data[0] != 0x00 && data[0] != 0xFF { // 00/FF: padding
		t, rest, err := ParseTLV(data)
		if err != nil {
			if found {
				return fmt.Errorf("cardreader: vitale: file %q: %w", name, err)
			}
			return nil
		}
		data = rest
		switch t.Tag {
		case vitaleTagBeneficiary:
			found = true
			b, err := parseBeneficiary(t.Value)
			if err != nil {
				return fmt.Errorf("cardreader: vitale: file %q, beneficiary %d: %w", name, len(d.Beneficiaries)+1, err)
			}
			d.Beneficiaries = append(d.Beneficiaries, b)
		case vitaleTagCard:
			found = true
			if d.Card.ValidFrom != "" {
				continue
			}
			items, err := ParseTLVs(t.Value)
			if err != nil {
				return fmt.Errorf("cardreader: vitale: file %q, card data: %w", name, err)
			}
			if v, ok := FindTLV(items, vitaleTagValidFrom); ok {
				if !vitaleDate(v) {
					return fmt.Errorf("cardreader: vitale: file %q: start of validity is not YYYYMMDD", name)
				}
				d.Card.ValidFrom = string(v)
			}
		}
	}
	return nil
}

// parseBeneficiary decodes the inside of one 65 template. Its errors name
// the field that is wrong, never its value.
func parseBeneficiary(v []byte) (Beneficiary, error) {
	items, err := ParseTLVs(v)
	if err != nil {
		return Beneficiary{}, err
	}
	var b Beneficiary
	nir, ok := FindTLV(items, vitaleTagNIR)
	if !ok {
		return Beneficiary{}, errors.New("no NIR (tag 93)")
	}
	b.NIR = strings.TrimRight(string(nir), " \x00")
	if len(b.NIR) != 15 {
		return Beneficiary{}, fmt.Errorf("NIR has %d characters, want 15", len(b.NIR))
	}
	if _, err := NIRKey(b.NIR[:13]); err != nil {
		return Beneficiary{}, errors.New("NIR is not 13 digits and a key")
	}
	if !ValidNIR(b.NIR) {
		return Beneficiary{}, ErrNIRKey
	}
	for _, f := range []struct {
		tag  uint32
		name string
		dst  *string
	}{
		{vitaleTagSurname, "surname (tag 80)", &b.Surname},
		{vitaleTagGivenName, "given name (tag 81)", &b.GivenName},
	} {
		raw, ok := FindTLV(items, f.tag)
		if !ok {
			return Beneficiary{}, fmt.Errorf("no %s", f.name)
		}
		s, err := vitaleText(raw)
		if err != nil {
			return Beneficiary{}, fmt.Errorf("%s: %w", f.name, err)
		}
		if s == "" {
			return Beneficiary{}, fmt.Errorf("empty %s", f.name)
		}
		*f.dst = s
	}
	birth, ok := FindTLV(items, vitaleTagBirthDate)
	if !ok {
		return Beneficiary{}, errors.New("no birth date (tag 82)")
	}
	if !vitaleDate(birth) {
		return Beneficiary{}, errors.New("birth date is not YYYYMMDD")
	}
	b.BirthDate = string(birth)
	if raw, ok := FindTLV(items, vitaleTagNationality); ok {
		if s, err := vitaleText(raw); err == nil {
			b.Nationality = s
		}
	}
	// Our emulator's tags: a real card may use 83 and 84 otherwise, so a
	// value that does not fit is not an error, just not ours.
	if raw, ok := FindTLV(items, vitaleTagRank); ok && len(raw) > 0 && len(raw) <= 2 && vitaleDigits(raw) {
		b.Rank, _ = strconv.Atoi(string(raw))
	}
	if raw, ok := FindTLV(items, vitaleTagQuality); ok && len(raw) <= 16 {
		// The card holds text in capitals; persona qualities are lowercase.
		if s, err := vitaleText(raw); err == nil {
			b.Quality = strings.ToLower(s)
		}
	}
	return b, nil
}

// vitaleText reads a text field: ASCII as cardpeek shows it, bytes above 7F
// as Latin-1 rather than an error, trailing space and 00 padding dropped.
// Control bytes mean the field is not text. The error names the byte, never
// the text around it.
func vitaleText(b []byte) (string, error) {
	b = bytes.TrimRight(b, " \x00")
	var s strings.Builder
	for _, c := range b {
		if c < 0x20 || (c >= 0x7F && c < 0xA0) {
			return "", fmt.Errorf("control byte %02X in text", c)
		}
		s.WriteRune(rune(c))
	}
	return s.String(), nil
}

// vitaleDate checks the YYYYMMDD shape only: civil registers hold birth
// dates with an unknown day or month as 00, which a calendar check would
// reject.
func vitaleDate(b []byte) bool { return len(b) == 8 && vitaleDigits(b) }

func vitaleDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseVitalePAN returns the digits of the 5A object in EF 2F02, or "" when
// the file holds something else: the serial is a convenience, not worth
// failing a read for.
func parseVitalePAN(b []byte) string {
	t, _, err := ParseTLV(b)
	if err != nil || t.Tag != vitaleTagPAN {
		return ""
	}
	var s strings.Builder
	for i, c := range t.Value {
		for j, n := range []byte{c >> 4, c & 0xF} {
			switch {
			case n <= 9:
				s.WriteByte('0' + n)
			case n == 0xF && i == len(t.Value)-1 && j == 1:
			default:
				return ""
			}
		}
	}
	return s.String()
}
