package dmp

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

// xdsINS is the INS of the official examples.
var xdsINS = INS{Value: "207058575627097", OID: OIDINSNIRTest}

var xdsAuthor = Author{
	IDNat: "899900063480", Surname: "LIBRE", GivenName: "Max",
	Specialty: "G15_10/SM26", SpecialtyLabel: "Médecin - Qualifié en Médecine Générale (SM)",
	InstitutionName: "CABINET DR LIBRE", InstitutionID: "499900063480001",
}

var xdsTime = time.Date(2021, 6, 4, 13, 50, 51, 0, time.UTC)

// xdsEntry is a complete document entry, as a client submits it.
func xdsEntry(id string) DocumentEntry {
	e, err := NewPDFEntry(DocumentEntry{
		ID: id, UniqueID: "1.2.250.1.999.1.1.7898.3.1622814651504", Title: "Compte rendu de consultation",
		Comments:     "commentaire & <remarques>",
		CreationTime: xdsTime, ServiceStart: xdsTime.Add(-time.Hour), ServiceStop: xdsTime,
		Authors: []Author{xdsAuthor}, LegalAuthenticator: xdsAuthor.Person(),
		Type:            Code{"11488-4", "", "Compte rendu de consultation"},
		FacilityType:    Code{"SA07", SchemeSector, "Cabinet individuel"},
		PracticeSetting: Code{"AMBULATOIRE", SchemePracticeSetting, "Ambulatoire"},
		EventCodes:      []Code{{"H33", "2.16.840.1.113883.6.3", "Décollement et déchirement de la rétine"}},
		Patient:         xdsINS, SourcePatientID: xdsINS.CX(),
		SourcePatientInfo: []string{"PID-5|MARTIN^Simone^^^^^L", "PID-7|19760717", "PID-8|F"},
	})
	if err != nil {
		panic(err)
	}
	return e
}

func xdsSubmissionSet() SubmissionSet {
	return SubmissionSet{
		ID: "SubmissionSet01", UniqueID: "1.2.250.1.999.1.1.7898.1.1622814651504", SourceID: "1.2.250.1.999.1.1.7898",
		Title: "lot du document", SubmissionTime: xdsTime, Author: xdsAuthor,
		ContentType: Code{"04", SchemeActivityType, "Hospitalisation de jour"}, Patient: xdsINS,
	}
}

// registryEntry is xdsEntry as the registry stores it.
func registryEntry(uuid string) DocumentEntry {
	e := xdsEntry(uuid)
	e.LogicalID, e.Status, e.Version = uuid, StatusApproved, "1"
	e.Hash, e.Size, e.RepositoryUniqueID = "af326fb44feb720121d2c277ce10f87407818089", 2768, "1.2.250.1.213.4.1.1.1.2"
	return e
}

// validateXDS wraps a built body in a request envelope and validates it
// against the XDS wrapper schema.
func validateXDS(t *testing.T, action string, body []byte) []byte {
	t.Helper()
	env := BuildEnvelope(Addressing{MessageID: NewMessageID(), To: "https://localhost/si-dmp-server/v2/services/repository",
		Action: action, ReplyTo: AnonymousAddress}, nil, body)
	if err := schemas.Available(); err != nil {
		t.Skip(err)
	}
	if err := schemas.ValidateKind(context.Background(), "XDS", env); err != nil {
		t.Fatalf("schema: %v\n%s", err, env)
	}
	return env
}

// envelope wraps a body without validating it, for parser tests.
func envelope(action string, body []byte) []byte {
	return BuildEnvelope(Addressing{MessageID: NewMessageID(), Action: action}, nil, body)
}

