package dmp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMTOMRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	root := []byte(`<soap:Envelope/>`)
	docs := []Part{
		{ContentID: "doc1@dmpagent", Body: strings.NewReader("%PDF-1.4 first")},
		{ContentID: "sig@dmpagent", ContentType: "text/xml", Body: strings.NewReader("<ds:Signature/>")},
	}
	if err := WriteMTOM(&buf, "b0undary", root, docs); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMTOM(MTOMContentType("b0undary", "urn:x"), &buf, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Root) != string(root) {
		t.Fatalf("root %q", m.Root)
	}
	for _, want := range []string{"doc1@dmpagent:%PDF-1.4 first", "sig@dmpagent:<ds:Signature/>"} {
		id, r, err := m.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		if got := id + ":" + string(b); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	if _, _, err := m.Next(); err != io.EOF {
		t.Fatalf("after last part: %v", err)
	}
}

func TestMTOMErrors(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		want           error
	}{
		{"not multipart", "text/xml", "<x/>", ErrMalformed},
		{"no boundary", "multipart/related", "", ErrMalformed},
		{"no parts", MTOMContentType("b", ""), "--b--\r\n", ErrMalformed},
		{"root too large", MTOMContentType("b", ""), "--b\r\nContent-ID: <" + RootContentID + ">\r\n\r\n" + strings.Repeat("x", 100) + "\r\n--b--\r\n", ErrTooLarge},
		{"wrong start", MTOMContentType("b", ""), "--b\r\nContent-ID: <other>\r\n\r\n<x/>\r\n--b--\r\n", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMTOM(tc.ct, strings.NewReader(tc.body), 50)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
}

func TestCIDHref(t *testing.T) {
	for _, tc := range []struct{ href, id string }{
		{"cid:1.urn:uuid:abc@apache.org", "1.urn:uuid:abc@apache.org"},
		{"cid:0bd3@urn%3Aihe%3Aiti%3Axds-b%3A2007", "0bd3@urn:ihe:iti:xds-b:2007"},
	} {
		id, err := CIDFromHref(tc.href)
		if err != nil || id != tc.id {
			t.Fatalf("%s: got %q %v", tc.href, id, err)
		}
		back, _ := CIDFromHref(HrefFromCID(id))
		if back != id {
			t.Fatalf("%s: href round trip gave %q", id, back)
		}
	}
	if _, err := CIDFromHref("http://x"); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func FuzzReadMTOM(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteMTOM(&buf, "b", []byte("<x/>"), []Part{{ContentID: "d", Body: strings.NewReader("data")}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ReadMTOM(MTOMContentType("b", ""), bytes.NewReader(body), 1<<16)
		if err != nil {
			return
		}
		for i := 0; i < 100; i++ {
			_, r, err := m.Next()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, r)
		}
	})
}
