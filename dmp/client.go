package dmp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the services root, e.g.
	// https://lps2.dmp.gouv.fr/si-dmp-server/v2/services.
	BaseURL string
	// INSiURL is the INSi teleservice endpoint.
	INSiURL string
	// TLS is the mutual-TLS configuration: the CPS authentication
	// certificate (pkcs11.TLSCertificate) and the roots that sign the DMP.
	// Ignored when HTTPClient is set.
	TLS        *tls.Config
	HTTPClient *http.Client
	// Signer signs the VIHF and the submission sets: the CPS *signature*
	// key (the service refuses a VIHF signed with the authentication key).
	// Certificates is its chain, leaf first.
	Signer       crypto.Signer
	Certificates []*x509.Certificate
	// Hash is the signature digest: SHA-256 by default; crypto.SHA1 for a
	// service that still expects the RSA-SHA1 of the public examples.
	Hash     crypto.Hash
	Software Software
	// SourceID is the OID of the submitting system in XDS submission sets,
	// when Software.ID is not one.
	SourceID string
	// ProcessingCode is the HL7v3 processingCode: "P" production, "D" test.
	ProcessingCode string
	// VIHFLifetime is how long a signed VIHF is reused for the same actor,
	// patient and mode, sparing the card a signature per request. Zero
	// means DefaultVIHFLifetime; a negative value signs every request.
	VIHFLifetime time.Duration
	// Timeout bounds a call whose context has no deadline.
	Timeout time.Duration
	// WireLog, when set, is a directory receiving each message (documents
	// elided) for support.
	WireLog string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Defaults.
const (
	DefaultVIHFLifetime = 5 * time.Minute
	DefaultTimeout      = 2 * time.Minute
)

// Client calls the DMP web services. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	wire *WireLog
	log  *slog.Logger

	mu    sync.Mutex
	vihfs map[vihfKey]cachedVIHF
}

type vihfKey struct {
	idNat, structure, sector, profession, specialty string
	patient                                         string
	mode                                            AccessMode
	reason                                          string
}

type cachedVIHF struct {
	xml     []byte
	expires time.Time
}

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("dmp: no BaseURL")
	}
	if cfg.Signer == nil || len(cfg.Certificates) == 0 {
		return nil, errors.New("dmp: no signing key and certificate for the VIHF")
	}
	if cfg.Hash == 0 {
		cfg.Hash = crypto.SHA256
	}
	if cfg.Hash != crypto.SHA256 && cfg.Hash != crypto.SHA1 {
		return nil, fmt.Errorf("dmp: signature hash %v: only SHA-256 and SHA-1", cfg.Hash)
	}
	if cfg.SourceID == "" && !isOID(cfg.Software.ID) {
		return nil, errors.New("dmp: no submitting-system OID (Software.ID or SourceID)")
	}
	if cfg.ProcessingCode == "" {
		cfg.ProcessingCode = "P"
	}
	if cfg.VIHFLifetime == 0 {
		cfg.VIHFLifetime = DefaultVIHFLifetime
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, log: cfg.Logger, vihfs: map[vihfKey]cachedVIHF{}}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.http = cfg.HTTPClient
	if c.http == nil {
		if cfg.TLS == nil {
			return nil, errors.New("dmp: no TLS configuration (mutual TLS is mandatory)")
		}
		c.http = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     cfg.TLS,
			ForceAttemptHTTP2:   false, // the service speaks HTTP/1.1 over TLS 1.2
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 30 * time.Second,
		}}
	}
	var err error
	if c.wire, err = NewWireLog(cfg.WireLog); err != nil {
		return nil, err
	}
	return c, nil
}

// request is one SOAP call.
type request struct {
	service string // path under BaseURL, e.g. "patients"
	action  string
	actor   Actor
	patient *INS
	body    []byte // the Body child element
	parts   []Part // MTOM document parts; none for a plain SOAP call
	headers []byte // extra header elements (INSi contexts)
	url     string // overrides BaseURL/service (INSi)
}

// reply is a decoded HTTP answer: the SOAP envelope, and for an MTOM answer
// the reader of the parts after it. close releases the connection.
type reply struct {
	envelope []byte
	mtom     *MTOMReader
	body     io.ReadCloser
	cancel   context.CancelFunc
}

func (r *reply) close() {
	if r == nil {
		return
	}
	if r.body != nil {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.body, 64<<10))
		r.body.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
}

