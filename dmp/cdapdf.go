package dmp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// ErrNotPDFDocument is a CDA document whose body is not a base64 PDF.
var ErrNotPDFDocument = errors.New("dmp: the CDA document's body is not a base64 PDF")

// maxCDAHead bounds what is read before the body: a CDA header is a few
// kilobytes, and a hostile document must not make the reader search
// forever.
const maxCDAHead = 1 << 20

// PDFFromCDA returns the PDF a level-1 CDA document carries
// (nonXMLBody/text with mediaType application/pdf and representation B64),
// decoded as it is read: a document of any size is streamed, never held.
// The header is skipped, not checked; ParseCDAHeader is for that.
func PDFFromCDA(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if err := skipTo(br, []byte("<nonXMLBody"), maxCDAHead); err != nil {
		return nil, err
	}
	if err := skipTo(br, []byte("<text"), 4<<10); err != nil {
		return nil, err
	}
	tag, err := readTagRest(br)
	if err != nil {
		return nil, err
	}
	if !hasAttr(tag, "mediaType", "application/pdf") || !hasAttr(tag, "representation", "B64") {
		return nil, fmt.Errorf("%w (text %s)", ErrNotPDFDocument, bytes.TrimSpace(tag))
	}
	return base64.NewDecoder(base64.StdEncoding, &b64Text{r: br}), nil
}

// skipTo reads up to and including needle, within limit bytes.
func skipTo(br *bufio.Reader, needle []byte, limit int) error {
	matched, n := 0, 0
	for matched < len(needle) {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: no %s (%v)", ErrNotPDFDocument, needle, err)
		}
		if n++; n > limit {
			return fmt.Errorf("%w: no %s in the first %d bytes", ErrNotPDFDocument, needle, limit)
		}
		switch {
		case c == needle[matched]:
			matched++
		case c == needle[0]:
			matched = 1
		default:
			matched = 0
		}
	}
	return nil
}

// readTagRest reads the rest of a start tag, up to '>'.
func readTagRest(br *bufio.Reader) ([]byte, error) {
	var tag []byte
	for len(tag) < 1024 {
		c, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if c == '>' {
			if len(tag) > 0 && tag[len(tag)-1] == '/' {
				return nil, fmt.Errorf("%w: empty text", ErrNotPDFDocument)
			}
			return tag, nil
		}
		tag = append(tag, c)
	}
	return nil, fmt.Errorf("%w: start tag too long", ErrMalformed)
}

func hasAttr(tag []byte, name, value string) bool {
	for _, q := range []string{`"`, `'`} {
		if bytes.Contains(tag, []byte(" "+name+"="+q+value+q)) || bytes.Contains(tag, []byte("\n"+name+"="+q+value+q)) {
			return true
		}
	}
	return false
}

// b64Text yields the base64 characters of the text element's content,
// dropping whitespace and character references to it (&#10;, &#xD;),
// and ends at the closing tag.
type b64Text struct {
	r    *bufio.Reader
	done bool
}

func (t *b64Text) Read(p []byte) (int, error) {
	if t.done {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		c, err := t.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, fmt.Errorf("%w: the body ends before </text>", ErrMalformed)
		}
		switch {
		case c == '<':
			t.done = true
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case c == ' ' || c == '\n' || c == '\r' || c == '\t':
		case c == '&':
			ref, err := t.r.ReadSlice(';')
			if err != nil || len(ref) > 8 || !isWhitespaceRef(ref) {
				return n, fmt.Errorf("%w: unexpected reference in base64 text", ErrMalformed)
			}
		default:
			p[n] = c
			n++
		}
	}
	return n, nil
}

func isWhitespaceRef(ref []byte) bool {
	switch string(bytes.ToLower(ref)) {
	case "#10;", "#13;", "#9;", "#32;", "#xa;", "#xd;", "#x9;", "#x20;":
		return true
	}
	return false
}
