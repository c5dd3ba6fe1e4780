package dmptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

// ServicesPath is where the services live, as on the real host;
// INSiPath where the simulated INSi teleservice answers.
const (
	ServicesPath = "/si-dmp-server/v2/services/"
	INSiPath     = "/lps"
)

// Config configures a Server.
type Config struct {
	// Dir holds the state (dmp.db and the documents). Empty: a temporary
	// directory removed by Close.
	Dir string
	// Addr is the listen address; default 127.0.0.1:0 (a free port).
	Addr string
	// Certificate is the server's TLS certificate.
	Certificate tls.Certificate
	// Roots are the IGC-Santé roots that client certificates and VIHF
	// signing certificates must chain to; Intermediates helps build chains.
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// Matrix is the habilitation matrix file; empty: the embedded default.
	Matrix string
	// Validate checks every incoming message against the XML Schemas
	// (test mode; needs xmllint and the schema folder).
	Validate bool
	// MaxSkew is the clock tolerance on VIHF instants (default 5 min);
	// MaxVIHFAge how old an assertion may be (default 8 h, a working day).
	MaxSkew    time.Duration
	MaxVIHFAge time.Duration
	// WireLog, when set, is a directory receiving every request and answer
	// (document parts elided), for testers and vendors.
	WireLog string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Server is a running simulated DMP.
type Server struct {
	// URL is the services root to give a dmp.Client as BaseURL; INSiURL
	// its INSiURL.
	URL     string
	INSiURL string

	cfg      Config
	ln       net.Listener
	srv      *http.Server
	store    *Store
	rules    Rules
	docs     string // document files
	tempDir  string
	log      *slog.Logger
	routes   map[string]handler
	insi     *identities
	wire     *dmp.WireLog
	closeOne sync.Once
}

// NewServer starts a simulated DMP.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Roots == nil {
		return nil, errors.New("dmptest: no client roots")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.MaxVIHFAge == 0 {
		cfg.MaxVIHFAge = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Validate {
		if err := schemas.Available(); err != nil {
			return nil, fmt.Errorf("dmptest: schema validation: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "dmptest-")
		if err != nil {
			return nil, err
		}
		s.tempDir, cfg.Dir = d, d
		s.cfg.Dir = d
	}
	s.docs = filepath.Join(cfg.Dir, "documents")
	if err := os.MkdirAll(s.docs, 0o700); err != nil {
		return nil, err
	}
	matrix, err := LoadMatrix(cfg.Matrix)
	if err != nil {
		return nil, err
	}
	s.rules = Rules{Matrix: matrix}
	if s.store, err = OpenStore(filepath.Join(cfg.Dir, "dmp.db")); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	s.insi = newIdentities()
	if s.wire, err = dmp.NewWireLog(cfg.WireLog); err != nil {
		s.store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.store.Close()
		return nil, err
	}
	s.ln = ln
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate},
		// The certificate is checked by the handler, so that an expired or
		// foreign certificate gets a SOAP fault the client can read rather
		// than a bare handshake failure.
		ClientAuth: tls.RequireAnyClientCert,
		MinVersion: tls.VersionTLS12,
	}
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.URL = "https://" + ln.Addr().String() + strings.TrimSuffix(ServicesPath, "/")
	s.INSiURL = "https://" + ln.Addr().String() + INSiPath
	go s.srv.ServeTLS(ln, "", "")
	return s, nil
}

// Close stops the server and releases its state (removing it when it was
// temporary).
func (s *Server) Close() error {
	var err error
	s.closeOne.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		err = errors.Join(err, s.store.Close())
		if s.tempDir != "" {
			err = errors.Join(err, os.RemoveAll(s.tempDir))
		}
	})
	return err
}

// call is one decoded request.
type call struct {
	ctx      context.Context
	service  string
	addr     dmp.Addressing
	envelope []byte
	vihf     *dmp.VIHF
	mtom     *dmp.MTOMReader
	now      time.Time
}

// answer is what a handler returns: a body element and MTOM parts.
type answer struct {
	body   []byte
	parts  []dmp.Part
	mtom   bool // answer in MTOM even without parts (ITI-43)
	action string
}

type handler struct {
	service  string
	kind     string // schema kind of the request (dmp/internal/schemas)
	response string // response action
	fn       func(*call) (*answer, error)
}

