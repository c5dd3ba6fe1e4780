package dmp

import (
	"errors"
	"testing"
)

func TestRegistryResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		errs   []RegistryError
		status string
		want   *Fault
	}{
		{"success", nil, ResponseSuccess, nil},
		{"warning only", []RegistryError{{Code: "XDSExtraMetadataNotSaved", Context: "ignored", Severity: SeverityWarning}}, ResponseSuccess, nil},
		{"one error", []RegistryError{{Code: CodeUnknownPatient, Context: "INS inconnu", Location: "SubmissionSet01"}}, ResponseFailure,
			&Fault{Code: CodeUnknownPatient, Message: "INS inconnu", Source: "registry"}},
		{"several errors", []RegistryError{
			{Code: "XDSRegistryMetadataError", Context: "classCode absent", Severity: SeverityError},
			{Code: "W", Context: "w", Severity: SeverityWarning},
			{Code: "XDSRepositoryError", Context: "x"}, {Code: "XDSMissingDocument", Context: "y"},
		}, ResponseFailure, &Fault{Code: "XDSRegistryMetadataError", Message: "classCode absent (and 2 more: XDSRepositoryError, XDSMissingDocument)", Source: "registry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := BuildRegistryResponse(tc.errs)
			env := validateXDS(t, ActionITI41Response, body)
			err := ParseRegistryResponse(env)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ParseRegistryResponse = %v", err)
				}
				return
			}
			var f *Fault
			if !errors.As(err, &f) || *f != *tc.want {
				t.Fatalf("ParseRegistryResponse = %#v, want %#v", err, tc.want)
			}
		})
	}
}

// TestParseRegistryResponseField reads answers shaped like the DMP's:
// the EX TD2.1 response, an error with its message as text, a Failure
// without list, a SOAP fault, and bad statuses.
func TestParseRegistryResponseField(t *testing.T) {
	ex := []byte(`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header><Action xmlns="http://www.w3.org/2005/08/addressing">urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse</Action></soap:Header>
  <soap:Body>
    <ns2:RegistryResponse status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success" xmlns:ns2="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" xmlns:ns3="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>
  </soap:Body></soap:Envelope>`)
	if err := ParseRegistryResponse(ex); err != nil {
		t.Errorf("EX response: %v", err)
	}
	rs := `xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"`
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"text message", `<rs:RegistryResponse ` + rs + ` status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"><rs:RegistryErrorList><rs:RegistryError errorCode="XDSRegistryError" codeContext="">Erreur interne</rs:RegistryError></rs:RegistryErrorList></rs:RegistryResponse>`,
			&Fault{Code: "XDSRegistryError", Message: "Erreur interne"}},
		{"failure without list", `<rs:RegistryResponse ` + rs + ` status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"/>`, &Fault{Code: CodeRegistryError}},
		{"partial success", `<rs:RegistryResponse ` + rs + ` status="urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"><rs:RegistryErrorList><rs:RegistryError errorCode="E" codeContext="c"/></rs:RegistryErrorList></rs:RegistryResponse>`, &Fault{Code: "E"}},
		{"bad status", `<rs:RegistryResponse ` + rs + ` status="Maybe"/>`, ErrMalformed},
		{"wrong element", `<rs:AdhocQueryResponse ` + rs + ` status="Success"/>`, ErrMalformed},
	} {
		err := ParseRegistryResponse(envelope(ActionITI41Response, []byte(tc.body)))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	soapFault := BuildFaultEnvelope(Addressing{}, &Fault{Code: CodeInvalidVIHF, Message: "x"}, false)
	var f *Fault
	if err := ParseRegistryResponse(soapFault); !errors.As(err, &f) || f.Code != CodeInvalidVIHF || f.Source != "soap" {
		t.Errorf("SOAP fault: %v", err)
	}
}

func FuzzParseRegistryResponse(f *testing.F) {
	f.Add(envelope(ActionITI41Response, BuildRegistryResponse(nil)))
	f.Add(envelope(ActionITI41Response, BuildRegistryResponse([]RegistryError{{Code: "A", Context: "b"}, {Code: "C", Severity: SeverityWarning}})))
	f.Fuzz(func(t *testing.T, env []byte) {
		err := ParseRegistryResponse(env)
		var fault *Fault
		if err != nil && !errors.As(err, &fault) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDTD) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("untyped error %v", err)
		}
		if fault != nil && fault.Code == "" {
			t.Fatal("fault without code")
		}
	})
}
