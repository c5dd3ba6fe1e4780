package dmp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// The document transactions of the DMP (TD2.1, TD2.2, TD3.1, TD3.2,
// TD3.3a–d) on the XDS.b codecs of iti41.go, iti18.go, iti43.go, iti57.go.

// CodeDuplicateUniqueID is the registry's answer to a document whose
// uniqueId it already holds: a feed that was delivered before the client
// heard the answer.
const CodeDuplicateUniqueID = "XDSDuplicateUniqueIdInRegistry"

// Default codes of a feed from a practice, overridable per request.
var (
	PracticeAmbulatory  = Code{"AMBULATOIRE", SchemePracticeSetting, "Ambulatoire"}
	ContentConsultation = Code{"07", SchemeActivityType, "Consultation externe"}
)

// NewOID returns a new globally unique OID under 2.25 (ITU-T X.667: the
// integer value of a random UUID), for document and submission set
// uniqueIds.
func NewOID() string {
	u := strings.ReplaceAll(NewUUID(), "-", "")
	n, _ := new(big.Int).SetString(u, 16)
	return "2.25." + n.String()
}

// FeedRequest is a PDF to add to a patient's DMP (TD2.1), or to put in place
// of an earlier document (TD2.2) when Replaces is set.
type FeedRequest struct {
	Patient       INS
	PatientFamily string // birth name, for the CDA header
	PatientGiven  string
	PatientSex    string // M, F or U
	PatientBirth  string // YYYYMMDD

	Title        string
	TypeCode     string // LOINC or TRE_A05 code; the class follows from it
	ServiceStart time.Time
	ServiceStop  time.Time
	// Hidden adds TRE_A07 visibility codes: MaskedFromProfessional,
	// InvisibleToPatient, InvisibleToLegalReps.
	Hidden          []Code
	PracticeSetting Code // default PracticeAmbulatory
	ContentType     Code // submission set; default ContentConsultation

	// PDF opens the document. It is called twice: once to hash the
	// document for the submission-set signature, once to send it; the
	// document is streamed both times, never held whole.
	PDF func() (io.ReadCloser, error)

	// Time and the uniqueIds identify the submission. A caller that may
	// send it again after a crash (an outbox) fixes them beforehand, so the
	// registry recognises the resend; empty values are generated.
	Time                  time.Time
	DocumentUniqueID      string
	SubmissionSetUniqueID string
	SignatureUniqueID     string

	// Replaces is the document replaced (its entryUUID and uniqueId, from
	// a search), for TD2.2.
	Replaces *DocumentEntry
}

// FeedResult says what the DMP registered.
type FeedResult struct {
	DocumentUniqueID      string
	SubmissionSetUniqueID string
	Size                  int64  // bytes of the CDA document sent
	SHA1                  string // its SHA-1, as the repository computes it
	// AlreadyRegistered is set when the registry already held the document:
	// an earlier send of the same request got through.
	AlreadyRegistered bool
}

const (
	feedSubmissionSetID = "SubmissionSet01"
	feedDocumentID      = "Document01"
	feedSignatureID     = "Signature01"
	cidDocument         = "document01@dmpagent"
	cidSignature        = "signature01@dmpagent"
)

