package dmptest

// The simulated DMP's state, in SQLite (modernc.org/sqlite, pure Go). One
// connection serves the whole store: SQLite has one writer anyway, an
// in-memory database exists only on its connection, and a single
// connection makes every statement and transaction of concurrent HTTP
// handlers run one after another without SQLITE_BUSY between them. WAL,
// a busy timeout and IMMEDIATE transactions are for another process (the
// sim CLI's patient-side commands) opening the same file.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Store errors, for callers to branch on with errors.Is.
var (
	ErrNotFound          = errors.New("dmptest: not found")
	ErrDMPExists         = errors.New("dmptest: DMP already exists")
	ErrAlreadyClosed     = errors.New("dmptest: DMP already closed")
	ErrAlreadyOpen       = errors.New("dmptest: DMP already open")
	ErrDuplicateUniqueID = errors.New("dmptest: document uniqueId already registered")
	ErrDuplicateEntry    = errors.New("dmptest: document entryUUID already registered")
	ErrInvalidTransition = errors.New("dmptest: document status change not allowed")
	ErrVersionConflict   = errors.New("dmptest: not the latest version of the document")
	ErrBlocked           = errors.New("dmptest: professional blocked by the patient")
	ErrNotAuthorized     = errors.New("dmptest: professional not authorized on this DMP")
)

// DMPStatus is the state of a patient's DMP.
type DMPStatus string

// DMP states.
const (
	DMPOpen   DMPStatus = "open"
	DMPClosed DMPStatus = "closed"
)

// Patient is the administrative identity a DMP was created with.
type Patient struct {
	Family string
	Given  string
	Sex    string // M, F or U
	Birth  string // YYYYMMDD
}

// Oppositions are the patient's refusals of emergency access (TD1.1
// OPPOSITION_BRIS_DE_GLACE and OPPOSITION_ACCES_URGENCE).
type Oppositions struct {
	BreakGlass bool
	Centre15   bool
}

// DMPRecord is one patient's DMP.
type DMPRecord struct {
	INS         string // the INS in CX form, the key of everything
	Status      DMPStatus
	CreatedAt   time.Time
	CreatedBy   string // idNat of the creating professional
	Patient     Patient
	Oppositions Oppositions
	// MaskedInEmergency is the patient's permission to show documents
	// masked from professionals in break-glass and Centre 15 access (FI-526
	// note 7). Off by default.
	MaskedInEmergency   bool
	ClosedAt            time.Time
	CloseReason         string
	LegalRepresentative string // free text; empty when none
}

// AuthState is a professional's standing on a DMP.
type AuthState string

// Authorization states. AuthNone is the absence of a row (TD0.2
// NON_EXISTE); AuthBlocked is TD0.2 INTERDIT.
const (
	AuthNone       AuthState = ""
	AuthAuthorized AuthState = "authorized"
	AuthBlocked    AuthState = "blocked"
)

// AuthorizationRecord is a professional's authorization on a DMP.
type AuthorizationRecord struct {
	INS       string
	IDNat     string
	State     AuthState
	Since     time.Time // start of the authorization or of the block
	Attending bool      // médecin traitant DMP; several per DMP are allowed
}

// DocumentStatus is an XDS availabilityStatus.
type DocumentStatus string

// Document statuses, as the DMP writes them.
const (
	DocApproved   DocumentStatus = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
	DocDeprecated DocumentStatus = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
	DocArchived   DocumentStatus = "urn:asip:ci-sis:2010:StatusType:Archived"
	DocDeleted    DocumentStatus = "urn:asip:ci-sis:2010:StatusType:Deleted"
)

// Confidentiality codes (N, and TRE_A07 in 1.2.250.1.213.1.1.4.13).
const (
	ConfNormal                  = "N"
	ConfMaskedPS                = "MASQUE_PS"
	ConfInvisiblePatient        = "INVISIBLE_PATIENT"
	ConfInvisibleRepresentative = "INVISIBLE_REPRESENTANTS_LEGAUX"
)

