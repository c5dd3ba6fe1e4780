package agent_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
	"github.com/dmpagent/dmpagent/pkcs11"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// stack is the real thing end to end: pcscd with vpcd and the emulated
// cards, OpenSC's PKCS#11 module, the simulated DMP over mutual TLS, and
// the agent serving its API on a loopback port and its admin socket.
type stack struct {
	t     *testing.T
	pki   *pki.PKI
	dmp   *dmptest.Server
	cfg   agent.Config
	agent *agent.Agent
	admin *client.Client // the admin socket
	app   *client.Client // an application's token
	token string
	logs  *syncBuffer
	spec  *specChecker // checks every API answer against the OpenAPI document
	stop  func()
	slots map[int]*vpcd.Slot
}

// syncBuffer collects the agent's log, for the PIN-in-logs checks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type stackOption func(*agent.Config)

// newBareAgent runs an agent with no DMP, cards or token, for what every
// agent serves alike; it returns its address.
func newBareAgent(t *testing.T) string {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "agent")
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, cfg, agent.Options{Version: "test"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a.Addr()
}

func newStack(t *testing.T, opts ...stackOption) *stack {
	t.Helper()
	cardtest.Lock(t)
	p := cardtest.PKI(t)
	module := pkcs11.OpenSCModulePath()
	if module == "" {
		if os.Getenv(cardtest.RequireEnv) == "1" {
			t.Fatal("opensc-pkcs11.so missing (make test installs opensc-pkcs11)")
		}
		t.Skip("opensc-pkcs11.so missing")
	}
	s := &stack{t: t, pki: p, logs: &syncBuffer{}, slots: map[int]*vpcd.Slot{}}
	s.startDMP(t.TempDir())
	cfg := agent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "agent")
	cfg.DMPEndpoint, cfg.INSiEndpoint = s.dmp.URL, s.dmp.INSiURL
	cfg.INSOID = dmp.OIDINSNIRTest
	cfg.Roots, cfg.Intermediates = p.RootFile(), p.IntermediatesFile()
	cfg.PKCS11Module = module
	cfg.TestMode = true
	cfg.SoftwareID, cfg.Homologation = "dmpagent-test", "SIMULATION"
	cfg.DMPTimeout = 20 * time.Second
	cfg.WireLog = filepath.Join(t.TempDir(), "wire")
	cfg.LogLevel = "debug"
	cfg.Professionals = map[string]agent.Situation{}
	for _, pro := range persona.Professionals() {
		cfg.Professionals[pro.IDNat] = agent.Situation{Profession: pro.ProfessionCode, Specialty: pro.Specialty,
			StructureID: pro.StructureID, StructureName: pro.StructureName, Sector: pro.Sector}
	}
	for _, o := range opts {
		o(&cfg)
	}
	s.cfg = cfg
	s.start()
	t.Cleanup(func() { s.stopAgent() })
	var err error
	tok, err := s.admin.CreateToken(context.Background(), api.TokenRequest{App: "Logiciel de test"})
	if err != nil {
		t.Fatal(err)
	}
	s.token = tok.Secret
	s.app = s.client(s.token)
	stackRan.Store(true)
	return s
}

func (s *stack) startDMP(dir string) {
	cert, err := s.pki.Server()
	if err != nil {
		s.t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(s.pki.PersonCA)
	d, err := dmptest.NewServer(dmptest.Config{Dir: dir, Addr: "127.0.0.1:0", Certificate: cert, Roots: s.pki.RootPool(),
		Intermediates: inter, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		s.t.Fatal(err)
	}
	s.dmp = d
	s.t.Cleanup(func() { d.Close() })
}

// start runs the agent on s.cfg (again, after stopAgent: same data).
func (s *stack) start() {
	s.t.Helper()
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, s.cfg, agent.Options{Version: "test", Logger: log})
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	s.agent = a
	s.cfg.Listen = a.Addr() // a restart keeps the port, as a real one would
	if s.spec == nil {
		resp, err := http.Get("http://" + a.Addr() + "/v1/openapi.json")
		if err != nil {
			s.t.Fatal(err)
		}
		doc, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			coverage.Store("GET /v1/openapi.json", true)
		}
		s.spec = newSpecChecker(s.t, doc)
	}
	s.admin = client.NewControl(a.ControlSocket()).WithTransport(s.spec.AdminTransport)
	if s.token != "" {
		s.app = s.client(s.token)
	}
	s.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				s.t.Errorf("agent stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			s.t.Error("agent did not stop within 20 s")
		}
	}
	// Wait until the monitor has seen vpcd's readers.
	s.eventually("the agent sees the readers", func() bool {
		rs, err := s.app0().Readers(context.Background())
		return err == nil && len(rs) >= 2
	})
}

// client is a client of the agent with this token, its answers checked
// against the OpenAPI document.
func (s *stack) client(token string) *client.Client {
	return client.New(s.agent.Addr(), token).WithTransport(s.spec.Transport)
}

func (s *stack) app0() *client.Client {
	if s.app != nil {
		return s.app
	}
	return s.admin
}

func (s *stack) stopAgent() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *stack) eventually(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// insert puts a persona's card in reader n and waits for the agent to
// know it.
func (s *stack) insert(n int, kind, name string) {
	s.t.Helper()
	var card vpcd.Card
	var err error
	want := api.CardCPS
	if kind == "vitale" {
		card, err = testcards.NewVitale(name)
		want = api.CardVitale
	} else {
		card, err = testcards.NewCPS(s.pki, name)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.slots[n] = cardtest.Insert(s.t, n, card, vpcd.Faults{})
	s.eventually(fmt.Sprintf("%s card in reader %d", kind, n), func() bool {
		rs, err := s.app0().Readers(context.Background())
		return err == nil && len(rs) > n && rs[n].Card != nil && rs[n].Card.Type == want
	})
}

func (s *stack) remove(n int) {
	s.t.Helper()
	cardtest.Remove(s.t, s.slots[n], n)
	delete(s.slots, n)
	s.eventually(fmt.Sprintf("reader %d empty", n), func() bool {
		rs, err := s.app0().Readers(context.Background())
		return err == nil && len(rs) > n && rs[n].Card == nil
	})
}

// login inserts a professional's card (replacing any) and opens a session.
func (s *stack) login(name string) {
	s.t.Helper()
	if _, ok := s.slots[0]; ok {
		s.remove(0)
	}
	s.insert(0, "cps", name)
	if _, err := s.app.Login(context.Background(), testcards.PIN); err != nil {
		s.t.Fatalf("login as %s: %v", name, err)
	}
}

// pdf is a small valid-looking PDF carrying text.
func pdf(text string) []byte {
	return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% " + text + "\n%%EOF\n")
}

// apiCode is the API error code of err, or "".
func apiCode(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// raw sends a request with the app token (or none) and returns status and
// body, for the tests that look at exact answers.
func (s *stack) raw(method, path string, body io.Reader, hdr map[string]string) (int, []byte, http.Header) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.agent.Addr()+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if _, ok := hdr["Authorization"]; !ok {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if hdr["Authorization"] == "-" {
		req.Header.Del("Authorization")
	}
	// Deliberately wrong requests: only the answers are held to the
	// OpenAPI document.
	resp, err := (&http.Client{Transport: s.spec.AdminTransport(http.DefaultTransport)}).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}