// ServeHTTP implements the services endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service, ok := strings.CutPrefix(r.URL.Path, ServicesPath)
	if r.URL.Path == INSiPath {
		service, ok = "lps", true
	}
	if r.Method != http.MethodPost || !ok {
		http.Error(w, "not a DMP service", http.StatusNotFound)
		return
	}
	c := &call{ctx: r.Context(), service: service, now: s.cfg.Now()}
	ct := r.Header.Get("Content-Type")
	var err error
	body := http.MaxBytesReader(w, r.Body, 1<<40)
	if dmp.IsMTOM(ct) {
		if c.mtom, err = dmp.ReadMTOM(ct, body, dmp.MaxMessage); err == nil {
			c.envelope = c.mtom.Root
		}
	} else {
		c.envelope, err = io.ReadAll(io.LimitReader(body, dmp.MaxMessage+1))
		if err == nil && len(c.envelope) > dmp.MaxMessage {
			err = fmt.Errorf("%w: more than %d bytes", dmp.ErrTooLarge, dmp.MaxMessage)
		}
	}
	if err != nil {
		s.fault(w, c, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()})
		return
	}
	s.wire.Write(c.now, r.Header.Get("SOAPAction"), "request", c.envelope, nil)
	ans, err := s.serve(r, c)
	if err != nil {
		var f *dmp.Fault
		if !errors.As(err, &f) {
			s.log.Error("dmptest: internal error", "action", c.addr.Action, "err", err)
			f = &dmp.Fault{Code: dmp.CodeInternal, Message: "erreur interne du DMP simulé"}
		}
		s.fault(w, c, f)
		return
	}
	s.respond(w, c, ans)
}

// serve authenticates and dispatches one request.
func (s *Server) serve(r *http.Request, c *call) (*answer, error) {
	env, err := dmp.DecodeEnvelope[anyElement](c.envelope)
	if err != nil {
		var f *dmp.Fault
		if errors.As(err, &f) {
			return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "a request cannot be a fault"}
		}
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	c.addr = env.Addressing
	if c.addr.MessageID == "" || c.addr.To == "" || c.addr.ReplyTo == "" || c.addr.Action == "" {
		// Apache CXF's words, as the real service answers.
		return nil, &dmp.Fault{Code: CodeAddressingRequired, Message: "A required header representing a Message Addressing Property is not present"}
	}
	h, ok := s.routes[c.addr.Action]
	if !ok || h.service != c.service {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: fmt.Sprintf("action %q is not served on %q", c.addr.Action, c.service)}
	}
	if s.cfg.Validate && h.kind != "" {
		if err := s.validate(c, h.kind); err != nil {
			return nil, err
		}
	}
	if c.vihf, err = s.authenticate(r, c); err != nil {
		return nil, err
	}
	ans, err := h.fn(c)
	if err != nil {
		return nil, err
	}
	if ans.action == "" {
		ans.action = h.response
	}
	return ans, nil
}

// anyElement accepts whatever single element a body holds.
type anyElement struct {
	Inner []byte `xml:",innerxml"`
}

// CodeAddressingRequired is CXF's fault subcode for a missing WS-Addressing
// header.
const CodeAddressingRequired = "MessageAddressingHeaderRequired"

func (s *Server) respond(w http.ResponseWriter, c *call, a *answer) {
	addr := dmp.Addressing{MessageID: dmp.NewMessageID(), To: dmp.AnonymousAddress, Action: a.action, RelatesTo: c.addr.MessageID}
	env := dmp.BuildEnvelope(addr, nil, a.body)
	var ids []string
	for _, p := range a.parts {
		ids = append(ids, p.ContentID)
	}
	s.wire.Write(s.cfg.Now(), a.action, "response", env, ids)
	if len(a.parts) == 0 && !a.mtom {
		w.Header().Set("Content-Type", dmp.SOAPContentType(a.action))
		w.Write(env)
		return
	}
	boundary := "uuid:" + dmp.NewUUID()
	w.Header().Set("Content-Type", dmp.MTOMContentType(boundary, a.action))
	if err := dmp.WriteMTOM(w, boundary, env, a.parts); err != nil {
		s.log.Warn("dmptest: writing an MTOM answer", "err", err)
	}
	for _, p := range a.parts {
		if c, ok := p.Body.(io.Closer); ok {
			c.Close()
		}
	}
}

func (s *Server) fault(w http.ResponseWriter, c *call, f *dmp.Fault) {
	addr := dmp.Addressing{MessageID: dmp.NewMessageID(), To: dmp.AnonymousAddress, RelatesTo: c.addr.MessageID}
	if c.addr.Action != "" {
		addr.Action = c.addr.Action + ":Fault"
	}
	s.log.Info("dmptest: fault", "action", c.addr.Action, "code", f.Code)
	w.Header().Set("Content-Type", dmp.SOAPContentType(""))
	env := dmp.BuildFaultEnvelope(addr, f, f.Code == dmp.CodeInternal)
	s.wire.Write(s.cfg.Now(), addr.Action, "fault", env, nil)
	w.WriteHeader(http.StatusInternalServerError)
	w.Write(env)
}
