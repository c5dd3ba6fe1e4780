package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/outbox"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
)

// feedPayload is what the outbox keeps of a submission besides its bytes.
// The uniqueIds and the time are fixed here, once: a delivery replayed
// after a crash sends the very same submission, which the DMP recognises
// instead of registering the document twice.
type feedPayload struct {
	Version               int                  `json:"v"`
	App                   string               `json:"app"`
	INS                   dmp.INS              `json:"ins"`
	Metadata              api.DocumentMetadata `json:"metadata"`
	Time                  time.Time            `json:"time"`
	DocumentUniqueID      string               `json:"document_unique_id"`
	SubmissionSetUniqueID string               `json:"submission_set_unique_id"`
	SignatureUniqueID     string               `json:"signature_unique_id"`
}

// postDocument accepts a document for the outbox: multipart/form-data
// with a `metadata` JSON part first, then the `content` part, streamed to
// disk without being held in memory.
func (a *Agent) postDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return &api.Error{Status: 415, Code: api.CodeBadRequest, Message: "the body must be multipart/form-data with a metadata part then a content part"}
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return &api.Error{Status: 400, Code: api.CodeBadRequest, Message: "bad multipart body: " + err.Error()}
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "metadata" {
		return &api.Error{Status: 400, Code: api.CodeBadRequest, Message: "the first part must be `metadata` (JSON)", Details: map[string]any{"field": "metadata"}}
	}
	var md api.DocumentMetadata
	dec := json.NewDecoder(io.LimitReader(part, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&md); err != nil {
		return jsonError(err)
	}
	if err := checkMetadata(&md); err != nil {
		return err
	}
	part, err = mr.NextPart()
	if err != nil || part.FormName() != "content" {
		if err != nil && !errors.Is(err, io.EOF) {
			return jsonError(err)
		}
		return &api.Error{Status: 400, Code: api.CodeBadRequest, Message: "the second part must be `content` (the document)", Details: map[string]any{"field": "content"}}
	}
	app := c.name()
	p := feedPayload{Version: 1, App: app, INS: ins, Metadata: md, Time: a.now().UTC().Truncate(time.Second),
		DocumentUniqueID: dmp.NewOID(), SubmissionSetUniqueID: dmp.NewOID(), SignatureUniqueID: dmp.NewOID()}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// The outbox keeps the Idempotency-Key with the submission: a resend
	// after a crash between the two stores finds it there.
	var key string
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		key = app + "\x00" + k
	}
	sub, _, err := a.outbox.EnqueueKey(r.Context(), key, s.identity.IDNat, ins.Value, payload, &pdfSniffer{r: part})
	if err != nil {
		var sniff *notPDFError
		if errors.As(err, &sniff) {
			return &api.Error{Status: 415, Code: api.CodeUnsupportedFormat, Message: "the content is not a PDF (it does not start with %PDF-)"}
		}
		return err
	}
	a.outbox.Kick()
	return writeJSON(w, 202, submissionAPI(sub))
}

func checkMetadata(md *api.DocumentMetadata) error {
	md.Title = strings.TrimSpace(md.Title)
	switch {
	case md.Title == "" || len(md.Title) > 255:
		return api.FieldError("title", "title is required (1 to 255 bytes)")
	case md.TypeCode == "":
		return api.FieldError("type_code", "type_code (LOINC) is required")
	case md.Format == "cda":
		return &api.Error{Status: 415, Code: api.CodeUnsupportedFormat, Message: "structured CDA documents are not supported yet: send a PDF (format pdf)",
			Details: map[string]any{"field": "format"}}
	case md.Format != "pdf":
		return api.FieldError("format", "format must be pdf or cda")
	}
	if _, ok := dmp.ClassForType(md.TypeCode); !ok {
		return api.FieldError("type_code", "type_code %q is not a document type the DMP knows", md.TypeCode)
	}
	if md.ServiceStart != nil && md.ServiceStop != nil && md.ServiceStop.Before(*md.ServiceStart) {
		return api.FieldError("service_stop", "service_stop is before service_start")
	}
	return nil
}

// pdfSniffer refuses content that does not start like a PDF, before the
// outbox keeps it.
type pdfSniffer struct {
	r    io.Reader
	seen int
}

type notPDFError struct{}

func (*notPDFError) Error() string { return "content is not a PDF" }

func (p *pdfSniffer) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	const magic = "%PDF-"
	for i := 0; i < n && p.seen < len(magic); i++ {
		if b[i] != magic[p.seen] {
			return 0, &notPDFError{}
		}
		p.seen++
	}
	if errors.Is(err, io.EOF) && p.seen < len(magic) {
		return n, &notPDFError{}
	}
	return n, err
}

func submissionAPI(s outbox.Submission) api.Submission {
	out := api.Submission{ID: s.ID, Status: string(s.State), INS: s.Patient, Attempts: s.Attempts,
		Created: s.Created.UTC(), Updated: s.Updated.UTC(), DocumentID: s.Result}
	switch s.State {
	case outbox.Failed:
		out.Reason = s.Reason
	case outbox.Queued:
		out.Reason = s.Reason
		if s.LastError != "" {
			out.Reason = s.LastError
		}
	}
	return out
}