func TestClassForType(t *testing.T) {
	for _, tc := range []struct {
		typ, class string
		ok         bool
	}{
		{"11488-4", "10", true}, {"11490-0", "10", true}, {"96349-6", "10", true}, {"BIL_AUTO", "10", true},
		{"60591-5", "11", true}, {"SYNTH", "11", true}, {"IMG-KOS", "31", true}, {"18748-4", "31", true},
		{"57833-6", "42", true}, {"PRESC-ORTHOPTIE", "42", true}, {"60593-1", "43", true}, {"DISP_AUT", "43", true},
		{"PROT_ALD", "44", true}, {"80565-5", "45", true}, {"87273-9", "52", true}, {"CERT_DECL", "52", true},
		{"REMB", "60", true}, {"74465-6", "90", true}, {"EXPPAT_3", "90", true}, {"59284-0", "95", true},
		{"DOCPAT09", "95", true}, {"E1762", ClassSignature.Code, true},
		{"27899-4", "", false}, {"", "", false}, {"11488", "", false},
	} {
		c, ok := ClassForType(tc.typ)
		if ok != tc.ok || c.Code != tc.class {
			t.Errorf("ClassForType(%q) = %v, %v; want %q, %v", tc.typ, c, ok, tc.class, tc.ok)
		}
		if ok && c.Code != ClassSignature.Code && (c.Scheme != SchemeClassCode || c.Display == "") {
			t.Errorf("ClassForType(%q) = %+v: want TRE_A03 with a display", tc.typ, c)
		}
	}
	// Every row of ASS_X16 (XDS-FACTS §1.4): 103 typeCodes with the signature.
	if len(typeTable) != 103 {
		t.Errorf("type table has %d rows, want 103", len(typeTable))
	}
	if typeSchemeOf("11488-4") != SchemeLOINC || typeSchemeOf("SYNTH") != SchemeTypeComplement || typeSchemeOf("E1762") != SchemeASTM {
		t.Error("type code systems")
	}
}

