package dmp

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// The HL7v3 patient services of the DMP ("gestion du dossier patient"):
// TD0.2 existence test and TD1.3a administrative data (PRPA_IN201307UV02
// → PRPA_IN201308UV02), TD1.1 creation (PRPA_IN201311UV02), TD1.2
// reactivation and TD1.4 closing (PRPA_IN201314UV02), each answered in
// the gdp wrapper of the accept or reject interaction. Shapes follow the
// official example messages; validity the annex schemas.

// Service paths and actions of the patient services.
const (
	ServicePatients         = "patients"
	ServiceHabilitations    = "habilitations"
	ServicePatientsSpecific = "patientsSpecific"

	ActionPatientQuery         = "urn:hl7-org:v3:PRPA_IN201307UV02"
	ActionPatientQueryResponse = "urn:hl7-org:v3:PRPA_IN201308UV02"
	ActionPatientAdd           = "urn:hl7-org:v3:PRPA_IN201311UV02"
	ActionPatientAddResponse   = "urn:hl7-org:v3:PRPA_IN201311ResponseUV02"
	ActionPatientRevise        = "urn:hl7-org:v3:PRPA_IN201314UV02"
	ActionPatientReviseResp    = "urn:hl7-org:v3:PRPA_IN201314ResponseUV02"
)

// Reason codes of the control act (code system 1.2.250.1.213.1.1.4.11).
const (
	ReasonExistence  = "TEST_EXST"
	ReasonConsult    = "CNSLT_DATA"
	ReasonCreate     = "CREA_RD"
	ReasonReactivate = "REAC"
	ReasonClose      = "FERM"
	ReasonModify     = "MODIF_DATA"
)

// Authorization states of a professional on a DMP, as TD0.2 reports them.
const (
	AuthorizationValid     = "VALIDE"
	AuthorizationExpired   = "EXPIRE"
	AuthorizationForbidden = "INTERDIT" // the patient blocked the professional
	AuthorizationNone      = "NON_EXISTE"
)

const (
	oidReason           = "1.2.250.1.213.1.1.4.11"
	oidInteraction      = "2.16.840.1.113883.1.6"
	oidObservation      = "1.2.250.1.213.4.1.2.3"
	oidWebAccount       = "1.2.250.1.213.4.1.2.9"
	oidAuthKeyword      = "1.2.250.1.213.4.1.2.6.1"
	oidAuthValue        = "1.2.250.1.213.4.1.2.6.2"
	oidMTKeyword        = "1.2.250.1.213.4.1.2.6.3"
	oidClosingReason    = "1.2.250.1.213.4.1.2.4"
	hl7Time             = "20060102150405"
	obsConsentOpen      = "CONSENTEMENT_OUVERTURE_DMP"
	obsConsentReact     = "CONSENTEMENT_REACTIVATION_DMP"
	obsOpposeBreak      = "OPPOSITION_BRIS_DE_GLACE"
	obsOpposeUrgence    = "OPPOSITION_ACCES_URGENCE"
	obsWebAccount       = "COMPTE_INTERNET_OUVERT"
	closingOnRequest    = "FERMETURE_DEMANDE_PATIENT"
	dmpSoftwareName     = "DMP"
	interactionQuery    = "PRPA_IN201307UV02"
	interactionQueryR   = "PRPA_IN201308UV02"
	interactionAdd      = "PRPA_IN201311UV02"
	interactionAddOK    = "PRPA_IN201312UV02"
	interactionAddKO    = "PRPA_IN201313UV02"
	interactionRevise   = "PRPA_IN201314UV02"
	interactionReviseOK = "PRPA_IN201315UV02"
	interactionReviseKO = "PRPA_IN201316UV02"
)

// PatientIdentity is a patient's administrative data as the DMP holds it.
// BirthDate is YYYYMMDD text: Vitale dates may be lunar.
type PatientIdentity struct {
	INS       INS
	Given     []string
	UsualName string // qualifier SP
	BirthName string // qualifier BR
	Sex       string // M, F or U
	BirthDate string // YYYYMMDD
}