// DocumentRecord is one version of a registered document (an XDS
// DocumentEntry).
type DocumentRecord struct {
	EntryUUID          string // changes with every metadata version
	LogicalID          string // stays across metadata versions
	UniqueID           string
	INS                string
	Status             DocumentStatus
	Version            int
	TypeCode           string
	ClassCode          string
	FormatCode         string
	MimeType           string
	Title              string
	Confidentiality    []string
	AuthorID           string // idNat
	AuthorProfession   string // TRE_G15 code, or the combined TRE_A02 code
	CreationTime       time.Time
	SubmissionTime     time.Time
	Size               int64
	Hash               string // SHA-1, hex
	RepositoryUniqueID string
	ContentPath        string // the file holding the document's bytes
	Metadata           []byte // opaque; the HTTP layer keeps the ebRIM XML here
	SubmissionSetID    string // uniqueId of the submission set
	ReplacedBy         string // uniqueId of the document that replaced this one (RPLC)
}

// HasConfidentiality reports whether the document carries code.
func (d *DocumentRecord) HasConfidentiality(code string) bool {
	for _, c := range d.Confidentiality {
		if c == code {
			return true
		}
	}
	return false
}

// HistoryEntry is one line of a DMP's access history (DESIGN §6 rule 8).
type HistoryEntry struct {
	ID               int64 // assigned by the store
	Time             time.Time
	INS              string
	ActorID          string
	ActorName        string
	ActorProfession  string
	Mode             AccessMode
	Reason           string
	Action           Action
	DocumentUniqueID string
	Allowed          bool
	Code             string // the fault code of a refusal
}

// DocumentQuery selects documents of one DMP. Empty lists and zero times do
// not filter. The creation time range is [CreatedFrom, CreatedTo), as in
// ITI-18.
type DocumentQuery struct {
	INS         string
	Statuses    []DocumentStatus
	TypeCodes   []string
	ClassCodes  []string
	CreatedFrom time.Time
	CreatedTo   time.Time
}

// MetadataUpdate is what an ITI-57 metadata update (masking, patient
// visibility) changes; every other field is copied from the previous version.
type MetadataUpdate struct {
	EntryUUID       string // of the new version; generated when empty
	Confidentiality []string
	Metadata        []byte
	SubmissionSetID string
}

