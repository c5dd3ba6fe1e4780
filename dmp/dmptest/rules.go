package dmptest

// The access rules the simulated DMP enforces (DESIGN §6, rules 1-10), as
// pure functions of the records in the store. The HTTP layer gathers an
// AccessRequest (Store.AccessRequest), asks Rules.Decide, answers a refusal
// with the Decision's fault code, and traces both outcomes with HistoryFor.
//
// Where public sources are silent or disagree, these are our choices:
//   - Feeding (and replacing) needs an authorization in normal mode, or an
//     emergency mode the patient did not oppose. FI-526 and a secondary note
//     say an LPS with the "Alimentation" profile may feed without one; we
//     keep the stricter rule so that the authorization flow gets exercised.
//   - Masking (TD3.3a) is open to any professional who may read the document,
//     in normal mode (FI-526 row "masquer"); unmasking, archiving and
//     unarchiving to its author and the attending physician (FI-526 note 8);
//     deleting to its author only ("seul l'auteur du document peut le
//     supprimer"); replacing to its author and the attending physician.
//   - Making a document visible to the patient (TD3.3b) is open to any
//     professional who may read it.
//   - A professional always reads the documents he or she wrote, whatever
//     the habilitation matrix says: feeding is not restricted by it, and a
//     type one may write but not read back would be absurd.
//   - Self-authorization, removing one's authorization, closing the DMP and
//     changing its administrative data need normal mode (FI-526 for the
//     first two; ours for the others).
//   - Test of existence (TD0.2) always answers when the DMP exists, closed
//     or blocked included: its response carries those states.
//   - Document statuses (Deprecated, Archived, Deleted) are the HTTP layer's
//     query filters, not access rules.

import (
	"strings"
	"time"
)

// Fault codes of refusals, the values of the dmp package's constants.
const (
	CodeFound        = "DMPFound"
	CodeNotFound     = "DMPNotFound"
	CodeClosed       = "DMPClosed"
	CodeAccessDenied = "DMPAccessDenied"
	CodeBlocked      = "DMPAccessBlocked"
	CodeOpposition   = "DMPPatientOpposition"
	CodeInvalidVIHF  = "DMPInvalidVIHF"
)

// AccessMode is the VIHF purpose of use (TRE_R248).
type AccessMode string

// Access modes.
const (
	ModeNormal     AccessMode = "normal"
	ModeBreakGlass AccessMode = "bris_de_glace"
	ModeCentre15   AccessMode = "centre_15"
)

// Action is what an actor does on a DMP, as written in the access history.
type Action string

// Professional-side actions.
const (
	ActionTestExistence = Action("test-existence") // TD0.2
	ActionCreate        = Action("create")         // TD1.1
	ActionReactivate    = Action("reactivate")     // TD1.2
	ActionConsultAdmin  = Action("consult-admin")  // TD1.3a
	ActionUpdateAdmin   = Action("update-admin")   // TD1.3b
	ActionClose         = Action("close")          // TD1.4
	ActionAuthorize     = Action("authorize")      // TD0.3 AJOUT
	ActionUnauthorize   = Action("unauthorize")    // TD0.3 SUPPRESSION
	ActionSearch        = Action("search")         // TD3.1
	ActionRead          = Action("read")           // TD3.2
	ActionFeed          = Action("feed")           // TD2.1
	ActionReplace       = Action("replace")        // TD2.1 RPLC
	ActionMask          = Action("mask")           // TD3.3a
	ActionUnmask        = Action("unmask")         // TD3.3a
	ActionVisibility    = Action("visibility")     // TD3.3b: reveal to the patient
	ActionArchive       = Action("archive")        // TD3.3d
	ActionUnarchive     = Action("unarchive")      // TD3.3d
	ActionDelete        = Action("delete")         // TD3.3c
)

// Patient-side actions, for the history the sim CLI writes.
const (
	ActionPatientBlock   = Action("patient-block")
	ActionPatientUnblock = Action("patient-unblock")
	ActionPatientRead    = Action("patient-read")
	ActionPatientHistory = Action("patient-history")
)

// Actor is the professional making a request, as the VIHF describes him.
type Actor struct {
	IDNat      string
	Name       string
	Profession string // TRE_G15 code, e.g. "10"
	// Specialty is the TRE_R01 specialty, or for code 99 the TRE_R22
	// activity kind (GENR08…); it selects "CODE/QUALIFIER" matrix entries.
	Specialty string
	Mode      AccessMode // empty means normal
	Reason    string     // break-glass reason
}

