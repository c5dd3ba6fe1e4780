package vitale

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/persona"
)

// Beneficiary is one person as the card describes them.
type Beneficiary struct {
	NIR         string // 13 characters and the 2-digit key, key checked
	Surname     string
	GivenName   string
	BirthDate   string // YYYYMMDD as stored
	Nationality string // raw value of tag 90; empty when absent
	// Rank and Quality come from tags only our emulator writes (see the
	// package doc); a real card leaves them 0 and "".
	Rank    int
	Quality string
}

// CardData is what the card says about itself.
type CardData struct {
	ValidFrom string // YYYYMMDD, start of validity; empty when absent
	Serial    string // digits of the PAN in EF 2F02; empty when unreadable
}

// Contents is everything Read decodes from a card.
type Contents struct {
	Beneficiaries []Beneficiary
	CardData      CardData
}

// Errors a caller may branch on.
var (
	// ErrNotVitale: the card refused SELECT of the VITALE application.
	ErrNotVitale = errors.New("vitale: no VITALE application on the card")
	// ErrNIRKey: a beneficiary's NIR does not match its control key.
	ErrNIRKey = errors.New("vitale: NIR control key does not match")
	// ErrNoBeneficiary: the card was read but holds no beneficiary record.
	ErrNoBeneficiary = errors.New("vitale: no beneficiary record on the card")
)

// SWError reports a status word the reading sequence cannot go on after.
type SWError struct {
	Step string
	SW   apdu.SW
}

func (e *SWError) Error() string { return fmt.Sprintf("vitale: %s: card answered %s", e.Step, e.SW) }

// Bounds that keep a misbehaving card (or a fuzzer) from holding Read for
// long: a transparent EF addressed by a 15-bit offset has at most 32 KiB,
// which 128 steps of 256 bytes cover.
const (
	maxCalls    = 2048
	maxFileSize = 0x8000
	maxFiles    = 32
	maxResponse = 0x10000
)

// Read reads a Vitale 2 card the way cardpeek does: SELECT VITALE, read the
// pointer table EF 2001, then every file it lists, each in 256-byte steps,
// plus PAN 2F02 in MF_VITALE. tx sends one command APDU and returns the
// response with its status word. Read follows 61xx with GET RESPONSE and
// repeats a read with the length a 6Cxx asks for, as T=0 cards may answer
// either. Names and NIRs never appear in its errors: they may be logged.
func Read(tx func(cmd []byte) ([]byte, error)) (Contents, error) {
	r := &host{tx: tx}
	if sw, err := r.selectAID(AIDVitale); err != nil {
		return Contents{}, err
	} else if sw != apdu.OK {
		return Contents{}, fmt.Errorf("%w (SELECT answered %s)", ErrNotVitale, sw)
	}
	if err := r.mustSelectEF(FIDPointers, "SELECT EF 2001"); err != nil {
		return Contents{}, err
	}
	table, sw, err := r.readEF()
	if err != nil {
		return Contents{}, err
	}
	if sw != apdu.OK {
		return Contents{}, &SWError{"READ BINARY EF 2001", sw}
	}
	apps, files, err := parsePointers(table)
	if err != nil {
		return Contents{}, err
	}

	var out Contents
	var skipped int
	for _, app := range apps {
		var mine []fileRef
		for _, f := range files {
			if f.app == app.index {
				mine = append(mine, f)
			}
		}
		isMF := bytes.Equal(app.aid, AIDMFVitale)
		if len(mine) == 0 && !isMF {
			continue
		}
		// Like cardpeek, a file the card will not give is skipped: files
		// behind access conditions exist on real cards.
		sw, err := r.selectAID(app.aid)
		if err != nil {
			return Contents{}, err
		}
		if sw != apdu.OK {
			skipped += len(mine)
			continue
		}
		for _, f := range mine {
			data, ok, err := r.readFile(f.fid)
			if err != nil {
				return Contents{}, err
			}
			if !ok {
				skipped++
				continue
			}
			if err := out.scan(data, f.name); err != nil {
				return Contents{}, err
			}
		}
		if isMF {
			data, ok, err := r.readFile(FIDPAN)
			if err != nil {
				return Contents{}, err
			}
			if ok {
				out.CardData.Serial = parsePAN(data)
			}
		}
	}
	if len(out.Beneficiaries) == 0 {
		return Contents{}, fmt.Errorf("%w (%d listed files unreadable)", ErrNoBeneficiary, skipped)
	}
	return out, nil
}

