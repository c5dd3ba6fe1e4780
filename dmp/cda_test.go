package dmp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

func testCDAHeader() CDAHeader {
	cet := time.FixedZone("CET", 3600)
	return CDAHeader{
		UniqueID:      "1.2.250.1.999.1.1.7898.3.1622814651504",
		Title:         "Compte rendu de consultation <urgent> & suivi",
		TypeCode:      "11488-4",
		TypeDisplay:   "Note de consultation",
		EffectiveTime: time.Date(2024, 2, 21, 13, 34, 45, 0, cet),
		Patient:       INS{Value: "207058575627097", OID: OIDINSNIRTest},
		PatientFamily: "PATB-QUATRE",
		PatientGiven:  "Laurence",
		PatientSex:    "F",
		PatientBirth:  "19070525",
		Author: Professional{
			IDNat: "899900063480", Surname: "LIBRE", GivenName: "Max",
			Profession: "10", ProfessionLabel: "Médecin", Specialty: "SM26",
			StructureID: "499900063480001", StructureName: "CABINET DR LIBRE", Sector: "SA07",
		},
		ServiceStart:    time.Date(2024, 2, 21, 10, 0, 0, 0, cet),
		ServiceStop:     time.Date(2024, 2, 21, 10, 30, 0, 0, cet),
		PracticeSetting: "AMBULATOIRE",
	}
}

// testPDF is small but not text: every byte value, so that the base64
// round trip is meaningful.
func testPDF() []byte {
	b := []byte("%PDF-1.4\n")
	for i := range 1000 {
		b = append(b, byte(i))
	}
	return append(b, "\n%%EOF\n"...)
}

