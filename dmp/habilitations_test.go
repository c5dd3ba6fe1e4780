package dmp

import (
	"errors"
	"testing"
	"time"
)

func TestSetAuthorization(t *testing.T) {
	for _, s := range []SetAuthorization{{Add: true}, {Add: true, Attending: true}, {}, {Attending: true}} {
		body, err := BuildSetAuthorization(s)
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "Habilitations", ActionSetAuthorization, body)
		got, err := ParseSetAuthorization(env)
		if err != nil || *got != s {
			t.Fatalf("round trip of %+v: %+v %v", s, got, err)
		}
	}
	for _, refusal := range []*Fault{nil, {Code: CodeBlocked, Message: "bloqué par le patient"}} {
		body, err := BuildSetAuthorizationResponse(refusal, "Autorisation déjà présente aucune action effectuée")
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "Habilitations", ActionSetAuthorizationResponse, body)
		err = ParseSetAuthorizationResponse(env)
		var f *Fault
		if (refusal == nil) != (err == nil) || (refusal != nil && (!errors.As(err, &f) || f.Code != CodeBlocked || f.Source != "status")) {
			t.Fatalf("answer %+v: %v", refusal, err)
		}
	}
	// Status is compared without case, as the ANS kit does.
	env := BuildEnvelope(Addressing{}, nil, []byte(`<setAuthorizationResponse xmlns="urn:si-dmp-habilitations"><output><status>DMPOK</status></output></setAuthorizationResponse>`))
	if err := ParseSetAuthorizationResponse(env); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseCustomServices(f *testing.F) {
	b, _ := BuildSetAuthorization(SetAuthorization{Add: true, Attending: true})
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildSetAuthorizationResponse(&Fault{Code: "X", Message: "y"}, "")
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildListAuthorizationsResponse([]Authorization{{IDNat: "1", Attending: true}}, nil)
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildPatientListResponse([]PatientEntry{{INS: testINS}}, nil)
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _ = ParseSetAuthorization(msg)
		_, _ = ParseListAuthorizations(msg)
		_, _, _ = ParsePatientList(msg)
		_, _ = ParseListAuthorizationsResponse(msg)
		_, _ = ParsePatientListResponse(msg)
		var fault *Fault
		if err := ParseSetAuthorizationResponse(msg); errors.As(err, &fault) && fault.Code == "" {
			t.Fatal("fault without code")
		}
	})
}

func TestListAuthorizations(t *testing.T) {
	for _, mode := range []string{ListActive, ListForbidden, ListAll} {
		body, err := BuildListAuthorizations(mode)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseListAuthorizations(validEnvelope(t, "Habilitations", ActionListAuthorizations, body))
		if err != nil || got != mode {
			t.Fatalf("mode %s: %s %v", mode, got, err)
		}
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	list := []Authorization{{IDNat: "899900063480", FirstName: "Max", LastName: "LIBRE", Since: since, Mode: ListActive, Attending: true},
		{IDNat: "899900070029", LastName: "CARDIO", Mode: ListForbidden}}
	body, err := BuildListAuthorizationsResponse(list, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseListAuthorizationsResponse(validEnvelope(t, "Habilitations", ActionListAuthorizationsResp, body))
	if err != nil || len(got) != 2 || got[0] != list[0] || got[1] != list[1] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func TestPatientList(t *testing.T) {
	since := time.Date(2010, 10, 10, 20, 20, 10, 0, time.UTC)
	body, err := BuildPatientList(since, SinceDocument)
	if err != nil {
		t.Fatal(err)
	}
	gotSince, kind, err := ParsePatientList(validEnvelope(t, "PatientList", ActionPatientList, body))
	if err != nil || !gotSince.Equal(since) || kind != SinceDocument {
		t.Fatalf("request: %v %s %v", gotSince, kind, err)
	}
	list := []PatientEntry{{INS: testINS, LastName: "PATB-QUATRE", FirstName: "LAURENCE", BirthDate: "19070525", AttendingPhysician: true}}
	body, err = BuildPatientListResponse(list, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePatientListResponse(validEnvelope(t, "PatientList", ActionPatientListResponse, body))
	if err != nil || len(got) != 1 || got[0] != list[0] {
		t.Fatalf("response: %+v %v", got, err)
	}
}