func (p PatientIdentity) check() error {
	if err := p.INS.Valid(); err != nil {
		return err
	}
	if p.BirthName == "" && p.UsualName == "" {
		return fmt.Errorf("dmp: patient %s has no name", p.INS.Value)
	}
	if len(p.BirthDate) != 8 || strings.Trim(p.BirthDate, "0123456789") != "" {
		return fmt.Errorf("dmp: patient birth date %q is not YYYYMMDD", p.BirthDate)
	}
	switch p.Sex {
	case "M", "F", "U":
	default:
		return fmt.Errorf("dmp: patient sex %q is not M, F or U", p.Sex)
	}
	return nil
}

// hl7Header is the transmission wrapper of one message.
type hl7Header struct {
	ID             string // extension under Root
	Root           string
	Created        time.Time
	ProcessingCode string
	Sender         string // device OID
	SenderName     string
	Receiver       string
	ReceiverName   string
}

// gdpWriter writes HL7v3 interactions.
type gdpWriter struct{ ebWriter }

func (w *gdpWriter) header(h hl7Header, interaction, ack string) {
	w.empty("id", "root", h.Root, "extension", h.ID)
	w.empty("creationTime", "value", h.Created.UTC().Format(hl7Time))
	w.empty("interactionId", "root", oidInteraction, "extension", interaction)
	w.empty("processingCode", "code", h.ProcessingCode)
	w.empty("processingModeCode", "code", "T")
	w.empty("acceptAckCode", "code", ack)
	w.device("receiver", "RCV", h.Receiver, h.ReceiverName)
	w.device("sender", "SND", h.Sender, h.SenderName)
}

func (w *gdpWriter) device(elem, typeCode, id, name string) {
	w.start(elem, "typeCode", typeCode)
	w.start("device", "classCode", "DEV", "determinerCode", "INSTANCE")
	w.empty("id", "root", id)
	if name != "" {
		w.text("softwareName", name)
	}
	w.end("device")
	w.end(elem)
}

// closingReason writes why a DMP was closed: the patient's request, and
// the free text.
func (w *gdpWriter) closingReason(text string) {
	w.start("reasonOf", "typeCode", "RSON")
	w.start("detectedIssueEvent", "classCode", "ALRT", "moodCode", "EVN")
	w.empty("code", "code", closingOnRequest, "codeSystem", oidClosingReason)
	w.text("text", text)
	w.end("detectedIssueEvent")
	w.end("reasonOf")
}

func firstOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (w *gdpWriter) reason(code string) {
	w.empty("reasonCode", "code", code, "codeSystem", oidReason)
}

func (w *gdpWriter) observation(code, system string, v bool, at time.Time) {
	w.start("subjectOf", "typeCode", "SBJ")
	w.start("administrativeObservation", "classCode", "OBS", "moodCode", "EVN")
	w.empty("code", "code", code, "codeSystem", system)
	if !at.IsZero() {
		w.empty("effectiveTime", "value", at.UTC().Format(hl7Time))
	}
	w.empty("value", "xsi:type", "BL", "value", fmt.Sprint(v))
	w.end("administrativeObservation")
	w.end("subjectOf")
}

func (w *gdpWriter) person(p PatientIdentity) { w.personData(p, true) }

// personData writes patientPerson; answers to changes echo the name only,
// as their schema allows.
func (w *gdpWriter) personData(p PatientIdentity, full bool) {
	w.start("patientPerson", "classCode", "PSN", "determinerCode", "INSTANCE")
	w.start("name")
	for _, g := range p.Given {
		w.text("given", g)
	}
	if p.UsualName != "" {
		w.start("family", "qualifier", "SP")
		w.b.WriteString(escape(p.UsualName))
		w.end("family")
	}
	if p.BirthName != "" {
		w.start("family", "qualifier", "BR")
		w.b.WriteString(escape(p.BirthName))
		w.end("family")
	}
	w.end("name")
	if !full {
		w.end("patientPerson")
		return
	}
	if p.Sex != "" {
		w.empty("administrativeGenderCode", "code", p.Sex)
	}
	if p.BirthDate != "" {
		w.empty("birthTime", "value", p.BirthDate)
	}
	w.end("patientPerson")
}

