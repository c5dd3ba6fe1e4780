package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dmpagent/dmpagent/agent/api"
)

// tokenPrefix marks the agent's bearer tokens, so that a leaked one is
// recognisable by secret scanners.
const tokenPrefix = "dmpa_"

// appToken is one paired application. Only the SHA-256 of its secret is
// kept: the secret has 256 bits of entropy, so a plain hash is as good as
// a password hash and costs nothing per request.
type appToken struct {
	ID       string
	App      string
	Origin   string
	Admin    bool
	Hash     [32]byte
	Created  time.Time
	LastUsed time.Time
	Revoked  time.Time
}

func (t *appToken) api() api.Token {
	out := api.Token{ID: t.ID, App: t.App, Origin: t.Origin, Admin: t.Admin, Created: t.Created.UTC()}
	if !t.LastUsed.IsZero() {
		lu := t.LastUsed.UTC()
		out.LastUsed = &lu
	}
	if !t.Revoked.IsZero() {
		rv := t.Revoked.UTC()
		out.Revoked = &rv
	}
	return out
}

// tokenStore keeps the tokens in the agent database and a copy in memory:
// every API request checks one, and a map lookup keeps that off the disk.
type tokenStore struct {
	db  *sql.DB
	now func() time.Time

	mu     sync.RWMutex
	byHash map[[32]byte]*appToken
	byID   map[string]*appToken
}

const tokensSchema = `CREATE TABLE IF NOT EXISTS tokens (
	id TEXT PRIMARY KEY,
	app TEXT NOT NULL,
	origin TEXT NOT NULL DEFAULT '',
	admin INTEGER NOT NULL DEFAULT 0,
	hash BLOB NOT NULL UNIQUE,
	created INTEGER NOT NULL,
	last_used INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
)`

func openTokenStore(ctx context.Context, db *sql.DB, now func() time.Time) (*tokenStore, error) {
	if _, err := db.ExecContext(ctx, tokensSchema); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	s := &tokenStore{db: db, now: now, byHash: map[[32]byte]*appToken{}, byID: map[string]*appToken{}}
	rows, err := db.QueryContext(ctx, `SELECT id, app, origin, admin, hash, created, last_used, revoked FROM tokens`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t appToken
		var hash []byte
		var created, lastUsed, revoked int64
		if err := rows.Scan(&t.ID, &t.App, &t.Origin, &t.Admin, &hash, &created, &lastUsed, &revoked); err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		if len(hash) != 32 {
			return nil, fmt.Errorf("tokens: token %s has a malformed hash", t.ID)
		}
		copy(t.Hash[:], hash)
		t.Created = unixTime(created)
		t.LastUsed = unixTime(lastUsed)
		t.Revoked = unixTime(revoked)
		s.byHash[t.Hash] = &t
		s.byID[t.ID] = &t
	}
	return s, rows.Err()
}

func unixTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// validateApp checks an application name and origin as given by an admin
// or a pairing request.
func validateApp(app, origin string) (string, error) {
	app = strings.TrimSpace(app)
	if app == "" || len(app) > 100 || !utf8.ValidString(app) || strings.ContainsFunc(app, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", api.FieldError("app", "app must be a printable name of 1 to 100 bytes")
	}
	if origin == "" {
		return "", nil
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", api.FieldError("origin", "origin must be a scheme and host such as https://lps.example, without path")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// create makes a token and returns its secret, which is never stored.
func (s *tokenStore) create(ctx context.Context, app, origin string, admin bool) (*appToken, string, error) {
	origin, err := validateApp(app, origin)
	if err != nil {
		return nil, "", err
	}
	app = strings.TrimSpace(app)
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	idb := make([]byte, 8)
	rand.Read(idb)
	t := &appToken{ID: "tok_" + hex.EncodeToString(idb), App: app, Origin: origin, Admin: admin,
		Hash: sha256.Sum256([]byte(secret)), Created: s.now().UTC().Truncate(time.Millisecond)}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, app, origin, admin, hash, created) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.App, t.Origin, t.Admin, t.Hash[:], unixMilli(t.Created)); err != nil {
		return nil, "", fmt.Errorf("tokens: %w", err)
	}
	s.mu.Lock()
	s.byHash[t.Hash] = t
	s.byID[t.ID] = t
	s.mu.Unlock()
	return t, secret, nil
}

// lookup returns the live token whose secret this is.
func (s *tokenStore) lookup(secret string) (*appToken, bool) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 100 {
		return nil, false
	}
	h := sha256.Sum256([]byte(secret))
	s.mu.RLock()
	t, ok := s.byHash[h]
	var stale bool
	if ok {
		stale = s.now().Sub(t.LastUsed) > time.Minute
	}
	s.mu.RUnlock()
	if !ok || !t.Revoked.IsZero() {
		return nil, false
	}
	if stale {
		// last_used is for the admin's eyes; minute precision spares the
		// database a write per request.
		s.mu.Lock()
		t.LastUsed = s.now().UTC().Truncate(time.Millisecond)
		lu := t.LastUsed
		s.mu.Unlock()
		s.db.Exec(`UPDATE tokens SET last_used = ? WHERE id = ?`, unixMilli(lu), t.ID)
	}
	return t, true
}

var errTokenNotFound = errors.New("no such token")

// revoke revokes a token by id or by application name; it returns what it
// revoked.
func (s *tokenStore) revoke(ctx context.Context, idOrApp string) ([]*appToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hit []*appToken
	for _, t := range s.byID {
		if (t.ID == idOrApp || t.App == idOrApp) && t.Revoked.IsZero() {
			hit = append(hit, t)
		}
	}
	if len(hit) == 0 {
		return nil, errTokenNotFound
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	for _, t := range hit {
		if _, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE id = ?`, unixMilli(now), t.ID); err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		t.Revoked = now
	}
	return hit, nil
}

func (s *tokenStore) list() []api.Token {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.Token, 0, len(s.byID))
	for _, t := range s.byID {
		out = append(out, t.api())
	}
	sortTokens(out)
	return out
}

func sortTokens(ts []api.Token) {
	slices.SortFunc(ts, func(a, b api.Token) int { return a.Created.Compare(b.Created) })
}

// originAllowed says whether some live token registered this browser
// origin: CORS preflights carry no token, so they are answered for any
// registered origin, and the real request is then checked against its own
// token's origin.
func (s *tokenStore) originAllowed(origin string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.byID {
		if t.Origin != "" && t.Origin == origin && t.Revoked.IsZero() {
			return true
		}
	}
	return false
}
