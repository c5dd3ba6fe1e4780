package dmptest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp"
)

func pdfOf(content []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }
}

func feedRequest(ins dmp.INS, title, typeCode string, pdf []byte) dmp.FeedRequest {
	return dmp.FeedRequest{
		Patient: ins, PatientFamily: "PATB-QUATRE", PatientGiven: "Laurence", PatientSex: "F", PatientBirth: "19070525",
		Title: title, TypeCode: typeCode, PDF: pdfOf(pdf),
	}
}

func TestFeedSearchRetrieve(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newServer(t)
	wire := t.TempDir()
	gp := professional(t, "gp")
	c := clientFor(t, s, "gp", func(cfg *dmp.Config) { cfg.WireLog = wire })
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("compte rendu de consultation "), 200)...)
	res, err := c.Feed(ctx, gp, feedRequest(insSingle, "Consultation du 23/11", "11488-4", pdf))
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Entries) != 1 {
		t.Fatalf("search found %d entries", len(found.Entries))
	}
	e := found.Entries[0]
	if e.UniqueID != res.DocumentUniqueID || e.Title != "Consultation du 23/11" || e.Class.Code != "10" ||
		e.Hash != res.SHA1 || e.Size != res.Size || e.Status != dmp.StatusApproved {
		t.Fatalf("entry %+v, feed %+v", e, res)
	}
	doc, err := c.Retrieve(ctx, gp, insSingle, e.RepositoryUniqueID, e.UniqueID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(doc.Body)
	doc.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(got)
	if hex.EncodeToString(sum[:]) != res.SHA1 || doc.MimeType != "text/xml" {
		t.Fatalf("retrieved %d bytes of %s, sha1 %x", len(got), doc.MimeType, sum)
	}
	hdr, err := dmp.ParseCDAHeader(bytes.NewReader(got))
	if err != nil || hdr.UniqueID != res.DocumentUniqueID {
		t.Fatalf("CDA header %+v %v", hdr, err)
	}

	// Sending the same submission again is recognised, not duplicated.
	again := feedRequest(insSingle, "Consultation du 23/11", "11488-4", pdf)
	again.DocumentUniqueID, again.SubmissionSetUniqueID = res.DocumentUniqueID, res.SubmissionSetUniqueID
	res2, err := c.Feed(ctx, gp, again)
	if err != nil || !res2.AlreadyRegistered {
		t.Fatalf("resend: %+v %v", res2, err)
	}
	if found, _ := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle}); len(found.Entries) != 1 {
		t.Fatalf("resend made %d entries", len(found.Entries))
	}

	// The wire log has every message and no document bytes.
	files, _ := filepath.Glob(filepath.Join(wire, "*.xml"))
	if len(files) < 8 {
		t.Fatalf("wire log has %d files", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("compte rendu de consultation")) || bytes.Contains(b, []byte("JVBERi0")) {
			t.Fatalf("%s holds document bytes", f)
		}
	}
}

func TestMaskArchiveDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newServer(t)
	gp := professional(t, "gp")
	c := clientFor(t, s, "gp")
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Feed(ctx, gp, feedRequest(insSingle, "Synthèse", "60591-5", []byte("%PDF-1.4 synthese"))); err != nil {
		t.Fatal(err)
	}
	search := func() dmp.DocumentEntry {
		t.Helper()
		r, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle, Statuses: []string{dmp.StatusApproved, dmp.StatusArchived}})
		if err != nil || len(r.Entries) != 1 {
			t.Fatalf("search: %v %+v", err, r)
		}
		return r.Entries[0]
	}
	e := search()
	if err := c.Mask(ctx, gp, e); err != nil {
		t.Fatal(err)
	}
	m := search()
	if !m.HasConfidentiality(dmp.MaskedFromProfessional) || m.Version != "2" || m.LogicalID != e.LogicalID || m.ID == e.ID {
		t.Fatalf("masked entry %+v", m)
	}
	// Masking from a stale version is refused.
	if err := c.Unmask(ctx, gp, e); err == nil {
		t.Fatal("unmasking an old version succeeded")
	}
	if err := c.Archive(ctx, gp, m); err != nil {
		t.Fatal(err)
	}
	a := search()
	if a.Status != dmp.StatusArchived {
		t.Fatalf("archived entry %+v", a)
	}
	if err := c.DeleteDocument(ctx, gp, a); err != nil {
		t.Fatal(err)
	}
	r, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle, Statuses: []string{dmp.StatusApproved, dmp.StatusArchived}})
	if err != nil || len(r.Entries) != 0 {
		t.Fatalf("after delete: %v %+v", err, r)
	}
}

func TestUnauthorizedSearch(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	gp := professional(t, "gp")
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	ph := professional(t, "pharmacist")
	_, err := clientFor(t, s, "pharmacist").Search(ctx, ph, dmp.StoredQuery{Patient: insSingle})
	var f *dmp.Fault
	if !errors.As(err, &f) || f.Code != dmp.CodeAccessDenied {
		t.Fatalf("pharmacist search: %v", err)
	}
	h, err := s.History(ctx, insSingle, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) < 2 || h[1].ActorID != ph.IDNat || h[1].Allowed || h[1].Code != dmp.CodeAccessDenied {
		t.Fatalf("history %+v", h)
	}
	_ = strings.TrimSpace
}

// countingSigner counts the private-key operations a card would do.
type countingSigner struct {
	crypto.Signer
	n atomic.Int64
}

func (c *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(r, digest, opts)
}

// TestCardSignatures checks what a session costs the card: one VIHF
// signature per patient and mode within the VIHF lifetime, and one XAdES
// signature per feed.
func TestCardSignatures(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	gp := professional(t, "gp")
	var signer *countingSigner
	c := clientFor(t, s, "gp", func(cfg *dmp.Config) {
		signer = &countingSigner{Signer: cfg.Signer}
		cfg.Signer = signer
	})
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.Feed(ctx, gp, feedRequest(insSingle, "CR", "11488-4", []byte("%PDF-1.4 cr"))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle}); err != nil {
			t.Fatal(err)
		}
	}
	if got := signer.n.Load(); got != 1+3 {
		t.Fatalf("%d card signatures for 3 feeds and 3 searches, want 4", got)
	}
	// Another patient needs its own VIHF.
	if _, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insFamily}); err == nil {
		t.Fatal("search on a patient without a DMP succeeded")
	}
	if got := signer.n.Load(); got != 5 {
		t.Fatalf("%d card signatures after a second patient, want 5", got)
	}
}
