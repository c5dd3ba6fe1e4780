package dmptest

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dmpagent/dmpagent/dmp"
)

// RepositoryUniqueID is the simulated repository's id (the DMP test
// environment's value in the official examples).
const RepositoryUniqueID = "1.2.250.1.213.4.1.1.1.2"

// MaxDocument bounds one document part; MaxSignature the XAdES part.
const (
	MaxDocument  = 1 << 30
	MaxSignature = 1 << 20
)

// registryAnswer is an XDS answer carrying a RegistryErrorList: XDS
// transactions refuse in the body, not with a SOAP fault.
func registryErrors(d Decision) []dmp.RegistryError {
	return []dmp.RegistryError{{Code: d.Code, Context: d.Message, Severity: dmp.SeverityError}}
}

func registryRefusal(d Decision) *answer {
	return &answer{body: dmp.BuildRegistryResponse(registryErrors(d))}
}

// received is a document part written to disk while its digests are taken.
type received struct {
	path   string
	size   int64
	sha1   []byte
	sha256 []byte
}

// iti41 registers a submission (TD2.1, TD2.2 with RPLC).
func (s *Server) iti41(c *call) (*answer, error) {
	p, contents, err := dmp.ParseProvideAndRegister(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, &p.SubmissionSet.Patient)
	if err != nil {
		return nil, err
	}
	var docs []dmp.DocumentEntry
	var sig *dmp.DocumentEntry
	for i := range p.Documents {
		e := &p.Documents[i]
		if e.Patient != ins {
			return nil, &dmp.Fault{Code: dmp.CodeUnknownPatient, Message: "un document ne concerne pas le patient du lot"}
		}
		if e.Class == dmp.ClassSignature {
			sig = e
			continue
		}
		docs = append(docs, *e)
	}
	if sig == nil || len(docs) == 0 {
		return registryRefusal(Decision{Code: dmp.CodeRegistryError, Message: "le lot doit contenir un document et la signature XAdES du lot"}), nil
	}
	var replaced string
	for _, a := range p.Associations {
		if a.Type == dmp.AssocReplace {
			replaced = a.Target
		}
	}
	action := ActionFeed
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), action, ins.CX())
	if err != nil {
		return nil, err
	}
	var old *DocumentRecord
	if replaced != "" {
		req.Action = ActionReplace
		if old, err = s.store.DocumentByEntryUUID(c.ctx, replaced); err != nil {
			return registryRefusal(Decision{Code: dmp.CodeDocumentNotFound, Message: "document remplacé inconnu : " + replaced}), nil
		}
		req.Document = old
	}
	d, trace := s.decide(c, req)
	if !d.Allowed {
		return registryRefusal(d), nil
	}

	// Stream the parts to disk, then check the submission-set signature
	// against what arrived.
	got := map[string]*received{}
	var sigBytes []byte
	defer func() {
		for _, r := range got {
			if r.path != "" {
				os.Remove(r.path) // kept files were renamed away
			}
		}
	}()
	byCID := map[string]string{}
	for id, ct := range contents {
		if ct.ContentID != "" {
			byCID[ct.ContentID] = id
		}
	}
	if c.mtom != nil {
		for {
			cid, part, err := c.mtom.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
			}
			id, ok := byCID[cid]
			if !ok {
				return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "partie MTOM inattendue : " + cid}
			}
			if id == sig.ID {
				if sigBytes, err = io.ReadAll(io.LimitReader(part, MaxSignature+1)); err != nil || len(sigBytes) > MaxSignature {
					return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "signature XAdES illisible ou trop grande"}
				}
				continue
			}
			r, err := s.receive(part)
			if err != nil {
				return nil, err
			}
			got[id] = r
		}
	}
	for id, ct := range contents {
		if ct.ContentID != "" {
			continue
		}
		// Inline base64, which the schema allows and some clients send.
		if id == sig.ID {
			sigBytes = ct.Inline
			continue
		}
		r, err := s.receive(bytes.NewReader(ct.Inline))
		if err != nil {
			return nil, err
		}
		got[id] = r
	}
	for _, e := range docs {
		if got[e.ID] == nil {
			return registryRefusal(Decision{Code: dmp.CodeMissingDocument, Message: "document absent du message : " + e.ID}), nil
		}
	}
	if err := s.checkSubmissionSignature(c, sigBytes, p.SubmissionSet.UniqueID, docs, got); err != nil {
		return nil, err
	}

	for _, e := range docs {
		r := got[e.ID]
		uuid := NewUUID()
		meta, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		rec := DocumentRecord{
			EntryUUID: uuid, LogicalID: uuid, UniqueID: e.UniqueID, INS: ins.CX(), Status: DocApproved, Version: 1,
			TypeCode: e.Type.Code, ClassCode: e.Class.Code, FormatCode: e.Format.Code, MimeType: e.MimeType, Title: e.Title,
			Confidentiality: codeStrings(e.Confidentiality), AuthorID: c.vihf.NameID, AuthorProfession: c.vihf.Professional.Profession,
			CreationTime: e.CreationTime, SubmissionTime: c.now, Size: r.size, Hash: hex.EncodeToString(r.sha1),
			RepositoryUniqueID: RepositoryUniqueID, Metadata: meta, SubmissionSetID: p.SubmissionSet.UniqueID,
			ContentPath: filepath.Join(s.docs, safeName(e.UniqueID)),
		}
		if err := os.Rename(r.path, rec.ContentPath); err != nil {
			return nil, err
		}
		r.path = ""
		trace.DocumentUniqueID = e.UniqueID
		if old != nil {
			err = s.store.ReplaceDocument(c.ctx, old.EntryUUID, rec, trace)
		} else {
			err = s.store.AddDocument(c.ctx, rec, trace)
		}
		switch {
		case errors.Is(err, ErrDuplicateUniqueID):
			return &answer{body: dmp.BuildRegistryResponse([]dmp.RegistryError{{
				Code: dmp.CodeDuplicateUniqueID, Context: "uniqueId déjà enregistré : " + e.UniqueID, Severity: dmp.SeverityError}})}, nil
		case err != nil:
			os.Remove(rec.ContentPath)
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(s.docs, safeName(p.SubmissionSet.UniqueID)+".xades.xml"), sigBytes, 0o600); err != nil {
		return nil, err
	}
	return &answer{body: dmp.BuildRegistryResponse(nil)}, nil
}

