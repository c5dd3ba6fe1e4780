package dmp

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPDFFromCDA(t *testing.T) {
	pdf := append([]byte("%PDF-1.4\n"), make([]byte, 300_000)...)
	rand.Read(pdf[9:])
	doc, err := NewPDFDocument(testCDAHeader(), bytes.NewReader(pdf))
	if err != nil {
		t.Fatal(err)
	}
	r, err := PDFFromCDA(doc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pdf) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	for name, c := range map[string]struct {
		doc  string
		want error
	}{
		"no body":                   {`<ClinicalDocument><structuredBody/></ClinicalDocument>`, ErrNotPDFDocument},
		"not a PDF":                 {`<ClinicalDocument><component><nonXMLBody><text mediaType="text/plain">aGk=</text>`, ErrNotPDFDocument},
		"not base64":                {`<x><nonXMLBody><text mediaType="application/pdf" representation="TXT">%PDF</text>`, ErrNotPDFDocument},
		"cut":                       {`<x><nonXMLBody><text mediaType="application/pdf" representation="B64">JVBERi0`, ErrMalformed},
		"entity":                    {`<x><nonXMLBody><text mediaType="application/pdf" representation="B64">JVBE&amp;Ri0=</text>`, ErrMalformed},
		"single quotes, references": {"<x><nonXMLBody>\n<text representation='B64' mediaType='application/pdf'>JVBE&#13;&#10;Ri0x</text>", nil},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := PDFFromCDA(strings.NewReader(c.doc))
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzPDFFromCDA(f *testing.F) {
	f.Add([]byte(`<x><nonXMLBody><text mediaType="application/pdf" representation="B64">JVBERi0x</text>`))
	f.Add([]byte(`<nonXMLBody><text/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := PDFFromCDA(bytes.NewReader(data))
		if err != nil {
			return
		}
		out, _ := io.ReadAll(io.LimitReader(r, 1<<20))
		if len(out) > len(data) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(data))
		}
	})
}
