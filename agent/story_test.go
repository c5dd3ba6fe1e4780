package agent_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/agent/consent"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
	"github.com/dmpagent/dmpagent/testcards"
)

const (
	insSingle = "207058575627097" // PATB-QUATRE Laurence, Vitale persona "single"
	idNatGP   = "899900063480"
)

var fullConsent = api.Consent{Given: true, InformationProvided: true}

// TestStory is the demo's story through the API on the real stack: CPS
// inserted → login → Vitale inserted → DMP created with consent → a PDF
// fed → the pharmacist reads what the matrix allows → the patient masks a
// document → the cardiologist is refused, then uses break-glass with a
// reason → the patient's access history lists it all.
func TestStory(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()

	s.insert(0, "cps", "gp")
	cps, err := s.app.CPS(ctx)
	if err != nil || cps.IDNat != idNatGP || cps.Surname != "LIBRE" || cps.Profession != "10" || cps.Specialty != "SM26" {
		t.Fatalf("cps %+v, %v", cps, err)
	}
	// A wrong PIN comes back with the tries left, and is not retried.
	_, err = s.app.Login(ctx, "9999")
	var e *api.Error
	if !asAPI(err, &e) || e.Code != api.CodePINIncorrect || e.Status != 401 || e.Details["tries_left"] != float64(2) {
		t.Fatalf("wrong PIN: %v %+v", err, e.Details)
	}
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	st, err := s.app.Status(ctx)
	if err != nil || st.Session == nil || st.Session.IDNat != idNatGP {
		t.Fatalf("status %+v, %v", st, err)
	}

	// No Vitale card: no DMP creation.
	_, err = s.app.CreateDMP(ctx, insSingle, fullConsent)
	if apiCode(err) != api.CodeVitaleRequired {
		t.Fatalf("create without Vitale: %v", err)
	}
	s.insert(1, "vitale", "single")
	v, err := s.app.Vitale(ctx)
	if err != nil || len(v.Beneficiaries) != 1 || v.Beneficiaries[0].INS != insSingle {
		t.Fatalf("vitale %+v, %v", v, err)
	}
	// Consent must be explicit.
	_, err = s.app.CreateDMP(ctx, insSingle, api.Consent{Given: true})
	if apiCode(err) != api.CodeConsentRequired {
		t.Fatalf("create without information: %v", err)
	}
	created, err := s.app.CreateDMP(ctx, insSingle, api.Consent{Given: true, InformationProvided: true, Oppositions: api.Oppositions{Centre15: true}})
	if err != nil || created.Status != api.DMPStatusOpen || created.ConsentReceiptID == "" {
		t.Fatalf("create: %+v, %v", created, err)
	}
	rc, err := s.app.Consent(ctx, created.ConsentReceiptID)
	if err != nil {
		t.Fatal(err)
	}
	verified, err := consent.Verify([]byte(rc.JWS), consent.VerifyOptions{Roots: s.pki.RootPool()})
	if err != nil || verified.Receipt.PatientINS != insSingle || verified.Receipt.ProfessionalIDNat != idNatGP || !verified.Receipt.Consent.Oppositions.Centre15 {
		t.Fatalf("receipt: %+v, %v", verified, err)
	}
	d, err := s.app.DMP(ctx, insSingle)
	if err != nil || !d.Exists || d.Authorization != "valid" || !d.OpposesCentre15 {
		t.Fatalf("dmp status %+v, %v", d, err)
	}

	// A consultation report, and a psychiatric synthesis the pharmacist's
	// matrix column does not allow.
	report := feed(t, s.app, insSingle, api.DocumentMetadata{Title: "Compte rendu de consultation", TypeCode: "11488-4", Format: "pdf"}, pdf("report"))
	psy := feed(t, s.app, insSingle, api.DocumentMetadata{Title: "Synthèse psychiatrique", TypeCode: "68599-0", Format: "pdf"}, pdf("psy"))
	docs, err := s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if err != nil || !has(docs, report) || !has(docs, psy) || !hasType(docs, "REMB") {
		t.Fatalf("gp documents %+v, %v", docs, err)
	}
	body, ctype, err := s.app.Content(ctx, insSingle, report, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Contains(got, []byte("ClinicalDocument")) || ctype == "" {
		t.Fatalf("content %q (%s)", got[:min(len(got), 200)], ctype)
	}
	// The PDF back, byte for byte, as practice software wants it.
	body, ctype, err = s.app.Content(ctx, insSingle, report, true)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, pdf("report")) || ctype != "application/pdf" {
		t.Fatalf("PDF %q (%s)", got, ctype)
	}

	// The pharmacist, authorized by the patient at the counter.
	s.login("pharmacist")
	_, err = s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if apiCode(err) != api.CodeDMPAccessDenied {
		t.Fatalf("pharmacist without authorization: %v", err)
	}
	if _, err := s.app.Authorize(ctx, insSingle, true, fullConsent); err != nil {
		t.Fatal(err)
	}
	docs, err = s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if err != nil || !has(docs, report) || has(docs, psy) {
		t.Fatalf("pharmacist documents %+v, %v (psy %s)", docs, err, psy)
	}

	// The patient masks the report from professionals.
	ins := dmp.INS{Value: insSingle, OID: dmp.OIDINSNIRTest}
	if err := s.dmp.MaskDocument(ctx, ins, report); err != nil {
		t.Fatal(err)
	}
	docs, err = s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if err != nil || has(docs, report) || has(docs, psy) {
		t.Fatalf("pharmacist after masking %+v, %v", docs, err)
	}

	// The cardiologist: no authorization, then break-glass with a reason.
	s.login("cardiologist")
	_, err = s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if apiCode(err) != api.CodeDMPAccessDenied {
		t.Fatalf("cardiologist: %v", err)
	}
	_, err = s.app.EmergencyAccess(ctx, insSingle, api.EmergencyRequest{Mode: api.ModeBreakGlass, Reason: "court"})
	if apiCode(err) != api.CodeInvalidField {
		t.Fatalf("break-glass without a real reason: %v", err)
	}
	if _, err := s.app.EmergencyAccess(ctx, insSingle, api.EmergencyRequest{Mode: api.ModeBreakGlass, Reason: "Douleur thoracique aiguë, patiente inconsciente"}); err != nil {
		t.Fatal(err)
	}
	docs, err = s.app.Documents(ctx, insSingle, client.DocumentQuery{})
	if err != nil || !has(docs, psy) || has(docs, report) {
		t.Fatalf("cardiologist in break-glass %+v, %v (the masked report stays hidden in emergency access)", docs, err)
	}
	// Centre 15 is opposed by the patient.
	_, err = s.app.EmergencyAccess(ctx, insSingle, api.EmergencyRequest{Mode: api.ModeCentre15})
	if apiCode(err) != api.CodeDMPOpposition && apiCode(err) != api.CodeDMPAccessDenied {
		t.Fatalf("centre 15 opposed: %v", err)
	}

	hist, err := s.dmp.History(ctx, ins, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var sawBreakGlass, sawPharmacist, sawRefusal bool
	for _, h := range hist {
		lines = append(lines, h.ActorID+" "+string(h.Action)+" "+string(h.Mode))
		sawBreakGlass = sawBreakGlass || (h.ActorID == "899900070029" && h.Mode == dmptest.AccessMode(dmp.ModeBreakGlass) && strings.Contains(h.Reason, "thoracique"))
		sawPharmacist = sawPharmacist || h.ActorID == "899900070011"
		sawRefusal = sawRefusal || (h.ActorID == "899900070029" && !h.Allowed)
	}
	if !sawBreakGlass || !sawPharmacist || !sawRefusal {
		t.Fatalf("history lacks an access:\n%s", strings.Join(lines, "\n"))
	}
	// The PIN never reached a log or the wire log.
	assertNoPIN(t, s)
}

func has(docs []api.Document, id string) bool {
	for _, d := range docs {
		if d.ID == id {
			return true
		}
	}
	return false
}

func hasType(docs []api.Document, typeCode string) bool {
	for _, d := range docs {
		if d.TypeCode == typeCode {
			return true
		}
	}
	return false
}

func asAPI(err error, e **api.Error) bool {
	if err == nil {
		return false
	}
	x, ok := err.(*api.Error)
	*e = x
	return ok
}

// feed sends a document and waits for the DMP to have it.
func feed(t *testing.T, c *client.Client, ins string, md api.DocumentMetadata, content []byte) string {
	t.Helper()
	ctx := context.Background()
	sub, err := c.Feed(ctx, ins, md, bytes.NewReader(content))
	if err != nil || sub.Status != api.SubmissionQueued {
		t.Fatalf("feed: %+v, %v", sub, err)
	}
	sub, err = c.WaitSubmission(ctx, sub.ID, 50e6)
	if err != nil || sub.Status != api.SubmissionSubmitted || sub.DocumentID == "" {
		t.Fatalf("submission: %+v, %v", sub, err)
	}
	return sub.DocumentID
}
