package dmp

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// Response statuses of an ebRS RegistryResponse.
const (
	ResponseSuccess        = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
	ResponseFailure        = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
	ResponsePartialSuccess = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
)

// Severities of a RegistryError.
const (
	SeverityError   = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
	SeverityWarning = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
)

// RegistryError is one entry of a RegistryErrorList. An empty Severity
// means Error, the schema's default.
type RegistryError struct {
	Code     string // errorCode, e.g. XDSRegistryError, XDSUnknownPatientId
	Context  string // codeContext, the text for people
	Severity string
	Location string
}

func (e RegistryError) isError() bool {
	return e.Severity == "" || e.Severity == SeverityError || localName(e.Severity) == "Error"
}

// errorList writes an rs:RegistryErrorList, or nothing for no error.
func (w *ebWriter) errorList(errs []RegistryError) {
	if len(errs) == 0 {
		return
	}
	highest := SeverityWarning
	for _, e := range errs {
		if e.isError() {
			highest = SeverityError
		}
	}
	w.start("rs:RegistryErrorList", "highestSeverity", highest)
	for _, e := range errs {
		sev := e.Severity
		if sev == "" {
			sev = SeverityError
		}
		// codeContext and errorCode are required by the schema, even empty.
		w.empty("rs:RegistryError", "!codeContext", e.Context, "!errorCode", e.Code, "severity", sev, "location", e.Location)
	}
	w.end("rs:RegistryErrorList")
}

// responseStatus is Success without errors, Failure when errors are all
// there is, PartialSuccess when some results come with them.
func responseStatus(errs []RegistryError, results int) string {
	for _, e := range errs {
		if e.isError() {
			if results > 0 {
				return ResponsePartialSuccess
			}
			return ResponseFailure
		}
	}
	return ResponseSuccess
}

// BuildRegistryResponse builds the rs:RegistryResponse answering ITI-41 and
// ITI-57: Success without errors (warnings alone keep it a Success),
// Failure with the RegistryErrorList otherwise.
func BuildRegistryResponse(errs []RegistryError) []byte {
	var w ebWriter
	w.start("rs:RegistryResponse", "xmlns:rs", NSRS, "status", responseStatus(errs, 0))
	w.errorList(errs)
	w.end("rs:RegistryResponse")
	return w.b.Bytes()
}

// rsError and rsErrorList mirror the ebRS error elements.
type rsError struct {
	Code     string `xml:"errorCode,attr"`
	Context  string `xml:"codeContext,attr"`
	Severity string `xml:"severity,attr"`
	Location string `xml:"location,attr"`
	Text     string `xml:",chardata"`
}

type rsErrorList struct {
	Errors []rsError `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryError"`
}

type rsRegistryResponse struct {
	XMLName xml.Name     `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryResponse"`
	Status  string       `xml:"status,attr"`
	Errors  *rsErrorList `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryErrorList"`
}

// registryErrors returns the errors of a list, codeContext falling back on
// the element's text (some registries put the message there).
func (l *rsErrorList) registryErrors() []RegistryError {
	if l == nil {
		return nil
	}
	out := make([]RegistryError, 0, len(l.Errors))
	for _, e := range l.Errors {
		ctx := strings.TrimSpace(e.Context)
		if ctx == "" {
			ctx = strings.TrimSpace(e.Text)
		}
		out = append(out, RegistryError{Code: strings.TrimSpace(e.Code), Context: ctx, Severity: strings.TrimSpace(e.Severity), Location: e.Location})
	}
	return out
}

// statusError turns a response status and its errors into nil (Success) or
// a *Fault (Failure, PartialSuccess) naming the first error; the others are
// listed in the message. Warnings never make a fault.
func statusError(status string, errs []RegistryError) error {
	switch localName(status) {
	case "Success":
		return nil
	case "Failure", "PartialSuccess":
	default:
		return fmt.Errorf("%w: registry response status %q", ErrMalformed, status)
	}
	var real []RegistryError
	for _, e := range errs {
		if e.isError() {
			real = append(real, e)
		}
	}
	if len(real) == 0 {
		return &Fault{Code: CodeRegistryError, Message: "registry answered " + localName(status) + " without an error", Source: "registry"}
	}
	f := &Fault{Code: real[0].Code, Message: real[0].Context, Source: "registry"}
	if f.Code == "" {
		f.Code = CodeRegistryError
	}
	if len(real) > 1 {
		codes := make([]string, 0, len(real)-1)
		for _, e := range real[1:] {
			codes = append(codes, e.Code)
		}
		f.Message += fmt.Sprintf(" (and %d more: %s)", len(codes), strings.Join(codes, ", "))
	}
	return f
}

// ParseRegistryResponse reads the answer to ITI-41 or ITI-57: nil on
// Success; a *Fault{Source: "registry"} with the first error's code and
// context on Failure or PartialSuccess; a SOAP fault as *Fault{Source:
// "soap"}; ErrMalformed for anything else.
func ParseRegistryResponse(envelope []byte) error {
	r, err := decodeXDSBody[rsRegistryResponse](envelope)
	if err != nil {
		return err
	}
	return statusError(r.Status, r.Errors.registryErrors())
}

// decodeXDSBody is DecodeBody with the message size bound of MaxMessage.
func decodeXDSBody[T any](envelope []byte) (*T, error) {
	if len(envelope) > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(envelope))
	}
	return DecodeBody[T](envelope)
}
