package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/consent"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/dmp"
)

// insParam reads the {ins} path parameter: 15 characters whose key checks.
// Its OID is the one INSi gave for it in this process, else the configured
// one.
func (a *Agent) insParam(r *http.Request) (dmp.INS, error) {
	v := r.PathValue("ins")
	return a.parseINS(v, "ins")
}

func (a *Agent) parseINS(v, field string) (dmp.INS, error) {
	if !cardreader.ValidNIR(v) {
		return dmp.INS{}, api.FieldError(field, "an INS is 15 characters (13 and a 2-digit key) whose key checks")
	}
	a.insMu.Lock()
	oid, ok := a.insOIDs[v]
	a.insMu.Unlock()
	if !ok {
		oid = a.cfg.INSOID
	}
	return dmp.INS{Value: v, OID: oid}, nil
}

func (a *Agent) rememberINS(ins dmp.INS) {
	a.insMu.Lock()
	a.insOIDs[ins.Value] = ins.OID
	a.insMu.Unlock()
}

// getVitale lists the beneficiaries of the Vitale cards present and, when a
// session is open, resolves their INS through INSi (once per card).
func (a *Agent) getVitale(w http.ResponseWriter, r *http.Request, c *caller) error {
	cards, err := a.vitaleCards(r.Context())
	if err != nil {
		return err
	}
	if len(cards) == 0 {
		return errNoVitale
	}
	s := a.currentSession()
	var out api.Vitale
	for reader, v := range cards {
		if v.err != nil {
			return vitaleError(v.err)
		}
		out = api.Vitale{Reader: reader, CardSerial: v.data.Card.Serial}
		for _, b := range v.data.Beneficiaries {
			ab := api.Beneficiary{NIR: b.NIR, Surname: b.Surname, GivenName: b.GivenName, BirthDate: isoDate(b.BirthDate), Rank: b.Rank}
			if s != nil {
				res := a.resolveINS(r.Context(), s, v, b)
				if res.err != nil {
					ab.INSError = a.apiError(res.err).Message
				} else {
					ab.INS, ab.INSOID = res.identity.INS.Value, res.identity.INS.OID
				}
			}
			out.Beneficiaries = append(out.Beneficiaries, ab)
		}
		break // one patient card at a time; the first reader wins
	}
	return writeJSON(w, 200, out)
}

// resolveINS asks INSi for a beneficiary's INS, once per card.
func (a *Agent) resolveINS(ctx context.Context, s *session, v *vitaleCard, b cardreader.Beneficiary) insResult {
	a.cards.mu.Lock()
	res, ok := v.ins[b.NIR]
	a.cards.mu.Unlock()
	if ok && res.err == nil {
		return res
	}
	insured := b.NIR
	if len(v.data.Beneficiaries) > 0 {
		insured = v.data.Beneficiaries[0].NIR
	}
	id, err := s.client.LookupINS(ctx, dmp.Actor{Professional: s.pro}, dmp.VitaleLookup{BeneficiaryNIR: b.NIR, InsuredNIR: insured,
		BirthName: b.Surname, BirthDate: b.BirthDate, Rank: b.Rank})
	res = insResult{identity: id, err: err}
	if err == nil {
		a.rememberINS(id.INS)
		a.audit.Append(auditEntry("agent", "insi.lookup", id.INS.Value, "ok", nil))
	}
	a.cards.mu.Lock()
	v.ins[b.NIR] = res
	a.cards.mu.Unlock()
	return res
}

// isoDate writes YYYYMMDD as YYYY-MM-DD when it is a calendar date; Vitale
// cards may hold lunar dates (day or month 00), kept as stored.
func isoDate(d string) string {
	if len(d) != 8 {
		return d
	}
	if _, err := time.Parse("20060102", d); err != nil {
		return d
	}
	return d[:4] + "-" + d[4:6] + "-" + d[6:]
}

