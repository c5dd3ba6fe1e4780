// Package api holds the wire types of the agent's localhost API (DESIGN §3):
// the JSON bodies, the event names and the error codes. The agent's handlers
// and the typed client in agent/client share them, so the two cannot drift
// apart; the OpenAPI document served at /v1/openapi.json describes the same
// shapes and a test holds it to the real responses.
package api

import (
	"fmt"
	"time"
)

// DefaultAddr is where the agent listens unless configured otherwise.
const DefaultAddr = "127.0.0.1:7711"

// Error is the body of every error answer: {"error":{…}}.
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// ErrorBody wraps an Error as it travels.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error codes a caller branches on. The DMP's own refusals keep their code in
// details.dmp_code.
const (
	CodeBadRequest          = "bad_request"
	CodeMalformedJSON       = "malformed_json"
	CodeInvalidField        = "invalid_field"
	CodeBodyTooLarge        = "body_too_large"
	CodeUnauthorized        = "unauthorized"
	CodeAdminRequired       = "admin_required"
	CodeHostForbidden       = "host_forbidden"
	CodeOriginForbidden     = "origin_forbidden"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeIdempotencyReused   = "idempotency_key_reused"
	CodeIdempotencyPending  = "idempotency_key_in_use"
	CodeNoCPS               = "cps_required"
	CodeSessionRequired     = "session_required"
	CodePINIncorrect        = "pin_incorrect"
	CodePINBlocked          = "pin_blocked"
	CodePINFormat           = "pin_format"
	CodeCardRemoved         = "card_removed"
	CodeCardError           = "card_error"
	CodeVitaleRequired      = "vitale_required"
	CodeVitaleMismatch      = "vitale_mismatch"
	CodeConsentRequired     = "consent_required"
	CodeINSUnresolved       = "ins_unresolved"
	CodeUnsupportedFormat   = "unsupported_format"
	CodeDMPAccessDenied     = "dmp_access_denied"
	CodeDMPBlocked          = "dmp_blocked"
	CodeDMPClosed           = "dmp_closed"
	CodeDMPOpposition       = "dmp_patient_opposition"
	CodeDMPNotFound         = "dmp_not_found"
	CodeDMPExists           = "dmp_exists"
	CodeDocumentNotFound    = "document_not_found"
	CodeDMPFault            = "dmp_fault"
	CodeDMPCredentials      = "dmp_credentials_refused"
	CodeDMPUnreachable      = "dmp_unreachable"
	CodeDMPTimeout          = "dmp_timeout"
	CodeSubmissionNotFound  = "submission_not_found"
	CodeConsentNotFound     = "consent_not_found"
	CodePairingNotFound     = "pairing_not_found"
	CodeTooManyPairings     = "too_many_pairings"
	CodeTokenNotFound       = "token_not_found"
	CodeServiceUnavailable  = "pcsc_unavailable"
	CodeInternal            = "internal"
	CodeOutboxUnavailable   = "outbox_unavailable"
	CodeDocumentUnavailable = "document_unavailable"
)

// Event names on GET /v1/events.
const (
	EventReaderAdded       = "reader.added"
	EventReaderRemoved     = "reader.removed"
	EventCardInserted      = "card.inserted"
	EventCardRemoved       = "card.removed"
	EventSessionOpened     = "session.opened"
	EventSessionClosed     = "session.closed"
	EventSubmissionUpdated = "submission.updated"
	EventPairingRequested  = "pairing.requested"
	EventPCSCLost          = "pcsc.lost"
	EventPCSCRestored      = "pcsc.restored"
)

// Event is the data of one Server-Sent Event.
type Event struct {
	Seq        uint64      `json:"seq"`
	Type       string      `json:"type"`
	Time       time.Time   `json:"time"`
	Reader     string      `json:"reader,omitempty"`
	Card       *Card       `json:"card,omitempty"`
	Session    *Session    `json:"session,omitempty"`
	Submission *Submission `json:"submission,omitempty"`
	Pairing    *Pairing    `json:"pairing,omitempty"`
	Message    string      `json:"message,omitempty"`
}

// Health is GET /v1/health.
type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
}

// Status is GET /v1/status.
type Status struct {
	Version     string    `json:"version"`
	Started     time.Time `json:"started"`
	PCSC        string    `json:"pcsc"` // "ok" or why not
	Readers     []Reader  `json:"readers"`
	Session     *Session  `json:"session,omitempty"`
	OutboxDepth int       `json:"outbox_depth"`
	DMPEndpoint string    `json:"dmp_endpoint"`
	// Simulation is true when the agent talks to a simulated DMP or holds
	// test cards, so that no screen mistakes it for the real service.
	Simulation bool `json:"simulation"`
}

// Readers is GET /v1/readers.
type Readers struct {
	Readers []Reader `json:"readers"`
}

// Reader is one PC/SC reader and its card.
type Reader struct {
	Name string `json:"name"`
	Card *Card  `json:"card,omitempty"`
}