// PatientQuery is a TD0.2 existence test or TD1.3a consultation.
type PatientQuery struct {
	Header  hl7Header
	QueryID string
	Reason  string // ReasonExistence or ReasonConsult
	Patient INS
}

// DMPStatus is the answer to a TD0.2 / TD1.3a query.
type DMPStatus struct {
	Exists             bool
	Closed             bool
	Authorization      string // AuthorizationValid, …Expired, …Forbidden, …None
	AttendingPhysician bool   // the asking professional is an attending physician (STATUT_MT)
	Patient            PatientIdentity
	OpposesBreakGlass  bool
	OpposesCentre15    bool
	WebAccount         bool
	ClosedAt           time.Time
	ClosingReason      string
}

// BuildPatientQuery builds a PRPA_IN201307UV02 body.
func BuildPatientQuery(q PatientQuery) ([]byte, error) {
	if err := q.Patient.Valid(); err != nil {
		return nil, err
	}
	if q.Reason != ReasonExistence && q.Reason != ReasonConsult {
		return nil, fmt.Errorf("dmp: patient query reason %q", q.Reason)
	}
	var w gdpWriter
	w.start(interactionQuery, "xmlns", NSHL7, "xmlns:xsi", NSXSI, "ITSVersion", "XML_1.0")
	w.header(q.Header, interactionQuery, "AL")
	w.start("controlActProcess", "classCode", "CACT", "moodCode", "EVN")
	w.reason(q.Reason)
	w.start("queryByParameter")
	w.empty("queryId", "root", q.Header.Root, "extension", q.QueryID)
	w.empty("statusCode", "code", "new")
	w.start("parameterList")
	w.start("patientIdentifier")
	w.empty("value", "root", q.Patient.OID, "extension", q.Patient.Value)
	w.text("semanticsText", "Patient.id")
	w.end("patientIdentifier")
	w.end("parameterList")
	w.end("queryByParameter")
	w.end("controlActProcess")
	w.end(interactionQuery)
	return w.bytes()
}

// hl7 decoding: tags without a namespace match the HL7 elements whatever
// their prefix.
type (
	gdpValue struct {
		Code  string `xml:"code,attr"`
		Value string `xml:"value,attr"`
	}
	hl7Family struct {
		Qualifier string `xml:"qualifier,attr"`
		Text      string `xml:",chardata"`
	}
	hl7Person struct {
		Name struct {
			Given  []string    `xml:"given"`
			Family []hl7Family `xml:"family"`
		} `xml:"name"`
		Gender gdpValue `xml:"administrativeGenderCode"`
		Birth  gdpValue `xml:"birthTime"`
	}
	hl7Observation struct {
		Code  gdpValue `xml:"administrativeObservation>code"`
		Time  gdpValue `xml:"administrativeObservation>effectiveTime"`
		Value gdpValue `xml:"administrativeObservation>value"`
	}
	hl7Patient struct {
		IDs       []hl7II          `xml:"id"`
		Status    gdpValue         `xml:"statusCode"`
		Person    hl7Person        `xml:"patientPerson"`
		SubjectOf []hl7Observation `xml:"subjectOf"`
	}
	hl7Detail struct {
		Code gdpValue `xml:"code"`
		Text string   `xml:"text"`
	}
	hl7Msg struct {
		ID             hl7II    `xml:"id"`
		Created        gdpValue `xml:"creationTime"`
		Processing     gdpValue `xml:"processingCode"`
		Receiver       hl7II    `xml:"receiver>device>id"`
		ReceiverName   string   `xml:"receiver>device>softwareName"`
		Sender         hl7II    `xml:"sender>device>id"`
		SenderName     string   `xml:"sender>device>softwareName"`
		AttentionLines []struct {
			Keyword gdpValue `xml:"keyWordText"`
			Value   gdpValue `xml:"value"`
		} `xml:"attentionLine"`
		Ack struct {
			TypeCode string      `xml:"typeCode,attr"`
			Target   hl7II       `xml:"targetMessage>id"`
			Details  []hl7Detail `xml:"acknowledgementDetail"`
		} `xml:"acknowledgement"`
		Control struct {
			Reason       gdpValue `xml:"reasonCode"`
			QueryID      hl7II    `xml:"queryByParameter>queryId"`
			QueryPatient hl7II    `xml:"queryByParameter>parameterList>patientIdentifier>value"`
			Event        struct {
				Time    gdpValue   `xml:"effectiveTime"`
				Patient hl7Patient `xml:"subject1>patient"`
			} `xml:"subject>registrationEvent"`
			Request struct {
				Patient  hl7Patient `xml:"subject1>patient"`
				AuthorID hl7II      `xml:"author>assignedEntity>id"`
			} `xml:"subject>registrationRequest"`
			ReasonOf struct {
				Code gdpValue `xml:"code"`
				Text string   `xml:"text"`
			} `xml:"reasonOf>detectedIssueEvent"`
			QueryAck gdpValue `xml:"queryAck>queryResponseCode"`
		} `xml:"controlActProcess"`
	}
)