func (a Actor) mode() AccessMode {
	if a.Mode == "" {
		return ModeNormal
	}
	return a.Mode
}

// AccessRequest is everything Decide looks at.
type AccessRequest struct {
	Actor         Actor
	Action        Action
	INS           string     // the patient the request is about, in CX form
	DMP           *DMPRecord // nil when the patient has no DMP
	Authorization AuthState  // the actor's standing on the DMP
	Attending     bool       // the actor is an attending physician of the DMP
	// Consent is the patient's consent carried by a creation or
	// reactivation request.
	Consent  bool
	Document *DocumentRecord // the document read or changed, if any
}

// Decision is the outcome of a request: allowed, or refused with a fault
// code and a message for people.
type Decision struct {
	Allowed bool
	Code    string
	Message string
}

var allow = Decision{Allowed: true}

func deny(code, msg string) Decision { return Decision{Code: code, Message: msg} }

// Rules decides requests with a habilitation matrix; a nil Matrix means
// DefaultMatrix.
type Rules struct {
	Matrix *Matrix
}

func (r Rules) matrix() *Matrix {
	if r.Matrix == nil {
		return DefaultMatrix()
	}
	return r.Matrix
}

// Decide applies the access rules to a professional's request.
func (r Rules) Decide(req AccessRequest) Decision {
	if d := checkMode(req.Actor); !d.Allowed {
		return d
	}
	switch req.Action {
	case ActionCreate:
		return decideCreate(req)
	case ActionTestExistence:
		if req.DMP == nil {
			return deny(CodeNotFound, "no DMP for this patient")
		}
		return allow
	}
	if req.DMP == nil {
		return deny(CodeNotFound, "no DMP for this patient")
	}
	// Rule 3: a block holds in every mode, before anything else.
	if req.Authorization == AuthBlocked {
		return deny(CodeBlocked, "the patient has blocked this professional")
	}
	if req.Action == ActionReactivate {
		return decideReactivate(req)
	}
	// Rule 9.
	if req.DMP.Status == DMPClosed {
		return deny(CodeClosed, "the DMP is closed")
	}
	if d := decideAccess(req); !d.Allowed {
		return d
	}
	return r.decideAction(req)
}

// checkMode refuses an unknown mode and a break-glass without a reason.
func checkMode(a Actor) Decision {
	switch a.mode() {
	case ModeNormal, ModeCentre15:
		return allow
	case ModeBreakGlass:
		if strings.TrimSpace(a.Reason) == "" {
			return deny(CodeInvalidVIHF, "break-glass access needs a written reason")
		}
		return allow
	}
	return deny(CodeInvalidVIHF, "unknown access mode "+string(a.Mode))
}

// decideCreate is rule 1; the store authorizes the creator.
func decideCreate(req AccessRequest) Decision {
	if req.DMP != nil {
		if req.DMP.Status == DMPClosed {
			return deny(CodeClosed, "the DMP exists and is closed: reactivate it")
		}
		return deny(CodeFound, "the DMP already exists")
	}
	if !req.Consent {
		return deny(CodeAccessDenied, "creating a DMP needs the patient's consent")
	}
	return allow
}

func decideReactivate(req AccessRequest) Decision {
	if req.DMP.Status == DMPOpen {
		return deny(CodeFound, "the DMP is already active")
	}
	if !req.Consent {
		return deny(CodeAccessDenied, "reactivating a DMP needs the patient's consent")
	}
	if req.Actor.mode() != ModeNormal {
		return deny(CodeAccessDenied, "reactivation is done in normal access mode")
	}
	return allow
}

// decideAccess is rule 2: authorization in normal mode, or an emergency mode
// the patient did not oppose.
func decideAccess(req AccessRequest) Decision {
	authorized := req.Authorization == AuthAuthorized || req.Attending
	switch req.Actor.mode() {
	case ModeBreakGlass:
		if req.DMP.Oppositions.BreakGlass {
			return deny(CodeOpposition, "the patient opposed break-glass access")
		}
	case ModeCentre15:
		if req.DMP.Oppositions.Centre15 {
			return deny(CodeOpposition, "the patient opposed Centre 15 access")
		}
	default:
		if !authorized && req.Action != ActionAuthorize {
			return deny(CodeAccessDenied, "the patient has not authorized this professional")
		}
		return allow
	}
	switch req.Action {
	case ActionAuthorize, ActionUnauthorize, ActionClose, ActionUpdateAdmin:
		return deny(CodeAccessDenied, string(req.Action)+" is only possible in normal access mode")
	}
	return allow
}