// Store is the simulated DMP's state. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS dmp (
	ins TEXT PRIMARY KEY,
	status TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	family TEXT NOT NULL,
	given TEXT NOT NULL,
	sex TEXT NOT NULL,
	birth TEXT NOT NULL,
	oppose_break_glass INTEGER NOT NULL,
	oppose_centre15 INTEGER NOT NULL,
	masked_in_emergency INTEGER NOT NULL,
	closed_at INTEGER,
	close_reason TEXT NOT NULL,
	legal_rep TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS authorization (
	ins TEXT NOT NULL REFERENCES dmp(ins),
	ps TEXT NOT NULL,
	state TEXT NOT NULL,
	since INTEGER NOT NULL,
	attending INTEGER NOT NULL,
	PRIMARY KEY (ins, ps)
);
CREATE TABLE IF NOT EXISTS document (
	entry_uuid TEXT PRIMARY KEY,
	logical_id TEXT NOT NULL,
	unique_id TEXT NOT NULL,
	ins TEXT NOT NULL REFERENCES dmp(ins),
	status TEXT NOT NULL,
	version INTEGER NOT NULL,
	type_code TEXT NOT NULL,
	class_code TEXT NOT NULL,
	format_code TEXT NOT NULL,
	mime_type TEXT NOT NULL,
	title TEXT NOT NULL,
	confidentiality TEXT NOT NULL,
	author_id TEXT NOT NULL,
	author_profession TEXT NOT NULL,
	creation_time INTEGER,
	submission_time INTEGER,
	size INTEGER NOT NULL,
	hash TEXT NOT NULL,
	repository_unique_id TEXT NOT NULL,
	content_path TEXT NOT NULL,
	metadata BLOB,
	submission_set_id TEXT NOT NULL,
	replaced_by TEXT NOT NULL,
	UNIQUE (unique_id, version),
	UNIQUE (logical_id, version)
);
CREATE INDEX IF NOT EXISTS document_ins ON document(ins);
CREATE TABLE IF NOT EXISTS history (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	at INTEGER NOT NULL,
	ins TEXT NOT NULL,
	actor_id TEXT NOT NULL,
	actor_name TEXT NOT NULL,
	actor_profession TEXT NOT NULL,
	mode TEXT NOT NULL,
	reason TEXT NOT NULL,
	action TEXT NOT NULL,
	document_unique_id TEXT NOT NULL,
	allowed INTEGER NOT NULL,
	code TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_ins ON history(ins, at);
`

// OpenStore opens (creating if needed) the store in a file, or in memory
// for path ":memory:".
func OpenStore(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("dmptest: store path is empty (use \":memory:\")")
	}
	// The driver reads its options after the first '?', so a path with one
	// would be cut.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("dmptest: store path %q contains '?'", path)
	}
	dsn := path + "?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	if path != ":memory:" {
		dsn += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("dmptest: open store: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("dmptest: create schema in %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the database.
func (s *Store) Close() error { return s.db.Close() }

// tx runs fn in a transaction and appends the history entries in the same
// transaction, so that a change and its trace are never apart.
func (s *Store) tx(ctx context.Context, trace []HistoryEntry, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dmptest: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	for _, h := range trace {
		if err := insertHistory(ctx, tx, h); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dmptest: commit: %w", err)
	}
	return nil
}

// --- DMPs

// CreateDMP registers a DMP and authorizes its creator (DESIGN §6 rule 1).
// Status defaults to open and CreatedAt to now.
func (s *Store) CreateDMP(ctx context.Context, d DMPRecord, trace ...HistoryEntry) error {
	if d.INS == "" || d.CreatedBy == "" {
		return errors.New("dmptest: a DMP needs an INS and a creator")
	}
	if d.Status == "" {
		d.Status = DMPOpen
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		if _, err := getDMP(ctx, tx, d.INS); err == nil {
			return fmt.Errorf("%w: %s", ErrDMPExists, d.INS)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO dmp (ins, status, created_at, created_by, family, given, sex, birth,
			oppose_break_glass, oppose_centre15, masked_in_emergency, closed_at, close_reason, legal_rep)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.INS, d.Status, unixNano(d.CreatedAt), d.CreatedBy, d.Patient.Family, d.Patient.Given, d.Patient.Sex,
			d.Patient.Birth, d.Oppositions.BreakGlass, d.Oppositions.Centre15, d.MaskedInEmergency,
			nullTime(d.ClosedAt), d.CloseReason, d.LegalRepresentative)
		if err != nil {
			return fmt.Errorf("dmptest: create DMP %s: %w", d.INS, err)
		}
		return upsertAuthorization(ctx, tx, d.INS, d.CreatedBy, AuthAuthorized, d.CreatedAt, false)
	})
}

// DMP returns the DMP of an INS, or ErrNotFound.
func (s *Store) DMP(ctx context.Context, ins string) (*DMPRecord, error) {
	return getDMP(ctx, s.db, ins)
}

// UpdateDMP changes the administrative data of a DMP (TD1.3b): patient
// identity, oppositions, emergency visibility of masked documents and legal
// representative. Status and creation are left alone.
func (s *Store) UpdateDMP(ctx context.Context, d DMPRecord, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE dmp SET family = ?, given = ?, sex = ?, birth = ?,
			oppose_break_glass = ?, oppose_centre15 = ?, masked_in_emergency = ?, legal_rep = ? WHERE ins = ?`,
			d.Patient.Family, d.Patient.Given, d.Patient.Sex, d.Patient.Birth, d.Oppositions.BreakGlass,
			d.Oppositions.Centre15, d.MaskedInEmergency, d.LegalRepresentative, d.INS)
		return affected(res, err, "DMP "+d.INS)
	})
}

// CloseDMP closes an open DMP (TD1.4); ErrAlreadyClosed if it is closed.
func (s *Store) CloseDMP(ctx context.Context, ins string, at time.Time, reason string, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		d, err := getDMP(ctx, tx, ins)
		if err != nil {
			return err
		}
		if d.Status == DMPClosed {
			return fmt.Errorf("%w: %s", ErrAlreadyClosed, ins)
		}
		_, err = tx.ExecContext(ctx, `UPDATE dmp SET status = ?, closed_at = ?, close_reason = ? WHERE ins = ?`,
			DMPClosed, unixNano(at), reason, ins)
		return wrap(err, "close DMP "+ins)
	})
}

