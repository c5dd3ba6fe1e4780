package dmptest

// Seeding the reimbursement history (DESIGN §6 rule 10). The Assurance
// Maladie feeds every DMP with the patient's last 24 months of
// reimbursements (typeCode REMB, class 60). Here it is an ordinary document
// authored by a system actor, so the access rules apply to it as to any
// other: a pharmacist reads it (the matrix allows REMB), an optician does
// not, a block or a closed DMP hides it.

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The reimbursement history document's codes and author.
const (
	ReimbursementTypeCode   = "REMB"
	ReimbursementTypeScheme = "1.2.250.1.213.1.1.4.12" // TRE_A05
	ReimbursementClassCode  = "60"
	// ReimbursementFormatCode is the CDA level-1 text format; the body
	// written here is plain text until the HTTP layer wraps it in CDA.
	ReimbursementFormatCode = "urn:ihe:iti:xds-sd:text:2008"
	// AssuranceMaladieID is the author idNat of documents the Assurance
	// Maladie feeds. The real service's value is not public; this one is
	// ours and cannot collide with an RPPS/ADELI number.
	AssuranceMaladieID   = "ASSURANCE_MALADIE"
	AssuranceMaladieName = "Assurance Maladie"
	// ReimbursementIDRoot is dmptest's own OID arc for the uniqueIds of
	// seeded documents.
	ReimbursementIDRoot = "1.2.250.1.213.4.1.1.1.9.60"
)

// SeedOptions say where and when to seed.
type SeedOptions struct {
	Dir                string    // where the content file is written; must exist
	Now                time.Time // end of the 24 months; zero means now
	RepositoryUniqueID string
}

// SeedReimbursementHistory registers the 24-month reimbursement history of
// a DMP's patient, with its content in a file under opt.Dir. The document's
// uniqueId derives from the INS and the month, so seeding twice in a month
// returns the document already registered.
func SeedReimbursementHistory(ctx context.Context, s *Store, ins string, opt SeedOptions) (*DocumentRecord, error) {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	uid := reimbursementUniqueID(ins, now)
	if d, err := s.DocumentByUniqueID(ctx, uid); err == nil {
		return d, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	body := reimbursementBody(ins, now)
	path := filepath.Join(opt.Dir, "remb-"+strings.ReplaceAll(uid, ".", "_")+".txt")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return nil, fmt.Errorf("dmptest: seed reimbursement history: %w", err)
	}
	sum := sha1.Sum(body)
	d := DocumentRecord{
		EntryUUID:          NewUUID(),
		UniqueID:           uid,
		INS:                ins,
		TypeCode:           ReimbursementTypeCode,
		ClassCode:          ReimbursementClassCode,
		FormatCode:         ReimbursementFormatCode,
		MimeType:           "text/plain",
		Title:              "Historique des remboursements (24 mois)",
		Confidentiality:    []string{ConfNormal},
		AuthorID:           AssuranceMaladieID,
		CreationTime:       now,
		SubmissionTime:     now,
		Size:               int64(len(body)),
		Hash:               hex.EncodeToString(sum[:]),
		RepositoryUniqueID: opt.RepositoryUniqueID,
		ContentPath:        path,
	}
	trace := HistoryEntry{
		Time: now, INS: ins, ActorID: AssuranceMaladieID, ActorName: AssuranceMaladieName,
		Mode: ModeNormal, Action: ActionFeed, DocumentUniqueID: uid, Allowed: true,
	}
	err := s.AddDocument(ctx, d, trace)
	if errors.Is(err, ErrDuplicateUniqueID) {
		// Another seeder won the race: keep its document, drop our file.
		os.Remove(path)
		return s.DocumentByUniqueID(ctx, uid)
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &d, nil
}

// reimbursementUniqueID is an OID: root, a number from the INS, the month.
func reimbursementUniqueID(ins string, now time.Time) string {
	h := sha1.Sum([]byte(ins))
	n := binary.BigEndian.Uint64(h[:8]) >> 1 // an arc without sign trouble
	return fmt.Sprintf("%s.%d.%d", ReimbursementIDRoot, n+1, now.Year()*100+int(now.Month()))
}

// reimbursementBody lists made-up but stable reimbursements over the 24
// months before now: the same INS and month always give the same bytes.
func reimbursementBody(ins string, now time.Time) []byte {
	acts := []struct{ label, amount string }{
		{"Consultation de médecine générale (G)", "26,50"},
		{"Délivrance de médicaments (pharmacie)", "18,40"},
		{"Soins infirmiers (AMI 2)", "6,30"},
		{"Consultation de cardiologie (APC)", "55,00"},
		{"Analyses de biologie médicale", "21,60"},
		{"Séance de masso-kinésithérapie (AMK 7,5)", "16,13"},
	}
	seed := sha1.Sum([]byte(ins))
	var b strings.Builder
	fmt.Fprintf(&b, "Historique des remboursements - 24 derniers mois\n")
	fmt.Fprintf(&b, "Patient (INS) : %s\nÉmetteur : %s\nÉdité le : %s\n\n", ins, AssuranceMaladieName, now.Format("02/01/2006"))
	fmt.Fprintf(&b, "Date        Acte                                         Remboursé (EUR)\n")
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -23, 0)
	for m := range 24 {
		if seed[m%len(seed)]%3 != 0 {
			continue
		}
		act := acts[int(seed[(m+7)%len(seed)])%len(acts)]
		day := 1 + int(seed[(m+3)%len(seed)])%28
		at := start.AddDate(0, m, day-1)
		fmt.Fprintf(&b, "%s  %-44s %s\n", at.Format("02/01/2006"), act.label, act.amount)
	}
	return []byte(b.String())
}