// TransportError is an HTTP answer that carries no SOAP message.
type TransportError struct {
	StatusCode int
	Status     string
}

func (e *TransportError) Error() string { return "dmp: HTTP " + e.Status + " without a SOAP message" }

// vihf returns a signed VIHF for the request, from the cache when a recent
// one fits.
func (c *Client) vihf(actor Actor, patient *INS) ([]byte, error) {
	k := vihfKey{actor.IDNat, actor.StructureID, actor.Sector, actor.Profession, actor.Specialty, "", actor.mode(), actor.Reason}
	if patient != nil {
		k.patient = patient.CX()
	}
	now := c.cfg.Now()
	if c.cfg.VIHFLifetime > 0 {
		c.mu.Lock()
		v, ok := c.vihfs[k]
		c.mu.Unlock()
		if ok && now.Before(v.expires) {
			return v.xml, nil
		}
	}
	x, err := BuildVIHF(actor, patient, c.cfg.Software, now, c.cfg.Signer, c.cfg.Certificates, c.cfg.Hash)
	if err != nil {
		return nil, err
	}
	if c.cfg.VIHFLifetime > 0 {
		c.mu.Lock()
		for key, v := range c.vihfs {
			if !now.Before(v.expires) {
				delete(c.vihfs, key)
			}
		}
		c.vihfs[k] = cachedVIHF{x, now.Add(c.cfg.VIHFLifetime)}
		c.mu.Unlock()
	}
	return x, nil
}

// do sends a request and returns the answer; the caller must close it.
// A SOAP fault comes back as a *Fault error.
func (c *Client) do(ctx context.Context, r request) (rep *reply, err error) {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
	}
	// A reply may stream after do returns: its close releases the timer.
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	security, err := c.vihf(r.actor, r.patient)
	if err != nil {
		return nil, err
	}
	url := r.url
	if url == "" {
		url = strings.TrimSuffix(c.cfg.BaseURL, "/") + "/" + r.service
	}
	a := Addressing{MessageID: NewMessageID(), To: url, Action: r.action, ReplyTo: AnonymousAddress}
	env := BuildEnvelope(a, security, r.body)
	if len(r.headers) > 0 {
		env = bytes.Replace(env, []byte(`<soap:Header>`), append([]byte(`<soap:Header>`), r.headers...), 1)
	}

	var body io.Reader = bytes.NewReader(env)
	contentType := SOAPContentType(r.action)
	var ids []string
	if len(r.parts) > 0 {
		boundary := "MIMEBoundary_" + strings.ReplaceAll(NewUUID(), "-", "")
		contentType = MTOMContentType(boundary, r.action)
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(WriteMTOM(pw, boundary, env, r.parts)) }()
		body = pr
		for _, p := range r.parts {
			ids = append(ids, p.ContentID)
		}
	}
	c.wire.Write(c.cfg.Now(), r.action, "request", env, ids)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("SOAPAction", `"`+r.action+`"`)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dmp: %s: %w", shortAction(r.action), err)
	}
	rep = &reply{body: resp.Body, cancel: cancel}
	defer func() {
		if err != nil {
			rep.close()
		}
	}()
	ct := resp.Header.Get("Content-Type")
	switch {
	case IsMTOM(ct):
		m, err := ReadMTOM(ct, resp.Body, MaxMessage)
		if err != nil {
			return nil, err
		}
		rep.mtom, rep.envelope = m, m.Root
	case strings.Contains(strings.ToLower(ct), "xml"):
		if rep.envelope, err = readLimited(resp.Body, MaxMessage); err != nil {
			return nil, err
		}
	default:
		return nil, &TransportError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	c.wire.Write(c.cfg.Now(), r.action, "response", rep.envelope, nil)
	// Surface a fault now; the body is decoded by the transaction.
	e, err := DecodeEnvelope[anyElement](rep.envelope)
	if err != nil {
		return nil, err
	}
	if e.Addressing.RelatesTo != "" && e.Addressing.RelatesTo != a.MessageID {
		return nil, fmt.Errorf("%w: answer relates to %s, not to %s", ErrMalformed, e.Addressing.RelatesTo, a.MessageID)
	}
	if resp.StatusCode >= 300 {
		return nil, &TransportError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	return rep, nil
}

// anyElement accepts whatever single element a body holds.
type anyElement struct {
	Inner []byte `xml:",innerxml"`
}