func (m *hl7Msg) header() (hl7Header, error) {
	t, err := time.Parse(hl7Time, m.Created.Value)
	if err != nil || m.ID.Root == "" || m.Sender.Root == "" {
		return hl7Header{}, fmt.Errorf("%w: HL7 header without id, creation time or sender", ErrMalformed)
	}
	return hl7Header{ID: m.ID.Extension, Root: m.ID.Root, Created: t, ProcessingCode: m.Processing.Code,
		Sender: m.Sender.Root, SenderName: m.SenderName, Receiver: m.Receiver.Root, ReceiverName: m.ReceiverName}, nil
}

// refusal is the fault an HL7 acknowledgement other than AA carries.
func (m *hl7Msg) refusal() error {
	if m.Ack.TypeCode == "AA" || m.Ack.TypeCode == "CA" {
		return nil
	}
	f := &Fault{Code: "HL7" + m.Ack.TypeCode, Source: "hl7"}
	if len(m.Ack.Details) > 0 {
		f.Code, f.Message = m.Ack.Details[0].Code.Code, strings.TrimSpace(m.Ack.Details[0].Text)
	}
	if f.Code == "" {
		f.Code = "HL7" + m.Ack.TypeCode
	}
	return f
}

func (p *hl7Patient) identity() PatientIdentity {
	var out PatientIdentity
	for _, id := range p.IDs {
		if id.Root != OIDINSC {
			out.INS = INS{Value: id.Extension, OID: id.Root}
		}
	}
	out.Given = p.Person.Name.Given
	for _, f := range p.Person.Name.Family {
		switch f.Qualifier {
		case "BR":
			out.BirthName = strings.TrimSpace(f.Text)
		default:
			out.UsualName = strings.TrimSpace(f.Text)
		}
	}
	out.Sex, out.BirthDate = p.Person.Gender.Code, p.Person.Birth.Value
	return out
}

func (p *hl7Patient) observation(code string) (bool, time.Time, bool) {
	for _, o := range p.SubjectOf {
		if o.Code.Code == code {
			t, _ := time.Parse(hl7Time, o.Time.Value)
			return o.Value.Value == "true", t, true
		}
	}
	return false, time.Time{}, false
}

type prpaQuery struct {
	XMLName xml.Name `xml:"urn:hl7-org:v3 PRPA_IN201307UV02"`
	hl7Msg
}

type prpaQueryResponse struct {
	XMLName xml.Name `xml:"urn:hl7-org:v3 PRPA_IN201308UV02"`
	hl7Msg
}

// ParsePatientQuery reads a TD0.2 / TD1.3a request.
func ParsePatientQuery(envelope []byte) (*PatientQuery, error) {
	m, err := DecodeBody[prpaQuery](envelope)
	if err != nil {
		return nil, err
	}
	h, err := m.header()
	if err != nil {
		return nil, err
	}
	q := &PatientQuery{Header: h, QueryID: m.Control.QueryID.Extension, Reason: m.Control.Reason.Code,
		Patient: INS{Value: m.Control.QueryPatient.Extension, OID: m.Control.QueryPatient.Root}}
	if err := q.Patient.Valid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return q, nil
}