type host struct {
	tx    func([]byte) ([]byte, error)
	calls int
}

// call sends one APDU and splits the answer.
func (r *host) call(cmd []byte) ([]byte, apdu.SW, error) {
	if r.calls >= maxCalls {
		return nil, 0, fmt.Errorf("vitale: card still answering after %d commands", maxCalls)
	}
	r.calls++
	resp, err := r.tx(cmd)
	if err != nil {
		return nil, 0, fmt.Errorf("vitale: transmit: %w", err)
	}
	data, sw, err := apdu.SplitResponse(resp)
	if err != nil {
		return nil, 0, fmt.Errorf("vitale: %w", err)
	}
	return data, sw, nil
}

// send sends cmd and completes the T=0 dialogue: one retry with the length a
// 6Cxx names (only for a command ending in Le), then GET RESPONSE while the
// card announces 61xx.
func (r *host) send(cmd []byte, hasLe bool) ([]byte, apdu.SW, error) {
	data, sw, err := r.call(cmd)
	if err != nil {
		return nil, 0, err
	}
	if sw&0xFF00 == 0x6C00 && hasLe {
		retry := append([]byte(nil), cmd...)
		retry[len(retry)-1] = byte(sw)
		if data, sw, err = r.call(retry); err != nil {
			return nil, 0, err
		}
	}
	out := append([]byte(nil), data...)
	for sw&0xFF00 == 0x6100 {
		if len(out) > maxResponse {
			return nil, 0, fmt.Errorf("vitale: response longer than %d bytes", maxResponse)
		}
		if data, sw, err = r.call([]byte{0x00, insGetResponse, 0x00, 0x00, byte(sw)}); err != nil {
			return nil, 0, err
		}
		out = append(out, data...)
	}
	return out, sw, nil
}

func (r *host) selectAID(aid []byte) (apdu.SW, error) {
	cmd := append([]byte{0x00, insSelect, 0x04, 0x00, byte(len(aid))}, aid...)
	_, sw, err := r.send(cmd, false)
	return sw, err
}

func (r *host) selectEF(fid uint16) (apdu.SW, error) {
	_, sw, err := r.send([]byte{0x00, insSelect, 0x02, 0x00, 0x02, byte(fid >> 8), byte(fid)}, false)
	return sw, err
}

func (r *host) mustSelectEF(fid uint16, step string) error {
	sw, err := r.selectEF(fid)
	if err == nil && sw != apdu.OK {
		err = &SWError{step, sw}
	}
	return err
}

// readFile selects an EF of the current DF and reads it; ok is false when the
// card refuses either step.
func (r *host) readFile(fid uint16) ([]byte, bool, error) {
	sw, err := r.selectEF(fid)
	if err != nil || sw != apdu.OK {
		return nil, false, err
	}
	data, sw, err := r.readEF()
	return data, err == nil && sw == apdu.OK, err
}

// readEF reads the current EF in 256-byte steps, as cardpeek's read_bin does:
// a step shorter than 256 bytes ends the file, and so does an error status
// after the first step (the card says the offset is past the end). The
// status returned is 9000 whenever some data came back.
func (r *host) readEF() ([]byte, apdu.SW, error) {
	var total []byte
	for off := 0; off < maxFileSize; off += 256 {
		data, sw, err := r.send([]byte{0x00, insReadBinary, byte(off >> 8), byte(off), 0x00}, true)
		if err != nil {
			return nil, 0, err
		}
		total = append(total, data...)
		if len(data) != 256 || sw != apdu.OK {
			if len(total) > 0 {
				return total, apdu.OK, nil
			}
			return nil, sw, nil
		}
	}
	return total, apdu.OK, nil
}