// ReactivateDMP reopens a closed DMP (TD1.2); ErrAlreadyOpen if it is open.
// Authorizations and documents are kept.
func (s *Store) ReactivateDMP(ctx context.Context, ins string, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		d, err := getDMP(ctx, tx, ins)
		if err != nil {
			return err
		}
		if d.Status == DMPOpen {
			return fmt.Errorf("%w: %s", ErrAlreadyOpen, ins)
		}
		_, err = tx.ExecContext(ctx, `UPDATE dmp SET status = ?, closed_at = NULL, close_reason = '' WHERE ins = ?`,
			DMPOpen, ins)
		return wrap(err, "reactivate DMP "+ins)
	})
}

// --- Authorizations

// Authorize records a professional's authorization (TD0.3 AJOUT). It keeps
// an existing authorization and its start date, and refuses a blocked
// professional with ErrBlocked.
func (s *Store) Authorize(ctx context.Context, ins, ps string, since time.Time, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		a, err := getAuthorization(ctx, tx, ins, ps)
		if err != nil {
			return err
		}
		switch a.State {
		case AuthAuthorized:
			return nil
		case AuthBlocked:
			return fmt.Errorf("%w: %s on %s", ErrBlocked, ps, ins)
		}
		return upsertAuthorization(ctx, tx, ins, ps, AuthAuthorized, since, false)
	})
}

// RemoveAuthorization withdraws a professional's authorization (TD0.3
// SUPPRESSION) and the attending flag with it. A block is left in place:
// only the patient lifts it.
func (s *Store) RemoveAuthorization(ctx context.Context, ins, ps string, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM authorization WHERE ins = ? AND ps = ? AND state = ?`,
			ins, ps, AuthAuthorized)
		return wrap(err, "remove authorization")
	})
}

// Block records the patient's block of a professional (DESIGN §6 rule 3).
// It replaces any authorization and attending flag.
func (s *Store) Block(ctx context.Context, ins, ps string, at time.Time, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		if _, err := getDMP(ctx, tx, ins); err != nil {
			return err
		}
		return upsertAuthorization(ctx, tx, ins, ps, AuthBlocked, at, false)
	})
}

// Unblock lifts a block; the professional is then neither authorized nor
// blocked.
func (s *Store) Unblock(ctx context.Context, ins, ps string, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM authorization WHERE ins = ? AND ps = ? AND state = ?`,
			ins, ps, AuthBlocked)
		return wrap(err, "unblock")
	})
}

// SetAttending sets or clears the attending-physician flag (médecin traitant
// DMP). Setting it needs an authorization (ErrNotAuthorized otherwise);
// clearing it keeps the authorization.
func (s *Store) SetAttending(ctx context.Context, ins, ps string, on bool, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		a, err := getAuthorization(ctx, tx, ins, ps)
		if err != nil {
			return err
		}
		if a.State != AuthAuthorized {
			if on {
				return fmt.Errorf("%w: %s on %s", ErrNotAuthorized, ps, ins)
			}
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE authorization SET attending = ? WHERE ins = ? AND ps = ?`, on, ins, ps)
		return wrap(err, "set attending")
	})
}

// Authorization returns a professional's standing on a DMP; State is
// AuthNone when there is none.
func (s *Store) Authorization(ctx context.Context, ins, ps string) (AuthorizationRecord, error) {
	return getAuthorization(ctx, s.db, ins, ps)
}

// Authorizations lists the authorizations and blocks of a DMP (TD1.6),
// oldest first.
func (s *Store) Authorizations(ctx context.Context, ins string) ([]AuthorizationRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ps, state, since, attending FROM authorization
		WHERE ins = ? ORDER BY since, ps`, ins)
	if err != nil {
		return nil, wrap(err, "list authorizations")
	}
	defer rows.Close()
	var out []AuthorizationRecord
	for rows.Next() {
		a := AuthorizationRecord{INS: ins}
		var since int64
		if err := rows.Scan(&a.IDNat, &a.State, &since, &a.Attending); err != nil {
			return nil, wrap(err, "list authorizations")
		}
		a.Since = fromUnixNano(since)
		out = append(out, a)
	}
	return out, wrap(rows.Err(), "list authorizations")
}

