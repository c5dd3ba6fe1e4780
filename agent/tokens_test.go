package agent

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

func testDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	s, err := openTokenStore(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := s.create(ctx, "Logiciel X", "HTTPS://LPS.Example", false)
	if err != nil || !strings.HasPrefix(secret, tokenPrefix) || tok.Origin != "https://lps.example" {
		t.Fatalf("%+v %q %v", tok, secret, err)
	}
	if got, ok := s.lookup(secret); !ok || got.ID != tok.ID {
		t.Fatal("lookup")
	}
	for _, bad := range []string{"", "dmpa_", secret + "x", strings.TrimPrefix(secret, tokenPrefix)} {
		if _, ok := s.lookup(bad); ok {
			t.Errorf("lookup(%q) succeeded", bad)
		}
	}
	// Only the hash is stored.
	var n int
	db.QueryRow(`SELECT COUNT(*) FROM tokens WHERE hash = ? OR id = ?`, secret, secret).Scan(&n)
	if n != 0 {
		t.Fatal("the secret is stored")
	}
	if !s.originAllowed("https://lps.example") || s.originAllowed("https://evil.example") {
		t.Fatal("origins")
	}
	// A restart keeps the tokens; a revocation holds across it.
	s2, err := openTokenStore(ctx, db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.lookup(secret); !ok {
		t.Fatal("token lost at restart")
	}
	if _, err := s2.revoke(ctx, "Logiciel X"); err != nil {
		t.Fatal(err)
	}
	s3, _ := openTokenStore(ctx, db, time.Now)
	if _, ok := s3.lookup(secret); ok {
		t.Fatal("revoked token accepted after restart")
	}
	if _, err := s3.revoke(ctx, "nope"); err != errTokenNotFound {
		t.Fatal(err)
	}
}

func TestValidateApp(t *testing.T) {
	for _, c := range []struct{ app, origin string }{
		{"", ""}, {strings.Repeat("x", 101), ""}, {"a\nb", ""}, {"ok", "ftp://x"}, {"ok", "https://x/path"}, {"ok", "https://u@x"}, {"ok", "x.example"},
	} {
		if _, err := validateApp(c.app, c.origin); err == nil {
			t.Errorf("validateApp(%q, %q) accepted", c.app, c.origin)
		}
	}
}

func TestPairing(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	p := newPairings(func() time.Time { return now })
	req, err := p.request("Logiciel", "")
	if err != nil || len(req.Code) != 9 || req.Code[4] != '-' {
		t.Fatalf("%+v %v", req, err)
	}
	minted := 0
	mint := func(app, origin string) (string, error) { minted++; return "dmpa_secret", nil }
	if _, err := p.decide("0000-0000", true, mint); err != errPairingNotFound {
		t.Fatalf("unknown code: %v", err)
	}
	got, err := p.decide(strings.ReplaceAll(req.Code, "-", " "), true, mint)
	if err != nil || got.State != api.PairingApproved || got.ID != "" || minted != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := p.decide(req.Code, true, mint); err == nil {
		t.Fatal("approved twice")
	}
	poll, _ := p.poll(req.ID)
	if poll.Token != "dmpa_secret" {
		t.Fatal("no token at first poll")
	}
	if _, err := p.poll(req.ID); err == nil {
		t.Fatal("token handed out twice")
	}
	// Expiry and the pending limit.
	late, _ := p.request("Tard", "")
	now = now.Add(pairingTTL + time.Second)
	if _, err := p.decide(late.Code, true, mint); err == nil {
		t.Fatal("expired request approved")
	}
	for i := range maxPendingPairing {
		if _, err := p.request("App", ""); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := p.request("One more", ""); err == nil {
		t.Fatal("no limit on pending requests")
	}
}