func (a *Agent) getSubmission(w http.ResponseWriter, r *http.Request, c *caller) error {
	sub, err := a.outbox.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, outbox.ErrNotFound) {
		return &api.Error{Status: 404, Code: api.CodeSubmissionNotFound, Message: "no such submission"}
	}
	if err != nil {
		return err
	}
	var p feedPayload
	if json.Unmarshal(sub.Payload, &p) == nil && !c.admin() && p.App != c.name() {
		// Another application's submission: as if it did not exist.
		return &api.Error{Status: 404, Code: api.CodeSubmissionNotFound, Message: "no such submission"}
	}
	return writeJSON(w, 200, submissionAPI(sub))
}

// deliver is the outbox's delivery: one feed, by its author's session.
func (a *Agent) deliver(ctx context.Context, sub outbox.Submission) (string, error) {
	var p feedPayload
	if err := json.Unmarshal(sub.Payload, &p); err != nil {
		return "", outbox.Permanent(fmt.Errorf("unreadable submission: %w", err))
	}
	s := a.currentSession()
	if s == nil || s.identity.IDNat != sub.Owner {
		return "", outbox.NotReady("waiting for its author's CPS session")
	}
	actor := s.actor(p.INS.Value)
	patient, err := a.patientTraits(ctx, s, p.INS)
	if err != nil {
		return "", deliveryError(err)
	}
	req := dmp.FeedRequest{Patient: p.INS, PatientFamily: patient.BirthName, PatientSex: patient.Sex, PatientBirth: patient.BirthDate,
		Title: p.Metadata.Title, TypeCode: p.Metadata.TypeCode, Time: p.Time,
		DocumentUniqueID: p.DocumentUniqueID, SubmissionSetUniqueID: p.SubmissionSetUniqueID, SignatureUniqueID: p.SignatureUniqueID,
		PDF: func() (io.ReadCloser, error) { return a.outbox.Open(ctx, sub.ID) }}
	if len(patient.Given) > 0 {
		req.PatientGiven = patient.Given[0]
	}
	if p.Metadata.ServiceStart != nil {
		req.ServiceStart = *p.Metadata.ServiceStart
	}
	if p.Metadata.ServiceStop != nil {
		req.ServiceStop = *p.Metadata.ServiceStop
	}
	if cf := p.Metadata.Confidentiality; cf != nil {
		if cf.MaskedFromProfessionals {
			req.Hidden = append(req.Hidden, dmp.MaskedFromProfessional)
		}
		if cf.InvisibleToPatient {
			req.Hidden = append(req.Hidden, dmp.InvisibleToPatient)
		}
		if cf.InvisibleToGuardians {
			req.Hidden = append(req.Hidden, dmp.InvisibleToLegalReps)
		}
	}
	if p.Metadata.Replaces != "" {
		old, err := a.entry(ctx, s, p.INS, p.Metadata.Replaces)
		if err != nil {
			return "", deliveryError(err)
		}
		req.Replaces = &old
	}
	res, err := s.client.Feed(ctx, actor, req)
	outcome := "ok"
	if err != nil {
		outcome = a.apiError(err).Code
	}
	a.audit.Append(auditEntry(s.identity.IDNat, "dmp.feed", p.INS.Value, outcome, map[string]string{"submission": sub.ID, "document": p.DocumentUniqueID}))
	if err != nil {
		return "", deliveryError(err)
	}
	if res.AlreadyRegistered {
		a.log.Info("submission was already registered: a resend after a crash", "submission", sub.ID)
	}
	return res.DocumentUniqueID, nil
}

// patientTraits are the patient's birth name, sex and birth date for the
// CDA header: from INSi when this agent resolved the INS, else from the
// DMP's administrative data.
func (a *Agent) patientTraits(ctx context.Context, s *session, ins dmp.INS) (dmp.PatientIdentity, error) {
	a.cards.mu.Lock()
	for _, v := range a.cards.vitale {
		for _, res := range v.ins {
			if res.err == nil && res.identity.INS == ins {
				a.cards.mu.Unlock()
				return patientIdentity(res.identity), nil
			}
		}
	}
	a.cards.mu.Unlock()
	st, err := s.client.AdminData(ctx, s.actor(ins.Value), ins)
	if err != nil {
		return dmp.PatientIdentity{}, err
	}
	return st.Patient, nil
}

// deliveryError sorts a failed delivery: the DMP's refusals are final (the
// submission fails with the DMP's reason), a pulled card waits for the
// next session, anything else is retried.
func deliveryError(err error) error {
	var fault *dmp.Fault
	var transport *dmp.TransportError
	var apiErr *api.Error
	switch {
	case errors.Is(err, pkcs11.ErrCardRemoved), errors.Is(err, pkcs11.ErrNotLoggedIn):
		return outbox.NotReady("the author's CPS was removed; waiting for a new session")
	case errors.As(err, &fault):
		if fault.Code == dmp.CodeInternal {
			return err
		}
		return outbox.Permanent(fmt.Errorf("%s: %s", fault.Code, fault.Message))
	case errors.As(err, &transport):
		if transport.StatusCode >= 500 || transport.StatusCode == 429 {
			return err
		}
		return outbox.Permanent(err)
	case errors.As(err, &apiErr):
		if apiErr.Status >= 500 {
			return err
		}
		return outbox.Permanent(errors.New(apiErr.Message))
	case errors.Is(err, dmp.ErrMalformed), errors.Is(err, dmp.ErrTooLarge):
		return outbox.Permanent(err)
	}
	return err
}