// Card types, as cardreader names them.
const (
	CardCPS     = "cps"
	CardVitale  = "vitale"
	CardPIV     = "piv"
	CardUnknown = "unknown"
)

// Card is a card in a reader.
type Card struct {
	Type        string `json:"type"`
	Model       string `json:"model,omitempty"`
	ATR         string `json:"atr"` // hex, upper case, no spaces
	Description string `json:"description,omitempty"`
	Reason      string `json:"reason,omitempty"` // why the type is unknown
}

// CPS is GET /v1/cps.
type CPS struct {
	IDNat      string    `json:"id_nat"`
	Surname    string    `json:"surname"`
	GivenName  string    `json:"given_name"`
	Profession string    `json:"profession"`
	Specialty  string    `json:"specialty"`
	NotAfter   time.Time `json:"not_after"`
	Reader     string    `json:"reader"`
	// ProfessionLabel is the certificate's T= attribute; Profession is
	// its TRE_G15 code.
	ProfessionLabel string `json:"profession_label,omitempty"`
	StructureID     string `json:"structure_id,omitempty"`
	StructureName   string `json:"structure_name,omitempty"`
	Test            bool   `json:"test"`
}

// SessionRequest is POST /v1/session.
type SessionRequest struct {
	PIN string `json:"pin"`
}

// Session is the open professional session.
type Session struct {
	IDNat     string    `json:"id_nat"`
	Surname   string    `json:"surname,omitempty"`
	GivenName string    `json:"given_name,omitempty"`
	Reader    string    `json:"reader"`
	Opened    time.Time `json:"opened"`
}

// Vitale is GET /v1/vitale.
type Vitale struct {
	Reader        string        `json:"reader"`
	CardSerial    string        `json:"card_serial,omitempty"`
	Beneficiaries []Beneficiary `json:"beneficiaries"`
}

// Beneficiary is one person on a Vitale card. INS is set once INSi has
// resolved it (which needs a professional session).
type Beneficiary struct {
	NIR       string `json:"nir"`
	INS       string `json:"ins,omitempty"`
	INSOID    string `json:"ins_oid,omitempty"`
	Surname   string `json:"surname"`
	GivenName string `json:"given_name"`
	BirthDate string `json:"birth_date"` // YYYY-MM-DD when a calendar date, else as stored
	Rank      int    `json:"rank"`
	// INSError says why the INS is missing when a lookup was tried.
	INSError string `json:"ins_error,omitempty"`
}

// Consent is what the professional records with the patient.
type Consent struct {
	Given               bool        `json:"given"`
	InformationProvided bool        `json:"information_provided"`
	Oppositions         Oppositions `json:"oppositions"`
}

// Oppositions are the patient's refusals of emergency access.
type Oppositions struct {
	BreakGlass bool `json:"break_glass"`
	Centre15   bool `json:"centre15"`
}

// CreateDMPRequest is POST /v1/dmp.
type CreateDMPRequest struct {
	INS     string   `json:"ins"`
	Consent *Consent `json:"consent"`
}

// ConsentRequest is POST and DELETE /v1/dmp/{ins}/authorization.
type ConsentRequest struct {
	Consent *Consent `json:"consent"`
}

// DMPResult answers the create, authorization, close and reactivate routes.
type DMPResult struct {
	INS              string `json:"ins"`
	Status           string `json:"status"`
	ConsentReceiptID string `json:"consent_receipt_id,omitempty"`
}

// DMP statuses.
const (
	DMPStatusOpen    = "open"
	DMPStatusClosed  = "closed"
	DMPStatusMissing = "none"
)

// DMP is GET /v1/dmp/{ins}.
type DMP struct {
	INS                string `json:"ins"`
	Exists             bool   `json:"exists"`
	Status             string `json:"status"`
	Authorization      string `json:"authorization"` // valid, expired, forbidden, none
	AttendingPhysician bool   `json:"attending_physician"`
	OpposesBreakGlass  bool   `json:"opposes_break_glass"`
	OpposesCentre15    bool   `json:"opposes_centre15"`
}

// Emergency access modes.
const (
	ModeBreakGlass = "break_glass"
	ModeCentre15   = "centre15"
)

// EmergencyRequest is POST /v1/dmp/{ins}/emergency-access.
type EmergencyRequest struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason,omitempty"`
}

// EmergencyAccess answers it: reads of this patient use the mode until the
// session ends.
type EmergencyAccess struct {
	INS  string `json:"ins"`
	Mode string `json:"mode"`
	DMP  DMP    `json:"dmp"`
}

// CloseRequest is POST /v1/dmp/{ins}/close.
type CloseRequest struct {
	Reason string `json:"reason"`
}

// Confidentiality says who a document is hidden from.
type Confidentiality struct {
	MaskedFromProfessionals bool `json:"masked_from_professionals"`
	InvisibleToPatient      bool `json:"invisible_to_patient"`
	InvisibleToGuardians    bool `json:"invisible_to_guardians"`
}