// BuildPatientQueryResponse builds the DMP's PRPA_IN201308UV02 answer to q.
func BuildPatientQueryResponse(q *PatientQuery, st DMPStatus, now time.Time) ([]byte, error) {
	var w gdpWriter
	w.start(interactionQueryR, "xmlns", NSHL7, "xmlns:xsi", NSXSI, "ITSVersion", "XML_1.0")
	w.header(hl7Header{Root: OIDDMPSystem + ".1", ID: NewUUID(), Created: now, ProcessingCode: q.Header.ProcessingCode,
		Sender: OIDDMPSystem, SenderName: dmpSoftwareName, Receiver: q.Header.Sender, ReceiverName: q.Header.SenderName}, interactionQueryR, "NE")
	if st.Exists && !st.Closed && st.Authorization != "" {
		w.start("attentionLine")
		w.empty("keyWordText", "code", "AUTORISATION", "codeSystem", oidAuthKeyword)
		w.empty("value", "xsi:type", "CV", "code", st.Authorization, "codeSystem", oidAuthValue)
		w.end("attentionLine")
		w.start("attentionLine")
		w.empty("keyWordText", "code", "STATUT_MT", "codeSystem", oidMTKeyword)
		w.empty("value", "xsi:type", "BL", "value", fmt.Sprint(st.AttendingPhysician))
		w.end("attentionLine")
	}
	w.start("acknowledgement", "typeCode", "AA")
	w.start("targetMessage")
	w.empty("id", "root", q.Header.Root, "extension", q.Header.ID)
	w.end("targetMessage")
	w.end("acknowledgement")
	w.start("controlActProcess", "classCode", "CACT", "moodCode", "EVN")
	w.reason(q.Reason)
	if st.Exists {
		w.start("subject", "typeCode", "SUBJ", "contextConductionInd", "false")
		w.start("registrationEvent", "classCode", "REG", "moodCode", "EVN")
		w.empty("statusCode", "code", "completed")
		if st.Closed && !st.ClosedAt.IsZero() {
			w.empty("effectiveTime", "value", st.ClosedAt.UTC().Format(hl7Time))
		}
		w.start("subject1", "typeCode", "SBJ")
		w.start("patient", "classCode", "PAT")
		w.empty("id", "root", st.Patient.INS.OID, "extension", st.Patient.INS.Value)
		status := "active"
		if st.Closed {
			status = "terminated"
		}
		w.empty("statusCode", "code", status)
		w.person(st.Patient)
		w.observation(obsWebAccount, oidWebAccount, st.WebAccount, time.Time{})
		w.observation(obsOpposeBreak, oidObservation, st.OpposesBreakGlass, time.Time{})
		w.observation(obsOpposeUrgence, oidObservation, st.OpposesCentre15, time.Time{})
		w.end("patient")
		w.end("subject1")
		w.start("custodian", "typeCode", "CST")
		w.start("assignedEntity", "classCode", "ASSIGNED")
		w.empty("id", "root", OIDDMPSystem)
		w.end("assignedEntity")
		w.end("custodian")
		w.end("registrationEvent")
		w.end("subject")
		if st.Closed && st.ClosingReason != "" {
			w.closingReason(st.ClosingReason)
		}
	}
	w.start("queryAck")
	w.empty("queryId", "root", q.Header.Root, "extension", q.QueryID)
	code := "NF"
	if st.Exists {
		code = "OK"
	}
	w.empty("queryResponseCode", "code", code)
	w.end("queryAck")
	w.end("controlActProcess")
	w.end(interactionQueryR)
	return w.bytes()
}

