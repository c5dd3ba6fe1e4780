package dmp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

var testHeader = hl7Header{Root: "1.2.250.1.999.1.1", ID: "4b7c1c5e-0a1d-4bb7-9a3c-3d5a7b0c2f10", Created: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	ProcessingCode: "D", Sender: "1.2.250.1.999.1", SenderName: "dmpagent", Receiver: OIDDMPSystem, ReceiverName: "DMP"}

var testPatient = PatientIdentity{INS: testINS, Given: []string{"LAURENCE"}, UsualName: "PATB-QUATRE", BirthName: "PATB-QUATRE", Sex: "F", BirthDate: "19070525"}

// validEnvelope wraps a body and checks it against the schemas of kind.
func validEnvelope(t *testing.T, kind, action string, body []byte) []byte {
	t.Helper()
	env := BuildEnvelope(Addressing{MessageID: NewMessageID(), To: "https://localhost/si-dmp-server/v2/services/patients", Action: action, ReplyTo: AnonymousAddress}, nil, body)
	if err := schemas.Available(); err != nil {
		t.Log(err)
		return env
	}
	if err := schemas.ValidateKind(context.Background(), kind, env); err != nil {
		t.Fatalf("%s: %v\n%s", kind, err, body)
	}
	return env
}

func TestPatientQuery(t *testing.T) {
	for _, reason := range []string{ReasonExistence, ReasonConsult} {
		q := PatientQuery{Header: testHeader, QueryID: "q-1", Reason: reason, Patient: testINS}
		body, err := BuildPatientQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "PRPA_IN201307UV02", ActionPatientQuery, body)
		got, err := ParsePatientQuery(env)
		if err != nil {
			t.Fatal(err)
		}
		if got.Patient != testINS || got.Reason != reason || got.QueryID != "q-1" || got.Header.Sender != testHeader.Sender {
			t.Fatalf("parsed %+v", got)
		}
	}
	if _, err := BuildPatientQuery(PatientQuery{Header: testHeader, Reason: "X", Patient: testINS}); err == nil {
		t.Fatal("unknown reason built")
	}
}

func TestPatientQueryResponse(t *testing.T) {
	q := &PatientQuery{Header: testHeader, QueryID: "q-1", Reason: ReasonExistence, Patient: testINS}
	closedAt := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, st := range []DMPStatus{
		{},
		{Exists: true, Authorization: AuthorizationValid, AttendingPhysician: true, Patient: testPatient, OpposesCentre15: true},
		{Exists: true, Authorization: AuthorizationForbidden, Patient: testPatient},
		{Exists: true, Closed: true, Patient: testPatient, ClosedAt: closedAt, ClosingReason: "à la demande du patient"},
	} {
		body, err := BuildPatientQueryResponse(q, st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "PRPA_IN201308UV02", ActionPatientQueryResponse, body)
		got, err := ParsePatientQueryResponse(env)
		if err != nil {
			t.Fatal(err)
		}
		if got.Exists != st.Exists || got.Closed != st.Closed || got.Authorization != st.Authorization ||
			got.AttendingPhysician != st.AttendingPhysician || got.OpposesCentre15 != st.OpposesCentre15 ||
			!got.ClosedAt.Equal(st.ClosedAt) || got.ClosingReason != st.ClosingReason {
			t.Fatalf("round trip: got %+v want %+v", got, st)
		}
		if st.Exists && (got.Patient.INS != testINS || got.Patient.BirthDate != "19070525" || got.Patient.BirthName != "PATB-QUATRE") {
			t.Fatalf("patient %+v", got.Patient)
		}
	}
}

func TestPatientQueryResponseRefusal(t *testing.T) {
	body := []byte(`<PRPA_IN201308UV02 xmlns="urn:hl7-org:v3"><id root="1"/><creationTime value="20260101000000"/><sender><device><id root="2"/></device></sender><acknowledgement typeCode="AE"><acknowledgementDetail><code code="DMPClosed"/><text>fermé</text></acknowledgementDetail></acknowledgement></PRPA_IN201308UV02>`)
	_, err := ParsePatientQueryResponse(BuildEnvelope(Addressing{}, nil, body))
	var f *Fault
	if !errors.As(err, &f) || f.Code != CodeClosed || f.Source != "hl7" {
		t.Fatalf("got %v", err)
	}
}

