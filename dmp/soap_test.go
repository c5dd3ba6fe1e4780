package dmp

import (
	"encoding/xml"
	"errors"
	"testing"
)

type pingBody struct {
	XMLName xml.Name `xml:"urn:test ping"`
	Value   string   `xml:"value"`
}

func TestEnvelopeRoundTrip(t *testing.T) {
	a := Addressing{MessageID: NewMessageID(), To: "https://dmp/x", Action: "urn:test:ping", ReplyTo: AnonymousAddress}
	msg := BuildEnvelope(a, nil, []byte(`<ping xmlns="urn:test"><value>a&amp;b</value></ping>`))
	e, err := DecodeEnvelope[pingBody](msg)
	if err != nil {
		t.Fatal(err)
	}
	if e.Addressing != a || e.Body.Value != "a&b" {
		t.Fatalf("got %+v %+v", e.Addressing, e.Body)
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	fault := BuildFaultEnvelope(Addressing{Action: "x"}, &Fault{Code: CodeInvalidCertificate, Message: "pas une signature"}, false)
	for _, tc := range []struct {
		name string
		msg  string
		want error
	}{
		{"fault", string(fault), &Fault{Code: CodeInvalidCertificate}},
		{"soap11", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`, ErrMalformed},
		{"other body", `<s:Envelope xmlns:s="` + NSSOAP + `"><s:Body><pong xmlns="urn:test"/></s:Body></s:Envelope>`, ErrMalformed},
		{"empty body", `<s:Envelope xmlns:s="` + NSSOAP + `"><s:Body/></s:Envelope>`, ErrMalformed},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "aaaa">]><s:Envelope xmlns:s="` + NSSOAP + `"><s:Body><ping xmlns="urn:test"><value>&a;</value></ping></s:Body></s:Envelope>`, ErrDTD},
		{"xxe", `<!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]><x>&a;</x>`, ErrDTD},
		{"undefined entity", `<s:Envelope xmlns:s="` + NSSOAP + `"><s:Body><ping xmlns="urn:test"><value>&a;</value></ping></s:Body></s:Envelope>`, ErrMalformed},
		{"truncated", `<s:Envelope xmlns:s="` + NSSOAP + `"><s:Body><ping`, ErrMalformed},
		{"empty", ``, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEnvelope[pingBody]([]byte(tc.msg))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(BuildEnvelope(Addressing{Action: "a", MessageID: "m"}, nil, []byte(`<ping xmlns="urn:test"><value>v</value></ping>`)))
	f.Add(BuildFaultEnvelope(Addressing{Action: "x"}, &Fault{Code: "C", Message: "m"}, true))
	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := DecodeEnvelope[pingBody](msg)
		if err == nil && (e == nil || e.Body == nil) {
			t.Fatal("nil body without error")
		}
		var fault *Fault
		if errors.As(err, &fault) && fault.Code == "" {
			t.Fatal("fault without code")
		}
	})
}