// ParsePatientQueryResponse reads the answer to a TD0.2 / TD1.3a query.
func ParsePatientQueryResponse(envelope []byte) (*DMPStatus, error) {
	m, err := DecodeBody[prpaQueryResponse](envelope)
	if err != nil {
		return nil, err
	}
	if err := m.refusal(); err != nil {
		return nil, err
	}
	st := &DMPStatus{Exists: m.Control.QueryAck.Code == "OK"}
	if !st.Exists {
		if m.Control.QueryAck.Code != "NF" {
			return nil, fmt.Errorf("%w: queryResponseCode %q", ErrMalformed, m.Control.QueryAck.Code)
		}
		return st, nil
	}
	p := &m.Control.Event.Patient
	st.Patient = p.identity()
	st.Closed = p.Status.Code == "terminated"
	st.OpposesBreakGlass, _, _ = p.observation(obsOpposeBreak)
	st.OpposesCentre15, _, _ = p.observation(obsOpposeUrgence)
	st.WebAccount, _, _ = p.observation(obsWebAccount)
	if st.Closed {
		st.ClosedAt, _ = time.Parse(hl7Time, m.Control.Event.Time.Value)
		st.ClosingReason = strings.TrimSpace(m.Control.ReasonOf.Text)
	}
	for _, l := range m.AttentionLines {
		switch l.Keyword.Code {
		case "AUTORISATION":
			st.Authorization = l.Value.Code
		case "STATUT_MT":
			st.AttendingPhysician = l.Value.Value == "true"
		}
	}
	return st, nil
}

// author writes the professional who asks for the change.
func (w *gdpWriter) author(a Professional) {
	w.start("author", "typeCode", "AUT")
	w.start("assignedEntity", "classCode", "ASSIGNED")
	w.empty("id", "root", OIDPSIDNat, "extension", a.IDNat)
	w.empty("code", "code", a.AuthorSpecialty(), "codeSystem", OIDAuthorSpec)
	w.start("assignedPerson", "classCode", "PSN", "determinerCode", "INSTANCE")
	w.start("name")
	w.text("given", a.GivenName)
	w.text("family", a.Surname)
	w.end("name")
	w.end("assignedPerson")
	w.start("representedOrganization", "classCode", "ORG", "determinerCode", "INSTANCE")
	w.empty("id", "root", OIDStructIDNat, "extension", a.StructureID)
	if a.StructureName != "" {
		w.text("name", a.StructureName)
	}
	w.empty("contactParty", "classCode", "CON")
	w.end("representedOrganization")
	w.end("assignedEntity")
	w.end("author")
}

// DMPChange is a TD1.1 creation, TD1.2 reactivation, TD1.3b change of
// administrative data (the identity and the oppositions) or TD1.4 closing.
type DMPChange struct {
	Header  hl7Header
	Reason  string // ReasonCreate, ReasonReactivate, ReasonClose
	Patient PatientIdentity
	// Consent is the patient's consent to the creation or reactivation,
	// captured at the card; Time when it was given.
	Consent          bool
	ConsentTime      time.Time
	OpposeBreakGlass bool
	OpposeCentre15   bool
	CloseReason      string // TD1.4: the patient's reason, free text
	Author           Professional
}

func (c *DMPChange) interaction() string {
	if c.Reason == ReasonCreate {
		return interactionAdd
	}
	return interactionRevise
}