func testAuthor() Professional {
	return Professional{IDNat: "899900063480", Surname: "LIBRE", GivenName: "Max", Profession: "10", Specialty: "SM26",
		StructureID: "499900063480001", StructureName: "CABINET DR LIBRE", Sector: "SA07"}
}

func TestDMPChange(t *testing.T) {
	for _, c := range []DMPChange{
		{Reason: ReasonCreate, Consent: true, ConsentTime: testHeader.Created, OpposeBreakGlass: true},
		{Reason: ReasonReactivate, Consent: true, ConsentTime: testHeader.Created},
		{Reason: ReasonClose, CloseReason: "déménagement à l'étranger"},
		{Reason: ReasonModify, OpposeCentre15: true},
	} {
		c.Header, c.Patient, c.Author = testHeader, testPatient, testAuthor()
		body, err := BuildDMPChange(c)
		if err != nil {
			t.Fatal(err)
		}
		kind, action := "PRPA_IN201314UV02", ActionPatientRevise
		if c.Reason == ReasonCreate {
			kind, action = "PRPA_IN201311UV02", ActionPatientAdd
		}
		env := validEnvelope(t, kind, action, body)
		got, err := ParseDMPChange(env)
		if err != nil {
			t.Fatal(err)
		}
		if got.Reason != c.Reason || got.Consent != c.Consent || got.OpposeBreakGlass != c.OpposeBreakGlass || got.OpposeCentre15 != c.OpposeCentre15 ||
			got.Patient.INS != testINS || got.Author.IDNat != c.Author.IDNat || got.CloseReason != c.CloseReason {
			t.Fatalf("round trip: got %+v want %+v", got, c)
		}
	}
}

func TestDMPChangeResponse(t *testing.T) {
	for _, reason := range []string{ReasonCreate, ReasonReactivate, ReasonClose, ReasonModify} {
		c := &DMPChange{Header: testHeader, Reason: reason, Patient: testPatient, Author: testAuthor()}
		for _, refusal := range []*Fault{nil, {Code: CodeFound, Message: "le DMP existe déjà"}} {
			body, err := BuildDMPChangeResponse(c, refusal, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			env := validEnvelope(t, "GDPResponse", ActionPatientAddResponse, body)
			err = ParseDMPChangeResponse(env)
			var f *Fault
			switch {
			case refusal == nil && err != nil:
				t.Fatalf("%s accepted: %v", reason, err)
			case refusal != nil && (!errors.As(err, &f) || f.Code != CodeFound || f.Message != refusal.Message || f.Source != "hl7"):
				t.Fatalf("%s refused: %v", reason, err)
			}
		}
	}
}

func FuzzParsePatientMessages(f *testing.F) {
	q := PatientQuery{Header: testHeader, QueryID: "q", Reason: ReasonExistence, Patient: testINS}
	b, _ := BuildPatientQuery(q)
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildPatientQueryResponse(&q, DMPStatus{Exists: true, Authorization: AuthorizationValid, Patient: testPatient}, time.Now())
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	c := DMPChange{Header: testHeader, Reason: ReasonCreate, Patient: testPatient, Author: testAuthor(), Consent: true}
	b, _ = BuildDMPChange(c)
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildDMPChangeResponse(&c, &Fault{Code: CodeFound}, time.Now())
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if q, err := ParsePatientQuery(msg); err == nil && q.Patient.Valid() != nil {
			t.Fatal("invalid INS accepted")
		}
		if st, err := ParsePatientQueryResponse(msg); err == nil && st == nil {
			t.Fatal("nil status")
		}
		if c, err := ParseDMPChange(msg); err == nil && c.Patient.INS.Valid() != nil {
			t.Fatal("invalid INS accepted")
		}
		var f *Fault
		if err := ParseDMPChangeResponse(msg); errors.As(err, &f) && f.Code == "" {
			t.Fatal("fault without code")
		}
	})
}
