package dmp

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// XDS.b metadata of the DMP's document transactions (TD2.1, TD3.1–TD3.3):
// the DocumentEntry, SubmissionSet and Association values that ebrim.go
// encodes, the CI-SIS codes they carry, and the typeCode→classCode table.

// Service paths of the XDS.b endpoints under the services root.
const (
	ServiceRegistry   = "registry"   // ITI-18, ITI-57
	ServiceRepository = "repository" // ITI-41, ITI-43
)

// WS-Addressing actions of the XDS.b transactions. The ITI-57 response
// action is the one the DMP sends in the official examples, with a hyphen
// that the IHE profile does not have; readers should not depend on it.
const (
	ActionITI41         = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
	ActionITI41Response = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
	ActionITI18         = "urn:ihe:iti:2007:RegistryStoredQuery"
	ActionITI18Response = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
	ActionITI43         = "urn:ihe:iti:2007:RetrieveDocumentSet"
	ActionITI43Response = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
	ActionITI57         = "urn:ihe:iti:2010:UpdateDocumentSet"
	ActionITI57Response = "urn:ihe:iti:2010:UpdateDocumentSet-Response"
)

// Availability statuses of a DocumentEntry (JDV_J52).
const (
	StatusApproved   = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
	StatusDeprecated = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
	StatusArchived   = "urn:asip:ci-sis:2010:StatusType:Archived"
	StatusDeleted    = "urn:asip:ci-sis:2010:StatusType:Deleted"
)

// Association types.
const (
	AssocHasMember                = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
	AssocReplace                  = "urn:ihe:iti:2007:AssociationType:RPLC"
	AssocSigns                    = "urn:ihe:iti:2007:AssociationType:signs"
	AssocUpdateAvailabilityStatus = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
)

// Association slot names.
const (
	SlotSubmissionSetStatus = "SubmissionSetStatus"
	SlotPreviousVersion     = "PreviousVersion"
	SlotOriginalStatus      = "OriginalStatus"
	SlotNewStatus           = "NewStatus"
)

// ebRIM object types and classification schemes of the XDS metadata
// (IHE ITI TF-3 §4.2.5).
const (
	ObjectTypeStableEntry = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
	objectTypeAssociation = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"

	uuidDEAuthor          = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
	uuidDEClassCode       = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
	uuidDEConfidentiality = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
	uuidDEEventCode       = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
	uuidDEFormatCode      = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
	uuidDEFacilityType    = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
	uuidDEPracticeSetting = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
	uuidDETypeCode        = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
	uuidDEPatientID       = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
	uuidDEUniqueID        = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

	uuidSSNode        = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
	uuidSSAuthor      = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
	uuidSSContentType = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
	uuidSSPatientID   = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
	uuidSSSourceID    = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
	uuidSSUniqueID    = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
)

// Code systems (codingScheme values) of the DMP metadata.
const (
	SchemeClassCode       = "1.2.250.1.213.1.1.4.1"   // TRE_A03 ClasseDocument
	SchemeLOINC           = "2.16.840.1.113883.6.1"   // typeCode, eventCode
	SchemeTypeComplement  = "1.2.250.1.213.1.1.4.12"  // TRE_A05 TypeDocComplementaire
	SchemeConfidentiality = "2.16.840.1.113883.5.25"  // HL7 Confidentiality (N, R, V)
	SchemeVisibility      = "1.2.250.1.213.1.1.4.13"  // TRE_A07 StatutVisibiliteDocument
	SchemeIHEFormat       = "1.3.6.1.4.1.19376.1.2.3" // TRE_A11 IheFormatCode
	SchemeFormatCISIS     = "1.2.250.1.213.1.1.4.2.282"
	SchemeSector          = OIDSector               // TRE_R02, facility type
	SchemePracticeSetting = "1.2.250.1.213.1.1.4.9" // TRE_A01 CadreExercice
	SchemeActivityType    = "1.2.250.1.213.2.2"     // TRE_R209, contentTypeCode
	SchemeURN             = "URN"                   // TRE_A10
	SchemeASTM            = "ASTM"                  // TRE_A12
	SchemeSignatureType   = "1.2.840.10065.1.12"    // ASTM E1762 purposes of signature
)

// Code is a coded metadata value: the code, its code system (an OID, or the
// literal URN/ASTM of the signature codes) and its display name.
type Code struct {
	Code, Scheme, Display string
}

