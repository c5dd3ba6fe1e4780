package dmp

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"
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

// Modes of TD1.6: the authorized professionals, the blocked ones, or all.
const (
	ListActive    = "ACTIVE"
	ListForbidden = "INTERDITE"
	ListAll       = "TOUTE"
)

// Authorization is one professional's standing on a DMP (TD1.6).
type Authorization struct {
	IDNat     string
	FirstName string
	LastName  string
	Since     time.Time
	Mode      string // ListActive or ListForbidden
	Attending bool   // MEDECIN_TRAITANT
}

type listAuthorizationsXML struct {
	XMLName xml.Name `xml:"urn:si-dmp-habilitations listAuthorizationByPatient"`
	Mode    string   `xml:"mode"`
}

type authorizationXML struct {
	NationalID     string   `xml:"nationalId,omitempty"`
	NationalIDType string   `xml:"nationalIdType,omitempty"`
	FirstName      string   `xml:"firstName,omitempty"`
	LastName       string   `xml:"lastName,omitempty"`
	Start          string   `xml:"startOfAuthorization,omitempty"`
	Mode           string   `xml:"mode,omitempty"`
	Rights         []string `xml:"specificRight"`
}

type listAuthorizationsResponseXML struct {
	XMLName xml.Name `xml:"urn:si-dmp-habilitations listAuthorizationByPatientResponse"`
	Output  struct {
		List    []authorizationXML `xml:"listOfAuthorizationByPatient"`
		Status  string             `xml:"status"`
		Context string             `xml:"context,omitempty"`
	} `xml:"output"`
}

// BuildListAuthorizations builds the listAuthorizationByPatient body.
func BuildListAuthorizations(mode string) ([]byte, error) {
	switch mode {
	case ListActive, ListForbidden, ListAll:
	default:
		return nil, fmt.Errorf("dmp: authorization list mode %q", mode)
	}
	return xml.Marshal(listAuthorizationsXML{Mode: mode})
}

// ParseListAuthorizations reads its mode.
func ParseListAuthorizations(envelope []byte) (string, error) {
	x, err := DecodeBody[listAuthorizationsXML](envelope)
	if err != nil {
		return "", err
	}
	switch x.Mode {
	case ListActive, ListForbidden, ListAll:
		return x.Mode, nil
	case "":
		return ListAll, nil
	}
	return "", fmt.Errorf("%w: mode %q", ErrMalformed, x.Mode)
}

// BuildListAuthorizationsResponse answers TD1.6.
func BuildListAuthorizationsResponse(list []Authorization, refusal *Fault) ([]byte, error) {
	var x listAuthorizationsResponseXML
	out := outputOf(refusal, "")
	x.Output.Status, x.Output.Context = out.Status, out.Context
	for _, a := range list {
		ax := authorizationXML{NationalID: a.IDNat, NationalIDType: OIDPSIDNat, FirstName: a.FirstName, LastName: a.LastName, Mode: a.Mode}
		if !a.Since.IsZero() {
			ax.Start = a.Since.UTC().Format(hl7Time)
		}
		if a.Attending {
			ax.Rights = []string{roleAttending}
		}
		x.Output.List = append(x.Output.List, ax)
	}
	return xml.Marshal(x)
}

// ParseListAuthorizationsResponse reads the answer to TD1.6.
func ParseListAuthorizationsResponse(envelope []byte) ([]Authorization, error) {
	x, err := DecodeBody[listAuthorizationsResponseXML](envelope)
	if err != nil {
		return nil, err
	}
	if err := (serviceOutput{Status: x.Output.Status, Context: x.Output.Context}).fault(); err != nil {
		return nil, err
	}
	var out []Authorization
	for _, a := range x.Output.List {
		since, _ := time.Parse(hl7Time, a.Start)
		out = append(out, Authorization{IDNat: a.NationalID, FirstName: a.FirstName, LastName: a.LastName, Since: since,
			Mode: a.Mode, Attending: slices.Contains(a.Rights, roleAttending)})
	}
	return out, nil
}

// ListAuthorizations lists the professionals authorized on, or blocked
// from, the patient's DMP (TD1.6).
func (c *Client) ListAuthorizations(ctx context.Context, actor Actor, ins INS, mode string) ([]Authorization, error) {
	body, err := BuildListAuthorizations(mode)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, request{service: ServiceHabilitations, action: ActionListAuthorizations, actor: actor, patient: &ins, body: body})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	return ParseListAuthorizationsResponse(rep.envelope)
}

