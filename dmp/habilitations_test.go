package dmp

import (
	"errors"
	"testing"
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
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _ = ParseSetAuthorization(msg)
		var fault *Fault
		if err := ParseSetAuthorizationResponse(msg); errors.As(err, &fault) && fault.Code == "" {
			t.Fatal("fault without code")
		}
	})
}
