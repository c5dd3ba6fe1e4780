package agent_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/testcards"
)

// TestRoutes exercises the routes the story does not: withdrawal of an
// authorization, the attending physician, document visibility, archive and
// deletion, closing and reactivating, the doctor, token and pairing
// administration, the audit log, and the events stream.
func TestRoutes(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()

	// Events: subscribe before the cards go in.
	evctx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	events := make(chan api.Event, 64)
	go s.app.Events(evctx, 0, func(e api.Event) error { events <- e; return nil })
	time.Sleep(100 * time.Millisecond)

	s.insert(0, "cps", "gp")
	s.insert(1, "vitale", "family")
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, events, api.EventCardInserted, api.EventCardInserted, api.EventSessionOpened)

	v, err := s.app.Vitale(ctx)
	if err != nil || len(v.Beneficiaries) != 2 {
		t.Fatalf("family card %+v %v", v, err)
	}
	child := v.Beneficiaries[1]
	if child.INS == "" || !strings.EqualFold(child.GivenName, "LEO") || child.BirthDate != "2012-04-10" {
		t.Fatalf("child %+v", child)
	}
	ins := child.INS
	if _, err := s.app.CreateDMP(ctx, ins, fullConsent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.CreateDMP(ctx, ins, fullConsent); apiCode(err) != api.CodeDMPExists {
		t.Fatalf("second creation: %v", err)
	}
	// An INS that is not on the card present.
	if _, err := s.app.CreateDMP(ctx, insSingle, fullConsent); apiCode(err) != api.CodeVitaleMismatch {
		t.Fatalf("INS not on the card: %v", err)
	}
	if r, err := s.app.SetAttendingPhysician(ctx, ins); err != nil || r.Status != "attending_physician" {
		t.Fatalf("attending: %+v %v", r, err)
	}
	if d, err := s.app.DMP(ctx, ins); err != nil || !d.AttendingPhysician {
		t.Fatalf("dmp after attending: %+v %v", d, err)
	}

	doc := feed(t, s.app, ins, api.DocumentMetadata{Title: "Compte rendu", TypeCode: "11488-4", Format: "pdf",
		Confidentiality: &api.Confidentiality{InvisibleToPatient: true}}, pdf("x"))
	waitEvents(t, events, api.EventSubmissionUpdated)
	yes, no := true, false
	d, err := s.app.UpdateDocument(ctx, ins, doc, api.DocumentPatch{InvisibleToPatient: &no, MaskedFromProfessionals: &yes})
	if err != nil || d.Confidentiality.InvisibleToPatient || !d.Confidentiality.MaskedFromProfessionals {
		t.Fatalf("visibility: %+v %v", d, err)
	}
	if d, err = s.app.UpdateDocument(ctx, ins, doc, api.DocumentPatch{Status: api.DocumentArchived}); err != nil || d.Status != api.DocumentArchived {
		t.Fatalf("archive: %+v %v", d, err)
	}
	if docs, err := s.app.Documents(ctx, ins, client.DocumentQuery{}); err != nil || has(docs, doc) {
		t.Fatalf("archived document still listed by default: %v", err)
	}
	if docs, err := s.app.Documents(ctx, ins, client.DocumentQuery{Status: api.DocumentArchived}); err != nil || !has(docs, doc) {
		t.Fatalf("archived document not found: %v", err)
	}
	if d, err = s.app.UpdateDocument(ctx, ins, doc, api.DocumentPatch{Status: api.DocumentAvailable}); err != nil || d.Status != api.DocumentAvailable {
		t.Fatalf("unarchive: %+v %v", d, err)
	}
	if err := s.app.DeleteDocument(ctx, ins, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.UpdateDocument(ctx, ins, doc, api.DocumentPatch{MaskedFromProfessionals: &no}); apiCode(err) != api.CodeDocumentNotFound {
		t.Fatalf("deleted document: %v", err)
	}
	if _, _, err := s.app.Content(ctx, ins, "2.25.1", false); apiCode(err) != api.CodeDocumentNotFound {
		t.Fatalf("unknown document: %v", err)
	}
	// A feed that is not a PDF is refused before the outbox keeps it.
	if _, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "x", TypeCode: "11488-4", Format: "pdf"}, strings.NewReader("<html>")); apiCode(err) != api.CodeUnsupportedFormat {
		t.Fatalf("not a PDF: %v", err)
	}
	if _, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "x", TypeCode: "NOPE", Format: "pdf"}, strings.NewReader("%PDF-")); apiCode(err) != api.CodeInvalidField {
		t.Fatalf("unknown type: %v", err)
	}
	// Idempotent feed: the same key gives the same submission.
	key := client.WithIdempotencyKey("feed-1")
	s1, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "Idempotent", TypeCode: "11488-4", Format: "pdf"}, strings.NewReader("%PDF-1 a"), key)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "Idempotent", TypeCode: "11488-4", Format: "pdf"}, strings.NewReader("%PDF-1 a"), key)
	if err != nil || s2.ID != s1.ID {
		t.Fatalf("replayed feed: %+v %v (first %s)", s2, err, s1.ID)
	}
	if _, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "Other", TypeCode: "11488-4", Format: "pdf"}, strings.NewReader("%PDF-1 b"), key); apiCode(err) != api.CodeIdempotencyReused {
		t.Fatalf("key reused for another document: %v", err)
	}
	// The agent dies between the outbox's commit and the idempotency
	// record's: the key is still found, in the outbox.
	db, err := sql.Open("sqlite", filepath.Join(s.cfg.DataDir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM idempotency`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s3, err := s.app.Feed(ctx, ins, api.DocumentMetadata{Title: "Idempotent", TypeCode: "11488-4", Format: "pdf"}, strings.NewReader("%PDF-1 a"), key)
	if err != nil || s3.ID != s1.ID {
		t.Fatalf("resend after a lost idempotency record: %+v %v (first %s)", s3, err, s1.ID)
	}

	// Close and reopen (with the card), then withdraw the authorization.
	if r, err := s.app.CloseDMP(ctx, ins, "demande du patient"); err != nil || r.Status != api.DMPStatusClosed {
		t.Fatalf("close: %+v %v", r, err)
	}
	if _, err := s.app.Documents(ctx, ins, client.DocumentQuery{}); apiCode(err) != api.CodeDMPClosed && apiCode(err) != api.CodeDMPAccessDenied {
		t.Fatalf("closed DMP: %v", err)
	}
	if r, err := s.app.ReactivateDMP(ctx, ins, fullConsent); err != nil || r.Status != api.DMPStatusOpen {
		t.Fatalf("reactivate: %+v %v", r, err)
	}

	if r, err := s.app.Authorize(ctx, ins, false, api.Consent{}); err != nil || r.Status != "withdrawn" || r.ConsentReceiptID == "" {
		t.Fatalf("withdraw: %+v %v", r, err)
	}
	// Administration over the admin socket.
	var doc2 agent.Doctor
	if err := s.admin.Get(ctx, "/v1/doctor", &doc2); err != nil || len(doc2.Checks) < 5 {
		t.Fatalf("doctor %+v %v", doc2, err)
	}
	for _, c := range doc2.Checks {
		if !c.OK {
			t.Errorf("doctor: %s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
	}
	toks, err := s.admin.Tokens(ctx)
	if err != nil || len(toks) == 0 || toks[0].Secret != "" {
		t.Fatalf("tokens %+v %v", toks, err)
	}
	p, err := s.client("").RequestPairing(ctx, "À refuser", "")
	if err != nil {
		t.Fatal(err)
	}
	waitEvents(t, events, api.EventPairingRequested)
	if ps, err := s.admin.Pairings(ctx); err != nil || len(ps) != 1 || ps[0].Code != p.Code {
		t.Fatalf("pairings %+v %v", ps, err)
	}
	if r, err := s.admin.ApprovePairing(ctx, p.Code, false); err != nil || r.State != api.PairingDenied {
		t.Fatalf("deny %+v %v", r, err)
	}
	page, err := s.admin.Audit(ctx, 0, 5)
	if err != nil || len(page.Entries) != 5 || !page.More || page.Entries[0].Seq != 1 {
		t.Fatalf("audit %+v %v", page, err)
	}

	// Pulling the CPS ends the session; reinsertion needs a new login.
	s.remove(0)
	waitEvents(t, events, api.EventCardRemoved, api.EventSessionClosed)
	if _, err := s.app.DMP(ctx, ins); apiCode(err) != api.CodeSessionRequired {
		t.Fatalf("after pulling the CPS: %v", err)
	}
	s.insert(0, "cps", "gp")
	if st, _ := s.app.Status(ctx); st.Session != nil {
		t.Fatal("a reinserted card reopened the session by itself")
	}
	if err := s.app.Logout(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitEvents waits for events of these types, in this order (others may
// come between).
func waitEvents(t *testing.T, events <-chan api.Event, types ...string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for _, want := range types {
		for {
			select {
			case e := <-events:
				if e.Type == want {
					goto next
				}
			case <-timeout:
				t.Fatalf("no %s event", want)
			}
		}
	next:
	}
}

// TestDMPUnreachable: a dead DMP, a silent one, and a proxy.
func TestDMPUnreachable(t *testing.T) {
	ctx := context.Background()
	// A port that accepts connections and never answers: the deadline.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	s := newStack(t, func(c *agent.Config) {
		c.DMPEndpoint = "https://" + silent.Addr().String() + "/si-dmp-server/v2/services"
		c.DMPTimeout = 2 * time.Second
	})
	s.insert(0, "cps", "gp")
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.app.DMP(ctx, insSingle)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 504 && e.Status != 503 {
		t.Fatalf("silent DMP: %v", err)
	}
	t.Logf("silent DMP: %v after %s", err, time.Since(start).Round(time.Millisecond))

	// A closed port: unreachable at once, with a clear error.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	s.restartWith(func(c *agent.Config) { c.DMPEndpoint = "https://" + addr + "/si-dmp-server/v2/services" })
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.DMP(ctx, insSingle); apiCode(err) != api.CodeDMPUnreachable {
		t.Fatalf("closed port: %v", err)
	}

	// Through a proxy: the configured one, then HTTPS_PROXY.
	proxy := startConnectProxy(t)
	s.restartWith(func(c *agent.Config) { c.DMPEndpoint = s.dmp.URL; c.Proxy = "http://" + proxy.addr })
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	if d, err := s.app.DMP(ctx, insSingle); err != nil || d.Exists {
		t.Fatalf("through the proxy: %+v %v", d, err)
	}
	if proxy.count() == 0 {
		t.Fatal("the configured proxy was not used")
	}
}

// restartWith stops the agent, changes its configuration and starts it
// again on the same data directory.
func (s *stack) restartWith(change func(*agent.Config)) {
	s.t.Helper()
	s.stopAgent()
	change(&s.cfg)
	s.start()
}

// connectProxy is a minimal HTTP CONNECT proxy, as a practice's network
// has: it relays bytes and counts tunnels.
type connectProxy struct {
	addr string
	mu   sync.Mutex
	n    int
}

func (p *connectProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func startConnectProxy(t *testing.T) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &connectProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil || req.Method != http.MethodConnect {
					io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				p.mu.Lock()
				p.n++
				p.mu.Unlock()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return p
}