// Date kinds of TD0.4.
const (
	SinceAuthorization = "LASTAUTORIZATION"
	SinceDocument      = "LASTDOC"
)

// PatientEntry is one DMP of the TD0.4 list.
type PatientEntry struct {
	INS                INS
	LastName           string
	FirstName          string
	BirthDate          string // YYYYMMDD
	AttendingPhysician bool
}

type patientListXML struct {
	XMLName   xml.Name `xml:"urn:si-dmp-patients patientList"`
	StartDate string   `xml:"startDate"`
	DateType  string   `xml:"dateType"`
}

type patientIDXML struct {
	NationalID     string `xml:"nationalId"`
	NationalIDType string `xml:"nationalIdType"`
}

type patientDataXML struct {
	IDs       []patientIDXML `xml:"patientIdentifier"`
	LastName  string         `xml:"lastName,omitempty"`
	FirstName string         `xml:"firstName,omitempty"`
	Birth     string         `xml:"dateOfBirth,omitempty"`
	MT        bool           `xml:"MT"`
	Message   bool           `xml:"message"`
}

type patientListResponseXML struct {
	XMLName xml.Name `xml:"urn:si-dmp-patients patientListResponse"`
	Output  struct {
		Data    []patientDataXML `xml:"patientlistData"`
		Status  string           `xml:"status"`
		Context string           `xml:"context,omitempty"`
	} `xml:"output"`
}

// BuildPatientList builds the patientList body: the DMPs the professional
// may access, changed since the given time.
func BuildPatientList(since time.Time, dateType string) ([]byte, error) {
	if dateType != SinceAuthorization && dateType != SinceDocument {
		return nil, fmt.Errorf("dmp: patient list date type %q", dateType)
	}
	return xml.Marshal(patientListXML{StartDate: since.UTC().Format(hl7Time), DateType: dateType})
}

// ParsePatientList reads a patientList request.
func ParsePatientList(envelope []byte) (time.Time, string, error) {
	x, err := DecodeBody[patientListXML](envelope)
	if err != nil {
		return time.Time{}, "", err
	}
	since, err := time.Parse(hl7Time, x.StartDate)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: startDate %q", ErrMalformed, x.StartDate)
	}
	return since, x.DateType, nil
}

// BuildPatientListResponse answers TD0.4.
func BuildPatientListResponse(list []PatientEntry, refusal *Fault) ([]byte, error) {
	var x patientListResponseXML
	out := outputOf(refusal, "")
	x.Output.Status, x.Output.Context = out.Status, out.Context
	for _, p := range list {
		x.Output.Data = append(x.Output.Data, patientDataXML{IDs: []patientIDXML{{p.INS.Value, p.INS.OID}},
			LastName: p.LastName, FirstName: p.FirstName, Birth: p.BirthDate, MT: p.AttendingPhysician})
	}
	return xml.Marshal(x)
}

// ParsePatientListResponse reads the answer to TD0.4.
func ParsePatientListResponse(envelope []byte) ([]PatientEntry, error) {
	x, err := DecodeBody[patientListResponseXML](envelope)
	if err != nil {
		return nil, err
	}
	if err := (serviceOutput{Status: x.Output.Status, Context: x.Output.Context}).fault(); err != nil {
		return nil, err
	}
	var out []PatientEntry
	for _, d := range x.Output.Data {
		p := PatientEntry{LastName: d.LastName, FirstName: d.FirstName, BirthDate: d.Birth, AttendingPhysician: d.MT}
		for _, id := range d.IDs {
			if id.NationalIDType != OIDINSC {
				p.INS = INS{Value: id.NationalID, OID: id.NationalIDType}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// ListPatients lists the DMPs the professional may access (TD0.4).
func (c *Client) ListPatients(ctx context.Context, actor Actor, since time.Time, dateType string) ([]PatientEntry, error) {
	body, err := BuildPatientList(since, dateType)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, request{service: ServicePatientsSpecific, action: ActionPatientList, actor: actor, body: body})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	return ParsePatientListResponse(rep.envelope)
}