// receive writes a document part to a temporary file, taking its SHA-1
// (the repository's hash) and SHA-256 (a manifest digest) on the way.
func (s *Server) receive(part io.Reader) (*received, error) {
	f, err := os.CreateTemp(s.docs, "incoming-*")
	if err != nil {
		return nil, err
	}
	h1, h256 := sha1.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h1, h256), io.LimitReader(part, MaxDocument+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	r := &received{path: f.Name(), size: n, sha1: h1.Sum(nil), sha256: h256.Sum(nil)}
	if err == nil && n > MaxDocument {
		err = fmt.Errorf("%w: document larger than %d bytes", dmp.ErrTooLarge, MaxDocument)
	}
	if err != nil {
		os.Remove(r.path)
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "lecture du document : " + err.Error()}
	}
	return r, nil
}

// checkSubmissionSignature verifies the XAdES signature of the submission
// set: a valid signature by the professional of the TLS session, over this
// submission set and exactly the documents received.
func (s *Server) checkSubmissionSignature(c *call, sig []byte, setUniqueID string, docs []dmp.DocumentEntry, got map[string]*received) error {
	bad := func(format string, a ...any) error {
		return &dmp.Fault{Code: dmp.CodeInvalidSignature, Message: "signature du lot : " + fmt.Sprintf(format, a...)}
	}
	if len(sig) == 0 {
		return bad("absente")
	}
	info, err := dmp.VerifySubmissionSetSignature(sig)
	if err != nil {
		return bad("%v", err)
	}
	cert := info.Signature.Certificate
	if err := s.verifyChain(cert, info.Signature.Chain, x509.ExtKeyUsageAny); err != nil {
		return bad("certificat refusé : %v", err)
	}
	if cert.Subject.String() != c.vihf.Signature.Certificate.Subject.String() {
		return bad("signée par un autre professionnel que celui du VIHF")
	}
	if info.SubmissionSetUniqueID != setUniqueID {
		return bad("porte sur le lot %s, pas sur %s", info.SubmissionSetUniqueID, setUniqueID)
	}
	if len(info.Documents) != len(docs) {
		return bad("%d documents signés pour %d reçus", len(info.Documents), len(docs))
	}
	for _, m := range info.Documents {
		var r *received
		for _, e := range docs {
			if e.UniqueID == m.UniqueID {
				r = got[e.ID]
			}
		}
		if r == nil {
			return bad("document signé %s absent du lot", m.UniqueID)
		}
		want := r.sha256
		if info.DigestHash == crypto.SHA1 {
			want = r.sha1
		}
		if !bytes.Equal(want, m.Digest) {
			return bad("l'empreinte du document %s ne correspond pas", m.UniqueID)
		}
	}
	return nil
}