type appRef struct {
	index [2]byte
	aid   []byte
}

type fileRef struct {
	name string
	app  [2]byte
	fid  uint16
}

// parsePointers decodes EF 2001: E0 { A0 { 82 index(2) ?(2) AID … } 80
// name(8) index(2) FID(2) … }. Trailing padding after E0 is ignored.
func parsePointers(b []byte) ([]appRef, []fileRef, error) {
	top, _, err := apdu.ParseTLV(b)
	if err != nil {
		return nil, nil, fmt.Errorf("vitale: pointer table: %w", err)
	}
	if top.Tag != tagPointers {
		return nil, nil, fmt.Errorf("vitale: pointer table starts with tag %X, want E0", top.Tag)
	}
	items, err := apdu.ParseTLVs(top.Value)
	if err != nil {
		return nil, nil, fmt.Errorf("vitale: pointer table: %w", err)
	}
	var apps []appRef
	var files []fileRef
	for _, it := range items {
		switch it.Tag {
		case tagAppList:
			entries, err := apdu.ParseTLVs(it.Value)
			if err != nil {
				return nil, nil, fmt.Errorf("vitale: pointer table applications: %w", err)
			}
			for _, e := range entries {
				if e.Tag != tagAppEntry {
					continue
				}
				// An AID has 5 to 16 bytes (ISO 7816-5).
				if len(e.Value) < 4+5 || len(e.Value) > 4+16 {
					return nil, nil, fmt.Errorf("vitale: pointer table: application entry of %d bytes", len(e.Value))
				}
				a := appRef{index: [2]byte(e.Value[:2]), aid: e.Value[4:]}
				// A repeated index would read the same files twice.
				if !slices.ContainsFunc(apps, func(b appRef) bool { return b.index == a.index }) {
					apps = append(apps, a)
				}
			}
		case tagFileEntry:
			if len(it.Value) < 12 {
				return nil, nil, fmt.Errorf("vitale: pointer table: file entry of %d bytes, want 12", len(it.Value))
			}
			v := it.Value
			files = append(files, fileRef{
				name: strings.TrimRight(string(printable(v[:8])), " "),
				app:  [2]byte(v[8:10]),
				fid:  uint16(v[10])<<8 | uint16(v[11]),
			})
		}
	}
	if len(files) > maxFiles {
		return nil, nil, fmt.Errorf("vitale: pointer table lists %d files, more than %d", len(files), maxFiles)
	}
	for _, f := range files {
		if !slices.ContainsFunc(apps, func(a appRef) bool { return a.index == f.app }) {
			return nil, nil, fmt.Errorf("vitale: pointer table: file %q names application %X, which it does not list", f.name, f.app)
		}
	}
	return apps, files, nil
}