// BuildDMPChange builds the PRPA_IN201311UV02 (creation) or
// PRPA_IN201314UV02 (reactivation, closing) body.
func BuildDMPChange(c DMPChange) ([]byte, error) {
	switch c.Reason {
	case ReasonCreate, ReasonReactivate, ReasonClose, ReasonModify:
	default:
		return nil, fmt.Errorf("dmp: DMP change reason %q", c.Reason)
	}
	if err := c.Patient.check(); err != nil {
		return nil, err
	}
	if err := c.Author.Valid(); err != nil {
		return nil, err
	}
	interaction := c.interaction()
	var w gdpWriter
	w.start(interaction, "xmlns", NSHL7, "xmlns:xsi", NSXSI, "ITSVersion", "XML_1.0")
	w.header(c.Header, interaction, "AL")
	w.start("controlActProcess", "classCode", "CACT", "moodCode", "EVN")
	w.reason(c.Reason)
	w.start("subject", "typeCode", "SUBJ", "contextConductionInd", "false")
	w.start("registrationRequest", "classCode", "REG", "moodCode", "RQO")
	w.empty("statusCode", "code", "active")
	w.start("subject1", "typeCode", "SBJ")
	w.start("patient", "classCode", "PAT")
	w.empty("id", "root", c.Patient.INS.OID, "extension", c.Patient.INS.Value)
	status := "active"
	if c.Reason == ReasonClose {
		status = "terminated"
	}
	w.empty("statusCode", "code", status)
	w.person(c.Patient)
	// The schema wants the provider organization here; the DMP has none.
	w.empty("providerOrganization", "xsi:nil", "true", "classCode", "ORG", "determinerCode", "INSTANCE")
	switch c.Reason {
	case ReasonCreate:
		w.observation(obsConsentOpen, oidObservation, c.Consent, c.ConsentTime)
		w.observation(obsOpposeBreak, oidObservation, c.OpposeBreakGlass, time.Time{})
		w.observation(obsOpposeUrgence, oidObservation, c.OpposeCentre15, time.Time{})
	case ReasonReactivate:
		w.observation(obsConsentReact, oidObservation, c.Consent, c.ConsentTime)
	case ReasonModify:
		w.observation(obsOpposeBreak, oidObservation, c.OpposeBreakGlass, time.Time{})
		w.observation(obsOpposeUrgence, oidObservation, c.OpposeCentre15, time.Time{})
	}
	w.end("patient")
	w.end("subject1")
	w.author(c.Author)
	w.end("registrationRequest")
	w.end("subject")
	if c.Reason == ReasonClose {
		w.closingReason(firstOr(c.CloseReason, closingOnRequest))
	}
	w.end("controlActProcess")
	w.end(interaction)
	return w.bytes()
}

type prpaAdd struct {
	XMLName xml.Name `xml:"urn:hl7-org:v3 PRPA_IN201311UV02"`
	hl7Msg
}

type prpaRevise struct {
	XMLName xml.Name `xml:"urn:hl7-org:v3 PRPA_IN201314UV02"`
	hl7Msg
}

// ParseDMPChange reads a TD1.1, TD1.2 or TD1.4 request.
func ParseDMPChange(envelope []byte) (*DMPChange, error) {
	var m *hl7Msg
	if add, err := DecodeBody[prpaAdd](envelope); err == nil {
		m = &add.hl7Msg
	} else if rev, err2 := DecodeBody[prpaRevise](envelope); err2 == nil {
		m = &rev.hl7Msg
	} else {
		return nil, err2
	}
	h, err := m.header()
	if err != nil {
		return nil, err
	}
	p := &m.Control.Request.Patient
	c := &DMPChange{Header: h, Reason: m.Control.Reason.Code, Patient: p.identity(),
		CloseReason: strings.TrimSpace(m.Control.ReasonOf.Text)}
	if c.CloseReason == closingOnRequest {
		c.CloseReason = ""
	}
	consent := obsConsentOpen
	if c.Reason == ReasonReactivate {
		consent = obsConsentReact
	}
	c.Consent, c.ConsentTime, _ = p.observation(consent)
	c.OpposeBreakGlass, _, _ = p.observation(obsOpposeBreak)
	c.OpposeCentre15, _, _ = p.observation(obsOpposeUrgence)
	c.Author.IDNat = m.Control.Request.AuthorID.Extension
	if err := c.Patient.INS.Valid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return c, nil
}