// AuthorizedDMPs lists the INS of the DMPs a professional is authorized on
// (TD0.4), sorted.
func (s *Store) AuthorizedDMPs(ctx context.Context, ps string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ins FROM authorization WHERE ps = ? AND state = ? ORDER BY ins`,
		ps, AuthAuthorized)
	if err != nil {
		return nil, wrap(err, "list DMPs")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ins string
		if err := rows.Scan(&ins); err != nil {
			return nil, wrap(err, "list DMPs")
		}
		out = append(out, ins)
	}
	return out, wrap(rows.Err(), "list DMPs")
}

// --- Documents

// AddDocument registers a new document (ITI-41). Defaults: LogicalID =
// EntryUUID, Version 1, status Approved, SubmissionTime now. A uniqueId
// already registered gives ErrDuplicateUniqueID, so a retried submission
// never registers the document twice.
func (s *Store) AddDocument(ctx context.Context, d DocumentRecord, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error { return insertNewDocument(ctx, tx, &d) })
}

// ReplaceDocument registers next as the replacement (RPLC) of the document
// version oldEntryUUID, which becomes Deprecated and records next's
// uniqueId in ReplacedBy. Only an Approved or Archived current version can
// be replaced.
func (s *Store) ReplaceDocument(ctx context.Context, oldEntryUUID string, next DocumentRecord, trace ...HistoryEntry) error {
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		old, err := getDocument(ctx, tx, `entry_uuid = ?`, oldEntryUUID)
		if err != nil {
			return err
		}
		if old.Status != DocApproved && old.Status != DocArchived {
			return fmt.Errorf("%w: replace a %s document", ErrInvalidTransition, old.Status)
		}
		if next.INS != old.INS {
			return fmt.Errorf("dmptest: replacement is for %s, not %s", next.INS, old.INS)
		}
		if err := insertNewDocument(ctx, tx, &next); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE document SET status = ?, replaced_by = ? WHERE entry_uuid = ?`,
			DocDeprecated, next.UniqueID, oldEntryUUID)
		return wrap(err, "deprecate replaced document")
	})
}

// NewVersion applies an ITI-57 metadata update (masking, patient
// visibility): a new entryUUID with the same logicalId and uniqueId, version
// prevVersion+1, the status of the previous version, and the previous
// version Deprecated, all at once. prevVersion must be the latest version
// (ErrVersionConflict otherwise), which must be Approved or Archived.
func (s *Store) NewVersion(ctx context.Context, logicalID string, prevVersion int, u MetadataUpdate, trace ...HistoryEntry) (DocumentRecord, error) {
	var next DocumentRecord
	err := s.tx(ctx, trace, func(tx *sql.Tx) error {
		prev, err := getDocument(ctx, tx, `logical_id = ? ORDER BY version DESC LIMIT 1`, logicalID)
		if err != nil {
			return err
		}
		if prev.Version != prevVersion {
			return fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionConflict, logicalID, prev.Version, prevVersion)
		}
		if prev.Status != DocApproved && prev.Status != DocArchived {
			return fmt.Errorf("%w: update the metadata of a %s document", ErrInvalidTransition, prev.Status)
		}
		next = *prev
		next.EntryUUID = u.EntryUUID
		if next.EntryUUID == "" {
			next.EntryUUID = NewUUID()
		}
		next.Version = prev.Version + 1
		next.Confidentiality = append([]string(nil), u.Confidentiality...)
		next.Metadata = u.Metadata
		next.SubmissionSetID = u.SubmissionSetID
		if _, err := tx.ExecContext(ctx, `UPDATE document SET status = ? WHERE entry_uuid = ?`,
			DocDeprecated, prev.EntryUUID); err != nil {
			return wrap(err, "deprecate previous version")
		}
		return insertDocument(ctx, tx, &next)
	})
	if err != nil {
		return DocumentRecord{}, err
	}
	return next, nil
}

