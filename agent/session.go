package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
)

// session is the professional session: the CPS logged in, a DMP client
// whose mutual TLS uses the card's authentication key and whose VIHF and
// submission sets are signed with its signature key.
//
// The signature key asks for the PIN at every signature (PKCS#11
// CKA_ALWAYS_AUTHENTICATE, PIV's PIN-always slot), so the signer keeps the
// PIN in memory for the session's life, and nowhere else: it is never
// written, logged or retried, and it goes with the session when the card
// is pulled or the professional logs out.
type session struct {
	id       string
	reader   string
	token    pkcs11.Token
	identity cardreader.Identity
	pro      dmp.Professional
	client   *dmp.Client
	opened   time.Time
	signer   crypto.Signer
	chain    []*x509.Certificate // signature certificate, then intermediates
	http     *http.Client        // mutual TLS to the DMP, for the clock check

	mu        sync.Mutex
	emergency map[string]dmp.Actor // by INS value: the access mode chosen
}

func (s *session) api() *api.Session {
	return &api.Session{IDNat: s.identity.IDNat, Surname: s.identity.Surname, GivenName: s.identity.GivenName,
		Reader: s.reader, Opened: s.opened}
}

// actor is who acts on patient ins: normal access, or the emergency mode
// the professional chose for this patient in this session.
func (s *session) actor(ins string) dmp.Actor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.emergency[ins]; ok {
		return a
	}
	return dmp.Actor{Professional: s.pro}
}

func (a *Agent) currentSession() *session {
	a.sessMu.Lock()
	defer a.sessMu.Unlock()
	return a.session
}

// requireSession is the open session, or the error that says to log in.
func (a *Agent) requireSession() (*session, error) {
	if s := a.currentSession(); s != nil {
		return s, nil
	}
	return nil, &api.Error{Status: 401, Code: api.CodeSessionRequired,
		Message: "no professional session: insert the CPS and log in with its PIN (POST /v1/session or the agent's page)"}
}

// professionCodes maps the certificate's title to TRE_G15 codes, for
// professionals the configuration does not describe.
var professionCodes = map[string]string{
	"médecin": "10", "medecin": "10", "pharmacien": "21", "chirurgien-dentiste": "40",
	"sage-femme": "50", "infirmier": "60", "infirmière": "60", "masseur-kinésithérapeute": "70",
	"pédicure-podologue": "80", "orthophoniste": "91", "orthoptiste": "92",
}

// situation is the professional's activity: the configuration's section
// for this idNat, else the workstation's structure, with the profession
// taken from the certificate's title when not configured.
func (a *Agent) situation(id cardreader.Identity) Situation {
	sit := a.cfg.Structure
	if p, ok := a.cfg.Professionals[id.IDNat]; ok {
		for _, kv := range []struct {
			dst *string
			v   string
		}{{&sit.Profession, p.Profession}, {&sit.Specialty, p.Specialty},
			{&sit.StructureID, p.StructureID}, {&sit.StructureName, p.StructureName}, {&sit.Sector, p.Sector}} {
			if kv.v != "" {
				*kv.dst = kv.v
			}
		}
	}
	if sit.Profession == "" {
		sit.Profession = professionCodes[strings.ToLower(strings.TrimSpace(id.Profession))]
	}
	return sit
}

func (a *Agent) professional(id cardreader.Identity) dmp.Professional {
	sit := a.situation(id)
	return dmp.Professional{IDNat: id.IDNat, Surname: id.Surname, GivenName: id.GivenName,
		Profession: sit.Profession, ProfessionLabel: id.Profession, Specialty: sit.Specialty,
		StructureID: sit.StructureID, StructureName: sit.StructureName, Sector: sit.Sector}
}

func (a *Agent) postSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.SessionRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.PIN == "" {
		return api.FieldError("pin", "pin is required")
	}
	s, err := a.login(r.Context(), req.PIN)
	req.PIN = ""
	if err != nil {
		return err
	}
	return writeJSON(w, 201, s.api())
}