// Feed wraps a PDF in a CDA R2 document, signs the submission set (XAdES)
// and sends both by ITI-41 with MTOM.
func (c *Client) Feed(ctx context.Context, actor Actor, req FeedRequest) (*FeedResult, error) {
	if req.PDF == nil {
		return nil, errors.New("dmp: feed: no document")
	}
	if err := req.Patient.Valid(); err != nil {
		return nil, err
	}
	now := req.Time
	if now.IsZero() {
		now = c.cfg.Now()
	}
	now = now.UTC().Truncate(time.Second)
	for _, id := range []*string{&req.DocumentUniqueID, &req.SubmissionSetUniqueID, &req.SignatureUniqueID} {
		if *id == "" {
			*id = NewOID()
		}
	}
	if req.PracticeSetting.Code == "" {
		req.PracticeSetting = PracticeAmbulatory
	}
	if req.ContentType.Code == "" {
		req.ContentType = ContentConsultation
	}
	if req.ServiceStart.IsZero() {
		req.ServiceStart = now
	}
	p := actor.Professional
	header := CDAHeader{
		UniqueID: req.DocumentUniqueID, Title: req.Title, TypeCode: req.TypeCode, EffectiveTime: now,
		Patient: req.Patient, PatientFamily: req.PatientFamily, PatientGiven: req.PatientGiven,
		PatientSex: req.PatientSex, PatientBirth: req.PatientBirth, Author: p,
		ServiceStart: req.ServiceStart, ServiceStop: req.ServiceStop,
		FacilityType: p.Sector, PracticeSetting: req.PracticeSetting.Code,
	}
	if req.Replaces != nil {
		// A replacement is the next version of the same clinical document.
		header.SetID = req.Replaces.UniqueID
		header.Version = 2
	}
	if s := typeSchemeOf(req.TypeCode); s != "" && s != SchemeLOINC {
		header.TypeSystem = s
	}
	openCDA := func() (io.Reader, io.Closer, error) {
		pdf, err := req.PDF()
		if err != nil {
			return nil, nil, fmt.Errorf("dmp: feed: opening the document: %w", err)
		}
		r, err := NewPDFDocument(header, pdf)
		if err != nil {
			pdf.Close()
			return nil, nil, err
		}
		return r, pdf, nil
	}

	// First pass: digests and size, streamed.
	r, closer, err := openCDA()
	if err != nil {
		return nil, err
	}
	manifest := c.cfg.Hash.New()
	sha := sha1.New()
	size, err := io.Copy(io.MultiWriter(manifest, sha), r)
	closer.Close()
	if err != nil {
		return nil, fmt.Errorf("dmp: feed: reading the document: %w", err)
	}
	sum := sha.Sum(nil)

	signature, err := SignSubmissionSet(XAdESRequest{
		SubmissionSetUniqueID: req.SubmissionSetUniqueID,
		Documents:             []ManifestEntry{{UniqueID: req.DocumentUniqueID, Digest: manifest.Sum(nil)}},
		SigningTime:           now, Hash: c.cfg.Hash, Signer: c.cfg.Signer, Certs: c.cfg.Certificates,
	})
	if err != nil {
		return nil, fmt.Errorf("dmp: feed: signing the submission set: %w", err)
	}

	author := AuthorFromProfessional(p)
	entry, err := NewPDFEntry(DocumentEntry{
		ID: feedDocumentID, UniqueID: req.DocumentUniqueID, Title: req.Title, CreationTime: now,
		ServiceStart: req.ServiceStart, ServiceStop: req.ServiceStop,
		Authors: []Author{author}, LegalAuthenticator: author.Person(),
		Type:            Code{Code: req.TypeCode},
		FacilityType:    Code{p.Sector, SchemeSector, p.Sector},
		PracticeSetting: req.PracticeSetting,
		Confidentiality: append([]Code{ConfidentialityNormal}, req.Hidden...),
		Patient:         req.Patient, SourcePatientID: req.Patient.CX(),
		SourcePatientInfo: sourcePatientInfo(req),
	})
	if err != nil {
		return nil, err
	}
	sigEntry := SignatureEntry(feedSignatureID, req.SignatureUniqueID, now, entry)
	set := ProvideAndRegister{
		SubmissionSet: SubmissionSet{
			ID: feedSubmissionSetID, UniqueID: req.SubmissionSetUniqueID, SourceID: c.sourceID(),
			SubmissionTime: now, Author: author, ContentType: req.ContentType, Patient: req.Patient,
		},
		Documents: []DocumentEntry{entry, sigEntry},
		Associations: []Association{
			HasMember("Association01", feedSubmissionSetID, feedDocumentID),
			HasMember("Association02", feedSubmissionSetID, feedSignatureID),
			SignsAssociation("Association03", feedSignatureID, feedSubmissionSetID),
		},
	}
	if req.Replaces != nil {
		set.Associations = append(set.Associations, ReplaceAssociation("Association04", feedDocumentID, req.Replaces.ID))
	}
	body, err := BuildProvideAndRegister(set, func(id string) DocumentContent {
		if id == feedSignatureID {
			return DocumentContent{ContentID: cidSignature}
		}
		return DocumentContent{ContentID: cidDocument}
	})
	if err != nil {
		return nil, err
	}

	// Second pass: the document streams into the request.
	r, closer, err = openCDA()
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	res := &FeedResult{DocumentUniqueID: req.DocumentUniqueID, SubmissionSetUniqueID: req.SubmissionSetUniqueID, Size: size, SHA1: hex.EncodeToString(sum)}
	rep, err := c.do(ctx, request{
		service: ServiceRepository, action: ActionITI41, actor: actor, patient: &req.Patient, body: body,
		parts: []Part{
			{ContentID: cidDocument, ContentType: "text/xml", Body: &sizeCheck{r: r, want: size}},
			{ContentID: cidSignature, ContentType: "text/xml", Body: bytes.NewReader(signature)},
		},
	})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	err = ParseRegistryResponse(rep.envelope)
	var f *Fault
	if errors.As(err, &f) && f.Code == CodeDuplicateUniqueID {
		res.AlreadyRegistered = true
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// sizeCheck fails the upload if the document changed between the
// hashing pass and the sending pass: the signature would not match it.
type sizeCheck struct {
	r    io.Reader
	n    int64
	want int64
}

// ErrDocumentChanged means the document read for sending differs in size
// from the one read for signing.
var ErrDocumentChanged = errors.New("dmp: the document changed while it was being sent")

func (c *sizeCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.want || (errors.Is(err, io.EOF) && c.n != c.want) {
		return n, ErrDocumentChanged
	}
	return n, err
}

func sourcePatientInfo(r FeedRequest) []string {
	var out []string
	if r.PatientFamily != "" {
		out = append(out, "PID-5|"+r.PatientFamily+"^"+r.PatientGiven+"^^^^^L")
	}
	if r.PatientBirth != "" {
		out = append(out, "PID-7|"+r.PatientBirth)
	}
	if r.PatientSex != "" {
		out = append(out, "PID-8|"+r.PatientSex)
	}
	return out
}

// sourceID is the OID of the submitting system: the software's LPS_ID
// when it is an OID.
func (c *Client) sourceID() string {
	if isOID(c.cfg.Software.ID) {
		return c.cfg.Software.ID
	}
	return c.cfg.SourceID
}

// Search runs an ITI-18 stored query (TD3.1). A zero query ID means
// FindDocuments; no status means the current (Approved) documents.
func (c *Client) Search(ctx context.Context, actor Actor, q StoredQuery) (*QueryResponse, error) {
	if q.ID == "" {
		q.ID = QueryFindDocuments
	}
	if q.ID == QueryFindDocuments && len(q.Statuses) == 0 {
		q.Statuses = []string{StatusApproved}
	}
	body, err := BuildQuery(q)
	if err != nil {
		return nil, err
	}
	var patient *INS
	if q.Patient.Value != "" {
		patient = &q.Patient
	}
	rep, err := c.do(ctx, request{service: ServiceRegistry, action: ActionITI18, actor: actor, patient: patient, body: body})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	return ParseQueryResponse(rep.envelope)
}

// Document is a retrieved document; Body streams it and must be closed.
type Document struct {
	UniqueID string
	MimeType string
	Body     io.ReadCloser
}

// Retrieve fetches one document by ITI-43 (TD3.2); the body streams from
// the connection.
func (c *Client) Retrieve(ctx context.Context, actor Actor, patient INS, repositoryUniqueID, documentUniqueID string) (*Document, error) {
	body, err := BuildRetrieveRequest([]DocumentRequest{{RepositoryUniqueID: repositoryUniqueID, DocumentUniqueID: documentUniqueID}})
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, request{service: ServiceRepository, action: ActionITI43, actor: actor, patient: &patient, body: body})
	if err != nil {
		return nil, err
	}
	docs, err := ParseRetrieveResponse(rep.envelope)
	if err != nil {
		rep.close()
		return nil, err
	}
	if len(docs) != 1 || docs[0].DocumentUniqueID != documentUniqueID {
		rep.close()
		return nil, fmt.Errorf("%w: the answer does not hold document %s", ErrMalformed, documentUniqueID)
	}
	d := docs[0]
	out := &Document{UniqueID: d.DocumentUniqueID, MimeType: d.MimeType}
	if d.ContentID == "" {
		rep.close()
		out.Body = io.NopCloser(bytes.NewReader(d.Inline))
		return out, nil
	}
	if rep.mtom == nil {
		rep.close()
		return nil, fmt.Errorf("%w: document %s refers to an MTOM part in a plain SOAP answer", ErrMalformed, documentUniqueID)
	}
	for {
		id, part, err := rep.mtom.Next()
		if err != nil {
			rep.close()
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: no MTOM part %s", ErrMalformed, d.ContentID)
			}
			return nil, err
		}
		if id == d.ContentID {
			out.Body = &partBody{Reader: part, rep: rep}
			return out, nil
		}
	}
}