// Confidentiality and visibility codes (JDV_J58).
var (
	ConfidentialityNormal  = Code{"N", SchemeConfidentiality, "Normal"}
	MaskedFromProfessional = Code{"MASQUE_PS", SchemeVisibility, "Masqué aux professionnels de santé"}
	InvisibleToPatient     = Code{"INVISIBLE_PATIENT", SchemeVisibility, "Non visible par le patient"}
	InvisibleToLegalReps   = Code{"INVISIBLE_REPRESENTANTS_LEGAUX", SchemeVisibility, "Non visible par les représentants légaux du patient"}
)

// Format and coded values of a PDF carried in a CDA R2 level-1 document and
// of the submission-set signature (XDS-FACTS §2.2).
var (
	FormatPDFInCDA       = Code{"urn:ihe:iti:xds-sd:pdf:2008", SchemeIHEFormat, "Document à corps non structuré en Pdf/A-1"}
	ClassSignature       = Code{"urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", SchemeURN, "Digital Signature"}
	TypeSignature        = Code{"E1762", SchemeASTM, "Full Document"}
	FormatSignature      = Code{"http://www.w3.org/2000/09/xmldsig#", SchemeURN, "Default Signature Style"}
	EventSignatureSource = Code{"1.2.840.10065.1.12.1.14", SchemeSignatureType, "Source"}
)

// Author is the author of a document or submission set: a professional, his
// specialty (TRE_A02 combined code such as G15_10/SM26) and his structure.
type Author struct {
	IDNat, Surname, GivenName string
	Specialty, SpecialtyLabel string
	InstitutionName           string
	InstitutionID             string // Struct_IdNat, e.g. 499900063480001
}

// AuthorFromProfessional is the XDS author of documents a professional
// submits. The specialty's display is the profession's label: the card
// carries no label for the combined TRE_A02 code.
func AuthorFromProfessional(p Professional) Author {
	return Author{
		IDNat: p.IDNat, Surname: p.Surname, GivenName: p.GivenName,
		Specialty: p.AuthorSpecialty(), SpecialtyLabel: p.ProfessionLabel,
		InstitutionName: p.StructureName, InstitutionID: p.StructureID,
	}
}

// Person renders the authorPerson XCN:
// "899900063480^LIBRE^Max^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS".
func (a Author) Person() string {
	if a.IDNat == "" && a.Surname == "" {
		return ""
	}
	return a.IDNat + "^" + a.Surname + "^" + a.GivenName + "^^^^^^&" + OIDPSIDNat + "&ISO^D^^^IDNPS"
}

// Institution renders the authorInstitution XON:
// "CABINET DR LIBRE^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^499900063480001".
func (a Author) Institution() string {
	if a.InstitutionName == "" && a.InstitutionID == "" {
		return ""
	}
	return a.InstitutionName + "^^^^^&" + OIDStructIDNat + "&ISO^IDNST^^^" + a.InstitutionID
}

// SpecialtyCE renders the authorSpecialty CE "G15_10/SM26^label^1.2.250.1.213.1.1.4.5".
func (a Author) SpecialtyCE() string {
	if a.Specialty == "" {
		return ""
	}
	return a.Specialty + "^" + a.SpecialtyLabel + "^" + OIDAuthorSpec
}

// setPerson reads an XCN: id, family name, given name. Assigning authority
// and identifier type are not kept: the DMP's authors are professionals
// (IDNPS), and the other kinds read the same three components.
func (a *Author) setPerson(xcn string) {
	f := strings.SplitN(xcn, "^", 4)
	a.IDNat = f[0]
	if len(f) > 1 {
		a.Surname = f[1]
	}
	if len(f) > 2 {
		a.GivenName = f[2]
	}
}

// setInstitution reads an XON: the name (XON.1) and the identifier (XON.10).
func (a *Author) setInstitution(xon string) {
	f := strings.SplitN(xon, "^", 11)
	a.InstitutionName = f[0]
	if len(f) > 9 {
		a.InstitutionID = f[9]
	}
}

// setSpecialty reads a CE: code and display.
func (a *Author) setSpecialty(ce string) {
	f := strings.SplitN(ce, "^", 3)
	a.Specialty = f[0]
	if len(f) > 1 {
		a.SpecialtyLabel = f[1]
	}
}

