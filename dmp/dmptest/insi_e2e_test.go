package dmptest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/dmpagent/dmpagent/dmp"
)

func TestINSiLookup(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	c := clientFor(t, s, "gp", func(cfg *dmp.Config) { cfg.INSiURL = s.INSiURL })
	gp := professional(t, "gp")
	// The child of the family card has no NIR of his own on it.
	id, err := c.LookupINS(ctx, gp, dmp.VitaleLookup{InsuredNIR: "275126322074974", BirthName: "ADRUN", BirthDate: "20120410", Rank: 1})
	if err != nil {
		t.Fatal(err)
	}
	if id.INS.Value != "112046322012323" || id.INS.OID != dmp.OIDINSNIRTest || id.Given[0] != "LEO" || id.BirthDate != "20120410" {
		t.Fatalf("identity %+v", id)
	}
	_, err = c.LookupINS(ctx, gp, dmp.VitaleLookup{InsuredNIR: "275126322074974", BirthDate: "19990101"})
	var f *dmp.Fault
	if !errors.As(err, &f) || f.Code != dmp.CodeINSiNotFound {
		t.Fatalf("unknown person: %v", err)
	}
}
