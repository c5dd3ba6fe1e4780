package agent

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the agent database

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/audit"
	"github.com/dmpagent/dmpagent/agent/consent"
	"github.com/dmpagent/dmpagent/agent/outbox"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/dmp"
)

// Options are what the command line adds to a Config.
type Options struct {
	Version string
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
	// Vitale reads Vitale cards; nil: cardreader.DirectVitale.
	Vitale cardreader.VitaleReader
}

// Agent is the running service: the card monitor, the professional session,
// the stores in the data directory and the two listeners (the loopback API
// and the admin socket).
type Agent struct {
	cfg     Config
	log     *slog.Logger
	version string
	now     func() time.Time
	started time.Time

	db       *sql.DB
	tokens   *tokenStore
	pairings *pairings
	idem     *idempotencyStore
	audit    *audit.Log
	consents *consent.Store
	outbox   *outbox.Outbox
	events   *broker

	roots         *x509.CertPool
	intermediates []*x509.Certificate

	monitor *cardreader.Monitor
	vitale  cardreader.VitaleReader
	cards   *cardState

	loginMu sync.Mutex // one login at a time
	sessMu  sync.Mutex // guards session
	session *session

	insMu   sync.Mutex
	insOIDs map[string]string // INS value → OID, as INSi gave it

	hosts     map[string]struct{}
	listeners []net.Listener
	control   net.Listener
	srv       *http.Server
	done      chan struct{}
}

// New opens the data directory and the listeners; Serve runs the agent.
// Opening the listeners here lets a caller learn the address (port 0 in
// tests) before serving, and makes a port conflict fail at once.
func New(ctx context.Context, cfg Config, opt Options) (a *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a = &Agent{cfg: cfg, log: opt.Logger, version: opt.Version, now: opt.Now, vitale: opt.Vitale, done: make(chan struct{}), insOIDs: map[string]string{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.vitale == nil {
		a.vitale = cardreader.DirectVitale{}
	}
	if a.version == "" {
		a.version = "devel"
	}
	a.started = a.now().UTC()
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if err := secureDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := a.loadPKI(); err != nil {
		return nil, err
	}
	if a.cfg.SourceID == "" {
		if a.cfg.SourceID, err = installationOID(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	// SQLite gives its -wal and -shm files the database file's mode:
	// creating it 0600 first keeps all three private.
	if err := createPrivate(filepath.Join(cfg.DataDir, "agent.db")); err != nil {
		return nil, err
	}
	if err := createPrivate(filepath.Join(cfg.DataDir, "outbox.db")); err != nil {
		return nil, err
	}
	a.db, err = sql.Open("sqlite", filepath.Join(cfg.DataDir, "agent.db")+
		"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	if a.tokens, err = openTokenStore(ctx, a.db, a.now); err != nil {
		return nil, err
	}
	if a.idem, err = openIdempotency(ctx, a.db, a.now); err != nil {
		return nil, err
	}
	a.pairings = newPairings(a.now)
	a.events = newBroker(a.now)
	if a.audit, err = audit.Open(filepath.Join(cfg.DataDir, "audit.log"), audit.Options{Logger: a.log, Now: a.now}); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if a.consents, err = consent.NewStore(filepath.Join(cfg.DataDir, "consents")); err != nil {
		return nil, fmt.Errorf("consent receipts: %w", err)
	}
	if a.outbox, err = outbox.Open(filepath.Join(cfg.DataDir, "outbox.db"), filepath.Join(cfg.DataDir, "outbox"),
		outbox.Options{MaxSize: cfg.MaxDocumentSize, Now: a.now, Logger: a.log, OnUpdate: a.submissionUpdated}); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	a.cards = newCardState()
	a.monitor = cardreader.NewMonitor(cardreader.MonitorConfig{Log: a.log})
	if err := a.listen(); err != nil {
		return nil, err
	}
	return a, nil
}

// installationOID is this installation's submitting-system OID, made once.
func installationOID(dir string) (string, error) {
	path := filepath.Join(dir, "source-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	oid := dmp.NewOID()
	if err := os.WriteFile(path, []byte(oid+"\n"), 0o600); err != nil {
		return "", err
	}
	return oid, nil
}

func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	return os.Chmod(path, 0o600)
}

// secureDir creates the data directory readable by the agent's user only,
// and tightens one that is not.
func secureDir(dir string) error {
	if dir == "" {
		return errors.New("no data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s is readable by others and cannot be restricted: %w", dir, err)
		}
	}
	return nil
}

func (a *Agent) loadPKI() error {
	if a.cfg.Roots != "" {
		certs, err := readPEMCertificates(a.cfg.Roots)
		if err != nil {
			return fmt.Errorf("roots: %w", err)
		}
		a.roots = x509.NewCertPool()
		for _, c := range certs {
			a.roots.AddCert(c)
		}
	}
	if a.cfg.Intermediates != "" {
		certs, err := readPEMCertificates(a.cfg.Intermediates)
		if err != nil {
			return fmt.Errorf("intermediates: %w", err)
		}
		a.intermediates = certs
	}
	return nil
}

func readPEMCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return out, nil
}

// listen opens the loopback API (IPv4 and, on the same port, IPv6 when the
// machine has it) and the admin socket.
func (a *Agent) listen() error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("API: %w (is another agent running?)", err)
	}
	a.listeners = append(a.listeners, ln)
	addr := ln.Addr().(*net.TCPAddr)
	if addr.IP.To4() != nil {
		if ln6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", addr.Port)); err == nil {
			a.listeners = append(a.listeners, ln6)
		}
	}
	a.hosts = hostsFor(addr)
	a.control, err = listenControl(a.cfg.controlSocket())
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}