// DocumentEntry is the metadata of one document (ebRIM ExtrinsicObject).
// Zero values are left out when building. ID is the entryUUID ("urn:uuid:…")
// in registry answers and a symbolic id ("Document01") in submissions;
// LogicalID, Status, Version, Hash, Size and RepositoryUniqueID are set by
// the DMP and carried back by queries (and by ITI-57 updates).
type DocumentEntry struct {
	ID, LogicalID, UniqueID string
	Status, Version         string
	MimeType                string
	Title, Comments         string
	Language                string // fr-FR; "art" for the signature
	CreationTime            time.Time
	ServiceStart            time.Time
	ServiceStop             time.Time
	// Authors holds one author or more: XDS allows several (1..*), and
	// registry answers may carry them.
	Authors            []Author
	LegalAuthenticator string // XCN, as Author.Person renders it
	Class, Type        Code
	Format             Code
	FacilityType       Code
	PracticeSetting    Code
	Confidentiality    []Code // N first, then TRE_A07 visibility codes
	EventCodes         []Code
	Patient            INS
	SourcePatientID    string   // CX: the local id (IPP) or the INS
	SourcePatientInfo  []string // "PID-5|FAMILY^Given^^^^^L", "PID-7|19760717", "PID-8|F"
	Hash               string   // SHA-1, lowercase hex
	Size               int64
	RepositoryUniqueID string
}

// HasConfidentiality reports whether the entry carries the code (compared
// by code and scheme, not display).
func (e *DocumentEntry) HasConfidentiality(c Code) bool {
	for _, x := range e.Confidentiality {
		if x.Code == c.Code && x.Scheme == c.Scheme {
			return true
		}
	}
	return false
}

// Validate reports the required metadata (XDS-FACTS §1.5, R) that the entry
// lacks, so that a client fails before the DMP refuses the submission.
func (e *DocumentEntry) Validate() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"id", e.ID != ""}, {"uniqueId", e.UniqueID != ""}, {"mimeType", e.MimeType != ""},
		{"title", e.Title != ""}, {"languageCode", e.Language != ""},
		{"creationTime", !e.CreationTime.IsZero()}, {"author", len(e.Authors) > 0},
		{"classCode", e.Class.Code != ""}, {"typeCode", e.Type.Code != ""}, {"formatCode", e.Format.Code != ""},
		{"healthcareFacilityTypeCode", e.FacilityType.Code != ""}, {"practiceSettingCode", e.PracticeSetting.Code != ""},
		{"confidentialityCode", len(e.Confidentiality) > 0}, {"patientId", e.Patient.Value != ""},
		{"sourcePatientId", e.SourcePatientID != ""},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dmp: document entry %q lacks %s", e.ID, strings.Join(missing, ", "))
	}
	return nil
}

// SubmissionSet is the metadata of a submission (ebRIM RegistryPackage).
type SubmissionSet struct {
	ID             string // symbolic in requests, e.g. SubmissionSet01
	UniqueID       string
	SourceID       string // OID of the submitting system
	Title          string
	Comments       string
	SubmissionTime time.Time
	// Author is single: the DMP's submission-set model has 1..1.
	Author      Author
	ContentType Code // JDV_J59, e.g. 04 Hospitalisation de jour / 1.2.250.1.213.2.2
	Patient     INS
}

// Validate reports the required metadata the submission set lacks.
func (s *SubmissionSet) Validate() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"id", s.ID != ""}, {"uniqueId", s.UniqueID != ""}, {"sourceId", s.SourceID != ""},
		{"submissionTime", !s.SubmissionTime.IsZero()}, {"author", s.Author.Person() != ""},
		{"contentTypeCode", s.ContentType.Code != ""}, {"patientId", s.Patient.Value != ""},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dmp: submission set %q lacks %s", s.ID, strings.Join(missing, ", "))
	}
	return nil
}

// Slot is a named list of values. Slices of slots keep the order in which
// they were written, so built messages are deterministic.
type Slot struct {
	Name   string
	Values []string
}

// Association links two registry objects (HasMember, RPLC, signs,
// UpdateAvailabilityStatus).
type Association struct {
	ID, Type, Source, Target string
	Slots                    []Slot
}

// Slot returns the values of the first slot with that name.
func (a *Association) Slot(name string) []string {
	for _, s := range a.Slots {
		if s.Name == name {
			return s.Values
		}
	}
	return nil
}