// BuildDMPChangeResponse builds the DMP's answer to a creation,
// reactivation or closing: the gdp wrapper holding the accept interaction,
// or the reject one carrying refusal.
func BuildDMPChangeResponse(c *DMPChange, refusal *Fault, now time.Time) ([]byte, error) {
	wrapper, ok, ko := "PRPA_IN201314UV02_Response", interactionReviseOK, interactionReviseKO
	if c.Reason == ReasonCreate {
		wrapper, ok, ko = "PRPA_IN201311UV02_Response", interactionAddOK, interactionAddKO
	}
	interaction, typeCode := ok, "AA"
	if refusal != nil {
		interaction, typeCode = ko, "AE"
	}
	var w gdpWriter
	w.start("gdp:"+wrapper, "xmlns:gdp", NSGDP)
	w.start(interaction, "xmlns", NSHL7, "xmlns:xsi", NSXSI, "ITSVersion", "XML_1.0")
	w.header(hl7Header{Root: OIDDMPSystem + ".1", ID: NewUUID(), Created: now, ProcessingCode: c.Header.ProcessingCode,
		Sender: OIDDMPSystem, SenderName: dmpSoftwareName, Receiver: c.Header.Sender, ReceiverName: c.Header.SenderName}, interaction, "NE")
	w.start("acknowledgement", "typeCode", typeCode)
	w.start("targetMessage")
	w.empty("id", "root", c.Header.Root, "extension", c.Header.ID)
	w.end("targetMessage")
	if refusal != nil {
		w.start("acknowledgementDetail", "typeCode", "E")
		w.empty("code", "code", refusal.Code)
		if refusal.Message != "" {
			w.text("text", refusal.Message)
		}
		w.end("acknowledgementDetail")
	}
	w.end("acknowledgement")
	w.start("controlActProcess", "classCode", "CACT", "moodCode", "EVN")
	w.reason(c.Reason)
	{
		// The schema wants the registration event in a reject too.
		w.start("subject", "typeCode", "SUBJ", "contextConductionInd", "false")
		// An accept reports the registration; a reject echoes the request.
		event, mood, state := "registrationEvent", "EVN", "completed"
		if refusal != nil {
			event, mood, state = "registrationRequest", "RQO", "active"
		}
		w.start(event, "classCode", "REG", "moodCode", mood)
		w.empty("statusCode", "code", state)
		w.start("subject1", "typeCode", "SBJ")
		w.start("patient", "classCode", "PAT")
		w.empty("id", "root", c.Patient.INS.OID, "extension", c.Patient.INS.Value)
		status := "active"
		if c.Reason == ReasonClose {
			status = "terminated"
		}
		w.empty("statusCode", "code", status)
		if refusal != nil {
			w.person(c.Patient)
			w.empty("providerOrganization", "xsi:nil", "true", "classCode", "ORG", "determinerCode", "INSTANCE")
			w.end("patient")
			w.end("subject1")
			w.author(c.Author)
		} else {
			w.personData(c.Patient, false)
			w.end("patient")
			w.end("subject1")
			w.start("custodian", "typeCode", "CST")
			w.start("assignedEntity", "classCode", "ASSIGNED")
			w.empty("id", "root", OIDDMPSystem)
			w.end("assignedEntity")
			w.end("custodian")
		}
		w.end(event)
		w.end("subject")
	}
	w.end("controlActProcess")
	w.end(interaction)
	w.end("gdp:" + wrapper)
	return w.bytes()
}

// gdpResponse is either wrapper, holding either interaction.
type gdpResponse struct {
	XMLName  xml.Name
	Accept   *hl7Msg `xml:"PRPA_IN201312UV02"`
	Reject   *hl7Msg `xml:"PRPA_IN201313UV02"`
	Accept14 *hl7Msg `xml:"PRPA_IN201315UV02"`
	Reject14 *hl7Msg `xml:"PRPA_IN201316UV02"`
}

// ParseDMPChangeResponse reads the answer to a creation, reactivation or
// closing: nil when accepted, the refusal as a *Fault otherwise.
func ParseDMPChangeResponse(envelope []byte) error {
	r, err := DecodeBody[gdpResponse](envelope)
	if err != nil {
		return err
	}
	if r.XMLName.Space != NSGDP || (r.XMLName.Local != "PRPA_IN201311UV02_Response" && r.XMLName.Local != "PRPA_IN201314UV02_Response") {
		return fmt.Errorf("%w: %s is not a gdp response", ErrMalformed, r.XMLName.Local)
	}
	for _, m := range []*hl7Msg{r.Accept, r.Reject, r.Accept14, r.Reject14} {
		if m != nil {
			if err := m.refusal(); err != nil {
				return err
			}
			if m.Ack.TypeCode == "" {
				return fmt.Errorf("%w: gdp response without acknowledgement", ErrMalformed)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: empty gdp response", ErrMalformed)
}