// login presents the PIN once. Nothing here retries it: a wrong PIN comes
// back to the person who typed it, with the tries left.
//
// Logins are serialised by loginMu, not sessMu: the card work takes a
// good part of a second, during which status calls must not wait.
func (a *Agent) login(ctx context.Context, pin string) (*session, error) {
	a.loginMu.Lock()
	defer a.loginMu.Unlock()
	if cur := a.currentSession(); cur != nil {
		return nil, &api.Error{Status: 409, Code: "session_open", Message: "a session is already open; log out first",
			Details: map[string]any{"id_nat": cur.identity.IDNat}}
	}
	reader, err := a.cpsReader()
	if err != nil {
		return nil, err
	}
	id, err := a.identity(ctx, reader)
	if err != nil {
		return nil, err
	}
	if err := id.Valid(a.now()); err != nil {
		return nil, &api.Error{Status: 409, Code: api.CodeCardError, Message: "the CPS certificate is not usable: " + err.Error()}
	}
	pro := a.professional(id)
	if err := pro.Valid(); err != nil {
		// Before the PIN: a configuration gap must not cost a try.
		return nil, &api.Error{Status: 409, Code: "situation_incomplete",
			Message: "the professional's activity is not fully configured (" + err.Error() + "): set it in a [professional " + id.IDNat + "] section of the agent configuration"}
	}
	tok, err := a.token(ctx, reader)
	if err != nil {
		return nil, err
	}
	if err := tok.Login(ctx, pin); err != nil {
		return nil, err
	}
	s, err := a.newSession(ctx, reader, tok, id, pro, pin)
	if err == nil {
		// The card may have been pulled while it was being logged in;
		// its removal found no session to end.
		if r, rerr := a.cpsReader(); rerr != nil || r != reader {
			err = pkcs11.ErrCardRemoved
		}
	}
	if err != nil {
		tok.Logout(context.WithoutCancel(ctx))
		return nil, err
	}
	a.sessMu.Lock()
	a.session = s
	a.sessMu.Unlock()
	a.log.Info("session opened", "professional", id, "reader", reader)
	a.events.publish(api.Event{Type: api.EventSessionOpened, Reader: reader, Session: s.api()})
	a.outbox.Kick()
	return s, nil
}

func (a *Agent) newSession(ctx context.Context, reader string, tok pkcs11.Token, id cardreader.Identity, pro dmp.Professional, pin string) (*session, error) {
	signer, err := tok.Signer(ctx, pkcs11.Signature, pin)
	if err != nil {
		return nil, err
	}
	sigCert, err := tok.Certificate(ctx, pkcs11.Signature)
	if err != nil {
		return nil, err
	}
	tlsCert, err := pkcs11.TLSCertificate(ctx, tok, a.intermediates)
	if err != nil {
		return nil, err
	}
	chain := append([]*x509.Certificate{sigCert}, a.intermediates...)
	hash := crypto.SHA256
	if a.cfg.SignatureHash == "sha1" {
		hash = crypto.SHA1
	}
	processing := "P"
	if a.cfg.TestMode {
		processing = "D"
	}
	hc := &http.Client{Transport: a.transport(pkcs11.ClientConfig(tlsCert, a.roots))}
	client, err := dmp.New(dmp.Config{
		BaseURL:        a.cfg.DMPEndpoint,
		INSiURL:        a.cfg.INSiEndpoint,
		HTTPClient:     hc,
		Signer:         signer,
		Certificates:   chain,
		Hash:           hash,
		Software:       dmp.Software{Name: a.cfg.SoftwareName, Version: a.softwareVersion(), ID: a.cfg.SoftwareID, Homologation: a.cfg.Homologation},
		SourceID:       a.cfg.SourceID,
		ProcessingCode: processing,
		Timeout:        a.cfg.DMPTimeout,
		WireLog:        a.cfg.WireLog,
		Logger:         a.log,
		Now:            a.now,
	})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	return &session{id: hex.EncodeToString(b), reader: reader, token: tok, identity: id, pro: pro, client: client,
		opened: a.now().UTC(), signer: signer, chain: chain, http: hc, emergency: map[string]dmp.Actor{}}, nil
}

func (a *Agent) softwareVersion() string {
	if a.cfg.SoftwareVersion != "" {
		return a.cfg.SoftwareVersion
	}
	return a.version
}

// transport is the HTTP transport to the DMP: mutual TLS, the proxy of the
// configuration or of HTTPS_PROXY/NO_PROXY, and bounded waits at each step
// so that a dead network fails in seconds, not minutes.
func (a *Agent) transport(tc *tls.Config) *http.Transport {
	// The environment is read per session, not once per process as
	// http.ProxyFromEnvironment does, so that a changed proxy setting
	// applies at the next login.
	envProxy := httpproxy.FromEnvironment().ProxyFunc()
	proxy := func(r *http.Request) (*url.URL, error) { return envProxy(r.URL) }
	if a.cfg.Proxy != "" {
		if u, err := url.Parse(a.cfg.Proxy); err == nil {
			proxy = http.ProxyURL(u)
		}
	}
	return &http.Transport{
		Proxy:                 proxy,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   20 * time.Second,
		ResponseHeaderTimeout: a.cfg.DMPTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     false,
	}
}

func (a *Agent) deleteSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	if a.currentSession() == nil {
		return writeJSON(w, 200, map[string]any{"closed": false})
	}
	a.endSession("logout")
	return writeJSON(w, 200, map[string]any{"closed": true})
}

// endSession closes the session, if any: the card is logged out (and
// reset, so that it forgets the PIN), the DMP connections are dropped.
func (a *Agent) endSession(why string) {
	a.sessMu.Lock()
	s := a.session
	a.session = nil
	a.sessMu.Unlock()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.token.Logout(ctx); err != nil && !errors.Is(err, pkcs11.ErrCardRemoved) {
		a.log.Warn("logout", "err", err)
	}
	s.http.CloseIdleConnections()
	a.log.Info("session closed", "professional", s.identity, "why", why)
	a.events.publish(api.Event{Type: api.EventSessionClosed, Reader: s.reader, Session: s.api(), Message: why})
}
