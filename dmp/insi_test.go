package dmp

import (
	"errors"
	"testing"
)

func TestINSiLookup(t *testing.T) {
	for _, l := range []VitaleLookup{
		{InsuredNIR: "275126322074974", BirthName: "ADRUN", BirthDate: "20120410", Rank: 1},
		{BeneficiaryNIR: "207058575627097", InsuredNIR: "207058575627097", BirthName: "PATB-QUATRE", BirthDate: "19070525"},
	} {
		body, err := BuildINSiLookup(l)
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "INSiRECVITALE", ActionINSiVitale, body)
		got, err := ParseINSiLookup(env)
		if err != nil || *got != l {
			t.Fatalf("round trip of %+v: %+v %v", l, got, err)
		}
	}
	if _, err := BuildINSiLookup(VitaleLookup{BirthName: "X"}); err == nil {
		t.Fatal("lookup without NIR built")
	}
}

func TestINSiResult(t *testing.T) {
	laurence := INSIdentity{INS: INS{Value: "207058575627097", OID: OIDINSNIR}, BirthName: "PATB-QUATRE", Given: []string{"LAURENCE"}, Sex: "F", BirthDate: "19070525", BirthPlace: "85756"}
	for _, tc := range []struct {
		found []INSIdentity
		code  string
	}{
		{[]INSIdentity{laurence}, ""},
		{nil, CodeINSiNotFound},
		{[]INSIdentity{laurence, laurence}, CodeINSiAmbiguous},
	} {
		body, err := BuildINSiResult(tc.found)
		if err != nil {
			t.Fatal(err)
		}
		env := validEnvelope(t, "INSiRESULTAT", ActionINSiVitaleResponse, body)
		got, err := ParseINSiResult(env)
		var f *Fault
		switch {
		case tc.code == "" && (err != nil || got.INS != laurence.INS || got.BirthDate != laurence.BirthDate || got.Given[0] != "LAURENCE"):
			t.Fatalf("found: %+v %v", got, err)
		case tc.code != "" && (!errors.As(err, &f) || f.Code != tc.code || f.Source != "insi"):
			t.Fatalf("want %s, got %v", tc.code, err)
		}
	}
}

func FuzzParseINSi(f *testing.F) {
	b, _ := BuildINSiLookup(VitaleLookup{InsuredNIR: "275126322074974", BirthDate: "20120410", Rank: 1})
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	b, _ = BuildINSiResult([]INSIdentity{{INS: INS{Value: "207058575627097", OID: OIDINSNIR}, Given: []string{"A", "B"}}})
	f.Add(BuildEnvelope(Addressing{}, nil, b))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if l, err := ParseINSiLookup(msg); err == nil && l.BeneficiaryNIR == "" && l.InsuredNIR == "" {
			t.Fatal("lookup without NIR")
		}
		if id, err := ParseINSiResult(msg); err == nil && id.INS.Valid() != nil {
			t.Fatal("invalid INS accepted")
		}
	})
}