// DocumentMetadata is the `metadata` part of POST /v1/dmp/{ins}/documents.
type DocumentMetadata struct {
	Title           string           `json:"title"`
	TypeCode        string           `json:"type_code"`
	Format          string           `json:"format"` // pdf or cda
	ClassCode       string           `json:"class_code,omitempty"`
	Confidentiality *Confidentiality `json:"confidentiality,omitempty"`
	ServiceStart    *time.Time       `json:"service_start,omitempty"`
	ServiceStop     *time.Time       `json:"service_stop,omitempty"`
	// Replaces is the id of a document this one replaces (TD2.2).
	Replaces string `json:"replaces,omitempty"`
}

// Submission states.
const (
	SubmissionQueued    = "queued"
	SubmissionSending   = "sending"
	SubmissionSubmitted = "submitted"
	SubmissionFailed    = "failed"
)

// Submission is a document on its way to the DMP: the 202 answer of a feed
// and GET /v1/submissions/{id}.
type Submission struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	INS        string    `json:"ins,omitempty"`
	DocumentID string    `json:"document_id,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Attempts   int       `json:"attempts"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// Document statuses in search results.
const (
	DocumentAvailable = "available"
	DocumentArchived  = "archived"
	DocumentReplaced  = "replaced"
	DocumentDeleted   = "deleted"
)

// Documents is GET /v1/dmp/{ins}/documents.
type Documents struct {
	Documents []Document `json:"documents"`
}

// Document is one document's metadata.
type Document struct {
	ID              string          `json:"id"`
	Title           string          `json:"title"`
	TypeCode        string          `json:"type_code"`
	ClassCode       string          `json:"class_code,omitempty"`
	Format          string          `json:"format"`
	MimeType        string          `json:"mime_type,omitempty"`
	Status          string          `json:"status"`
	Author          string          `json:"author"`
	AuthorIDNat     string          `json:"author_id_nat,omitempty"`
	Created         time.Time       `json:"created"`
	ServiceStart    *time.Time      `json:"service_start,omitempty"`
	Size            int64           `json:"size,omitempty"`
	Confidentiality Confidentiality `json:"confidentiality"`
}

// DocumentPatch is PATCH /v1/dmp/{ins}/documents/{id}: absent fields stay.
type DocumentPatch struct {
	MaskedFromProfessionals *bool  `json:"masked_from_professionals,omitempty"`
	InvisibleToPatient      *bool  `json:"invisible_to_patient,omitempty"`
	Status                  string `json:"status,omitempty"` // archived or available
}

// PairingRequest is POST /v1/pairings, sent by an application without a
// token yet.
type PairingRequest struct {
	App    string `json:"app"`
	Origin string `json:"origin,omitempty"`
}

// Pairing states.
const (
	PairingPending  = "pending"
	PairingApproved = "approved"
	PairingDenied   = "denied"
	PairingExpired  = "expired"
)

// Pairing is a pending request to pair an application. ID is the
// requester's secret to poll with; Code is what the user compares on the
// agent's page. Token is given once, to the first poll after approval.
type Pairing struct {
	ID      string    `json:"id,omitempty"`
	Code    string    `json:"code,omitempty"`
	App     string    `json:"app"`
	Origin  string    `json:"origin,omitempty"`
	State   string    `json:"state"`
	Expires time.Time `json:"expires"`
	Token   string    `json:"token,omitempty"`
}

// Pairings lists pending pairings (admin and local page).
type Pairings struct {
	Pairings []Pairing `json:"pairings"`
}

// PairingDecision is POST /v1/pairings/approve and /deny.
type PairingDecision struct {
	Code string `json:"code"`
}

// TokenRequest is POST /v1/tokens (admin).
type TokenRequest struct {
	App    string `json:"app"`
	Origin string `json:"origin,omitempty"`
	Admin  bool   `json:"admin,omitempty"`
}

// Token describes an application's token; Secret is shown once, at
// creation.
type Token struct {
	ID       string     `json:"id"`
	App      string     `json:"app"`
	Origin   string     `json:"origin,omitempty"`
	Admin    bool       `json:"admin"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	Secret   string     `json:"token,omitempty"`
}

// Tokens is GET /v1/tokens.
type Tokens struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one entry of the hash-chained audit log.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target,omitempty"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details,omitempty"`
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash"`
}

// Audit is GET /v1/audit: entries after `after`, and whether more follow.
type Audit struct {
	Entries []AuditEntry `json:"entries"`
	More    bool         `json:"more"`
}

// ConsentReceipt is GET /v1/consents/{id}: the signed receipt as stored
// (a JWS in flattened JSON serialisation), for the caller to verify.
type ConsentReceipt struct {
	ID  string `json:"id"`
	JWS string `json:"jws"`
}

// FieldError builds a 400 for one bad field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Status: 400, Code: CodeInvalidField, Message: fmt.Sprintf(format, args...),
		Details: map[string]any{"field": field}}
}