// patientAtCard finds, on the Vitale card present, the beneficiary whose
// INS (resolved through INSi) is ins: the proof that the patient is here.
func (a *Agent) patientAtCard(ctx context.Context, s *session, ins dmp.INS) (*dmp.INSIdentity, *vitaleCard, cardreader.Beneficiary, error) {
	cards, err := a.vitaleCards(ctx)
	if err != nil {
		return nil, nil, cardreader.Beneficiary{}, err
	}
	if len(cards) == 0 {
		return nil, nil, cardreader.Beneficiary{}, errNoVitale
	}
	var lastErr error
	for _, v := range cards {
		if v.err != nil {
			lastErr = vitaleError(v.err)
			continue
		}
		for _, b := range v.data.Beneficiaries {
			res := a.resolveINS(ctx, s, v, b)
			if res.err != nil {
				lastErr = res.err
				continue
			}
			if res.identity.INS.Value == ins.Value {
				return res.identity, v, b, nil
			}
		}
	}
	if lastErr != nil {
		var e *api.Error
		if !errors.As(lastErr, &e) {
			e = a.apiError(lastErr)
		}
		return nil, nil, cardreader.Beneficiary{}, &api.Error{Status: 409, Code: api.CodeVitaleMismatch,
			Message: "no beneficiary of the Vitale card present could be matched to this INS: " + e.Message}
	}
	return nil, nil, cardreader.Beneficiary{}, &api.Error{Status: 409, Code: api.CodeVitaleMismatch,
		Message: "the Vitale card present has no beneficiary with this INS: insert the patient's own card"}
}

// checkConsent refuses a missing or incomplete consent object.
func checkConsent(c *api.Consent) error {
	if c == nil {
		return &api.Error{Status: 400, Code: api.CodeConsentRequired, Message: "the body must carry the patient's consent object",
			Details: map[string]any{"field": "consent"}}
	}
	if !c.Given || !c.InformationProvided {
		return &api.Error{Status: 422, Code: api.CodeConsentRequired,
			Message: "the patient must have been informed and have given consent (consent.given and consent.information_provided true)"}
	}
	return nil
}

// receipt signs and stores the consent receipt, before the DMP is asked:
// the consent was captured whatever the DMP answers.
func (a *Agent) receipt(s *session, scope string, ins dmp.INS, v *vitaleCard, b cardreader.Beneficiary, c api.Consent) (string, error) {
	rc := consent.Receipt{Scope: scope, PatientINS: ins.Value, INSOID: ins.OID, VitaleCard: v.data.Card.Serial,
		BeneficiaryRank: b.Rank, ProfessionalIDNat: s.identity.IDNat, Time: a.now().UTC(), Software: "dmpagent " + a.version,
		Consent: consent.Consent{Given: c.Given, InformationProvided: c.InformationProvided,
			Oppositions: consent.Oppositions{BreakGlass: c.Oppositions.BreakGlass, Centre15: c.Oppositions.Centre15}}}
	rc.ID = consent.NewID()
	data, err := consent.Sign(s.signer, s.chain, rc)
	if err != nil {
		return "", err
	}
	if err := a.consents.Put(rc.ID, data); err != nil {
		return "", err
	}
	a.audit.Append(auditEntry(s.identity.IDNat, "consent.receipt", ins.Value, "ok", map[string]string{"receipt": rc.ID, "scope": scope}))
	return rc.ID, nil
}

// atCard is a consent captured at the card: the session, the patient as
// INSi knows them (their beneficiary on the Vitale card present), and the
// signed receipt's id.
type atCard struct {
	s         *session
	patient   *dmp.INSIdentity
	receiptID string
}

// captureConsent checks the session and the Vitale card, and signs and
// stores the receipt of the consent c for scope.
func (a *Agent) captureConsent(ctx context.Context, ins dmp.INS, scope string, c api.Consent) (*atCard, error) {
	s, err := a.requireSession()
	if err != nil {
		return nil, err
	}
	id, v, b, err := a.patientAtCard(ctx, s, ins)
	if err != nil {
		return nil, err
	}
	rid, err := a.receipt(s, scope, id.INS, v, b, c)
	if err != nil {
		return nil, err
	}
	return &atCard{s: s, patient: id, receiptID: rid}, nil
}

// createRequest is a TD1.1/TD1.2 request with the captured consent.
func (c *atCard) createRequest(consent api.Consent) dmp.CreateRequest {
	return dmp.CreateRequest{Patient: patientIdentity(c.patient), Consent: true, OpposeBreakGlass: consent.Oppositions.BreakGlass,
		OpposeCentre15: consent.Oppositions.Centre15}
}

func (a *Agent) postDMP(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.CreateDMPRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ins, err := a.parseINS(req.INS, "ins")
	if err != nil {
		return err
	}
	if err := checkConsent(req.Consent); err != nil {
		return err
	}
	cc, err := a.captureConsent(r.Context(), ins, consent.ScopeCreate, *req.Consent)
	if err != nil {
		return err
	}
	if err := cc.s.client.CreateDMP(r.Context(), cc.s.actor(ins.Value), cc.createRequest(*req.Consent)); err != nil {
		e := a.apiError(err)
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		e.Details["consent_receipt_id"] = cc.receiptID
		return e
	}
	return writeJSON(w, 201, api.DMPResult{INS: cc.patient.INS.Value, Status: api.DMPStatusOpen, ConsentReceiptID: cc.receiptID})
}

