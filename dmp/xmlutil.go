package dmp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// XML namespaces used on the wire.
const (
	NSSOAP   = "http://www.w3.org/2003/05/soap-envelope"
	NSWSA    = "http://www.w3.org/2005/08/addressing"
	NSWSSE   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSSAML   = "urn:oasis:names:tc:SAML:2.0:assertion"
	NSDSig   = "http://www.w3.org/2000/09/xmldsig#"
	NSXSI    = "http://www.w3.org/2001/XMLSchema-instance"
	NSXS     = "http://www.w3.org/2001/XMLSchema"
	NSHL7    = "urn:hl7-org:v3"
	NSXOP    = "http://www.w3.org/2004/08/xop/include"
	NSRIM    = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
	NSRS     = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
	NSLCM    = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
	NSQuery  = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
	NSXDS    = "urn:ihe:iti:xds-b:2007"
	NSGDP    = "asip:ci-sis:gdp:2010"
	NSHabil  = "urn:si-dmp-habilitations"
	NSPatSpe = "urn:si-dmp-patients"
)

// MaxMessage bounds any XML message read whole (everything but MTOM
// document parts, which are streamed): 16 MiB is far above the largest
// metadata answer yet small enough that a hostile peer cannot balloon memory.
const MaxMessage = 16 << 20

// readLimited reads r whole, refusing more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// checkProlog refuses a document whose prolog holds a DTD. encoding/xml
// never expands entities it has not been given nor fetches external ones,
// so XXE and entity expansion are already impossible; refusing the DTD
// makes the attempt a clear, typed error instead of a confusing one.
func checkProlog(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.RawToken()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: no root element", ErrMalformed)
			}
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return ErrDTD
		case xml.StartElement:
			_ = t
			// Entity declarations can only sit in a DTD; a directive
			// further in is malformed XML that encoding/xml lets through.
			if bytes.Contains(b, []byte("<!ENTITY")) || bytes.Contains(b, []byte("<!DOCTYPE")) {
				return ErrDTD
			}
			return nil
		}
	}
}

// decodeXML unmarshals a whole message into v after the prolog check.
func decodeXML(b []byte, v any) error {
	if err := checkProlog(b); err != nil {
		return err
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// escape returns s escaped for XML text and attribute values.
func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