type partBody struct {
	io.Reader
	rep *reply
}

func (p *partBody) Close() error {
	p.rep.close()
	return nil
}

// updateSet is the submission set of an ITI-57 request.
func (c *Client) updateSet(actor Actor, patient INS) SubmissionSet {
	return SubmissionSet{
		ID: feedSubmissionSetID, UniqueID: NewOID(), SourceID: c.sourceID(), SubmissionTime: c.cfg.Now().UTC().Truncate(time.Second),
		Author: AuthorFromProfessional(actor.Professional), ContentType: ContentConsultation, Patient: patient,
	}
}

// Update sends an ITI-57 update (TD3.3); the submission set is filled in.
func (c *Client) Update(ctx context.Context, actor Actor, patient INS, u UpdateDocumentSet) error {
	u.SubmissionSet = c.updateSet(actor, patient)
	body, err := BuildUpdateDocumentSet(u)
	if err != nil {
		return err
	}
	rep, err := c.do(ctx, request{service: ServiceRegistry, action: ActionITI57, actor: actor, patient: &patient, body: body})
	if err != nil {
		return err
	}
	defer rep.close()
	return ParseRegistryResponse(rep.envelope)
}

// SetVisibility publishes a new version of a document's metadata with the
// visibility codes add set and remove cleared (TD3.3a masking, TD3.3b
// revealing to the patient). entry is the document as a search returned it.
func (c *Client) SetVisibility(ctx context.Context, actor Actor, entry DocumentEntry, add, remove []Code) error {
	next := entry
	next.ID = "urn:uuid:" + NewUUID()
	next.Status = StatusApproved
	next.Confidentiality = nil
	for _, code := range entry.Confidentiality {
		if !containsCode(remove, code) && !containsCode(add, code) {
			next.Confidentiality = append(next.Confidentiality, code)
		}
	}
	next.Confidentiality = append(next.Confidentiality, add...)
	return c.Update(ctx, actor, entry.Patient, UpdateDocumentSet{Updates: []MetadataUpdate{{Entry: next, PreviousVersion: entry.Version}}})
}

