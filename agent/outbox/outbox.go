// Package outbox keeps the documents the agent has accepted until the DMP
// has them. A submission is written to disk before the practice software
// gets its 202, and delivered by one loop, with retries and backoff, across
// restarts and crashes.
//
// Crash safety: Enqueue writes the content to a temporary file, syncs it,
// renames it to <id>.bin, syncs the directory, and only then commits the
// row; a crash before the commit leaves an orphan file that Open deletes, a
// committed row always has its file. A row is marked `sending` (committed)
// before delivery starts; Open puts rows left in `sending` back in the
// queue. So a delivery may be repeated after a crash, never lost: exactly
// once in the DMP is the deliver function's part, by sending the same
// uniqueIds again (the agent fixes them at enqueue, in the payload), which
// the DMP recognises as a duplicate.
package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"
)

// State is where a submission stands.
type State string

// States.
const (
	Queued    State = "queued"
	Sending   State = "sending"
	Submitted State = "submitted"
	Failed    State = "failed"
)

// Submission is one document on its way.
type Submission struct {
	ID          string
	Owner       string // the author's national id: only their session delivers it
	Patient     string
	Payload     []byte // the caller's data: metadata, stable uniqueIds
	State       State
	Attempts    int
	NextAttempt time.Time
	LastError   string // last transient error, while queued
	Reason      string // why it failed, or why it waits
	Result      string // e.g. the DMP's document id, once submitted
	Created     time.Time
	Updated     time.Time
	Size        int64
}

// Errors.
var (
	ErrNotFound = errors.New("outbox: no such submission")
	ErrTooLarge = errors.New("outbox: content larger than allowed")
	ErrNotReady = errors.New("outbox: not ready to deliver")
)

// PermanentError is a refusal that retrying will not change.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as final: the submission fails with it.
func Permanent(err error) error { return &PermanentError{Err: err} }

type notReadyError struct{ reason string }

func (e *notReadyError) Error() string { return e.reason }
func (e *notReadyError) Unwrap() error { return ErrNotReady }

// NotReady says delivery cannot happen now (no session of the owner): the
// submission waits, without counting an attempt, until Kick.
func NotReady(reason string) error { return &notReadyError{reason: reason} }

// Options tune an Outbox.
type Options struct {
	MaxSize  int64            // bytes of one content; default 64 MiB
	Now      func() time.Time // default time.Now
	Backoff  func(attempt int) time.Duration
	OnUpdate func(Submission) // after each change, outside locks
	Logger   *slog.Logger
}