func TestAuthorRendering(t *testing.T) {
	p := Professional{IDNat: "899900063480", Surname: "LIBRE", GivenName: "Max", Profession: "10",
		ProfessionLabel: "Médecin", Specialty: "SM26", StructureID: "499900063480001", StructureName: "CABINET DR LIBRE"}
	a := AuthorFromProfessional(p)
	for _, tc := range []struct{ got, want string }{
		{a.Person(), "899900063480^LIBRE^Max^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"},
		{a.Institution(), "CABINET DR LIBRE^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^499900063480001"},
		{a.SpecialtyCE(), "G15_10/SM26^Médecin^1.2.250.1.213.1.1.4.5"},
		{Author{}.Person() + Author{}.Institution() + Author{}.SpecialtyCE(), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	var back Author
	back.setPerson(a.Person())
	back.setInstitution(a.Institution())
	back.setSpecialty(a.SpecialtyCE())
	if back != a {
		t.Errorf("parsed back %+v, want %+v", back, a)
	}
	// Short and odd values are read without panicking.
	var odd Author
	odd.setPerson("only")
	odd.setInstitution("name^^")
	odd.setSpecialty("")
	if odd.IDNat != "only" || odd.InstitutionName != "name" || odd.InstitutionID != "" {
		t.Errorf("odd author %+v", odd)
	}
}

func TestDTM(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"20100319183244", time.Date(2010, 3, 19, 18, 32, 44, 0, time.UTC), true},
		{"201003191832", time.Date(2010, 3, 19, 18, 32, 0, 0, time.UTC), true},
		{"2010031918", time.Date(2010, 3, 19, 18, 0, 0, 0, time.UTC), true},
		{"20100319", time.Date(2010, 3, 19, 0, 0, 0, 0, time.UTC), true},
		{"201003", time.Date(2010, 3, 1, 0, 0, 0, 0, time.UTC), true},
		{"2010", time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"20101319", time.Time{}, false}, {"2010031918324", time.Time{}, false}, {"", time.Time{}, false},
		{"2010-03-19", time.Time{}, false}, {"20100319183244+0100", time.Time{}, false},
	} {
		got, err := parseDTM(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseDTM(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("parseDTM(%q) error %v is not ErrMalformed", tc.in, err)
		}
	}
	paris := time.FixedZone("CEST", 2*3600)
	if got := formatDTM(time.Date(2021, 6, 4, 15, 50, 51, 0, paris)); got != "20210604135051" {
		t.Errorf("formatDTM = %q, want UTC", got)
	}
}

func TestParsePatientCX(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want INS
		ok   bool
	}{
		{"207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH", xdsINS, true},
		{"207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH^^20100907", xdsINS, true},
		{"1234567890123^^^&1.2.250.1.213.1.4.2&ISO^INS-C", INS{"1234567890123", OIDINSC}, true},
		{"207058575627097", INS{}, false}, {"^^^&1.2&ISO^NH", INS{}, false},
		{"207058575627097^^^1.2.250.1.213.1.4.10^NH", INS{}, false}, {"x^^^&&ISO", INS{}, false},
	} {
		got, err := parsePatientCX(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePatientCX(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestNewPDFEntry(t *testing.T) {
	e, err := NewPDFEntry(DocumentEntry{Type: Code{Code: "57833-6"}})
	if err != nil {
		t.Fatal(err)
	}
	want := DocumentEntry{Type: Code{Code: "57833-6", Scheme: SchemeLOINC}, Class: Code{"42", SchemeClassCode, "Prescription"},
		Format: FormatPDFInCDA, MimeType: "text/xml", Language: "fr-FR", Confidentiality: []Code{ConfidentialityNormal}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("NewPDFEntry = %+v\nwant %+v", e, want)
	}
	kept, err := NewPDFEntry(DocumentEntry{Type: Code{"SYNTH", "x", ""}, Language: "en", Confidentiality: []Code{MaskedFromProfessional}})
	if err != nil || kept.Type.Scheme != "x" || kept.Language != "en" || len(kept.Confidentiality) != 1 || kept.Class.Code != "11" {
		t.Errorf("NewPDFEntry overrode set fields: %+v, %v", kept, err)
	}
	for _, typ := range []string{"27899-4", "E1762", ""} {
		if _, err := NewPDFEntry(DocumentEntry{Type: Code{Code: typ}}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("NewPDFEntry(%q) error %v, want ErrUnknownType", typ, err)
		}
	}
}

func TestSignatureEntry(t *testing.T) {
	doc := xdsEntry("Document01")
	s := SignatureEntry("Signature01", "1.2.250.1.999.1.1.7898.4.1", xdsTime, doc)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want any }{
		{s.Class, ClassSignature}, {s.Type, TypeSignature}, {s.Format, FormatSignature},
		{s.EventCodes, []Code{EventSignatureSource}}, {s.Language, "art"}, {s.Title, "Source"},
		{s.Confidentiality, []Code{ConfidentialityNormal, MaskedFromProfessional, InvisibleToPatient}},
		{s.CreationTime, xdsTime}, {s.ServiceStop, xdsTime}, {s.FacilityType, doc.FacilityType},
		{s.SourcePatientID, xdsINS.CX()}, {s.Authors, doc.Authors},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	if !s.HasConfidentiality(Code{Code: "MASQUE_PS", Scheme: SchemeVisibility}) || doc.HasConfidentiality(MaskedFromProfessional) {
		t.Error("HasConfidentiality")
	}
}

func TestValidateMetadata(t *testing.T) {
	e := xdsEntry("Document01")
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	e.Authors, e.Format = nil, Code{}
	if err := e.Validate(); err == nil || err.Error() != `dmp: document entry "Document01" lacks author, formatCode` {
		t.Errorf("Validate = %v", err)
	}
	s := xdsSubmissionSet()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.SourceID, s.SubmissionTime = "", time.Time{}
	if err := s.Validate(); err == nil || err.Error() != `dmp: submission set "SubmissionSet01" lacks sourceId, submissionTime` {
		t.Errorf("Validate = %v", err)
	}
}