func patientIdentity(id *dmp.INSIdentity) dmp.PatientIdentity {
	return dmp.PatientIdentity{INS: id.INS, Given: id.Given, BirthName: id.BirthName, Sex: id.Sex, BirthDate: id.BirthDate}
}

func (a *Agent) getDMP(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	st, err := s.client.TestExistence(r.Context(), s.actor(ins.Value), ins)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, dmpAPI(ins, st))
}

func dmpAPI(ins dmp.INS, st *dmp.DMPStatus) api.DMP {
	out := api.DMP{INS: ins.Value, Exists: st.Exists, Status: api.DMPStatusMissing, AttendingPhysician: st.AttendingPhysician,
		OpposesBreakGlass: st.OpposesBreakGlass, OpposesCentre15: st.OpposesCentre15}
	switch {
	case st.Exists && st.Closed:
		out.Status = api.DMPStatusClosed
	case st.Exists:
		out.Status = api.DMPStatusOpen
	}
	switch st.Authorization {
	case dmp.AuthorizationValid:
		out.Authorization = "valid"
	case dmp.AuthorizationExpired:
		out.Authorization = "expired"
	case dmp.AuthorizationForbidden:
		out.Authorization = "forbidden"
	default:
		out.Authorization = "none"
	}
	return out
}

// authorization records or withdraws the patient's consent for this
// professional, with the Vitale card present.
func (a *Agent) authorization(w http.ResponseWriter, r *http.Request, add bool) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var req api.ConsentRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if add {
		if err := checkConsent(req.Consent); err != nil {
			return err
		}
	} else if req.Consent == nil {
		req.Consent = &api.Consent{}
	}
	scope := consent.ScopeAuthorize
	if !add {
		scope = consent.ScopeWithdraw
	}
	cc, err := a.captureConsent(r.Context(), ins, scope, *req.Consent)
	if err != nil {
		return err
	}
	if err := cc.s.client.SetAuthorization(r.Context(), cc.s.actor(ins.Value), cc.patient.INS, add, false); err != nil {
		return err
	}
	status := "authorized"
	if !add {
		status = "withdrawn"
	}
	return writeJSON(w, 200, api.DMPResult{INS: ins.Value, Status: status, ConsentReceiptID: cc.receiptID})
}

func (a *Agent) postAuthorization(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.authorization(w, r, true)
}

func (a *Agent) deleteAuthorization(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.authorization(w, r, false)
}

func (a *Agent) putAttending(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var req struct{}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	if err := s.client.SetAuthorization(r.Context(), s.actor(ins.Value), ins, true, true); err != nil {
		return err
	}
	return writeJSON(w, 200, api.DMPResult{INS: ins.Value, Status: "attending_physician"})
}

const minReasonLen = 10

func (a *Agent) postEmergency(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var req api.EmergencyRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	actor := dmp.Actor{Professional: s.pro}
	switch req.Mode {
	case api.ModeBreakGlass:
		req.Reason = strings.TrimSpace(req.Reason)
		if utf8.RuneCountInString(req.Reason) < minReasonLen || len(req.Reason) > 1000 {
			return api.FieldError("reason", "break-glass access needs a written reason of %d to 1000 characters; it is traced and shown to the patient", minReasonLen)
		}
		actor.Mode, actor.Reason = dmp.ModeBreakGlass, req.Reason
	case api.ModeCentre15:
		actor.Mode = dmp.ModeCentre15
	default:
		return api.FieldError("mode", "mode must be %q or %q", api.ModeBreakGlass, api.ModeCentre15)
	}
	st, err := s.client.TestExistence(r.Context(), actor, ins)
	if err != nil {
		return err
	}
	if !st.Exists {
		return &api.Error{Status: 404, Code: api.CodeDMPNotFound, Message: "this patient has no DMP"}
	}
	// Said before the first read is refused: the patient opposed this
	// mode when the DMP was created.
	if (actor.Mode == dmp.ModeBreakGlass && st.OpposesBreakGlass) || (actor.Mode == dmp.ModeCentre15 && st.OpposesCentre15) {
		return &api.Error{Status: 403, Code: api.CodeDMPOpposition, Message: "the patient opposed this emergency access mode"}
	}
	s.mu.Lock()
	s.emergency[ins.Value] = actor
	s.mu.Unlock()
	return writeJSON(w, 200, api.EmergencyAccess{INS: ins.Value, Mode: req.Mode, DMP: dmpAPI(ins, st)})
}

