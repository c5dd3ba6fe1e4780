package dmp

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// The DMP's custom services: TD0.3 setAuthorization and TD1.6
// listAuthorizationByPatient (habilitations), TD0.4 patientList
// (patientsSpecific). The patient is the VIHF's resource-id; answers carry
// output/status, DMPOk or a refusal code.

// Actions of the custom services (the WS-Addressing actions of the official
// examples; the WSDL's soapActions differ and are not used on the wire).
const (
	ActionSetAuthorization         = "urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorization"
	ActionSetAuthorizationResponse = ActionSetAuthorization + "Response"
	ActionListAuthorizations       = "urn:si-dmp-habilitations:HabilitationsEndPoint:listAuthorizationByPatient"
	ActionListAuthorizationsResp   = ActionListAuthorizations + "Response"
	ActionPatientList              = "urn:si-dmp-patients:PatientSpecificEndPoint:patientList"
	ActionPatientListResponse      = ActionPatientList + "Response"
	authorizationAdd               = "AJOUT"
	authorizationRemove            = "SUPPRESSION"
	roleAttending                  = "MEDECIN_TRAITANT"
)

// SetAuthorization is a TD0.3 request: the professional declares himself
// authorized (Add) or withdraws (!Add), as attending physician when
// Attending is set.
type SetAuthorization struct {
	Add       bool
	Attending bool
}

type setAuthorizationXML struct {
	XMLName xml.Name `xml:"urn:si-dmp-habilitations setAuthorization"`
	Action  string   `xml:"action"`
	Role    string   `xml:"role,omitempty"`
}

// BuildSetAuthorization builds the setAuthorization body.
func BuildSetAuthorization(s SetAuthorization) ([]byte, error) {
	x := setAuthorizationXML{Action: authorizationRemove}
	if s.Add {
		x.Action = authorizationAdd
	}
	if s.Attending {
		x.Role = roleAttending
	}
	return xml.Marshal(x)
}

// ParseSetAuthorization reads a setAuthorization request.
func ParseSetAuthorization(envelope []byte) (*SetAuthorization, error) {
	x, err := DecodeBody[setAuthorizationXML](envelope)
	if err != nil {
		return nil, err
	}
	s := &SetAuthorization{Attending: x.Role == roleAttending}
	switch x.Action {
	case authorizationAdd:
		s.Add = true
	case authorizationRemove:
	default:
		return nil, fmt.Errorf("%w: setAuthorization action %q", ErrMalformed, x.Action)
	}
	if x.Role != "" && x.Role != roleAttending {
		return nil, fmt.Errorf("%w: setAuthorization role %q", ErrMalformed, x.Role)
	}
	return s, nil
}

// serviceOutput is the WebServiceResponse of the custom services.
type serviceOutput struct {
	Status  string `xml:"status"`
	Context string `xml:"context,omitempty"`
}

// fault is the refusal a status other than DMPOk means.
func (o serviceOutput) fault() error {
	if strings.EqualFold(strings.TrimSpace(o.Status), CodeOK) {
		return nil
	}
	code := strings.TrimSpace(o.Status)
	if code == "" {
		return fmt.Errorf("%w: answer without a status", ErrMalformed)
	}
	return &Fault{Code: code, Message: strings.TrimSpace(o.Context), Source: "status"}
}

func outputOf(refusal *Fault, context string) serviceOutput {
	if refusal != nil {
		return serviceOutput{Status: refusal.Code, Context: refusal.Message}
	}
	return serviceOutput{Status: CodeOK, Context: context}
}

type setAuthorizationResponseXML struct {
	XMLName xml.Name      `xml:"urn:si-dmp-habilitations setAuthorizationResponse"`
	Output  serviceOutput `xml:"output"`
}

// BuildSetAuthorizationResponse answers a setAuthorization: DMPOk with
// context, or the refusal's code and message.
func BuildSetAuthorizationResponse(refusal *Fault, context string) ([]byte, error) {
	return xml.Marshal(setAuthorizationResponseXML{Output: outputOf(refusal, context)})
}

// ParseSetAuthorizationResponse reads the answer: nil for DMPOk, a *Fault
// otherwise.
func ParseSetAuthorizationResponse(envelope []byte) error {
	x, err := DecodeBody[setAuthorizationResponseXML](envelope)
	if err != nil {
		return err
	}
	return x.Output.fault()
}
