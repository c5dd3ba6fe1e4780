package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// Idempotency-Key: a mutating request sent again with the same key by the
// same caller gets the first answer again instead of acting twice (a
// practice software that lost the answer to a timeout may resend). The key
// is bound to the request's method, route and body hash: the same key with
// another request is an error, not a replay. Answers are kept a day.
const (
	idempotencyTTL  = 24 * time.Hour
	maxKeyLen       = 255
	maxStoredAnswer = 64 << 10
)

type idempotencyStore struct {
	db  *sql.DB
	now func() time.Time
}

const idempotencySchema = `CREATE TABLE IF NOT EXISTS idempotency (
	caller TEXT NOT NULL,
	key TEXT NOT NULL,
	request BLOB NOT NULL,
	status INTEGER NOT NULL DEFAULT 0,
	content_type TEXT NOT NULL DEFAULT '',
	body BLOB,
	created INTEGER NOT NULL,
	PRIMARY KEY (caller, key)
)`

func openIdempotency(ctx context.Context, db *sql.DB, now func() time.Time) (*idempotencyStore, error) {
	if _, err := db.ExecContext(ctx, idempotencySchema); err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	s := &idempotencyStore{db: db, now: now}
	// Entries of a previous run still in progress died with it: their
	// request may be sent again.
	if _, err := db.ExecContext(ctx, `DELETE FROM idempotency WHERE status = 0 OR created < ?`,
		now().Add(-idempotencyTTL).UnixMilli()); err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	return s, nil
}

// idempotent runs the route under the request's Idempotency-Key, if any.
func (a *Agent) idempotent(w *statusRecorder, r *http.Request, c *caller, rt route) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return rt.h(w, r, c)
	}
	if len(key) > maxKeyLen {
		return &api.Error{Status: 400, Code: api.CodeBadRequest, Message: "Idempotency-Key is longer than 255 bytes"}
	}
	// The request's identity is its method, path and body; the body is
	// hashed as the handler reads it.
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	prefix := h.Sum(nil)
	ctx := r.Context()
	var stored []byte
	var status int
	var ctype string
	var body []byte
	err := a.idem.db.QueryRowContext(ctx, `SELECT request, status, content_type, body FROM idempotency WHERE caller = ? AND key = ?`,
		c.name(), key).Scan(&stored, &status, &ctype, &body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case status == 0:
		return &api.Error{Status: 409, Code: api.CodeIdempotencyPending, Message: "a request with this Idempotency-Key is still in progress"}
	default:
		// Replay: the body must be the same request's.
		bd := newBodyDigest(prefix, r.Header.Get("Content-Type"))
		if _, err := io.Copy(bd, r.Body); err != nil {
			return jsonError(err)
		}
		if !bytes.Equal(bd.Sum(), stored) {
			return &api.Error{Status: 422, Code: api.CodeIdempotencyReused, Message: "this Idempotency-Key was used for another request"}
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(status)
		w.Write(body)
		return nil
	}
	if _, err := a.idem.db.ExecContext(ctx, `INSERT INTO idempotency (caller, key, request, created) VALUES (?, ?, ?, ?)`,
		c.name(), key, prefix, a.now().UnixMilli()); err != nil {
		return &api.Error{Status: 409, Code: api.CodeIdempotencyPending, Message: "a request with this Idempotency-Key is in progress"}
	}
	bd := newBodyDigest(prefix, r.Header.Get("Content-Type"))
	r.Body = &hashingBody{ReadCloser: r.Body, h: bd}
	capture := &captureWriter{statusRecorder: w}
	herr := rt.h(capture, r, c)
	// Drain what the handler left, so that the hash covers the body.
	io.Copy(io.Discard, r.Body)
	digest := bd.Sum()
	done := context.WithoutCancel(ctx)
	if herr != nil {
		// Errors are not remembered: the caller may fix and retry with
		// the same key.
		a.idem.db.ExecContext(done, `DELETE FROM idempotency WHERE caller = ? AND key = ?`, c.name(), key)
		return herr
	}
	if capture.status >= 500 || capture.overflow {
		a.idem.db.ExecContext(done, `DELETE FROM idempotency WHERE caller = ? AND key = ?`, c.name(), key)
		return nil
	}
	a.idem.db.ExecContext(done, `UPDATE idempotency SET request = ?, status = ?, content_type = ?, body = ? WHERE caller = ? AND key = ?`,
		digest, capture.status, capture.Header().Get("Content-Type"), capture.buf.Bytes(), c.name(), key)
	return nil
}

type hashingBody struct {
	io.ReadCloser
	h io.Writer
}

func (b *hashingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	return n, err
}

// captureWriter keeps a copy of a small answer for replay.
type captureWriter struct {
	*statusRecorder
	buf      bytes.Buffer
	overflow bool
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.buf.Len()+len(b) <= maxStoredAnswer {
		c.buf.Write(b)
	} else {
		c.overflow = true
	}
	return c.statusRecorder.Write(b)
}

// bodyDigest hashes a request body for idempotency. A multipart body is
// hashed by its parts (names and contents), not its bytes: a client
// resending the same document draws a new random boundary.
type bodyDigest struct {
	h    hash.Hash
	pw   *io.PipeWriter
	done chan struct{}
}

func newBodyDigest(prefix []byte, contentType string) *bodyDigest {
	d := &bodyDigest{h: sha256.New()}
	d.h.Write(prefix)
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return d
	}
	pr, pw := io.Pipe()
	d.pw, d.done = pw, make(chan struct{})
	go func() {
		defer close(d.done)
		defer io.Copy(io.Discard, pr) // never leave the writer blocked
		mr := multipart.NewReader(pr, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fmt.Fprintf(d.h, "\x00malformed:%v", err)
				}
				return
			}
			fmt.Fprintf(d.h, "\x00part:%q\x00", part.FormName())
			io.Copy(d.h, part)
		}
	}()
	return d
}

func (d *bodyDigest) Write(b []byte) (int, error) {
	if d.pw != nil {
		return d.pw.Write(b)
	}
	return d.h.Write(b)
}

// Sum ends the body and returns its digest.
func (d *bodyDigest) Sum() []byte {
	if d.pw != nil {
		d.pw.Close()
		<-d.done
		d.pw = nil
	}
	return d.h.Sum(nil)
}