// decideAction applies the per-action rules once access to the DMP is
// granted.
func (r Rules) decideAction(req AccessRequest) Decision {
	switch req.Action {
	case ActionConsultAdmin, ActionUpdateAdmin, ActionClose, ActionAuthorize, ActionUnauthorize,
		ActionSearch, ActionFeed:
		return allow
	case ActionRead, ActionVisibility:
		return r.decideRead(req)
	case ActionMask:
		if req.Actor.mode() != ModeNormal {
			return deny(CodeAccessDenied, "masking is only possible in normal access mode")
		}
		return r.decideRead(req)
	case ActionUnmask, ActionArchive, ActionUnarchive, ActionReplace:
		return authorOrAttending(req)
	case ActionDelete:
		if req.Document == nil || !isAuthor(req) {
			return deny(CodeAccessDenied, "only the author may delete a document")
		}
		return allow
	}
	return deny(CodeAccessDenied, "unknown action "+string(req.Action))
}

func isAuthor(req AccessRequest) bool {
	return req.Document != nil && req.Document.AuthorID != "" && req.Document.AuthorID == req.Actor.IDNat
}

func authorOrAttending(req AccessRequest) Decision {
	if req.Document == nil || !(isAuthor(req) || req.Attending) {
		return deny(CodeAccessDenied, "only the author or an attending physician may "+string(req.Action)+" this document")
	}
	return allow
}

// decideRead is rules 4, 5 and 7 for one document.
func (r Rules) decideRead(req AccessRequest) Decision {
	d := req.Document
	if d == nil {
		return deny(CodeAccessDenied, "no document")
	}
	// Rule 4, and authors always read what they wrote.
	if req.Attending || isAuthor(req) {
		return allow
	}
	// Rule 5.
	if d.HasConfidentiality(ConfMaskedPS) {
		if req.Actor.mode() == ModeNormal || !req.DMP.MaskedInEmergency {
			return deny(CodeAccessDenied, "the document is masked from professionals")
		}
	}
	// Rule 7.
	a := req.Actor
	if !r.matrix().MayReadDocument(a.Profession, a.Specialty, d.TypeCode, d.ClassCode) {
		return deny(CodeAccessDenied, "profession "+a.Profession+" may not read documents of type "+d.TypeCode)
	}
	return allow
}

// VisibleDocuments filters a search result down to the documents the actor
// may read; a search answers with what the professional may see, not with
// refusals. The request's Document is ignored.
func (r Rules) VisibleDocuments(req AccessRequest, docs []DocumentRecord) []DocumentRecord {
	var out []DocumentRecord
	for k := range docs {
		req.Document = &docs[k]
		if r.decideRead(req).Allowed {
			out = append(out, docs[k])
		}
	}
	return out
}

// PatientMayRead is rule 6: a document invisible to the patient is hidden
// from the patient, and one invisible to legal representatives from them,
// until a professional reveals it. Masking from professionals (rule 5) does
// not hide anything from the patient.
func PatientMayRead(d *DocumentRecord, asRepresentative bool) bool {
	if d.HasConfidentiality(ConfInvisiblePatient) {
		return false
	}
	return !asRepresentative || !d.HasConfidentiality(ConfInvisibleRepresentative)
}

// PatientView filters a document list for the patient (or a legal
// representative) side.
func PatientView(docs []DocumentRecord, asRepresentative bool) []DocumentRecord {
	var out []DocumentRecord
	for k := range docs {
		if PatientMayRead(&docs[k], asRepresentative) {
			out = append(out, docs[k])
		}
	}
	return out
}

// HistoryFor is rule 8: the access history entry of a request and its
// outcome, allowed or not.
func HistoryFor(req AccessRequest, d Decision, at time.Time) HistoryEntry {
	h := HistoryEntry{
		Time:            at,
		ActorID:         req.Actor.IDNat,
		ActorName:       req.Actor.Name,
		ActorProfession: req.Actor.Profession,
		Mode:            req.Actor.mode(),
		Reason:          req.Actor.Reason,
		Action:          req.Action,
		Allowed:         d.Allowed,
		Code:            d.Code,
	}
	h.INS = req.INS
	if h.INS == "" && req.DMP != nil {
		h.INS = req.DMP.INS
	}
	if req.Document != nil {
		h.DocumentUniqueID = req.Document.UniqueID
		if h.INS == "" {
			h.INS = req.Document.INS
		}
	}
	return h
}
