package vitale

import (
	"strconv"
	"strings"

	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/persona"
)

// Application indexes in the pointer table (ours).
var (
	indexMFVitale = [2]byte{0x00, 0x01}
	indexVitale   = [2]byte{0x00, 0x02}
)

// minIdentitySize makes the beneficiary file longer than one READ BINARY, so
// every reader exercises the 256-byte stepping and its end-of-file answer.
const minIdentitySize = 512

// nationality is what every emulated beneficiary carries in tag 90.
const nationality = "FR"

// pointerTable builds EF 2001 as cardpeek parses it.
func pointerTable() []byte {
	app := func(index [2]byte, aid []byte) []byte {
		return apdu.Encode(tagAppEntry, index[:], []byte{0x00, 0x00}, aid)
	}
	file := func(name string, index [2]byte, fid uint16) []byte {
		return apdu.Encode(tagFileEntry, []byte(name), index[:], []byte{byte(fid >> 8), byte(fid)})
	}
	return apdu.Encode(tagPointers,
		apdu.Encode(tagAppList, app(indexMFVitale, AIDMFVitale), app(indexVitale, AIDVitale)),
		file("CARTE   ", indexMFVitale, FIDCard),
		file("IDENTITE", indexVitale, FIDIdentity),
	)
}

// identityFile builds EF 2004: the records, then 00 padding up to the file's
// fixed size (a multiple of 256, at least 512).
func identityFile(bs []persona.Beneficiary) []byte {
	out := identityRecords(bs)
	size := max(minIdentitySize, (len(out)+255)/256*256)
	return append(out, make([]byte, size-len(out))...)
}

// identityRecords builds one 65 template per beneficiary.
func identityRecords(bs []persona.Beneficiary) []byte {
	var out []byte
	for _, b := range bs {
		fields := [][]byte{
			apdu.Encode(tagNIR, []byte(b.NIR)),
			apdu.Encode(tagSurname, []byte(CardText(b.Surname))),
			apdu.Encode(tagGivenName, []byte(CardText(b.GivenName))),
			apdu.Encode(tagBirthDate, []byte(b.BirthDate)),
			apdu.Encode(tagNationality, []byte(nationality)),
		}
		if b.Rank > 0 {
			fields = append(fields, apdu.Encode(tagRank, []byte(strconv.Itoa(b.Rank))))
		}
		if b.Quality != "" {
			fields = append(fields, apdu.Encode(tagQuality, []byte(CardText(b.Quality))))
		}
		out = append(out, apdu.Encode(tagBeneficiary, fields...)...)
	}
	return out
}

// cardFile builds EF 2002: the 66 card template.
func cardFile(p persona.Patient) []byte {
	return apdu.Encode(tagCard, apdu.Encode(tagValidFrom, []byte(p.ValidFrom)))
}

// dirFile builds EF 2F00 as ISO 7816-4 lays out EF.DIR.
func dirFile() []byte {
	return append(
		apdu.Encode(tagAppTemplate, apdu.Encode(tagAID, AIDMFVitale), apdu.Encode(tagLabel, []byte("MF_VITALE"))),
		apdu.Encode(tagAppTemplate, apdu.Encode(tagAID, AIDVitale), apdu.Encode(tagLabel, []byte("VITALE")))...)
}

// panFile builds EF 2F02: the card serial in BCD, F-padded to whole bytes.
func panFile(serial string) []byte {
	var digits []byte
	for _, c := range serial {
		if c >= '0' && c <= '9' {
			digits = append(digits, byte(c-'0'))
		}
	}
	if len(digits)%2 == 1 {
		digits = append(digits, 0xF)
	}
	bcd := make([]byte, len(digits)/2)
	for i := range bcd {
		bcd[i] = digits[2*i]<<4 | digits[2*i+1]
	}
	return apdu.Encode(tagPAN, bcd)
}

// CardText turns a persona's text into what the card stores: uppercase ASCII
// with accents dropped ("Zoé" → "ZOE"), because cardpeek shows these fields
// as printable ASCII only and Vitale cards print names in capitals. Anything
// with no ASCII spelling becomes '?', so the card never holds a byte a reader
// could not show. Tests compare decoded names with CardText(persona name).
func CardText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 0x20 && r < 0x7F:
			b.WriteRune(r)
		default:
			if f, ok := foldings[r]; ok {
				b.WriteString(f)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}

// foldings spells the letters of French (and its neighbours') names in
// ASCII capitals.
var foldings = func() map[rune]string {
	m := map[rune]string{}
	for ascii, letters := range map[string]string{
		"A":  "ÀÁÂÃÄÅàáâãäå",
		"AE": "Ææ",
		"C":  "Çç",
		"E":  "ÈÉÊËèéêë",
		"I":  "ÌÍÎÏìíîï",
		"N":  "Ññ",
		"O":  "ÒÓÔÕÖØòóôõöø",
		"OE": "Œœ",
		"U":  "ÙÚÛÜùúûü",
		"Y":  "ÝŸýÿ",
		"SS": "ß",
		"'":  "‘’",
		"-":  "‐‑–—",
		" ":  "\u00A0",
	} {
		for _, r := range letters {
			m[r] = ascii
		}
	}
	return m
}()