// SetDocumentStatus applies an UpdateAvailabilityStatus (ITI-57): archive
// (Approved → Archived), unarchive (Archived → Approved) or logical delete
// (Approved or Archived → Deleted). from is the OriginalStatus the request
// claims and must match.
func (s *Store) SetDocumentStatus(ctx context.Context, entryUUID string, from, to DocumentStatus, trace ...HistoryEntry) error {
	if !transitionAllowed(from, to) {
		return fmt.Errorf("%w: %s → %s", ErrInvalidTransition, from, to)
	}
	return s.tx(ctx, trace, func(tx *sql.Tx) error {
		d, err := getDocument(ctx, tx, `entry_uuid = ?`, entryUUID)
		if err != nil {
			return err
		}
		if d.Status != from {
			return fmt.Errorf("%w: document is %s, not %s", ErrInvalidTransition, d.Status, from)
		}
		_, err = tx.ExecContext(ctx, `UPDATE document SET status = ? WHERE entry_uuid = ?`, to, entryUUID)
		return wrap(err, "set document status")
	})
}

func transitionAllowed(from, to DocumentStatus) bool {
	switch {
	case from == DocApproved && (to == DocArchived || to == DocDeleted):
		return true
	case from == DocArchived && (to == DocApproved || to == DocDeleted):
		return true
	}
	return false
}

// DocumentByEntryUUID returns one document version, or ErrNotFound.
func (s *Store) DocumentByEntryUUID(ctx context.Context, entryUUID string) (*DocumentRecord, error) {
	return getDocument(ctx, s.db, `entry_uuid = ?`, entryUUID)
}

// DocumentByUniqueID returns the latest version of a document, or
// ErrNotFound.
func (s *Store) DocumentByUniqueID(ctx context.Context, uniqueID string) (*DocumentRecord, error) {
	return getDocument(ctx, s.db, `unique_id = ? ORDER BY version DESC LIMIT 1`, uniqueID)
}

// FindDocuments returns the document versions of a DMP that match q, in
// submission order.
func (s *Store) FindDocuments(ctx context.Context, q DocumentQuery) ([]DocumentRecord, error) {
	where := []string{"ins = ?"}
	args := []any{q.INS}
	where, args = addIn(where, args, "status", q.Statuses)
	where, args = addIn(where, args, "type_code", q.TypeCodes)
	where, args = addIn(where, args, "class_code", q.ClassCodes)
	if !q.CreatedFrom.IsZero() {
		where = append(where, "creation_time >= ?")
		args = append(args, unixNano(q.CreatedFrom))
	}
	if !q.CreatedTo.IsZero() {
		where = append(where, "creation_time < ?")
		args = append(args, unixNano(q.CreatedTo))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+documentColumns+` FROM document WHERE `+
		strings.Join(where, " AND ")+` ORDER BY submission_time, rowid`, args...)
	if err != nil {
		return nil, wrap(err, "find documents")
	}
	defer rows.Close()
	var out []DocumentRecord
	for rows.Next() {
		d, err := scanDocument(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, wrap(rows.Err(), "find documents")
}

// addIn adds "col IN (?, …)" for a non-empty list; the values stay
// parameters.
func addIn[T ~string](where []string, args []any, col string, vals []T) ([]string, []any) {
	if len(vals) == 0 {
		return where, args
	}
	where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
	for _, v := range vals {
		args = append(args, string(v))
	}
	return where, args
}

// --- History

// AppendHistory records an access on its own (a refusal, a read); changes
// pass their entries to the method that makes them instead.
func (s *Store) AppendHistory(ctx context.Context, h HistoryEntry) error {
	return insertHistory(ctx, s.db, h)
}

// History lists a DMP's access history, newest first, at most limit
// entries (all when limit <= 0).
func (s *Store) History(ctx context.Context, ins string, limit int) ([]HistoryEntry, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, ins, actor_id, actor_name, actor_profession, mode, reason,
		action, document_unique_id, allowed, code FROM history WHERE ins = ? ORDER BY at DESC, id DESC LIMIT ?`,
		ins, limit)
	if err != nil {
		return nil, wrap(err, "list history")
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		var at int64
		if err := rows.Scan(&h.ID, &at, &h.INS, &h.ActorID, &h.ActorName, &h.ActorProfession, &h.Mode, &h.Reason,
			&h.Action, &h.DocumentUniqueID, &h.Allowed, &h.Code); err != nil {
			return nil, wrap(err, "list history")
		}
		h.Time = fromUnixNano(at)
		out = append(out, h)
	}
	return out, wrap(rows.Err(), "list history")
}

// AccessRequest gathers what Decide needs to judge an actor's action on a
// DMP: the DMP (nil when there is none) and the actor's authorization.
func (s *Store) AccessRequest(ctx context.Context, actor Actor, action Action, ins string) (AccessRequest, error) {
	req := AccessRequest{Actor: actor, Action: action, INS: ins}
	d, err := s.DMP(ctx, ins)
	if errors.Is(err, ErrNotFound) {
		return req, nil
	}
	if err != nil {
		return req, err
	}
	req.DMP = d
	a, err := s.Authorization(ctx, ins, actor.IDNat)
	if err != nil {
		return req, err
	}
	req.Authorization = a.State
	req.Attending = a.Attending
	return req, nil
}

// --- SQL helpers

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getDMP(ctx context.Context, q querier, ins string) (*DMPRecord, error) {
	var d DMPRecord
	var created int64
	var closed sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT ins, status, created_at, created_by, family, given, sex, birth,
		oppose_break_glass, oppose_centre15, masked_in_emergency, closed_at, close_reason, legal_rep
		FROM dmp WHERE ins = ?`, ins).Scan(&d.INS, &d.Status, &created, &d.CreatedBy, &d.Patient.Family,
		&d.Patient.Given, &d.Patient.Sex, &d.Patient.Birth, &d.Oppositions.BreakGlass, &d.Oppositions.Centre15,
		&d.MaskedInEmergency, &closed, &d.CloseReason, &d.LegalRepresentative)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: DMP %s", ErrNotFound, ins)
	}
	if err != nil {
		return nil, wrap(err, "read DMP "+ins)
	}
	d.CreatedAt = fromUnixNano(created)
	if closed.Valid {
		d.ClosedAt = fromUnixNano(closed.Int64)
	}
	return &d, nil
}