// iti18 answers a stored query (TD3.1).
func (s *Server) iti18(c *call) (*answer, error) {
	q, err := dmp.ParseQuery(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	var named *dmp.INS
	if q.Patient.Value != "" {
		named = &q.Patient
	}
	ins, err := patientOf(c, named)
	if err != nil {
		return nil, err
	}
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), ActionSearch, ins.CX())
	if err != nil {
		return nil, err
	}
	d, trace := s.decide(c, req)
	if !d.Allowed {
		body, err := dmp.BuildQueryResponse(dmp.QueryResponse{}, registryErrors(d))
		return &answer{body: body}, err
	}
	var recs []DocumentRecord
	switch q.ID {
	case dmp.QueryFindDocuments:
		dq := DocumentQuery{INS: ins.CX(), CreatedFrom: q.CreationFrom, CreatedTo: q.CreationTo}
		for _, st := range q.Statuses {
			dq.Statuses = append(dq.Statuses, DocumentStatus(st))
		}
		for _, t := range q.TypeCodes {
			dq.TypeCodes = append(dq.TypeCodes, t.Code)
		}
		for _, t := range q.ClassCodes {
			dq.ClassCodes = append(dq.ClassCodes, t.Code)
		}
		if recs, err = s.store.FindDocuments(c.ctx, dq); err != nil {
			return nil, err
		}
	case dmp.QueryGetDocuments:
		for _, id := range q.UniqueIDs {
			if r, err := s.store.DocumentByUniqueID(c.ctx, id); err == nil && r.INS == ins.CX() {
				recs = append(recs, *r)
			}
		}
		for _, id := range q.UUIDs {
			if r, err := s.store.DocumentByEntryUUID(c.ctx, id); err == nil && r.INS == ins.CX() {
				recs = append(recs, *r)
			}
		}
	default:
		body, err := dmp.BuildQueryResponse(dmp.QueryResponse{}, []dmp.RegistryError{{Code: "XDSUnknownStoredQuery", Context: "requête non prise en charge par le DMP simulé : " + q.ID}})
		return &answer{body: body}, err
	}
	recs = s.rules.VisibleDocuments(req, recs)
	if err := s.store.AppendHistory(c.ctx, trace); err != nil {
		return nil, err
	}
	var out dmp.QueryResponse
	for _, r := range recs {
		if q.ReturnType == dmp.ReturnObjectRef {
			out.ObjectRefs = append(out.ObjectRefs, r.EntryUUID)
			continue
		}
		e, err := entryOf(r)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, e)
	}
	body, err := dmp.BuildQueryResponse(out, nil)
	return &answer{body: body}, err
}

// iti43 returns documents (TD3.2), streamed from their files.
func (s *Server) iti43(c *call) (*answer, error) {
	reqs, err := dmp.ParseRetrieveRequest(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, nil)
	if err != nil {
		return nil, err
	}
	var docs []dmp.RetrievedDocument
	var parts []dmp.Part
	var errs []dmp.RegistryError
	closeAll := func() {
		for _, p := range parts {
			p.Body.(io.Closer).Close()
		}
	}
	for i, dr := range reqs {
		rec, err := s.store.DocumentByUniqueID(c.ctx, dr.DocumentUniqueID)
		if err != nil || rec.INS != ins.CX() || dr.RepositoryUniqueID != RepositoryUniqueID {
			errs = append(errs, dmp.RegistryError{Code: dmp.CodeDocumentNotFound, Context: "uniqueId=" + dr.DocumentUniqueID, Location: dr.RepositoryUniqueID})
			continue
		}
		req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), ActionRead, ins.CX())
		if err != nil {
			closeAll()
			return nil, err
		}
		req.Document = rec
		d, trace := s.decide(c, req)
		if !d.Allowed {
			errs = append(errs, registryErrors(d)...)
			continue
		}
		f, err := os.Open(rec.ContentPath)
		if err != nil {
			closeAll()
			return nil, err
		}
		if err := s.store.AppendHistory(c.ctx, trace); err != nil {
			f.Close()
			closeAll()
			return nil, err
		}
		cid := "document" + strconv.Itoa(i) + "@dmptest"
		docs = append(docs, dmp.RetrievedDocument{RepositoryUniqueID: RepositoryUniqueID, DocumentUniqueID: rec.UniqueID, MimeType: rec.MimeType,
			DocumentContent: dmp.DocumentContent{ContentID: cid}})
		parts = append(parts, dmp.Part{ContentID: cid, ContentType: rec.MimeType, Body: f})
	}
	body, err := dmp.BuildRetrieveResponse(docs, errs)
	if err != nil {
		closeAll()
		return nil, err
	}
	// The real service answers ITI-43 in MTOM even without a document.
	return &answer{body: body, parts: parts, mtom: true}, nil
}