func (a *Agent) postClose(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var req api.CloseRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 1000 {
		return api.FieldError("reason", "closing a DMP needs a reason (1 to 1000 characters)")
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	actor := s.actor(ins.Value)
	st, err := s.client.AdminData(r.Context(), actor, ins)
	if err != nil {
		return err
	}
	if err := s.client.CloseDMP(r.Context(), actor, st.Patient, req.Reason); err != nil {
		return err
	}
	return writeJSON(w, 200, api.DMPResult{INS: ins.Value, Status: api.DMPStatusClosed})
}

// postReactivate reopens a closed DMP; like creation it needs the patient
// and the Vitale card, since it is the patient who asks for it.
func (a *Agent) postReactivate(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var req api.ConsentRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	if req.Consent == nil {
		req.Consent = &api.Consent{Given: true, InformationProvided: true}
	}
	if err := checkConsent(req.Consent); err != nil {
		return err
	}
	cc, err := a.captureConsent(r.Context(), ins, consent.ScopeReactivate, *req.Consent)
	if err != nil {
		return err
	}
	if err := cc.s.client.ReactivateDMP(r.Context(), cc.s.actor(ins.Value), cc.createRequest(*req.Consent)); err != nil {
		return err
	}
	return writeJSON(w, 200, api.DMPResult{INS: ins.Value, Status: api.DMPStatusOpen, ConsentReceiptID: cc.receiptID})
}

// Documents.

func documentStatus(s string) string {
	switch s {
	case dmp.StatusArchived:
		return api.DocumentArchived
	case dmp.StatusDeprecated:
		return api.DocumentReplaced
	case dmp.StatusDeleted:
		return api.DocumentDeleted
	}
	return api.DocumentAvailable
}

const formatPDF = "urn:ihe:iti:xds-sd:pdf:2008"

func documentAPI(e dmp.DocumentEntry) api.Document {
	d := api.Document{ID: e.UniqueID, Title: e.Title, TypeCode: e.Type.Code, ClassCode: e.Class.Code, MimeType: e.MimeType,
		Status: documentStatus(e.Status), Created: e.CreationTime.UTC(), Size: e.Size, Format: "cda",
		Confidentiality: api.Confidentiality{
			MaskedFromProfessionals: e.HasConfidentiality(dmp.MaskedFromProfessional),
			InvisibleToPatient:      e.HasConfidentiality(dmp.InvisibleToPatient),
			InvisibleToGuardians:    e.HasConfidentiality(dmp.InvisibleToLegalReps)}}
	if e.Format.Code == formatPDF {
		d.Format = "pdf"
	}
	if len(e.Authors) > 0 {
		au := e.Authors[0]
		d.Author = strings.TrimSpace(au.GivenName + " " + au.Surname)
		d.AuthorIDNat = au.IDNat
	}
	if !e.ServiceStart.IsZero() {
		t := e.ServiceStart.UTC()
		d.ServiceStart = &t
	}
	return d
}

func (a *Agent) getDocuments(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	q := dmp.StoredQuery{ID: dmp.QueryFindDocuments, Patient: ins}
	v := r.URL.Query()
	switch v.Get("status") {
	case "", api.DocumentAvailable:
		q.Statuses = []string{dmp.StatusApproved}
	case api.DocumentArchived:
		q.Statuses = []string{dmp.StatusArchived}
	case "all":
		q.Statuses = []string{dmp.StatusApproved, dmp.StatusArchived, dmp.StatusDeprecated}
	default:
		return api.FieldError("status", "status must be available, archived or all")
	}
	for _, tc := range v["type_code"] {
		q.TypeCodes = append(q.TypeCodes, dmp.Code{Code: tc, Scheme: dmp.SchemeLOINC})
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.CreationFrom}, {"to", &q.CreationTo}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return api.FieldError(p.name, "%s must be an RFC 3339 time", p.name)
			}
			*p.dst = t
		}
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	res, err := s.client.Search(r.Context(), s.actor(ins.Value), q)
	if err != nil {
		return err
	}
	out := api.Documents{Documents: []api.Document{}}
	for _, e := range res.Entries {
		if e.Language == "art" { // the submission sets' signatures
			continue
		}
		out.Documents = append(out.Documents, documentAPI(e))
	}
	return writeJSON(w, 200, out)
}