// printable keeps the bytes a file name may show and replaces the others, so
// an error message never carries control bytes.
func printable(b []byte) []byte {
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
func (c *Contents) scan(data []byte, name string) error {
	found := false
	for len(data) > 0 && data[0] != 0x00 && data[0] != 0xFF { // 00/FF: padding
		t, rest, err := apdu.ParseTLV(data)
		if err != nil {
			if found {
				return fmt.Errorf("vitale: file %q: %w", name, err)
			}
			return nil
		}
		data = rest
		switch t.Tag {
		case tagBeneficiary:
			found = true
			b, err := parseBeneficiary(t.Value)
			if err != nil {
				return fmt.Errorf("vitale: file %q, beneficiary %d: %w", name, len(c.Beneficiaries)+1, err)
			}
			c.Beneficiaries = append(c.Beneficiaries, b)
		case tagCard:
			found = true
			if c.CardData.ValidFrom != "" {
				continue
			}
			items, err := apdu.ParseTLVs(t.Value)
			if err != nil {
				return fmt.Errorf("vitale: file %q, card data: %w", name, err)
			}
			if v, ok := apdu.Find(items, tagValidFrom); ok {
				if !isDate(v) {
					return fmt.Errorf("vitale: file %q: start of validity is not YYYYMMDD", name)
				}
				c.CardData.ValidFrom = string(v)
			}
		}
	}
	return nil
}

func parseBeneficiary(v []byte) (Beneficiary, error) {
	items, err := apdu.ParseTLVs(v)
	if err != nil {
		return Beneficiary{}, err
	}
	var b Beneficiary
	nir, ok := apdu.Find(items, tagNIR)
	if !ok {
		return Beneficiary{}, errors.New("no NIR (tag 93)")
	}
	b.NIR = strings.TrimRight(string(nir), " \x00")
	if len(b.NIR) != 15 {
		return Beneficiary{}, fmt.Errorf("NIR has %d characters, want 15", len(b.NIR))
	}
	if _, err := persona.NIRKey(b.NIR[:13]); err != nil {
		return Beneficiary{}, errors.New("NIR is not 13 digits and a key")
	}
	if !persona.ValidNIR(b.NIR) {
		return Beneficiary{}, ErrNIRKey
	}
	for _, f := range []struct {
		tag  uint32
		name string
		dst  *string
	}{
		{tagSurname, "surname (tag 80)", &b.Surname},
		{tagGivenName, "given name (tag 81)", &b.GivenName},
	} {
		raw, ok := apdu.Find(items, f.tag)
		if !ok {
			return Beneficiary{}, fmt.Errorf("no %s", f.name)
		}
		s, err := decodeText(raw)
		if err != nil {
			return Beneficiary{}, fmt.Errorf("%s: %w", f.name, err)
		}
		if s == "" {
			return Beneficiary{}, fmt.Errorf("empty %s", f.name)
		}
		*f.dst = s
	}
	birth, ok := apdu.Find(items, tagBirthDate)
	if !ok {
		return Beneficiary{}, errors.New("no birth date (tag 82)")
	}
	if !isDate(birth) {
		return Beneficiary{}, errors.New("birth date is not YYYYMMDD")
	}
	b.BirthDate = string(birth)
	if raw, ok := apdu.Find(items, tagNationality); ok {
		if s, err := decodeText(raw); err == nil {
			b.Nationality = s
		}
	}
	// Our own tags: a real card may use 83 and 84 otherwise, so a value that
	// does not fit is not an error, just not ours.
	if raw, ok := apdu.Find(items, tagRank); ok && len(raw) > 0 && len(raw) <= 2 && isDigits(raw) {
		b.Rank, _ = strconv.Atoi(string(raw))
	}
	if raw, ok := apdu.Find(items, tagQuality); ok && len(raw) <= 16 {
		// The card holds text in capitals; persona qualities are lowercase.
		if s, err := decodeText(raw); err == nil {
			b.Quality = strings.ToLower(s)
		}
	}
	return b, nil
}

// decodeText reads a text field: ASCII as cardpeek shows it, bytes above 7F
// as Latin-1 rather than an error, trailing space and 00 padding dropped.
// Control bytes mean the field is not text.
func decodeText(b []byte) (string, error) {
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

// isDate checks the YYYYMMDD shape only: civil registers hold birth dates
// with an unknown day or month as 00, which a calendar check would reject.
func isDate(b []byte) bool { return len(b) == 8 && isDigits(b) }

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parsePAN returns the digits of the 5A object in EF 2F02, or "" when the
// file holds something else: the serial is a convenience, not worth failing
// a read for.
func parsePAN(b []byte) string {
	t, _, err := apdu.ParseTLV(b)
	if err != nil || t.Tag != tagPAN {
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