// SlotValue returns the first value of the named slot, or "".
func (a *Association) SlotValue(name string) string {
	if v := a.Slot(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// HasMember is the association putting an entry in a submission set, with
// SubmissionSetStatus=Original as every DMP example carries.
func HasMember(id, submissionSet, entry string) Association {
	return Association{ID: id, Type: AssocHasMember, Source: submissionSet, Target: entry,
		Slots: []Slot{{SlotSubmissionSetStatus, []string{"Original"}}}}
}

// SignsAssociation is the association from the signature entry to the
// submission set it signs (XDS-FACTS §2.2).
func SignsAssociation(id, signature, submissionSet string) Association {
	return Association{ID: id, Type: AssocSigns, Source: signature, Target: submissionSet,
		Slots: []Slot{{SlotSubmissionSetStatus, []string{"Original"}}}}
}

// ReplaceAssociation is the RPLC association of a replacement (TD2.1b): the
// new entry replaces the entry whose entryUUID is replaced. It carries no
// slot: the SubmissionSetStatus some clients add is meaningless on RPLC.
func ReplaceAssociation(id, newEntry, replaced string) Association {
	return Association{ID: id, Type: AssocReplace, Source: newEntry, Target: replaced}
}

// ClassForType returns the classCode (TRE_A03) the DMP derives from a
// typeCode (ASS_X16, v20240223); ok is false for a typeCode outside the
// table, which the DMP refuses.
func ClassForType(typeCode string) (Code, bool) {
	t, ok := typeTable[typeCode]
	if !ok {
		return Code{}, false
	}
	return t.class, true
}

// typeSchemeOf returns the code system of a typeCode of the table.
func typeSchemeOf(typeCode string) string { return typeTable[typeCode].scheme }

type typeRow struct {
	scheme string
	class  Code
}

var classLabels = map[string]string{
	"10": "Compte rendu", "11": "Synthèse", "31": "Imagerie médicale", "42": "Prescription",
	"43": "Dispensation", "44": "Plan de soins, protocole de soins", "45": "Traitement administré",
	"52": "Certificat, déclaration", "60": "Données de remboursement",
	"90": "Autres documents déposés par le patient", "95": "Document de gestion",
}

// typeTable is ASS_X16-CorrespondanceType-Classe-DMP: class → LOINC and
// TRE_A05 typeCodes (XDS-FACTS §1.4).
var typeTable = func() map[string]typeRow {
	rows := []struct {
		class        string
		loinc, trA05 string
	}{
		{"10", "11488-4 11490-0 11502-2 11505-5 11506-3 11526-1 15507-7 15508-5 28653-4 29274-8 34112-3 34749-2 34794-8 " +
			"34874-8 34875-5 47420-5 51969-4 59283-2 60568-3 67851-6 70004-7 75482-0 75492-9 75496-0 77436-4 78513-9 " +
			"78601-2 83981-1 85208-7 93024-8 96349-6", "BIL_AUTO DOCPAT03 DOCPAT05 DOCPAT06"},
		{"11", "18761-7 34133-9 34842-5 56445-0 57055-6 57057-2 57075-4 60591-5 68599-0 68817-6 74207-2 78489-2 80820-4 " +
			"83836-7 83901-9 88348-8 89235-6", "SYNTH DOCPAT01 DOCPAT08"},
		{"31", "18748-4 52040-3", "IMG-KOS DOCPAT04"},
		{"42", "55115-0 57828-6 57832-8 57833-6 61357-0 75468-9",
			"PRESC-AAT PRESC-BIO PRESC-KINE PRESC-INF PRESC-PEDI PRESC-ORTHOPHO PRESC-ORTHOPTIE DOCPAT02"},
		{"43", "60593-1", "DISP_AUT"},
		{"44", "18776-5 77604-7 80771-9 80788-3 83869-8", "PROT_ALD"},
		{"45", "80565-5", ""},
		{"52", "11369-6 87273-9 89601-9 96173-0 96874-3", "CERT_DECL DOCPAT07"},
		{"60", "", "REMB"},
		{"90", "74465-6", "EXPPAT_1 EXPPAT_2 EXPPAT_3"},
		{"95", "59284-0 86531-1", "AUTORIS-SOINS ATTEST-RESID ATTEST-DROITS-AM ATTEST-ASS-COMPL ATTEST-HEBGT DOCPAT09"},
	}
	m := map[string]typeRow{TypeSignature.Code: {SchemeASTM, ClassSignature}}
	for _, r := range rows {
		class := Code{r.class, SchemeClassCode, classLabels[r.class]}
		for _, t := range strings.Fields(r.loinc) {
			m[t] = typeRow{SchemeLOINC, class}
		}
		for _, t := range strings.Fields(r.trA05) {
			m[t] = typeRow{SchemeTypeComplement, class}
		}
	}
	return m
}()

// ErrUnknownType is a typeCode outside the DMP's type→class table.
var ErrUnknownType = errors.New("dmp: typeCode not in the DMP type→class table (ASS_X16)")

// NewPDFEntry completes the metadata of a PDF carried in a CDA R2 level-1
// document: mimeType text/xml, formatCode urn:ihe:iti:xds-sd:pdf:2008, the
// typeCode's code system and the classCode derived from it, language fr-FR
// and confidentiality N when unset. Fields already set are kept.
func NewPDFEntry(e DocumentEntry) (DocumentEntry, error) {
	class, ok := ClassForType(e.Type.Code)
	if !ok || class == ClassSignature {
		return e, fmt.Errorf("%w: %q", ErrUnknownType, e.Type.Code)
	}
	if e.Type.Scheme == "" {
		e.Type.Scheme = typeSchemeOf(e.Type.Code)
	}
	if e.Class.Code == "" {
		e.Class = class
	}
	if e.Format.Code == "" {
		e.Format = FormatPDFInCDA
	}
	if e.MimeType == "" {
		e.MimeType = "text/xml"
	}
	if e.Language == "" {
		e.Language = "fr-FR"
	}
	if len(e.Confidentiality) == 0 {
		e.Confidentiality = []Code{ConfidentialityNormal}
	}
	return e, nil
}

// SignatureEntry is the DocumentEntry of the XAdES signature of a
// submission set (XDS-FACTS §2.2): fixed class, type, format and event
// codes, confidentiality N + MASQUE_PS + INVISIBLE_PATIENT, language "art",
// title "Source", the signing time as creation and service times, and the
// authors, legal authenticator, facility, practice setting and patient of
// the signed document doc. The sourcePatientId is the INS, as in the
// examples.
func SignatureEntry(id, uniqueID string, signingTime time.Time, doc DocumentEntry) DocumentEntry {
	return DocumentEntry{
		ID: id, UniqueID: uniqueID, MimeType: "text/xml", Title: "Source", Language: "art",
		CreationTime: signingTime, ServiceStart: signingTime, ServiceStop: signingTime,
		Authors: doc.Authors, LegalAuthenticator: doc.LegalAuthenticator,
		Class: ClassSignature, Type: TypeSignature, Format: FormatSignature,
		FacilityType: doc.FacilityType, PracticeSetting: doc.PracticeSetting,
		Confidentiality: []Code{ConfidentialityNormal, MaskedFromProfessional, InvisibleToPatient},
		EventCodes:      []Code{EventSignatureSource},
		Patient:         doc.Patient, SourcePatientID: doc.Patient.CX(),
	}
}

// dtmLayouts are the HL7 DTM precisions XDS allows, by length.
var dtmLayouts = map[int]string{
	4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405",
}

// formatDTM renders an XDS time: UTC, YYYYMMDDhhmmss.
func formatDTM(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("20060102150405")
}

// parseDTM reads an XDS time of any precision from the year to the second,
// as UTC.
func parseDTM(s string) (time.Time, error) {
	layout, ok := dtmLayouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("%w: time %q is not YYYY[MM[DD[hh[mm[ss]]]]]", ErrMalformed, s)
	}
	t, err := time.ParseInLocation(layout, s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q", ErrMalformed, s)
	}
	return t, nil
}

// parsePatientCX reads the INS of an XDS patientId. It checks the CX shape
// (value and ISO assigning authority) but not the INS itself: registry
// answers may carry legacy identifiers (INS-C) that INS.Valid refuses, and
// the simulated DMP checks the INS it is sent with Valid.
func parsePatientCX(s string) (INS, error) {
	f := strings.SplitN(s, "^", 6)
	if len(f) < 4 || f[0] == "" {
		return INS{}, fmt.Errorf("%w: patient id %q is not a CX", ErrMalformed, s)
	}
	auth := strings.Split(f[3], "&")
	if len(auth) != 3 || auth[1] == "" || auth[2] != "ISO" {
		return INS{}, fmt.Errorf("%w: patient id %q has no ISO assigning authority", ErrMalformed, s)
	}
	return INS{Value: f[0], OID: auth[1]}, nil
}
