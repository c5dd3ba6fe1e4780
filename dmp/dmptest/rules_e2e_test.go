package dmptest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
)

// One end-to-end test per access rule of DESIGN §6, through real mutual
// TLS and signed VIHFs, each showing the allowed case, the denied case and
// the access-history entry.

// world is a simulated DMP with a client per CPS persona.
type world struct {
	t       *testing.T
	ctx     context.Context
	srv     *dmptest.Server
	clients map[string]*dmp.Client
}

func newWorld(t *testing.T) *world {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &world{t: t, ctx: ctx, srv: newServer(t), clients: map[string]*dmp.Client{}}
}

func (w *world) client(name string) *dmp.Client {
	if c, ok := w.clients[name]; ok {
		return c
	}
	c := clientFor(w.t, w.srv, name)
	w.clients[name] = c
	return c
}

// as is a persona acting in normal mode.
func (w *world) as(name string) dmp.Actor { return professional(w.t, name) }

// emergency is a persona acting in an emergency mode.
func (w *world) emergency(name string, mode dmp.AccessMode) dmp.Actor {
	a := professional(w.t, name)
	a.Mode = mode
	if mode == dmp.ModeBreakGlass {
		a.Reason = "patient inconscient, antécédents inconnus"
	}
	return a
}

// create opens the single persona's DMP by the gp, with the patient's
// consent and no opposition unless told.
func (w *world) create(opposeBreakGlass, opposeCentre15 bool) {
	w.t.Helper()
	err := w.client("gp").CreateDMP(w.ctx, w.as("gp"), dmp.CreateRequest{
		Patient: patientSingle, Consent: true, OpposeBreakGlass: opposeBreakGlass, OpposeCentre15: opposeCentre15,
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

var patientSingle = dmp.PatientIdentity{INS: insSingle, Given: []string{"Laurence"}, BirthName: "PATB-QUATRE", UsualName: "PATB-QUATRE", Sex: "F", BirthDate: "19070525"}

func (w *world) authorize(name string, attending bool) {
	w.t.Helper()
	if err := w.client(name).SetAuthorization(w.ctx, w.as(name), insSingle, true, attending); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) feed(name, title, typeCode string, hidden ...dmp.Code) string {
	w.t.Helper()
	r := feedRequest(insSingle, title, typeCode, []byte("%PDF-1.4 "+title))
	r.Hidden = hidden
	res, err := w.client(name).Feed(w.ctx, w.as(name), r)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.DocumentUniqueID
}

// search returns the uniqueIds a persona finds, or the fault code.
func (w *world) search(name string, a dmp.Actor) ([]string, string) {
	r, err := w.client(name).Search(w.ctx, a, dmp.StoredQuery{Patient: insSingle})
	if err != nil {
		return nil, faultCode(w.t, err)
	}
	var ids []string
	for _, e := range r.Entries {
		ids = append(ids, e.UniqueID)
	}
	return ids, ""
}

// read retrieves a document and returns its bytes, or the fault code.
func (w *world) read(name string, a dmp.Actor, uniqueID string) ([]byte, string) {
	d, err := w.client(name).Retrieve(w.ctx, a, insSingle, dmptest.RepositoryUniqueID, uniqueID)
	if err != nil {
		return nil, faultCode(w.t, err)
	}
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return b, ""
}

func faultCode(t *testing.T, err error) string {
	t.Helper()
	var f *dmp.Fault
	if !errors.As(err, &f) {
		t.Fatalf("not a DMP fault: %v", err)
	}
	return f.Code
}

// traced finds the newest history entry matching the predicate.
func (w *world) traced(match func(dmptest.HistoryEntry) bool) dmptest.HistoryEntry {
	w.t.Helper()
	h, err := w.srv.History(w.ctx, insSingle, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range h {
		if match(e) {
			return e
		}
	}
	w.t.Fatalf("no such history entry in %+v", h)
	return dmptest.HistoryEntry{}
}

func entry(who string, action dmptest.Action, allowed bool, code string) func(dmptest.HistoryEntry) bool {
	return func(e dmptest.HistoryEntry) bool {
		return e.ActorID == who && e.Action == action && e.Allowed == allowed && e.Code == code
	}
}

func want(t *testing.T, what, got, wantCode string) {
	t.Helper()
	if got != wantCode {
		t.Fatalf("%s: got %q, want %q", what, got, wantCode)
	}
}

func TestRule1CreationWithConsent(t *testing.T) {
	w := newWorld(t)
	gp := w.as("gp")
	// Denied: no consent.
	err := w.client("gp").CreateDMP(w.ctx, gp, dmp.CreateRequest{Patient: patientSingle})
	want(t, "creation without consent", faultCode(t, err), dmp.CodeAccessDenied)
	st, err := w.client("gp").TestExistence(w.ctx, gp, insSingle)
	if err != nil || st.Exists {
		t.Fatalf("before creation: %+v %v", st, err)
	}
	// Allowed: with consent; the creator is authorized.
	w.create(false, false)
	st, err = w.client("gp").TestExistence(w.ctx, gp, insSingle)
	if err != nil || !st.Exists || st.Closed || st.Authorization != dmp.AuthorizationValid {
		t.Fatalf("after creation: %+v %v", st, err)
	}
	err = w.client("gp").CreateDMP(w.ctx, gp, dmp.CreateRequest{Patient: patientSingle, Consent: true})
	want(t, "second creation", faultCode(t, err), dmp.CodeFound)
	w.traced(entry(gp.IDNat, dmptest.ActionCreate, true, ""))
	w.traced(entry(gp.IDNat, dmptest.ActionCreate, false, dmp.CodeFound))
}

func TestRule2AuthorizationOrEmergency(t *testing.T) {
	w := newWorld(t)
	w.create(false, true) // the patient opposes Centre 15 access
	doc := w.feed("gp", "Compte rendu", "11488-4")
	card := w.as("cardiologist")
	// Denied: no authorization.
	_, code := w.search("cardiologist", card)
	want(t, "unauthorized search", code, dmp.CodeAccessDenied)
	w.traced(entry(card.IDNat, dmptest.ActionSearch, false, dmp.CodeAccessDenied))
	// Allowed: break-glass with a reason, traced with it.
	bg := w.emergency("cardiologist", dmp.ModeBreakGlass)
	if ids, code := w.search("cardiologist", bg); code != "" || !slices.Contains(ids, doc) {
		t.Fatalf("break-glass search: %v %s", ids, code)
	}
	e := w.traced(entry(card.IDNat, dmptest.ActionSearch, true, ""))
	if e.Mode != dmptest.ModeBreakGlass || e.Reason != bg.Reason {
		t.Fatalf("break-glass trace %+v", e)
	}
	// Denied: Centre 15 access the patient opposed.
	c15 := w.emergency("emergency", dmp.ModeCentre15)
	_, code = w.search("emergency", c15)
	want(t, "opposed Centre 15 search", code, dmp.CodeOpposition)
	// Allowed: after declaring himself authorized (TD0.3), in normal mode.
	w.authorize("cardiologist", false)
	if _, code := w.read("cardiologist", card, doc); code != "" {
		t.Fatalf("authorized read: %s", code)
	}
	w.traced(entry(card.IDNat, dmptest.ActionRead, true, ""))
}

func TestRule3PatientBlocks(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	w.authorize("cardiologist", false)
	card := w.as("cardiologist")
	if _, code := w.search("cardiologist", card); code != "" {
		t.Fatalf("search before the block: %s", code)
	}
	if err := w.srv.Block(w.ctx, insSingle, card.IDNat); err != nil {
		t.Fatal(err)
	}
	w.traced(entry("PATIENT", dmptest.ActionPatientBlock, true, ""))
	for _, a := range []dmp.Actor{card, w.emergency("cardiologist", dmp.ModeBreakGlass), w.emergency("cardiologist", dmp.ModeCentre15)} {
		_, code := w.search("cardiologist", a)
		want(t, "blocked search in mode "+string(a.Mode), code, dmp.CodeBlocked)
	}
	st, err := w.client("cardiologist").TestExistence(w.ctx, card, insSingle)
	if err != nil || st.Authorization != dmp.AuthorizationForbidden {
		t.Fatalf("TD0.2 of a blocked professional: %+v %v", st, err)
	}
	err = w.client("cardiologist").SetAuthorization(w.ctx, card, insSingle, true, false)
	want(t, "self-authorization when blocked", faultCode(t, err), dmp.CodeBlocked)
	w.traced(entry(card.IDNat, dmptest.ActionSearch, false, dmp.CodeBlocked))
	// Others are not affected.
	if _, code := w.search("gp", w.as("gp")); code != "" {
		t.Fatalf("gp search: %s", code)
	}
}

func TestRule4AttendingPhysicianSeesEverything(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	masked := w.feed("gp", "Compte rendu masqué", "11488-4", dmp.MaskedFromProfessional)
	w.authorize("cardiologist", true) // declares himself attending physician
	w.authorize("nurse", false)
	if ids, code := w.search("cardiologist", w.as("cardiologist")); code != "" || !slices.Contains(ids, masked) {
		t.Fatalf("attending physician's search: %v %s", ids, code)
	}
	if _, code := w.read("cardiologist", w.as("cardiologist"), masked); code != "" {
		t.Fatalf("attending physician's read: %s", code)
	}
	st, err := w.client("cardiologist").TestExistence(w.ctx, w.as("cardiologist"), insSingle)
	if err != nil || !st.AttendingPhysician {
		t.Fatalf("TD0.2 STATUT_MT: %+v %v", st, err)
	}
	_, code := w.read("nurse", w.as("nurse"), masked)
	want(t, "nurse reading a masked document", code, dmp.CodeAccessDenied)
	w.traced(entry(w.as("cardiologist").IDNat, dmptest.ActionRead, true, ""))
	w.traced(entry(w.as("nurse").IDNat, dmptest.ActionRead, false, dmp.CodeAccessDenied))
}

func TestRule5MaskedDocuments(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	doc := w.feed("gp", "Compte rendu", "11488-4")
	w.authorize("cardiologist", false)
	card := w.as("cardiologist")
	if ids, _ := w.search("cardiologist", card); !slices.Contains(ids, doc) {
		t.Fatalf("before masking the cardiologist finds %v", ids)
	}
	if err := w.srv.MaskDocument(w.ctx, insSingle, doc); err != nil {
		t.Fatal(err)
	}
	w.traced(entry("PATIENT", dmptest.ActionMask, true, ""))
	if ids, code := w.search("cardiologist", card); code != "" || slices.Contains(ids, doc) {
		t.Fatalf("masked document found by another professional: %v %s", ids, code)
	}
	_, code := w.read("cardiologist", card, doc)
	want(t, "reading a masked document", code, dmp.CodeAccessDenied)
	// Not in emergency access either, by default.
	_, code = w.read("emergency", w.emergency("emergency", dmp.ModeBreakGlass), doc)
	want(t, "break-glass read of a masked document", code, dmp.CodeAccessDenied)
	// The author still reads it.
	if _, code := w.read("gp", w.as("gp"), doc); code != "" {
		t.Fatalf("author's read: %s", code)
	}
	w.traced(entry(card.IDNat, dmptest.ActionRead, false, dmp.CodeAccessDenied))
	w.traced(entry(w.as("gp").IDNat, dmptest.ActionRead, true, ""))
}

func TestRule6InvisibleToPatient(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	doc := w.feed("gp", "Annonce diagnostique", "11488-4", dmp.InvisibleToPatient)
	seen := func() bool {
		docs, err := w.srv.Documents(w.ctx, insSingle)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(docs, func(d dmptest.DocumentRecord) bool { return d.UniqueID == doc })
	}
	if seen() {
		t.Fatal("the patient sees a document invisible to the patient")
	}
	// Professionals see it.
	if ids, _ := w.search("gp", w.as("gp")); !slices.Contains(ids, doc) {
		t.Fatal("the author does not find it")
	}
	entries, err := w.client("gp").Search(w.ctx, w.as("gp"), dmp.StoredQuery{Patient: insSingle})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(entries.Entries, func(e dmp.DocumentEntry) bool { return e.UniqueID == doc })
	if err := w.client("gp").RevealToPatient(w.ctx, w.as("gp"), entries.Entries[i]); err != nil {
		t.Fatal(err)
	}
	if !seen() {
		t.Fatal("the patient does not see the revealed document")
	}
	w.traced(entry(w.as("gp").IDNat, dmptest.ActionVisibility, true, ""))
}

func TestRule7HabilitationMatrix(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	prescription := w.feed("gp", "Ordonnance", "57833-6")
	psy := w.feed("gp", "Synthèse psychiatrique", "68599-0")
	w.authorize("pharmacist", false)
	ph := w.as("pharmacist")
	ids, code := w.search("pharmacist", ph)
	if code != "" || !slices.Contains(ids, prescription) || slices.Contains(ids, psy) {
		t.Fatalf("pharmacist's search: %v %s", ids, code)
	}
	if _, code := w.read("pharmacist", ph, prescription); code != "" {
		t.Fatalf("pharmacist reading a prescription: %s", code)
	}
	_, code = w.read("pharmacist", ph, psy)
	want(t, "pharmacist reading a psychiatric synthesis", code, dmp.CodeAccessDenied)
	// Physicians read every type.
	if _, code := w.read("gp", w.as("gp"), psy); code != "" {
		t.Fatalf("physician reading a psychiatric synthesis: %s", code)
	}
	// Feeding is not restricted by the matrix: the pharmacist may feed a
	// psychiatric synthesis he may not read.
	own := w.feed("pharmacist", "Synthèse transmise", "68599-0")
	if _, code := w.read("pharmacist", ph, own); code != "" {
		t.Fatalf("pharmacist reading what he fed: %s", code)
	}
	w.traced(entry(ph.IDNat, dmptest.ActionRead, false, dmp.CodeAccessDenied))
	w.traced(entry(ph.IDNat, dmptest.ActionRead, true, ""))
}

func TestRule8AccessHistory(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	doc := w.feed("gp", "Compte rendu", "11488-4")
	w.search("gp", w.as("gp"))
	w.read("gp", w.as("gp"), doc)
	bg := w.emergency("emergency", dmp.ModeBreakGlass)
	w.read("emergency", bg, doc)
	w.search("nurse", w.as("nurse"))
	h, err := w.srv.History(w.ctx, insSingle, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, e.ActorID+" "+string(e.Action)+" "+string(e.Mode)+" "+e.Code)
	}
	gp, em, nurse := w.as("gp").IDNat, bg.IDNat, w.as("nurse").IDNat
	for _, s := range []string{
		"PATIENT patient-history normal ",
		nurse + " search normal " + dmp.CodeAccessDenied,
		em + " read bris_de_glace ",
		gp + " read normal ",
		gp + " search normal ",
		gp + " feed normal ",
		gp + " create normal ",
	} {
		if !slices.Contains(got, s) {
			t.Errorf("history lacks %q:\n%v", s, got)
		}
	}
	if i, j := slices.Index(got, gp+" read normal "), slices.Index(got, gp+" feed normal "); i > j {
		t.Errorf("history is not newest first: %v", got)
	}
}

func TestRule9ClosedDMP(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	gp := w.as("gp")
	w.feed("gp", "Compte rendu", "11488-4")
	if err := w.srv.CloseDMP(w.ctx, insSingle, ""); err != nil {
		t.Fatal(err)
	}
	_, code := w.search("gp", gp)
	want(t, "search of a closed DMP", code, dmp.CodeClosed)
	_, err := w.client("gp").Feed(w.ctx, gp, feedRequest(insSingle, "Compte rendu", "11488-4", []byte("%PDF-1.4 x")))
	want(t, "feeding a closed DMP", faultCode(t, err), dmp.CodeClosed)
	st, err := w.client("gp").TestExistence(w.ctx, gp, insSingle)
	if err != nil || !st.Exists || !st.Closed {
		t.Fatalf("TD0.2 of a closed DMP: %+v %v", st, err)
	}
	w.traced(entry(gp.IDNat, dmptest.ActionSearch, false, dmp.CodeClosed))
	// Reactivated with the patient's consent, it shows its documents again.
	if err := w.client("gp").ReactivateDMP(w.ctx, gp, dmp.CreateRequest{Patient: patientSingle, Consent: true}); err != nil {
		t.Fatal(err)
	}
	if ids, code := w.search("gp", gp); code != "" || len(ids) == 0 {
		t.Fatalf("search after reactivation: %v %s", ids, code)
	}
	w.traced(entry(gp.IDNat, dmptest.ActionReactivate, true, ""))
}

func TestRule10ReimbursementHistory(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	w.authorize("nurse", false)
	r, err := w.client("nurse").Search(w.ctx, w.as("nurse"), dmp.StoredQuery{Patient: insSingle})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(r.Entries, func(e dmp.DocumentEntry) bool { return e.Type.Code == "REMB" })
	if i < 0 || r.Entries[i].Class.Code != "60" {
		t.Fatalf("no reimbursement history in %+v", r.Entries)
	}
	remb := r.Entries[i].UniqueID
	body, code := w.read("nurse", w.as("nurse"), remb)
	if code != "" || !bytes.Contains(body, []byte("rembours")) {
		t.Fatalf("nurse reading the reimbursement history: %s %q", code, body)
	}
	// A document like others: a blocked professional does not read it.
	if err := w.srv.Block(w.ctx, insSingle, w.as("nurse").IDNat); err != nil {
		t.Fatal(err)
	}
	_, code = w.read("nurse", w.as("nurse"), remb)
	want(t, "blocked nurse reading the reimbursement history", code, dmp.CodeBlocked)
	w.traced(entry(w.as("nurse").IDNat, dmptest.ActionRead, true, ""))
	w.traced(entry(w.as("nurse").IDNat, dmptest.ActionRead, false, dmp.CodeBlocked))
}

// TestAuthorizationLists covers TD0.4 and TD1.6 on top of the rules.
func TestAuthorizationLists(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	w.authorize("cardiologist", true)
	if err := w.srv.Block(w.ctx, insSingle, w.as("nurse").IDNat); err != nil {
		t.Fatal(err)
	}
	list, err := w.client("gp").ListAuthorizations(w.ctx, w.as("gp"), insSingle, dmp.ListAll)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]string{}
	for _, a := range list {
		modes[a.IDNat] = a.Mode
		if a.IDNat == w.as("cardiologist").IDNat && !a.Attending {
			t.Errorf("cardiologist not attending: %+v", a)
		}
	}
	if modes[w.as("gp").IDNat] != dmp.ListActive || modes[w.as("cardiologist").IDNat] != dmp.ListActive || modes[w.as("nurse").IDNat] != dmp.ListForbidden {
		t.Fatalf("TD1.6 list %+v", list)
	}
	patients, err := w.client("cardiologist").ListPatients(w.ctx, w.as("cardiologist"), time.Time{}, dmp.SinceAuthorization)
	if err != nil || len(patients) != 1 || patients[0].INS != insSingle || !patients[0].AttendingPhysician {
		t.Fatalf("TD0.4 list %+v %v", patients, err)
	}
	// The nurse, blocked, may not list who is authorized.
	_, err = w.client("nurse").ListAuthorizations(w.ctx, w.as("nurse"), insSingle, dmp.ListAll)
	want(t, "blocked nurse listing authorizations", faultCode(t, err), dmp.CodeBlocked)
}

// TestAdminDataAndReplacement covers TD1.3a, TD1.3b and TD2.2.
func TestAdminDataAndReplacement(t *testing.T) {
	w := newWorld(t)
	w.create(false, false)
	gp := w.as("gp")
	// TD1.3b: the patient now opposes break-glass access.
	if err := w.client("gp").UpdateAdminData(w.ctx, gp, dmp.CreateRequest{Patient: patientSingle, OpposeBreakGlass: true}); err != nil {
		t.Fatal(err)
	}
	st, err := w.client("gp").AdminData(w.ctx, gp, insSingle)
	if err != nil || !st.OpposesBreakGlass || st.OpposesCentre15 {
		t.Fatalf("TD1.3a after TD1.3b: %+v %v", st, err)
	}
	_, code := w.search("emergency", w.emergency("emergency", dmp.ModeBreakGlass))
	want(t, "break-glass after the opposition", code, dmp.CodeOpposition)
	w.traced(entry(gp.IDNat, dmptest.ActionUpdateAdmin, true, ""))

	// TD2.2: a new version replaces the document; the old one is deprecated.
	first := w.feed("gp", "Compte rendu v1", "11488-4")
	r, err := w.client("gp").Search(w.ctx, gp, dmp.StoredQuery{Patient: insSingle, TypeCodes: []dmp.Code{{Code: "11488-4", Scheme: dmp.SchemeLOINC}}})
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("search: %+v %v", r, err)
	}
	req := feedRequest(insSingle, "Compte rendu v2", "11488-4", []byte("%PDF-1.4 v2"))
	req.Replaces = &r.Entries[0]
	second, err := w.client("gp").Feed(w.ctx, gp, req)
	if err != nil {
		t.Fatal(err)
	}
	r, err = w.client("gp").Search(w.ctx, gp, dmp.StoredQuery{Patient: insSingle, TypeCodes: []dmp.Code{{Code: "11488-4", Scheme: dmp.SchemeLOINC}},
		Statuses: []string{dmp.StatusApproved, dmp.StatusDeprecated}})
	if err != nil || len(r.Entries) != 2 {
		t.Fatalf("search after replacement: %+v %v", r, err)
	}
	for _, e := range r.Entries {
		switch {
		case e.UniqueID == first && e.Status != dmp.StatusDeprecated:
			t.Errorf("replaced document is %s", e.Status)
		case e.UniqueID == second.DocumentUniqueID && e.Status != dmp.StatusApproved:
			t.Errorf("replacement is %s", e.Status)
		}
	}
	// Only the author (or an attending physician) may replace.
	w.authorize("cardiologist", false)
	req.Replaces, req.DocumentUniqueID, req.SubmissionSetUniqueID, req.SignatureUniqueID = &r.Entries[0], "", "", ""
	_, err = w.client("cardiologist").Feed(w.ctx, w.as("cardiologist"), req)
	want(t, "replacement by another professional", faultCode(t, err), dmp.CodeAccessDenied)
}