// iti57 applies metadata updates and status changes (TD3.3a–d).
func (s *Server) iti57(c *call) (*answer, error) {
	u, err := dmp.ParseUpdateDocumentSet(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, &u.SubmissionSet.Patient)
	if err != nil {
		return nil, err
	}
	actor := actorOf(c.vihf)
	check := func(rec *DocumentRecord, action Action) (*Decision, HistoryEntry, error) {
		req, err := s.store.AccessRequest(c.ctx, actor, action, ins.CX())
		if err != nil {
			return nil, HistoryEntry{}, err
		}
		req.Document = rec
		d, h := s.decide(c, req)
		if !d.Allowed {
			return &d, h, nil
		}
		return nil, h, nil
	}
	for _, m := range u.Updates {
		cur, err := s.store.DocumentByEntryUUID(c.ctx, m.Entry.LogicalID)
		if err != nil || cur.INS != ins.CX() {
			return registryRefusal(Decision{Code: dmp.CodeDocumentNotFound, Message: "document inconnu : " + m.Entry.LogicalID}), nil
		}
		next := codeStrings(m.Entry.Confidentiality)
		action, ok := visibilityAction(cur.Confidentiality, next)
		if !ok {
			return registryRefusal(Decision{Code: dmp.CodeRegistryError, Message: "seule la visibilité d'un document peut être modifiée"}), nil
		}
		deny, trace, err := check(cur, action)
		if err != nil {
			return nil, err
		}
		if deny != nil {
			return registryRefusal(*deny), nil
		}
		prev, err := strconv.Atoi(m.PreviousVersion)
		if err != nil {
			return registryRefusal(Decision{Code: dmp.CodeRegistryError, Message: "PreviousVersion illisible"}), nil
		}
		e, err := entryOf(*cur)
		if err != nil {
			return nil, err
		}
		e.Confidentiality = m.Entry.Confidentiality
		meta, _ := json.Marshal(e)
		_, err = s.store.NewVersion(c.ctx, cur.LogicalID, prev, MetadataUpdate{EntryUUID: m.Entry.ID, Confidentiality: next, Metadata: meta}, trace)
		if errors.Is(err, ErrVersionConflict) {
			return registryRefusal(Decision{Code: "XDSMetadataVersionError", Message: err.Error()}), nil
		}
		if err != nil {
			return nil, err
		}
	}
	for _, sc := range u.StatusChanges {
		cur, err := s.store.DocumentByEntryUUID(c.ctx, sc.Target)
		if err != nil || cur.INS != ins.CX() {
			return registryRefusal(Decision{Code: dmp.CodeDocumentNotFound, Message: "document inconnu : " + sc.Target}), nil
		}
		action := map[string]Action{dmp.StatusArchived: ActionArchive, dmp.StatusApproved: ActionUnarchive, dmp.StatusDeleted: ActionDelete}[sc.New]
		if action == "" {
			return registryRefusal(Decision{Code: dmp.CodeRegistryError, Message: "statut cible non pris en charge : " + sc.New}), nil
		}
		deny, trace, err := check(cur, action)
		if err != nil {
			return nil, err
		}
		if deny != nil {
			return registryRefusal(*deny), nil
		}
		err = s.store.SetDocumentStatus(c.ctx, cur.EntryUUID, DocumentStatus(sc.Original), DocumentStatus(sc.New), trace)
		if errors.Is(err, ErrInvalidTransition) {
			return registryRefusal(Decision{Code: dmp.CodeRegistryError, Message: err.Error()}), nil
		}
		if err != nil {
			return nil, err
		}
	}
	return &answer{body: dmp.BuildRegistryResponse(nil)}, nil
}