// entry finds a document's current metadata by its uniqueId.
func (a *Agent) entry(ctx context.Context, s *session, ins dmp.INS, id string) (dmp.DocumentEntry, error) {
	if id == "" || len(id) > 128 {
		return dmp.DocumentEntry{}, api.FieldError("id", "bad document id")
	}
	// FindDocuments by patient, not GetDocuments by uniqueId: the VIHF
	// must name the patient, and GetDocuments takes no patient.
	res, err := s.client.Search(ctx, s.actor(ins.Value), dmp.StoredQuery{ID: dmp.QueryFindDocuments, Patient: ins,
		Statuses: []string{dmp.StatusApproved, dmp.StatusArchived}})
	if err != nil {
		return dmp.DocumentEntry{}, err
	}
	for _, e := range res.Entries {
		if e.UniqueID == id && e.Patient.Value == ins.Value {
			return e, nil
		}
	}
	return dmp.DocumentEntry{}, &api.Error{Status: 404, Code: api.CodeDocumentNotFound, Message: "no such document in this DMP, or not visible to this professional"}
}

func (a *Agent) getDocumentContent(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	e, err := a.entry(r.Context(), s, ins, id)
	if err != nil {
		return err
	}
	asPDF := false
	switch r.URL.Query().Get("format") {
	case "", "cda":
	case "pdf":
		if e.Format.Code != formatPDF {
			return &api.Error{Status: 415, Code: api.CodeUnsupportedFormat, Message: "this document does not carry a PDF; ask for it as stored (format=cda)"}
		}
		asPDF = true
	default:
		return api.FieldError("format", "format must be cda (as stored) or pdf (the PDF the document carries)")
	}
	doc, err := s.client.Retrieve(r.Context(), s.actor(ins.Value), ins, e.RepositoryUniqueID, id)
	if err != nil {
		return err
	}
	defer doc.Body.Close()
	body, ct, ext := io.Reader(doc.Body), doc.MimeType, ".xml"
	if ct == "" {
		ct = "application/octet-stream"
	}
	if asPDF {
		// The PDF is decoded as it streams: the document is never held.
		if body, err = dmp.PDFFromCDA(doc.Body); err != nil {
			return &api.Error{Status: 502, Code: api.CodeDMPFault, Message: "the DMP's document does not carry a readable PDF: " + err.Error()}
		}
		ct, ext = "application/pdf", ".pdf"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="`+safeFilename(id)+ext+`"`)
	if e.Size > 0 && !asPDF {
		h.Set("X-Document-Size", strconv.FormatInt(e.Size, 10))
	}
	w.WriteHeader(200)
	_, err = io.Copy(w, body)
	return err
}

func safeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func (a *Agent) patchDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	var p api.DocumentPatch
	if err := decodeJSON(r, &p); err != nil {
		return err
	}
	if p.MaskedFromProfessionals == nil && p.InvisibleToPatient == nil && p.Status == "" {
		return &api.Error{Status: 400, Code: api.CodeInvalidField, Message: "nothing to change: set masked_from_professionals, invisible_to_patient or status"}
	}
	if p.Status != "" && p.Status != api.DocumentArchived && p.Status != api.DocumentAvailable {
		return api.FieldError("status", "status must be archived or available")
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	actor := s.actor(ins.Value)
	e, err := a.entry(r.Context(), s, ins, r.PathValue("id"))
	if err != nil {
		return err
	}
	var add, remove []dmp.Code
	flip := func(want *bool, code dmp.Code) {
		if want == nil || *want == e.HasConfidentiality(code) {
			return
		}
		if *want {
			add = append(add, code)
		} else {
			remove = append(remove, code)
		}
	}
	flip(p.MaskedFromProfessionals, dmp.MaskedFromProfessional)
	flip(p.InvisibleToPatient, dmp.InvisibleToPatient)
	if len(add)+len(remove) > 0 {
		if err := s.client.SetVisibility(r.Context(), actor, e, add, remove); err != nil {
			return err
		}
		if e, err = a.entry(r.Context(), s, ins, e.UniqueID); err != nil {
			return err
		}
	}
	switch {
	case p.Status == api.DocumentArchived && e.Status != dmp.StatusArchived:
		err = s.client.Archive(r.Context(), actor, e)
	case p.Status == api.DocumentAvailable && e.Status == dmp.StatusArchived:
		err = s.client.Unarchive(r.Context(), actor, e)
	}
	if err != nil {
		return err
	}
	if e, err = a.entry(r.Context(), s, ins, e.UniqueID); err != nil {
		return err
	}
	return writeJSON(w, 200, documentAPI(e))
}

func (a *Agent) deleteDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	ins, err := a.insParam(r)
	if err != nil {
		return err
	}
	s, err := a.requireSession()
	if err != nil {
		return err
	}
	e, err := a.entry(r.Context(), s, ins, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.client.DeleteDocument(r.Context(), s.actor(ins.Value), e); err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"id": e.UniqueID, "status": api.DocumentDeleted})
}