// Mask hides a document from other professionals (TD3.3a).
func (c *Client) Mask(ctx context.Context, actor Actor, entry DocumentEntry) error {
	return c.SetVisibility(ctx, actor, entry, []Code{MaskedFromProfessional}, nil)
}

// Unmask shows a masked document again (TD3.3a).
func (c *Client) Unmask(ctx context.Context, actor Actor, entry DocumentEntry) error {
	return c.SetVisibility(ctx, actor, entry, nil, []Code{MaskedFromProfessional})
}

// RevealToPatient makes a document visible to the patient (TD3.3b).
func (c *Client) RevealToPatient(ctx context.Context, actor Actor, entry DocumentEntry) error {
	return c.SetVisibility(ctx, actor, entry, nil, []Code{InvisibleToPatient})
}

// Archive, Unarchive and DeleteDocument change a document's availability
// (TD3.3d, TD3.3c).
func (c *Client) Archive(ctx context.Context, actor Actor, entry DocumentEntry) error {
	return c.Update(ctx, actor, entry.Patient, UpdateDocumentSet{StatusChanges: []StatusChange{Archive(entry.ID)}})
}

// Unarchive brings an archived document back.
func (c *Client) Unarchive(ctx context.Context, actor Actor, entry DocumentEntry) error {
	return c.Update(ctx, actor, entry.Patient, UpdateDocumentSet{StatusChanges: []StatusChange{Unarchive(entry.ID)}})
}

// DeleteDocument withdraws a document (logical deletion; only its author may).
func (c *Client) DeleteDocument(ctx context.Context, actor Actor, entry DocumentEntry) error {
	from := entry.Status
	if from == "" {
		from = StatusApproved
	}
	return c.Update(ctx, actor, entry.Patient, UpdateDocumentSet{StatusChanges: []StatusChange{Delete(entry.ID, from)}})
}

func containsCode(list []Code, c Code) bool {
	for _, x := range list {
		if x.Code == c.Code && x.Scheme == c.Scheme {
			return true
		}
	}
	return false
}
