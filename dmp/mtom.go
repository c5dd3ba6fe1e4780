package dmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
)

// MTOM/XOP packaging (W3C SOAP 1.2 MTOM): the SOAP envelope travels as the
// root part of a multipart/related body and each document as a binary part
// that the envelope references with <xop:Include href="cid:…"/>. Parts are
// written from and read into streams, so a document is never held whole.

// Part is one binary part of an MTOM message.
type Part struct {
	ContentID   string // without angle brackets
	ContentType string // default application/octet-stream
	Body        io.Reader
}

// RootContentID is the Content-ID of the SOAP part of the messages we send.
const RootContentID = "root.message@dmpagent"

const xopType = "application/xop+xml"

// MTOMContentType is the HTTP Content-Type of an MTOM request or response.
func MTOMContentType(boundary, action string) string {
	params := map[string]string{
		"boundary":   boundary,
		"type":       xopType,
		"start":      "<" + RootContentID + ">",
		"start-info": "application/soap+xml",
	}
	if action != "" {
		params["action"] = action
	}
	return mime.FormatMediaType("multipart/related", params)
}

// SOAPContentType is the HTTP Content-Type of a plain SOAP 1.2 message.
func SOAPContentType(action string) string {
	if action == "" {
		return "application/soap+xml; charset=utf-8"
	}
	return mime.FormatMediaType("application/soap+xml", map[string]string{"charset": "utf-8", "action": action})
}

// WriteMTOM writes root and parts as a multipart/related body with the given
// boundary. It streams each part's Body; the first error stops it.
func WriteMTOM(w io.Writer, boundary string, root []byte, parts []Part) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", `application/xop+xml; charset=UTF-8; type="application/soap+xml"`)
	h.Set("Content-Transfer-Encoding", "binary")
	h.Set("Content-ID", "<"+RootContentID+">")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(root); err != nil {
		return err
	}
	for _, p := range parts {
		ct := p.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", ct)
		h.Set("Content-Transfer-Encoding", "binary")
		h.Set("Content-ID", "<"+p.ContentID+">")
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.Copy(pw, p.Body); err != nil {
			return fmt.Errorf("dmp: MTOM part %s: %w", p.ContentID, err)
		}
	}
	return mw.Close()
}

// MTOMReader reads an MTOM message: the SOAP root part whole (bounded), then
// the binary parts one at a time as streams.
type MTOMReader struct {
	Root []byte
	mr   *multipart.Reader
	part *multipart.Part
}

// IsMTOM reports whether an HTTP Content-Type announces a multipart body.
func IsMTOM(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.EqualFold(mt, "multipart/related")
}

// ReadMTOM starts reading an MTOM body: it reads the root part (the part
// named by the start parameter, which must come first, or the first part).
func ReadMTOM(contentType string, body io.Reader, maxRoot int64) (*MTOMReader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.EqualFold(mt, "multipart/related") || params["boundary"] == "" {
		return nil, fmt.Errorf("%w: Content-Type %q is not multipart/related with a boundary", ErrMalformed, contentType)
	}
	mr := multipart.NewReader(body, params["boundary"])
	p, err := mr.NextRawPart()
	if err != nil {
		return nil, fmt.Errorf("%w: MTOM root part: %v", ErrMalformed, err)
	}
	if start := params["start"]; start != "" && normalizeCID(p.Header.Get("Content-ID")) != normalizeCID(start) {
		return nil, fmt.Errorf("%w: MTOM root part is not the first part", ErrMalformed)
	}
	root, err := readLimited(p, maxRoot)
	if err != nil {
		return nil, err
	}
	return &MTOMReader{Root: root, mr: mr}, nil
}

// Next returns the next binary part; io.EOF after the last. The previous
// part's stream is no longer readable once Next is called.
func (m *MTOMReader) Next() (contentID string, body io.Reader, err error) {
	p, err := m.mr.NextRawPart()
	if errors.Is(err, io.EOF) {
		return "", nil, io.EOF
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: MTOM part: %v", ErrMalformed, err)
	}
	if enc := p.Header.Get("Content-Transfer-Encoding"); enc != "" && !strings.EqualFold(enc, "binary") && !strings.EqualFold(enc, "8bit") {
		return "", nil, fmt.Errorf("%w: MTOM part encoding %q", ErrMalformed, enc)
	}
	m.part = p
	return normalizeCID(p.Header.Get("Content-ID")), p, nil
}

// CIDFromHref turns an xop:Include href ("cid:abc%40x") into the Content-ID
// it names ("abc@x"); RFC 2392 URL-encodes cid URLs.
func CIDFromHref(href string) (string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(href), "cid:")
	if !ok {
		return "", fmt.Errorf("%w: xop:Include href %q is not a cid: URL", ErrMalformed, href)
	}
	id, err := url.PathUnescape(rest)
	if err != nil || id == "" {
		return "", fmt.Errorf("%w: xop:Include href %q", ErrMalformed, href)
	}
	return id, nil
}

// HrefFromCID is the inverse of CIDFromHref.
func HrefFromCID(id string) string {
	return "cid:" + strings.ReplaceAll(url.PathEscape(id), "%40", "@")
}

func normalizeCID(h string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "<"), ">")
}

// elideParts is the wire-log view of MTOM parts: their ids and sizes, never
// their bytes (documents are health data).
func elideParts(parts []string) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("\n<!-- MTOM part " + p + ": bytes elided -->")
	}
	return b.Bytes()
}
