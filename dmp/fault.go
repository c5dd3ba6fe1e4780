package dmp

import (
	"errors"
	"fmt"
)

// Fault is a refusal by the DMP: a SOAP fault, an HL7v3 reject, a custom
// service status other than DMPOk, or an XDS RegistryErrorList. Callers
// branch on Code.
type Fault struct {
	Code    string // e.g. DMPInvalidCertificate, DMPFound, DMPClosed, XDSRegistryError
	Message string // the server's text, for people
	Source  string // "soap", "hl7", "status" or "registry": where the code came from
}

func (f *Fault) Error() string {
	if f.Message == "" {
		return "dmp: " + f.Code
	}
	return fmt.Sprintf("dmp: %s: %s", f.Code, f.Message)
}

// Is makes errors.Is(err, &Fault{Code: X}) match any fault with code X.
func (f *Fault) Is(target error) bool {
	t, ok := target.(*Fault)
	return ok && t.Code == f.Code && (t.Message == "" || t.Message == f.Message)
}

// Fault codes. The first group is attested on the real service; the others
// are the codes dmptest answers where public sources name none (see the
// package documentation).
const (
	CodeInvalidCertificate = "DMPInvalidCertificate"
	CodeFound              = "DMPFound"  // TD1.1/TD1.2: the DMP exists / is already active
	CodeClosed             = "DMPClosed" // TD1.4 on a closed DMP; any access to a closed DMP
	CodeOK                 = "DMPOk"

	CodeNotFound         = "DMPNotFound"          // no DMP for this INS
	CodeAccessDenied     = "DMPAccessDenied"      // no authorization, or a matrix refusal
	CodeBlocked          = "DMPAccessBlocked"     // the patient blocked this professional
	CodeOpposition       = "DMPPatientOpposition" // emergency access opposed by the patient
	CodeInvalidVIHF      = "DMPInvalidVIHF"       // missing or malformed VIHF attribute
	CodeInvalidSignature = "DMPInvalidSignature"  // VIHF signature does not verify
	CodeInvalidRequest   = "DMPInvalidRequest"    // malformed or schema-invalid message
	CodeMissingHeader    = "DMPMissingAddressing" // a WS-Addressing header is missing
	CodeDocumentNotFound = "XDSDocumentUniqueIdError"
	CodeRegistryError    = "XDSRegistryError"
	CodeUnknownPatient   = "XDSUnknownPatientId"
	CodeMissingDocument  = "XDSMissingDocument"
	CodeInternal         = "DMPInternalError"
)

// Errors for messages that cannot be trusted or read. They wrap with %w so
// that errors.Is finds them.
var (
	ErrMalformed = errors.New("dmp: malformed message")
	ErrTooLarge  = errors.New("dmp: message too large")
	ErrDTD       = errors.New("dmp: DTDs and entity declarations are refused")
)