// Addr is the API's address, e.g. 127.0.0.1:7711.
func (a *Agent) Addr() string { return a.listeners[0].Addr().String() }

// ControlSocket is the admin socket's path.
func (a *Agent) ControlSocket() string { return a.cfg.controlSocket() }

// Serve runs the agent until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests finish for a few seconds, ends the professional
// session (the card forgets the PIN) and closes the stores.
func (a *Agent) Serve(ctx context.Context) error {
	defer a.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.srv = &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(a.listeners)+1)
	serve := func(ln net.Listener, kind listenerKind) {
		defer wg.Done()
		srv := a.srv
		if kind == controlListener {
			srv = &http.Server{
				Handler: a.srv.Handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: a.srv.ErrorLog,
				BaseContext: a.srv.BaseContext,
				ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
					return context.WithValue(ctx, listenerKey, controlListener)
				},
			}
			go func() { <-ctx.Done(); srv.Close() }()
		}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}
	for _, ln := range a.listeners {
		wg.Add(1)
		go serve(ln, tcpListener)
	}
	wg.Add(1)
	go serve(a.control, controlListener)

	cardEvents := make(chan cardreader.Event, 16)
	wg.Add(3)
	go func() { defer wg.Done(); a.monitor.Run(ctx, cardEvents) }()
	go func() { defer wg.Done(); a.watchCards(ctx, cardEvents) }()
	go func() { defer wg.Done(); a.outbox.Run(ctx, a.deliver) }()

	a.log.Info("agent started", "version", a.version, "listen", a.Addr(), "admin_socket", a.cfg.controlSocket(),
		"dmp", a.cfg.DMPEndpoint, "data_dir", a.cfg.DataDir)
	if a.cfg.WireLog != "" {
		a.log.Warn("WIRE LOG ENABLED: every DMP message, with patients' data, is written to disk", "dir", a.cfg.WireLog)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	close(a.done) // ends the event streams, which Shutdown would wait for
	shut, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	a.srv.Shutdown(shut)
	cancel()
	a.endSession("agent stopping")
	wg.Wait()
	a.log.Info("agent stopped")
	return err
}

func (a *Agent) close() {
	for _, ln := range a.listeners {
		ln.Close()
	}
	if a.control != nil {
		a.control.Close()
		os.Remove(a.cfg.controlSocket())
	}
	a.cards.closeAll()
	if a.outbox != nil {
		a.outbox.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
}

// submissionUpdated publishes an outbox change.
func (a *Agent) submissionUpdated(s outbox.Submission) {
	sub := submissionAPI(s)
	a.events.publish(api.Event{Type: api.EventSubmissionUpdated, Submission: &sub})
}
