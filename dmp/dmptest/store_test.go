package dmptest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 123456789, time.UTC)

func createTestDMP(t *testing.T, s *Store) {
	t.Helper()
	d := *openDMP()
	d.CreatedAt = t0
	d.Oppositions.Centre15 = true
	d.LegalRepresentative = "aucun"
	if err := s.CreateDMP(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func testDocument(uid, typeCode, classCode string, created time.Time) DocumentRecord {
	return DocumentRecord{
		UniqueID: uid, INS: insSingle, TypeCode: typeCode, ClassCode: classCode,
		FormatCode: "urn:ihe:iti:xds-sd:pdf:2008", MimeType: "text/xml", Title: "CR " + uid,
		Confidentiality: []string{ConfNormal}, AuthorID: gp.IDNat, AuthorProfession: "G15_10/SM26",
		CreationTime: created, SubmissionTime: created.Add(time.Hour), Size: 42, Hash: "da39a3ee5e6b4b0d3255bfef95601890afd80709",
		RepositoryUniqueID: "1.2.250.1.213.1.1.1.1", ContentPath: "/tmp/x", Metadata: []byte("<ExtrinsicObject/>"),
		SubmissionSetID: "1.2.3.ss." + uid,
	}
}

func TestStoreDMPLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	if _, err := s.DMP(ctx, insSingle); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DMP before creation: %v", err)
	}
	createTestDMP(t, s)
	if err := s.CreateDMP(ctx, *openDMP()); !errors.Is(err, ErrDMPExists) {
		t.Errorf("second creation: %v", err)
	}
	d, err := s.DMP(ctx, insSingle)
	if err != nil {
		t.Fatal(err)
	}
	want := *openDMP()
	want.CreatedAt = t0
	want.Oppositions.Centre15 = true
	want.LegalRepresentative = "aucun"
	if *d != want {
		t.Errorf("DMP = %+v\nwant %+v", *d, want)
	}
	// Rule 1: the creator is authorized.
	a, err := s.Authorization(ctx, insSingle, gp.IDNat)
	if err != nil || a.State != AuthAuthorized || !a.Since.Equal(t0) {
		t.Errorf("creator authorization = %+v, %v", a, err)
	}

	d.Patient.Given = "Laurence Marie"
	d.MaskedInEmergency = true
	d.Oppositions = Oppositions{BreakGlass: true}
	if err := s.UpdateDMP(ctx, *d); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateDMP(ctx, DMPRecord{INS: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update missing DMP: %v", err)
	}
	closedAt := t0.Add(48 * time.Hour)
	if err := s.CloseDMP(ctx, insSingle, closedAt, "FERMETURE_DEMANDE_PATIENT"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseDMP(ctx, insSingle, closedAt, "again"); !errors.Is(err, ErrAlreadyClosed) {
		t.Errorf("second close: %v", err)
	}
	d, _ = s.DMP(ctx, insSingle)
	if d.Status != DMPClosed || !d.ClosedAt.Equal(closedAt) || d.CloseReason != "FERMETURE_DEMANDE_PATIENT" ||
		d.Patient.Given != "Laurence Marie" || !d.MaskedInEmergency || !d.Oppositions.BreakGlass || d.Oppositions.Centre15 {
		t.Errorf("closed DMP = %+v", d)
	}
	if err := s.ReactivateDMP(ctx, insSingle); err != nil {
		t.Fatal(err)
	}
	if err := s.ReactivateDMP(ctx, insSingle); !errors.Is(err, ErrAlreadyOpen) {
		t.Errorf("second reactivation: %v", err)
	}
	d, _ = s.DMP(ctx, insSingle)
	if d.Status != DMPOpen || !d.ClosedAt.IsZero() || d.CloseReason != "" {
		t.Errorf("reactivated DMP = %+v", d)
	}
	if a, _ := s.Authorization(ctx, insSingle, gp.IDNat); a.State != AuthAuthorized {
		t.Errorf("authorization lost on reactivation: %+v", a)
	}
}

func TestStoreAuthorizations(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	if err := s.Authorize(ctx, insSingle, nurse.IDNat, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("authorize on missing DMP: %v", err)
	}
	createTestDMP(t, s)
	later := t0.Add(time.Hour)
	if err := s.Authorize(ctx, insSingle, nurse.IDNat, later); err != nil {
		t.Fatal(err)
	}
	// AJOUT on an existing authorization is a no-op that keeps the date.
	if err := s.Authorize(ctx, insSingle, nurse.IDNat, later.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authorization(ctx, insSingle, nurse.IDNat); !a.Since.Equal(later) {
		t.Errorf("since = %v, want %v", a.Since, later)
	}
	if err := s.SetAttending(ctx, insSingle, pharmacist.IDNat, true); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("attending without authorization: %v", err)
	}
	for _, ps := range []string{gp.IDNat, cardiologist.IDNat} {
		if ps == cardiologist.IDNat {
			if err := s.Authorize(ctx, insSingle, ps, later); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetAttending(ctx, insSingle, ps, true); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Authorizations(ctx, insSingle)
	if err != nil {
		t.Fatal(err)
	}
	attending := 0
	for _, a := range list {
		if a.Attending {
			attending++
		}
	}
	if len(list) != 3 || attending != 2 {
		t.Errorf("authorizations = %+v", list)
	}
	if err := s.SetAttending(ctx, insSingle, cardiologist.IDNat, false); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authorization(ctx, insSingle, cardiologist.IDNat); a.State != AuthAuthorized || a.Attending {
		t.Errorf("after clearing attending: %+v", a)
	}

	// Blocking replaces the authorization; the PS cannot re-authorize nor
	// lift it by removing his authorization; the patient can.
	if err := s.Block(ctx, insSingle, gp.IDNat, later); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authorization(ctx, insSingle, gp.IDNat); a.State != AuthBlocked || a.Attending {
		t.Errorf("blocked = %+v", a)
	}
	if err := s.Authorize(ctx, insSingle, gp.IDNat, later); !errors.Is(err, ErrBlocked) {
		t.Errorf("authorize blocked: %v", err)
	}
	if err := s.RemoveAuthorization(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authorization(ctx, insSingle, gp.IDNat); a.State != AuthBlocked {
		t.Errorf("block lifted by the PS: %+v", a)
	}
	if err := s.Unblock(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authorization(ctx, insSingle, gp.IDNat); a.State != AuthNone {
		t.Errorf("after unblock: %+v", a)
	}
	if err := s.RemoveAuthorization(ctx, insSingle, nurse.IDNat); err != nil {
		t.Fatal(err)
	}
	dmps, err := s.AuthorizedDMPs(ctx, nurse.IDNat)
	if err != nil || len(dmps) != 0 {
		t.Errorf("nurse DMPs after removal = %v, %v", dmps, err)
	}
	if dmps, _ := s.AuthorizedDMPs(ctx, cardiologist.IDNat); !slices.Equal(dmps, []string{insSingle}) {
		t.Errorf("cardiologist DMPs = %v", dmps)
	}

	req, err := s.AccessRequest(ctx, cardiologist, ActionRead, insSingle)
	if err != nil || req.DMP == nil || req.Authorization != AuthAuthorized || req.INS != insSingle {
		t.Errorf("AccessRequest = %+v, %v", req, err)
	}
	req, err = s.AccessRequest(ctx, gp, ActionRead, "207058575627097^^^&1.2.250.1.213.1.4.11&ISO^NH")
	if err != nil || req.DMP != nil {
		t.Errorf("AccessRequest without DMP = %+v, %v", req, err)
	}
	if d := (Rules{}).Decide(req); d.Code != CodeNotFound {
		t.Errorf("Decide without DMP = %+v", d)
	}
}

func TestStoreDocuments(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	if err := s.AddDocument(ctx, testDocument("1.1", "11488-4", "10", t0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("document without DMP: %v", err)
	}
	createTestDMP(t, s)
	in := testDocument("1.1", "11488-4", "10", t0)
	in.EntryUUID = "urn:uuid:00000000-0000-4000-8000-000000000001"
	feed := HistoryEntry{Time: t0, INS: insSingle, ActorID: gp.IDNat, Action: ActionFeed, DocumentUniqueID: "1.1", Allowed: true}
	if err := s.AddDocument(ctx, in, feed); err != nil {
		t.Fatal(err)
	}
	got, err := s.DocumentByUniqueID(ctx, "1.1")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.LogicalID, want.Version, want.Status = in.EntryUUID, 1, DocApproved
	if !equalDocs(*got, want) {
		t.Errorf("document = %+v\nwant %+v", *got, want)
	}
	if h, _ := s.History(ctx, insSingle, 0); len(h) != 1 || h[0].Action != ActionFeed || h[0].DocumentUniqueID != "1.1" {
		t.Errorf("feed history = %+v", h)
	}

	// A retried submission never registers twice, and its trace is not kept.
	retry := testDocument("1.1", "11488-4", "10", t0)
	if err := s.AddDocument(ctx, retry, feed); !errors.Is(err, ErrDuplicateUniqueID) {
		t.Errorf("duplicate uniqueId: %v", err)
	}
	if h, _ := s.History(ctx, insSingle, 0); len(h) != 1 {
		t.Errorf("history after a refused duplicate = %d entries", len(h))
	}
	dupEntry := testDocument("1.2", "11488-4", "10", t0)
	dupEntry.EntryUUID = in.EntryUUID
	if err := s.AddDocument(ctx, dupEntry); !errors.Is(err, ErrDuplicateEntry) {
		t.Errorf("duplicate entryUUID: %v", err)
	}

	for k, d := range []DocumentRecord{
		testDocument("2.1", "57833-6", "42", t0.AddDate(0, 0, 1)),
		testDocument("2.2", "60591-5", "11", t0.AddDate(0, 0, 2)),
		testDocument("2.3", "REMB", "60", t0.AddDate(0, 0, 3)),
	} {
		d.SubmissionTime = t0.Add(time.Duration(k+2) * time.Hour)
		if err := s.AddDocument(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		q    DocumentQuery
		want []string
	}{
		{DocumentQuery{INS: insSingle}, []string{"1.1", "2.1", "2.2", "2.3"}},
		{DocumentQuery{INS: "other"}, nil},
		{DocumentQuery{INS: insSingle, TypeCodes: []string{"57833-6", "REMB"}}, []string{"2.1", "2.3"}},
		{DocumentQuery{INS: insSingle, ClassCodes: []string{"11"}}, []string{"2.2"}},
		{DocumentQuery{INS: insSingle, Statuses: []DocumentStatus{DocArchived}}, nil},
		{DocumentQuery{INS: insSingle, CreatedFrom: t0.AddDate(0, 0, 1), CreatedTo: t0.AddDate(0, 0, 3)}, []string{"2.1", "2.2"}},
		{DocumentQuery{INS: insSingle, CreatedFrom: t0.AddDate(0, 0, 3)}, []string{"2.3"}},
	}
	for _, tt := range tests {
		docs, err := s.FindDocuments(ctx, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if ids := uniqueIDs(docs); !slices.Equal(ids, tt.want) {
			t.Errorf("FindDocuments(%+v) = %v, want %v", tt.q, ids, tt.want)
		}
	}
}

func equalDocs(a, b DocumentRecord) bool {
	return slices.Equal(a.Confidentiality, b.Confidentiality) && string(a.Metadata) == string(b.Metadata) &&
		a.CreationTime.Equal(b.CreationTime) && a.SubmissionTime.Equal(b.SubmissionTime) &&
		fmt.Sprint(stripped(a)) == fmt.Sprint(stripped(b))
}

func stripped(d DocumentRecord) DocumentRecord {
	d.Confidentiality, d.Metadata, d.CreationTime, d.SubmissionTime = nil, nil, time.Time{}, time.Time{}
	return d
}

func uniqueIDs(docs []DocumentRecord) []string {
	var ids []string
	for _, d := range docs {
		ids = append(ids, d.UniqueID)
	}
	return ids
}

func TestStoreVersioningAndStatus(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	createTestDMP(t, s)
	in := testDocument("1.1", "11488-4", "10", t0)
	in.EntryUUID, in.LogicalID = "urn:uuid:e1", "urn:uuid:lid"
	if err := s.AddDocument(ctx, in); err != nil {
		t.Fatal(err)
	}
	// Masking: a new version, same logicalId and uniqueId, previous Deprecated.
	v2, err := s.NewVersion(ctx, "urn:uuid:lid", 1, MetadataUpdate{
		EntryUUID: "urn:uuid:e2", Confidentiality: []string{ConfNormal, ConfMaskedPS}, Metadata: []byte("<v2/>"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.LogicalID != "urn:uuid:lid" || v2.UniqueID != "1.1" || v2.Status != DocApproved ||
		!v2.HasConfidentiality(ConfMaskedPS) || v2.Hash != in.Hash || v2.ContentPath != in.ContentPath {
		t.Errorf("version 2 = %+v", v2)
	}
	v1, _ := s.DocumentByEntryUUID(ctx, "urn:uuid:e1")
	if v1.Status != DocDeprecated || v1.HasConfidentiality(ConfMaskedPS) {
		t.Errorf("version 1 = %+v", v1)
	}
	latest, _ := s.DocumentByUniqueID(ctx, "1.1")
	if latest.EntryUUID != "urn:uuid:e2" {
		t.Errorf("latest = %s", latest.EntryUUID)
	}
	if _, err := s.NewVersion(ctx, "urn:uuid:lid", 1, MetadataUpdate{}); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("stale version: %v", err)
	}
	if _, err := s.NewVersion(ctx, "urn:uuid:none", 1, MetadataUpdate{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown logicalId: %v", err)
	}
	// Rule 6: revealing to the patient is another version.
	v3, err := s.NewVersion(ctx, "urn:uuid:lid", 2, MetadataUpdate{Confidentiality: []string{ConfNormal}})
	if err != nil || v3.Version != 3 || v3.EntryUUID == "" || v3.EntryUUID == "urn:uuid:e2" {
		t.Fatalf("version 3 = %+v, %v", v3, err)
	}
	if all, _ := s.FindDocuments(ctx, DocumentQuery{INS: insSingle, Statuses: []DocumentStatus{DocApproved}}); len(all) != 1 {
		t.Errorf("approved versions = %d, want 1", len(all))
	}

	// Status transitions.
	steps := []struct {
		from, to DocumentStatus
		ok       bool
	}{
		{DocArchived, DocApproved, false}, // wrong OriginalStatus
		{DocApproved, DocArchived, true},
		{DocArchived, DocApproved, true},
		{DocApproved, DocDeprecated, false},
		{DocApproved, DocDeleted, true},
		{DocDeleted, DocApproved, false},
	}
	for _, st := range steps {
		err := s.SetDocumentStatus(ctx, v3.EntryUUID, st.from, st.to)
		if st.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidTransition)) {
			t.Errorf("%s → %s: %v", st.from, st.to, err)
		}
	}
	if _, err := s.NewVersion(ctx, "urn:uuid:lid", 3, MetadataUpdate{}); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("mask a deleted document: %v", err)
	}
	if err := s.SetDocumentStatus(ctx, "urn:uuid:e1", DocDeprecated, DocArchived); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("archive deprecated: %v", err)
	}

	// Replacement.
	old := testDocument("5.1", "11488-4", "10", t0)
	if err := s.AddDocument(ctx, old); err != nil {
		t.Fatal(err)
	}
	oldRec, _ := s.DocumentByUniqueID(ctx, "5.1")
	if err := s.ReplaceDocument(ctx, oldRec.EntryUUID, testDocument("5.2", "11488-4", "10", t0)); err != nil {
		t.Fatal(err)
	}
	oldRec, _ = s.DocumentByUniqueID(ctx, "5.1")
	newRec, _ := s.DocumentByUniqueID(ctx, "5.2")
	if oldRec.Status != DocDeprecated || oldRec.ReplacedBy != "5.2" || newRec.Status != DocApproved || newRec.LogicalID == oldRec.LogicalID {
		t.Errorf("after RPLC: old %+v new %+v", oldRec, newRec)
	}
	if err := s.ReplaceDocument(ctx, oldRec.EntryUUID, testDocument("5.3", "11488-4", "10", t0)); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("replace a deprecated document: %v", err)
	}
	if _, err := s.DocumentByUniqueID(ctx, "5.3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused replacement left a document: %v", err)
	}
}

func TestStoreHistoryOrder(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	createTestDMP(t, s)
	for k, a := range []Action{ActionSearch, ActionRead, ActionMask} {
		h := HistoryEntry{Time: t0.Add(time.Duration(k) * time.Minute), INS: insSingle, ActorID: gp.IDNat, Action: a, Allowed: true}
		if err := s.AppendHistory(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	// Same time as the last one: insertion order breaks the tie.
	denied := HistoryEntry{Time: t0.Add(2 * time.Minute), INS: insSingle, ActorID: pharmacist.IDNat, Mode: ModeBreakGlass,
		Reason: "malaise", Action: ActionRead, DocumentUniqueID: "1.1", Code: CodeAccessDenied}
	if err := s.AppendHistory(ctx, denied); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, insSingle, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []Action
	for _, e := range h {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []Action{ActionRead, ActionMask, ActionRead, ActionSearch}) {
		t.Errorf("history order = %v", actions)
	}
	got := h[0]
	got.ID = 0
	if got != denied {
		t.Errorf("history entry = %+v\nwant %+v", got, denied)
	}
	if h, _ := s.History(ctx, insSingle, 2); len(h) != 2 {
		t.Errorf("limit 2 gave %d", len(h))
	}
	if h, _ := s.History(ctx, "other", 0); len(h) != 0 {
		t.Errorf("other DMP history = %v", h)
	}
}

func TestStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "dmp.db"))
	createTestDMP(t, s)
	const workers, perWorker = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*3)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perWorker {
				// Every worker also tries the same uniqueIds: exactly one
				// registration per id must win.
				shared := testDocument(fmt.Sprintf("9.%d", k), "11488-4", "10", t0)
				err := s.AddDocument(ctx, shared, HistoryEntry{INS: insSingle, Action: ActionFeed, Allowed: true})
				if err != nil && !errors.Is(err, ErrDuplicateUniqueID) {
					errs <- err
				}
				own := testDocument(fmt.Sprintf("8.%d.%d", w, k), "57833-6", "42", t0)
				if err := s.AddDocument(ctx, own); err != nil {
					errs <- err
				}
				if _, err := s.FindDocuments(ctx, DocumentQuery{INS: insSingle, ClassCodes: []string{"42"}}); err != nil {
					errs <- err
				}
				if err := s.Authorize(ctx, insSingle, fmt.Sprintf("PS%d", w), t0); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := s.FindDocuments(ctx, DocumentQuery{INS: insSingle})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != perWorker+workers*perWorker {
		t.Errorf("documents = %d, want %d", len(all), perWorker+workers*perWorker)
	}
	if h, _ := s.History(ctx, insSingle, 0); len(h) != perWorker {
		t.Errorf("feed history = %d entries, want one per registered shared document (%d)", len(h), perWorker)
	}
}

func TestStoreReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dmp.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	createTestDMP(t, s)
	if err := s.AddDocument(ctx, testDocument("1.1", "11488-4", "10", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(ctx, insSingle, nurse.IDNat, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path) // the schema is created idempotently
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	if d, err := s.DMP(ctx, insSingle); err != nil || d.Patient.Family != "PATB-QUATRE" {
		t.Errorf("DMP after reopen = %+v, %v", d, err)
	}
	if d, err := s.DocumentByUniqueID(ctx, "1.1"); err != nil || d.Title != "CR 1.1" {
		t.Errorf("document after reopen = %+v, %v", d, err)
	}
	if a, _ := s.Authorization(ctx, insSingle, nurse.IDNat); a.State != AuthBlocked {
		t.Errorf("block after reopen = %+v", a)
	}
	if _, err := OpenStore(filepath.Join(t.TempDir(), "a?b.db")); err == nil {
		t.Error("a path with '?' was accepted")
	}
	if _, err := OpenStore(filepath.Join(t.TempDir(), "missing", "dir", "x.db")); err == nil {
		t.Error("a path in a missing directory was accepted")
	}
}

func TestSeedReimbursementHistory(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, ":memory:")
	createTestDMP(t, s)
	dir := t.TempDir()
	now := time.Date(2025, 6, 15, 8, 0, 0, 0, time.UTC)
	d, err := SeedReimbursementHistory(ctx, s, insSingle, SeedOptions{Dir: dir, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(d.ContentPath)
	if err != nil {
		t.Fatal(err)
	}
	if d.TypeCode != "REMB" || d.ClassCode != "60" || d.AuthorID != AssuranceMaladieID || d.Size != int64(len(body)) || len(d.Hash) != 40 {
		t.Errorf("seeded document = %+v", d)
	}
	again, err := SeedReimbursementHistory(ctx, s, insSingle, SeedOptions{Dir: dir, Now: now.Add(time.Hour)})
	if err != nil || again.EntryUUID != d.EntryUUID {
		t.Errorf("second seed = %+v, %v", again, err)
	}
	if h, _ := s.History(ctx, insSingle, 0); len(h) != 1 || h[0].ActorID != AssuranceMaladieID || h[0].Action != ActionFeed {
		t.Errorf("seed history = %+v", h)
	}
	// Rule 10: an ordinary document for the rules.
	stored, _ := s.DocumentByUniqueID(ctx, d.UniqueID)
	for _, tt := range []struct {
		actor Actor
		want  bool
	}{{pharmacist, true}, {nurse, true}, {optician, false}, {gp, true}} {
		req := authorizedRequest(ActionRead, tt.actor, stored)
		if got := (Rules{}).Decide(req).Allowed; got != tt.want {
			t.Errorf("%s reads reimbursements: %v, want %v", tt.actor.Name, got, tt.want)
		}
	}
	if _, err := SeedReimbursementHistory(ctx, s, "no-dmp", SeedOptions{Dir: dir, Now: now}); !errors.Is(err, ErrNotFound) {
		t.Errorf("seed without DMP: %v", err)
	}
}