// DefaultBackoff doubles from 2 s to a 5 min ceiling, ±20 % jitter so that
// agents recovering from the same outage do not retry in step.
func DefaultBackoff(attempt int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

// Outbox is the store and its delivery loop.
type Outbox struct {
	db   *sql.DB
	dir  string
	opt  Options
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	waiting map[string]bool // owners whose deliveries wait for Kick

	// depth counts queued and sending submissions in memory: the agent's
	// status shows it on every call, which must not queue on SQLite.
	depth atomic.Int64
}

const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS submission (
	id TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	patient TEXT NOT NULL,
	payload BLOB NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	result TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	size INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	key TEXT
);
CREATE INDEX IF NOT EXISTS submission_due ON submission (state, next_attempt, seq);
CREATE UNIQUE INDEX IF NOT EXISTS submission_key ON submission (key) WHERE key IS NOT NULL;
`

// Open opens the outbox: the database at dbPath, contents in dir.
func Open(dbPath, dir string, opt Options) (*Outbox, error) {
	if opt.MaxSize <= 0 {
		opt.MaxSize = 64 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dbPath+"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	o := &Outbox{db: db, dir: dir, opt: opt, log: log, kick: make(chan struct{}, 1), waiting: map[string]bool{}}
	if err := o.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox %s: %w", dbPath, err)
	}
	os.Chmod(dbPath, 0o600)
	return o, nil
}

func (o *Outbox) init() error {
	if _, err := o.db.Exec(schema); err != nil {
		return err
	}
	var v int
	err := o.db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := o.db.Exec(`INSERT INTO meta (key, value) VALUES ('schema', ?)`, schemaVersion); err != nil {
			return err
		}
	case err != nil:
		return err
	case v > schemaVersion:
		return fmt.Errorf("written by a newer agent (schema %d, this one knows %d): upgrade the agent", v, schemaVersion)
	}
	res, err := o.db.Exec(`UPDATE submission SET state = ?, updated = ? WHERE state = ?`, Queued, o.opt.Now().UnixMilli(), Sending)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		o.log.Warn("outbox: deliveries interrupted by a stop are queued again", "count", n)
	}
	var n int64
	if err := o.db.QueryRow(`SELECT COUNT(*) FROM submission WHERE state = ?`, Queued).Scan(&n); err != nil {
		return err
	}
	o.depth.Store(n)
	return o.removeOrphans()
}

// removeOrphans deletes temporary files and contents no row points to.
func (o *Outbox) removeOrphans() error {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		id, isBin := strings.CutSuffix(name, ".bin")
		if isBin {
			var one int
			err := o.db.QueryRow(`SELECT 1 FROM submission WHERE id = ? AND state != ?`, id, Submitted).Scan(&one)
			if err == nil {
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		os.Remove(filepath.Join(o.dir, name))
	}
	return nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "sub_" + strings.ToLower(idEncoding.EncodeToString(b))[:26]
}

func (o *Outbox) path(id string) string { return filepath.Join(o.dir, id+".bin") }

// Enqueue stores a submission; when it returns, the submission survives a
// crash.
func (o *Outbox) Enqueue(ctx context.Context, owner, patient string, payload []byte, content io.Reader) (Submission, error) {
	s, _, err := o.EnqueueKey(ctx, "", owner, patient, payload, content)
	return s, err
}

// EnqueueKey is Enqueue under a caller's idempotency key: a submission
// already stored under key is returned (existing true) and content is not
// read. The key is kept with the row, in the same transaction, so that a
// request resent after a crash finds its submission whatever else was
// lost.
func (o *Outbox) EnqueueKey(ctx context.Context, key, owner, patient string, payload []byte, content io.Reader) (s Submission, existing bool, err error) {
	if key != "" {
		if s, err := o.byKey(ctx, key); err == nil {
			return s, true, nil
		} else if !errors.Is(err, ErrNotFound) {
			return Submission{}, false, err
		}
	}
	s, err = o.enqueue(ctx, key, owner, patient, payload, content)
	if err != nil && key != "" && strings.Contains(err.Error(), "UNIQUE") {
		// The same key raced in: the other request's row wins.
		if s, err := o.byKey(ctx, key); err == nil {
			return s, true, nil
		}
	}
	return s, false, err
}

func (o *Outbox) byKey(ctx context.Context, key string) (Submission, error) {
	return scanSubmission(o.db.QueryRowContext(ctx, `SELECT `+columns+` FROM submission WHERE key = ?`, key))
}

func (o *Outbox) enqueue(ctx context.Context, key, owner, patient string, payload []byte, content io.Reader) (Submission, error) {
	if payload == nil {
		payload = []byte{}
	}
	var dbKey any
	if key != "" {
		dbKey = key
	}
	id := newID()
	tmp, err := os.CreateTemp(o.dir, "tmp-*")
	if err != nil {
		return Submission{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, io.LimitReader(content, o.opt.MaxSize+1))
	if err == nil && n > o.opt.MaxSize {
		err = ErrTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Submission{}, err
	}
	if err := os.Rename(tmp.Name(), o.path(id)); err != nil {
		return Submission{}, err
	}
	syncDir(o.dir)
	now := o.opt.Now().UTC()
	s := Submission{ID: id, Owner: owner, Patient: patient, Payload: payload, State: Queued, Created: now, Updated: now, Size: n}
	_, err = o.db.ExecContext(ctx, `INSERT INTO submission (id, owner, patient, payload, state, created, updated, size, seq, key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM submission), ?)`,
		id, owner, patient, payload, Queued, now.UnixMilli(), now.UnixMilli(), n, dbKey)
	if err != nil {
		os.Remove(o.path(id))
		return Submission{}, err
	}
	o.depth.Add(1)
	o.notify(s)
	return s, nil
}

// syncDir makes a rename durable (not possible, nor needed, on Windows).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

const columns = `id, owner, patient, payload, state, attempts, next_attempt, last_error, reason, result, created, updated, size`

func scanSubmission(row interface{ Scan(...any) error }) (Submission, error) {
	var s Submission
	var next, created, updated int64
	err := row.Scan(&s.ID, &s.Owner, &s.Patient, &s.Payload, &s.State, &s.Attempts, &next, &s.LastError, &s.Reason, &s.Result,
		&created, &updated, &s.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	if next > 0 {
		s.NextAttempt = time.UnixMilli(next).UTC()
	}
	s.Created, s.Updated = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return s, err
}

// Get returns a submission.
func (o *Outbox) Get(ctx context.Context, id string) (Submission, error) {
	return scanSubmission(o.db.QueryRowContext(ctx, `SELECT `+columns+` FROM submission WHERE id = ?`, id))
}

// ListOptions filter List.
type ListOptions struct {
	State State
	Owner string
	Limit int
}

// List returns submissions, newest first.
func (o *Outbox) List(ctx context.Context, lo ListOptions) ([]Submission, error) {
	q := `SELECT ` + columns + ` FROM submission WHERE (? = '' OR state = ?) AND (? = '' OR owner = ?) ORDER BY seq DESC`
	args := []any{lo.State, lo.State, lo.Owner, lo.Owner}
	if lo.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, lo.Limit)
	}
	rows, err := o.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Submission
	for rows.Next() {
		s, err := scanSubmission(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Depth counts the submissions not yet delivered nor failed.
func (o *Outbox) Depth(ctx context.Context) (int, error) {
	return int(o.depth.Load()), nil
}

// Open opens a submission's content; it may be called more than once.
func (o *Outbox) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	f, err := os.Open(o.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Retry puts a failed submission back in the queue.
func (o *Outbox) Retry(ctx context.Context, id string) error {
	res, err := o.db.ExecContext(ctx, `UPDATE submission SET state = ?, attempts = 0, next_attempt = 0, reason = '', updated = ? WHERE id = ? AND state = ?`,
		Queued, o.opt.Now().UnixMilli(), id, Failed)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	o.depth.Add(1)
	o.Kick()
	if s, err := o.Get(ctx, id); err == nil {
		o.notify(s)
	}
	return nil
}

// Kick wakes the delivery loop and lets waiting owners try again.
func (o *Outbox) Kick() {
	o.mu.Lock()
	clear(o.waiting)
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Close closes the database.
func (o *Outbox) Close() error { return o.db.Close() }

func (o *Outbox) notify(s Submission) {
	if o.opt.OnUpdate != nil {
		o.opt.OnUpdate(s)
	}
}

// DeliverFunc delivers one submission and returns its result.
type DeliverFunc func(ctx context.Context, s Submission) (result string, err error)

// Run delivers submissions one at a time, oldest due first, until ctx
// ends. Between deliveries it sleeps until the earliest retry or a Kick.
func (o *Outbox) Run(ctx context.Context, deliver DeliverFunc) error {
	for {
		s, wait, err := o.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o.log.Error("outbox: reading the queue", "err", err)
			wait = 5 * time.Second
		}
		if s == nil {
			var timer <-chan time.Time
			var t *time.Timer
			if wait > 0 {
				t = time.NewTimer(wait)
				timer = t.C
			}
			select {
			case <-ctx.Done():
			case <-o.kick:
			case <-timer:
			}
			if t != nil {
				t.Stop()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		o.deliverOne(ctx, *s, deliver)
	}
}

// next returns the next due submission, or how long until one is due (0:
// nothing scheduled).
func (o *Outbox) next(ctx context.Context) (*Submission, time.Duration, error) {
	o.mu.Lock()
	skip := make([]string, 0, len(o.waiting))
	for owner := range o.waiting {
		skip = append(skip, owner)
	}
	o.mu.Unlock()
	now := o.opt.Now().UnixMilli()
	rows, err := o.db.QueryContext(ctx, `SELECT `+columns+` FROM submission WHERE state = ? ORDER BY next_attempt > ?, seq`, Queued, now)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var earliest int64
	for rows.Next() {
		s, err := scanSubmission(rows)
		if err != nil {
			return nil, 0, err
		}
		if contains(skip, s.Owner) {
			continue
		}
		if at := s.NextAttempt.UnixMilli(); !s.NextAttempt.IsZero() && at > now {
			if earliest == 0 || at < earliest {
				earliest = at
			}
			continue
		}
		return &s, 0, nil
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if earliest == 0 {
		return nil, 0, nil
	}
	return nil, time.Duration(earliest-now) * time.Millisecond, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (o *Outbox) deliverOne(ctx context.Context, s Submission, deliver DeliverFunc) {
	if err := o.set(ctx, &s, Sending, func() {}); err != nil {
		o.log.Error("outbox: marking a submission sending", "err", err)
		return
	}
	result, err := deliver(ctx, s)
	done := context.WithoutCancel(ctx)
	var perm *PermanentError
	switch {
	case err == nil:
		o.set(done, &s, Submitted, func() { s.Result, s.LastError, s.Reason = result, "", "" })
		os.Remove(o.path(s.ID)) // delivered: the agent keeps no health data it no longer needs
	case ctx.Err() != nil:
		o.set(done, &s, Queued, func() {})
	case errors.As(err, &perm):
		o.set(done, &s, Failed, func() { s.Reason = err.Error() })
	case errors.Is(err, ErrNotReady):
		o.mu.Lock()
		o.waiting[s.Owner] = true
		o.mu.Unlock()
		o.set(done, &s, Queued, func() { s.Reason = err.Error() })
	default:
		o.set(done, &s, Queued, func() {
			s.Attempts++
			s.LastError = err.Error()
			s.NextAttempt = o.opt.Now().Add(o.opt.Backoff(s.Attempts)).UTC()
		})
		o.log.Info("outbox: delivery failed, will retry", "submission", s.ID, "attempt", s.Attempts, "err", err)
	}
}

// set changes a submission's state (and what change() sets) and commits.
func (o *Outbox) set(ctx context.Context, s *Submission, st State, change func()) error {
	s.State = st
	change()
	s.Updated = o.opt.Now().UTC()
	var next int64
	if !s.NextAttempt.IsZero() {
		next = s.NextAttempt.UnixMilli()
	}
	_, err := o.db.ExecContext(ctx, `UPDATE submission SET state = ?, attempts = ?, next_attempt = ?, last_error = ?, reason = ?, result = ?, updated = ? WHERE id = ?`,
		s.State, s.Attempts, next, s.LastError, s.Reason, s.Result, s.Updated.UnixMilli(), s.ID)
	if err == nil {
		if st == Submitted || st == Failed {
			o.depth.Add(-1)
		}
		o.notify(*s)
	}
	return err
}