func wrapPDF(t *testing.T, h CDAHeader, pdf []byte) []byte {
	t.Helper()
	r, err := NewPDFDocument(h, bytes.NewReader(pdf))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestNewPDFDocumentValid(t *testing.T) {
	if err := schemas.Available(); err != nil {
		t.Skip(err)
	}
	pdf := testPDF()
	for name, mutate := range map[string]func(h *CDAHeader){
		"full":                func(h *CDAHeader) {},
		"no stop, no display": func(h *CDAHeader) { h.ServiceStop, h.TypeDisplay, h.Author.ProfessionLabel = time.Time{}, "", "" },
		"TRE_A05 type, nurse": func(h *CDAHeader) {
			h.TypeCode, h.TypeSystem, h.Author.Profession, h.Author.Specialty = "SYNTH", "1.2.250.1.213.1.1.4.12", "60", ""
		},
		"replacement version 2": func(h *CDAHeader) { h.SetID, h.Version = "1.2.250.1.999.1.1.7898.3.1", 2 },
	} {
		t.Run(name, func(t *testing.T) {
			h := testCDAHeader()
			mutate(&h)
			doc := wrapPDF(t, h, pdf)
			if err := schemas.ValidateKind(context.Background(), "CDA", doc); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			var body struct {
				Text struct {
					MediaType      string `xml:"mediaType,attr"`
					Representation string `xml:"representation,attr"`
					Value          string `xml:",chardata"`
				} `xml:"component>nonXMLBody>text"`
			}
			if err := xml.Unmarshal(doc, &body); err != nil {
				t.Fatal(err)
			}
			if body.Text.MediaType != "application/pdf" || body.Text.Representation != "B64" {
				t.Errorf("text: %+v", body.Text)
			}
			for _, line := range strings.Split(strings.TrimSpace(body.Text.Value), "\n") {
				if len(line) > 76 {
					t.Fatalf("line of %d characters", len(line))
				}
			}
			got, err := decodeXMLBase64(body.Text.Value)
			if err != nil || !bytes.Equal(got, pdf) {
				t.Fatalf("body does not decode to the PDF: %v", err)
			}
		})
	}
}

func TestParseCDAHeaderRoundTrip(t *testing.T) {
	h := testCDAHeader()
	got, err := ParseCDAHeader(bytes.NewReader(wrapPDF(t, h, testPDF())))
	if err != nil {
		t.Fatal(err)
	}
	want := h
	want.defaults()
	if !got.EffectiveTime.Equal(want.EffectiveTime) || !got.ServiceStart.Equal(want.ServiceStart) || !got.ServiceStop.Equal(want.ServiceStop) {
		t.Errorf("times: got %v %v %v", got.EffectiveTime, got.ServiceStart, got.ServiceStop)
	}
	got.EffectiveTime, got.ServiceStart, got.ServiceStop = want.EffectiveTime, want.ServiceStart, want.ServiceStop
	if *got != want {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
}

func TestNewPDFDocumentRefuses(t *testing.T) {
	for name, mutate := range map[string]func(h *CDAHeader){
		"id not an OID":      func(h *CDAHeader) { h.UniqueID = "abc" },
		"no title":           func(h *CDAHeader) { h.Title = " " },
		"no type":            func(h *CDAHeader) { h.TypeCode = "" },
		"bad INS":            func(h *CDAHeader) { h.Patient.Value = "123" },
		"INS-C":              func(h *CDAHeader) { h.Patient.OID = OIDINSC },
		"no family name":     func(h *CDAHeader) { h.PatientFamily = "" },
		"bad sex":            func(h *CDAHeader) { h.PatientSex = "X" },
		"bad birth":          func(h *CDAHeader) { h.PatientBirth = "1907-05-25" },
		"no author id":       func(h *CDAHeader) { h.Author.IDNat = "" },
		"physician no spec.": func(h *CDAHeader) { h.Author.Specialty = "" },
		"no effective time":  func(h *CDAHeader) { h.EffectiveTime = time.Time{} },
		"no service start":   func(h *CDAHeader) { h.ServiceStart = time.Time{} },
		"stop before start":  func(h *CDAHeader) { h.ServiceStop = h.ServiceStart.Add(-time.Hour) },
		"no facility":        func(h *CDAHeader) { h.FacilityType, h.Author.Sector = "", "" },
		"no practice":        func(h *CDAHeader) { h.PracticeSetting = "" },
		"negative version":   func(h *CDAHeader) { h.Version = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			h := testCDAHeader()
			mutate(&h)
			if _, err := NewPDFDocument(h, bytes.NewReader(testPDF())); err == nil {
				t.Error("accepted")
			}
		})
	}
	for name, pdf := range map[string]string{"empty": "", "short": "%PD", "not a PDF": "<html>"} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewPDFDocument(testCDAHeader(), strings.NewReader(pdf)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countingReader counts what a consumer has read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A 50 MB PDF goes through without being held in memory, and reading the
// header of the result stops long before the body ends.
func TestPDFDocumentStreams(t *testing.T) {
	const size = 50 << 20
	pdf := func() io.Reader {
		return io.MultiReader(strings.NewReader("%PDF-"), io.LimitReader(zeroReader{}, size))
	}
	r, err := NewPDFDocument(testCDAHeader(), pdf())
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := io.Copy(io.Discard, r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n < size*4/3 {
		t.Fatalf("wrote %d bytes for a %d-byte PDF", n, size)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("allocated %d bytes while streaming %d", grew, n)
	}

	r, err = NewPDFDocument(testCDAHeader(), pdf())
	if err != nil {
		t.Fatal(err)
	}
	c := &countingReader{r: r}
	if _, err := ParseCDAHeader(c); err != nil {
		t.Fatal(err)
	}
	if c.n > 64<<10 {
		t.Errorf("ParseCDAHeader read %d bytes", c.n)
	}
}

func TestParseCDAHeaderRejects(t *testing.T) {
	good := string(wrapPDF(t, testCDAHeader(), testPDF()))
	for name, doc := range map[string]string{
		"empty":            "",
		"not CDA":          `<ClinicalDocument xmlns="urn:other"><component/></ClinicalDocument>`,
		"DTD":              `<!DOCTYPE x [<!ENTITY a "b">]>` + good[strings.Index(good, "<ClinicalDocument"):],
		"no body":          strings.Replace(good, "<component>", "<componentX>", 1)[:len(good)/2],
		"missing patient":  strings.Replace(good, `root="1.2.250.1.213.1.4.10"`, `root="1.2.3"`, 1),
		"bad time":         strings.Replace(good, `<effectiveTime value="20240221133445+0100"/>`, `<effectiveTime value="yesterday"/>`, 1),
		"bad version":      strings.Replace(good, `<versionNumber value="1"/>`, `<versionNumber value="one"/>`, 1),
		"two patients":     strings.Replace(good, "<author>", "<recordTarget/><author>", 1),
		"truncated header": good[:len(good)/4],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCDAHeader(strings.NewReader(doc))
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDTD) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzParseCDAHeader(f *testing.F) {
	r, err := NewPDFDocument(testCDAHeader(), bytes.NewReader(testPDF()))
	if err != nil {
		f.Fatal(err)
	}
	doc, err := io.ReadAll(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc[:bytes.Index(doc, []byte("<component>"))+len("<component>")])
	f.Add(doc)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseCDAHeader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDTD) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		// What parses can be written back and reads the same.
		r, err := NewPDFDocument(*h, strings.NewReader("%PDF-"))
		if err != nil {
			t.Fatalf("parsed header does not build: %v", err)
		}
		again, err := ParseCDAHeader(r)
		if err != nil {
			t.Fatalf("rebuilt header does not parse: %v", err)
		}
		if !again.EffectiveTime.Equal(h.EffectiveTime) || !again.ServiceStart.Equal(h.ServiceStart) || !again.ServiceStop.Equal(h.ServiceStop) {
			t.Fatalf("times changed: %+v vs %+v", again, h)
		}
		again.EffectiveTime, again.ServiceStart, again.ServiceStop = h.EffectiveTime, h.ServiceStart, h.ServiceStop
		if *again != *h {
			t.Fatalf("round trip:\n%+v\n%+v", *again, *h)
		}
	})
}
