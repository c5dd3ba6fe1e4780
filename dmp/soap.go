package dmp

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"strings"
)

// AnonymousAddress is the WS-Addressing reply address of a synchronous call.
const AnonymousAddress = "http://www.w3.org/2005/08/addressing/anonymous"

// Addressing holds the four WS-Addressing headers every request carries
// (the service, Apache CXF, faults without any of them) and the RelatesTo of
// a response.
type Addressing struct {
	MessageID string
	To        string
	Action    string
	ReplyTo   string // requests: AnonymousAddress
	RelatesTo string // responses: the request's MessageID
}

// NewMessageID returns a fresh "urn:uuid:…" message id.
func NewMessageID() string { return "urn:uuid:" + NewUUID() }

// NewUUID returns a random (version 4) UUID in its text form.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// BuildEnvelope writes a SOAP 1.2 envelope: the addressing headers, then,
// when security is not empty, a wsse:Security header holding it (the signed
// VIHF assertion, as bytes that must not change after signing), then the
// body. body is one complete element that declares its own namespaces.
func BuildEnvelope(a Addressing, security, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(security) + len(body) + 1024)
	b.WriteString(`<soap:Envelope xmlns:soap="` + NSSOAP + `" xmlns:wsa="` + NSWSA + `"><soap:Header>`)
	if a.Action != "" {
		b.WriteString(`<wsa:Action soap:mustUnderstand="true">` + escape(a.Action) + `</wsa:Action>`)
	}
	if a.MessageID != "" {
		b.WriteString(`<wsa:MessageID>` + escape(a.MessageID) + `</wsa:MessageID>`)
	}
	if a.To != "" {
		b.WriteString(`<wsa:To>` + escape(a.To) + `</wsa:To>`)
	}
	if a.ReplyTo != "" {
		b.WriteString(`<wsa:ReplyTo soap:mustUnderstand="true"><wsa:Address>` + escape(a.ReplyTo) + `</wsa:Address></wsa:ReplyTo>`)
	}
	if a.RelatesTo != "" {
		b.WriteString(`<wsa:RelatesTo>` + escape(a.RelatesTo) + `</wsa:RelatesTo>`)
	}
	if len(security) > 0 {
		b.WriteString(`<wsse:Security xmlns:wsse="` + NSWSSE + `">`)
		b.Write(security)
		b.WriteString(`</wsse:Security>`)
	}
	b.WriteString(`</soap:Header><soap:Body>`)
	b.Write(body)
	b.WriteString(`</soap:Body></soap:Envelope>`)
	return b.Bytes()
}

// BuildFaultEnvelope writes a SOAP 1.2 fault: Code Sender (or Receiver for
// a server error) with the DMP code as Subcode, as the real service does
// for DMPInvalidCertificate.
func BuildFaultEnvelope(a Addressing, f *Fault, receiver bool) []byte {
	code := "soap:Sender"
	if receiver {
		code = "soap:Receiver"
	}
	body := `<soap:Fault><soap:Code><soap:Value>` + code + `</soap:Value><soap:Subcode><soap:Value xmlns:dmp="urn:dmp">dmp:` +
		escape(localName(f.Code)) + `</soap:Value></soap:Subcode></soap:Code><soap:Reason><soap:Text xml:lang="fr">` +
		escape(f.Message) + `</soap:Text></soap:Reason></soap:Fault>`
	return BuildEnvelope(a, nil, []byte(body))
}

// soapFault is the SOAP 1.2 Fault element.
type soapFault struct {
	Code struct {
		Value   string `xml:"Value"`
		Subcode struct {
			Value string `xml:"Value"`
		} `xml:"Subcode"`
	} `xml:"Code"`
	Reason struct {
		Text []string `xml:"Text"`
	} `xml:"Reason"`
	Detail struct {
		Inner string `xml:",innerxml"`
	} `xml:"Detail"`
}

func (s *soapFault) fault() *Fault {
	code := localName(s.Code.Subcode.Value)
	if code == "" {
		code = localName(s.Code.Value)
	}
	if code == "" {
		code = "SOAPFault"
	}
	return &Fault{Code: code, Message: strings.TrimSpace(strings.Join(s.Reason.Text, " ")), Source: "soap"}
}

func localName(qname string) string {
	qname = strings.TrimSpace(qname)
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// envelopeHeader is what a reader needs from a SOAP header.
type envelopeHeader struct {
	Action    string `xml:"http://www.w3.org/2005/08/addressing Action"`
	MessageID string `xml:"http://www.w3.org/2005/08/addressing MessageID"`
	To        string `xml:"http://www.w3.org/2005/08/addressing To"`
	RelatesTo string `xml:"http://www.w3.org/2005/08/addressing RelatesTo"`
	ReplyTo   struct {
		Address string `xml:"http://www.w3.org/2005/08/addressing Address"`
	} `xml:"http://www.w3.org/2005/08/addressing ReplyTo"`
}

// Envelope is a decoded SOAP 1.2 message whose body holds a T.
type Envelope[T any] struct {
	Addressing Addressing
	Body       *T
}

// DecodeEnvelope reads a SOAP 1.2 envelope whose body holds one T (T's
// XMLName names the element). A SOAP fault in the body is returned as a
// *Fault error; any other shape is ErrMalformed, a DTD is ErrDTD.
func DecodeEnvelope[T any](msg []byte) (*Envelope[T], error) {
	var e struct {
		XMLName xml.Name       `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
		Header  envelopeHeader `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
		Body    struct {
			Fault   *soapFault `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
			Content *T         `xml:",any"`
		} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
	}
	if err := decodeXML(msg, &e); err != nil {
		return nil, err
	}
	h := e.Header
	out := &Envelope[T]{Addressing: Addressing{
		MessageID: strings.TrimSpace(h.MessageID), To: strings.TrimSpace(h.To), Action: strings.TrimSpace(h.Action),
		ReplyTo: strings.TrimSpace(h.ReplyTo.Address), RelatesTo: strings.TrimSpace(h.RelatesTo),
	}}
	if e.Body.Fault != nil {
		return out, e.Body.Fault.fault()
	}
	if e.Body.Content == nil {
		var zero T
		return out, fmt.Errorf("%w: body holds no %T", ErrMalformed, zero)
	}
	out.Body = e.Body.Content
	return out, nil
}

// DecodeBody is DecodeEnvelope for callers that need only the body.
func DecodeBody[T any](msg []byte) (*T, error) {
	e, err := DecodeEnvelope[T](msg)
	if err != nil {
		return nil, err
	}
	return e.Body, nil
}
