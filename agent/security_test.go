package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/testcards"
)

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code == "" {
		t.Fatalf("not the API error format: %s", body)
	}
	return eb.Error.Code
}

// TestSecurity holds DESIGN §4 on the real listener: Host, Origin, tokens,
// body limits, malformed bodies, the admin socket and the data directory.
func TestSecurity(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	port := s.agent.Addr()[strings.LastIndex(s.agent.Addr(), ":"):]

	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"DNS rebinding", "GET", "/v1/status", "", map[string]string{"Host": "evil.example" + port}, 403, api.CodeHostForbidden},
		{"rebinding on health too", "GET", "/v1/health", "", map[string]string{"Host": "evil.example" + port}, 403, api.CodeHostForbidden},
		{"rebinding on the page", "GET", "/", "", map[string]string{"Host": "evil.example" + port, "Authorization": "-"}, 403, api.CodeHostForbidden},
		{"foreign origin", "GET", "/v1/status", "", map[string]string{"Origin": "https://evil.example"}, 403, api.CodeOriginForbidden},
		{"foreign origin on the page's session", "POST", "/ui/api/session", `{"pin":"1234"}`, map[string]string{"Origin": "https://evil.example", "Authorization": "-"}, 403, api.CodeOriginForbidden},
		{"page session without origin", "POST", "/ui/api/session", `{"pin":"1234"}`, map[string]string{"Authorization": "-"}, 403, api.CodeOriginForbidden},
		{"no token", "GET", "/v1/status", "", map[string]string{"Authorization": "-"}, 401, api.CodeUnauthorized},
		{"wrong token", "GET", "/v1/status", "", map[string]string{"Authorization": "Bearer dmpa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 401, api.CodeUnauthorized},
		{"not bearer", "GET", "/v1/status", "", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401, api.CodeUnauthorized},
		{"app token on admin route", "GET", "/v1/audit", "", nil, 403, api.CodeAdminRequired},
		{"malformed JSON", "POST", "/v1/session", `{"pin":`, nil, 400, api.CodeMalformedJSON},
		{"unknown field", "POST", "/v1/session", `{"pin":"1234","remember":true}`, nil, 400, api.CodeMalformedJSON},
		{"two values", "POST", "/v1/session", `{"pin":"1"}{"pin":"2"}`, nil, 400, api.CodeMalformedJSON},
		{"empty body", "POST", "/v1/dmp", ``, nil, 400, api.CodeMalformedJSON},
		{"body over the limit", "POST", "/v1/dmp", `{"ins":"` + strings.Repeat("1", 70<<10) + `"}`, nil, 413, api.CodeBodyTooLarge},
		{"bad INS", "GET", "/v1/dmp/123", "", nil, 400, api.CodeInvalidField},
		{"INS with a wrong key", "GET", "/v1/dmp/207058575627098", "", nil, 400, api.CodeInvalidField},
		{"unknown route", "GET", "/v1/nope", "", nil, 404, api.CodeNotFound},
		{"wrong method", "PUT", "/v1/status", "", nil, 405, api.CodeMethodNotAllowed},
		{"no session", "GET", "/v1/dmp/207058575627097", "", nil, 401, api.CodeSessionRequired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := s.raw(c.method, c.path, strings.NewReader(c.body), c.hdr)
			if status != c.status || errorCode(t, body) != c.code {
				t.Fatalf("got %d %s, want %d %s", status, body, c.status, c.code)
			}
		})
	}

	t.Run("health needs no token and says nothing", func(t *testing.T) {
		status, body, _ := s.raw("GET", "/v1/health", nil, map[string]string{"Authorization": "-"})
		if status != 200 || !bytes.Contains(body, []byte(`"ok"`)) || bytes.Contains(body, []byte("reader")) {
			t.Fatalf("%d %s", status, body)
		}
	})

	t.Run("revoked token", func(t *testing.T) {
		tok, err := s.admin.CreateToken(ctx, api.TokenRequest{App: "Éphémère"})
		if err != nil {
			t.Fatal(err)
		}
		c := s.client(tok.Secret)
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.admin.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(ctx); apiCode(err) != api.CodeUnauthorized {
			t.Fatalf("revoked token: %v", err)
		}
	})

	t.Run("registered origin gets CORS, others do not", func(t *testing.T) {
		tok, err := s.admin.CreateToken(ctx, api.TokenRequest{App: "Web LPS", Origin: "https://lps.example"})
		if err != nil {
			t.Fatal(err)
		}
		status, _, h := s.raw("OPTIONS", "/v1/status", nil, map[string]string{"Origin": "https://lps.example",
			"Access-Control-Request-Method": "GET", "Authorization": "-"})
		if status != 204 || h.Get("Access-Control-Allow-Origin") != "https://lps.example" {
			t.Fatalf("preflight %d %v", status, h)
		}
		status, _, _ = s.raw("OPTIONS", "/v1/status", nil, map[string]string{"Origin": "https://evil.example", "Authorization": "-"})
		if status != 403 {
			t.Fatalf("foreign preflight %d", status)
		}
		status, _, h = s.raw("GET", "/v1/status", nil, map[string]string{"Origin": "https://lps.example", "Authorization": "Bearer " + tok.Secret})
		if status != 200 || h.Get("Access-Control-Allow-Origin") != "https://lps.example" {
			t.Fatalf("CORS request %d %v", status, h)
		}
		// The app's own token from another origin is refused.
		status, _, _ = s.raw("GET", "/v1/status", nil, map[string]string{"Origin": "https://other.example", "Authorization": "Bearer " + tok.Secret})
		if status != 403 {
			t.Fatalf("token from another origin: %d", status)
		}
	})

	t.Run("pairing", func(t *testing.T) {
		anon := s.client("")
		p, err := anon.RequestPairing(ctx, "Logiciel appairé", "")
		if err != nil || p.ID == "" || len(p.Code) != 9 {
			t.Fatalf("pairing %+v, %v", p, err)
		}
		got, err := anon.PollPairing(ctx, p.ID)
		if err != nil || got.State != api.PairingPending || got.Token != "" {
			t.Fatalf("poll %+v, %v", got, err)
		}
		// An application token cannot approve itself.
		if _, err := s.app.ApprovePairing(ctx, p.Code, true); apiCode(err) != api.CodeAdminRequired {
			t.Fatalf("app approving: %v", err)
		}
		if _, err := s.admin.ApprovePairing(ctx, strings.ReplaceAll(p.Code, "-", ""), true); err != nil {
			t.Fatal(err)
		}
		got, err = anon.PollPairing(ctx, p.ID)
		if err != nil || got.State != api.PairingApproved || got.Token == "" {
			t.Fatalf("poll after approval %+v, %v", got, err)
		}
		if _, err := anon.PollPairing(ctx, p.ID); apiCode(err) != api.CodePairingNotFound {
			t.Fatalf("token handed out twice: %v", err)
		}
		if _, err := s.client(got.Token).Status(ctx); err != nil {
			t.Fatal(err)
		}
		// A web page can only pair its own origin.
		status, body, _ := s.raw("POST", "/v1/pairings", strings.NewReader(`{"app":"x","origin":"https://lps.example"}`),
			map[string]string{"Origin": "https://evil.example", "Authorization": "-"})
		if status != 403 {
			t.Fatalf("pairing another origin: %d %s", status, body)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "k1", "Content-Type": "application/json"}
		st1, b1, _ := s.raw("POST", "/v1/session", strings.NewReader(`{"pin":""}`), hdr)
		st2, b2, h2 := s.raw("POST", "/v1/session", strings.NewReader(`{"pin":""}`), hdr)
		// Errors are not remembered, so that a fixed request can reuse the key.
		if st1 != 400 || st2 != 400 || !bytes.Equal(b1, b2) || h2.Get("Idempotent-Replayed") != "" {
			t.Fatalf("%d %s / %d %s", st1, b1, st2, b2)
		}
		tokHdr := map[string]string{"Idempotency-Key": "k2"}
		_ = tokHdr
	})

	t.Run("data directory is private", func(t *testing.T) {
		err := filepath.WalkDir(s.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is %v", path, fi.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("admin socket refuses other users", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to connect as another user")
		}
		assertOtherUserRefused(t, s.agent.ControlSocket())
	})
}

// assertNoPIN checks that no log and no wire-log file holds the PIN in any
// of the forms it travels in.
func assertNoPIN(t *testing.T, s *stack) {
	t.Helper()
	forms := []string{`"pin":"` + testcards.PIN + `"`, "pin=" + testcards.PIN, "PIN " + testcards.PIN}
	for _, f := range forms {
		if strings.Contains(s.logs.String(), f) {
			t.Errorf("the agent log holds the PIN (%q)", f)
		}
	}
	filepath.WalkDir(s.cfg.WireLog, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, f := range forms {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("wire log %s holds the PIN", path)
			}
		}
		return nil
	})
}