// getAuthorization returns the row, or a record with State AuthNone. It
// reports ErrNotFound when the DMP itself does not exist.
func getAuthorization(ctx context.Context, q querier, ins, ps string) (AuthorizationRecord, error) {
	a := AuthorizationRecord{INS: ins, IDNat: ps}
	var since int64
	err := q.QueryRowContext(ctx, `SELECT state, since, attending FROM authorization WHERE ins = ? AND ps = ?`,
		ins, ps).Scan(&a.State, &since, &a.Attending)
	if errors.Is(err, sql.ErrNoRows) {
		_, err := getDMP(ctx, q, ins)
		return a, err
	}
	if err != nil {
		return a, wrap(err, "read authorization")
	}
	a.Since = fromUnixNano(since)
	return a, nil
}

func upsertAuthorization(ctx context.Context, q querier, ins, ps string, st AuthState, since time.Time, attending bool) error {
	_, err := q.ExecContext(ctx, `INSERT INTO authorization (ins, ps, state, since, attending) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (ins, ps) DO UPDATE SET state = excluded.state, since = excluded.since, attending = excluded.attending`,
		ins, ps, st, unixNano(since), attending)
	return wrap(err, "write authorization")
}

const documentColumns = `entry_uuid, logical_id, unique_id, ins, status, version, type_code, class_code,
	format_code, mime_type, title, confidentiality, author_id, author_profession, creation_time,
	submission_time, size, hash, repository_unique_id, content_path, metadata, submission_set_id, replaced_by`

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(dest ...any) error }

func scanDocument(r scanner) (*DocumentRecord, error) {
	var d DocumentRecord
	var conf string
	var created, submitted sql.NullInt64
	err := r.Scan(&d.EntryUUID, &d.LogicalID, &d.UniqueID, &d.INS, &d.Status, &d.Version, &d.TypeCode,
		&d.ClassCode, &d.FormatCode, &d.MimeType, &d.Title, &conf, &d.AuthorID, &d.AuthorProfession, &created,
		&submitted, &d.Size, &d.Hash, &d.RepositoryUniqueID, &d.ContentPath, &d.Metadata, &d.SubmissionSetID,
		&d.ReplacedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: document", ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "read document")
	}
	if err := json.Unmarshal([]byte(conf), &d.Confidentiality); err != nil {
		return nil, fmt.Errorf("dmptest: document %s: confidentiality: %w", d.EntryUUID, err)
	}
	if created.Valid {
		d.CreationTime = fromUnixNano(created.Int64)
	}
	if submitted.Valid {
		d.SubmissionTime = fromUnixNano(submitted.Int64)
	}
	return &d, nil
}