// visibilityAction names the change between two confidentiality sets, if
// it is one a professional may make.
func visibilityAction(from, to []string) (Action, bool) {
	had := func(set []string, c string) bool {
		for _, x := range set {
			if x == c {
				return true
			}
		}
		return false
	}
	switch {
	case !had(from, ConfMaskedPS) && had(to, ConfMaskedPS):
		return ActionMask, true
	case had(from, ConfMaskedPS) && !had(to, ConfMaskedPS):
		return ActionUnmask, true
	case had(from, ConfInvisiblePatient) && !had(to, ConfInvisiblePatient):
		return ActionVisibility, true
	}
	return "", false
}

// entryOf rebuilds a document's metadata as the registry shows it: what
// was submitted (kept as JSON), else what the record knows (seeded
// documents), with the registry's ids, status, version, hash and size.
func entryOf(r DocumentRecord) (dmp.DocumentEntry, error) {
	var e dmp.DocumentEntry
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &e); err != nil {
			return e, fmt.Errorf("dmptest: metadata of %s: %w", r.UniqueID, err)
		}
	} else {
		ins, err := dmp.ParseCX(r.INS)
		if err != nil {
			return e, fmt.Errorf("dmptest: document %s: %w", r.UniqueID, err)
		}
		class, _ := dmp.ClassForType(r.TypeCode)
		if class.Code == "" {
			class = dmp.Code{Code: r.ClassCode, Scheme: dmp.SchemeClassCode}
		}
		author := dmp.Author{IDNat: r.AuthorID, Surname: r.AuthorID}
		if r.AuthorID == AssuranceMaladieID {
			author = dmp.Author{IDNat: AssuranceMaladieID, Surname: AssuranceMaladieName, InstitutionName: AssuranceMaladieName, InstitutionID: AssuranceMaladieID}
		}
		e = dmp.DocumentEntry{
			MimeType: r.MimeType, Title: r.Title, Language: "fr-FR", CreationTime: r.CreationTime,
			Authors: []dmp.Author{author}, Class: class, Type: dmp.Code{Code: r.TypeCode, Scheme: typeScheme(r.TypeCode)},
			Format:       dmp.Code{Code: r.FormatCode, Scheme: dmp.SchemeIHEFormat},
			FacilityType: dmp.Code{Code: "SA01", Scheme: dmp.SchemeSector}, PracticeSetting: dmp.PracticeAmbulatory,
			Patient: ins, SourcePatientID: ins.CX(),
		}
	}
	e.ID, e.LogicalID = r.EntryUUID, r.LogicalID
	e.UniqueID, e.Status, e.Version = r.UniqueID, string(r.Status), strconv.Itoa(r.Version)
	e.Hash, e.Size, e.RepositoryUniqueID = r.Hash, r.Size, r.RepositoryUniqueID
	e.Confidentiality = nil
	for _, c := range r.Confidentiality {
		e.Confidentiality = append(e.Confidentiality, confidentialityCode(c))
	}
	return e, nil
}

// typeScheme is the code system of a typeCode: LOINC codes have a check
// digit after a dash, the DMP's own (TRE_A05) are words.
func typeScheme(code string) string {
	if len(code) > 2 && code[len(code)-2] == '-' && code[0] >= '0' && code[0] <= '9' {
		return dmp.SchemeLOINC
	}
	return dmp.SchemeTypeComplement
}

func confidentialityCode(c string) dmp.Code {
	for _, k := range []dmp.Code{dmp.ConfidentialityNormal, dmp.MaskedFromProfessional, dmp.InvisibleToPatient, dmp.InvisibleToLegalReps} {
		if k.Code == c {
			return k
		}
	}
	return dmp.Code{Code: c, Scheme: dmp.SchemeConfidentiality}
}

func codeStrings(cs []dmp.Code) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Code)
	}
	return out
}

// safeName turns an OID into a file name.
func safeName(oid string) string {
	h := sha256.Sum256([]byte(oid))
	return hex.EncodeToString(h[:12])
}