// getDocument reads the first document matching cond, a fixed SQL fragment
// with its parameters.
func getDocument(ctx context.Context, q querier, cond string, args ...any) (*DocumentRecord, error) {
	d, err := scanDocument(q.QueryRowContext(ctx, `SELECT `+documentColumns+` FROM document WHERE `+cond, args...))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w %v", err, args)
	}
	return d, err
}

// insertNewDocument fills a new document's defaults, checks that its ids
// are new and that its DMP exists, and inserts it.
func insertNewDocument(ctx context.Context, tx *sql.Tx, d *DocumentRecord) error {
	if d.EntryUUID == "" {
		d.EntryUUID = NewUUID()
	}
	if d.UniqueID == "" || d.INS == "" {
		return errors.New("dmptest: a document needs a uniqueId and an INS")
	}
	if d.LogicalID == "" {
		d.LogicalID = d.EntryUUID
	}
	d.Version = 1
	if d.Status == "" {
		d.Status = DocApproved
	}
	if d.SubmissionTime.IsZero() {
		d.SubmissionTime = time.Now()
	}
	if _, err := getDMP(ctx, tx, d.INS); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM document WHERE unique_id = ?`, d.UniqueID).Scan(&n); err != nil {
		return wrap(err, "check uniqueId")
	}
	if n > 0 {
		return fmt.Errorf("%w: %s", ErrDuplicateUniqueID, d.UniqueID)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM document WHERE entry_uuid = ? OR logical_id = ?`,
		d.EntryUUID, d.LogicalID).Scan(&n); err != nil {
		return wrap(err, "check entryUUID")
	}
	if n > 0 {
		return fmt.Errorf("%w: %s", ErrDuplicateEntry, d.EntryUUID)
	}
	return insertDocument(ctx, tx, d)
}

func insertDocument(ctx context.Context, q querier, d *DocumentRecord) error {
	conf, err := json.Marshal(d.Confidentiality)
	if err != nil {
		return fmt.Errorf("dmptest: confidentiality: %w", err)
	}
	if d.Confidentiality == nil {
		conf = []byte("[]")
	}
	_, err = q.ExecContext(ctx, `INSERT INTO document (`+documentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.EntryUUID, d.LogicalID, d.UniqueID, d.INS, d.Status, d.Version, d.TypeCode, d.ClassCode, d.FormatCode,
		d.MimeType, d.Title, string(conf), d.AuthorID, d.AuthorProfession, nullTime(d.CreationTime),
		nullTime(d.SubmissionTime), d.Size, d.Hash, d.RepositoryUniqueID, d.ContentPath, d.Metadata,
		d.SubmissionSetID, d.ReplacedBy)
	return wrap(err, "insert document "+d.UniqueID)
}

func insertHistory(ctx context.Context, q querier, h HistoryEntry) error {
	if h.Time.IsZero() {
		h.Time = time.Now()
	}
	_, err := q.ExecContext(ctx, `INSERT INTO history (at, ins, actor_id, actor_name, actor_profession, mode, reason,
		action, document_unique_id, allowed, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		unixNano(h.Time), h.INS, h.ActorID, h.ActorName, h.ActorProfession, string(h.Mode), h.Reason,
		string(h.Action), h.DocumentUniqueID, h.Allowed, h.Code)
	return wrap(err, "append history")
}

// affected turns "no row updated" into ErrNotFound.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return wrap(err, "update "+what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(err, "update "+what)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return nil
}

func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("dmptest: %s: %w", what, err)
}

// Times are stored as UTC Unix nanoseconds: they sort as numbers and come
// back exactly.
func unixNano(t time.Time) int64 { return t.UnixNano() }

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }

// nullTime stores the zero time as NULL so that it comes back zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// NewUUID returns a random (version 4) UUID as an XDS entryUUID:
// "urn:uuid:…".
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
