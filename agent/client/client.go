// Package client is the typed Go client of the agent's localhost API. The
// dmpagent command line uses it for everything it asks a running agent,
// and practice software written in Go can import it too.
//
// A Client talks either to the loopback API with an application's bearer
// token, or to the admin socket, where the agent checks the caller's
// operating-system identity instead of a token.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// Client calls one agent.
type Client struct {
	base  string // http://127.0.0.1:7711
	token string
	http  *http.Client
}

// New returns a client of the API at addr (host:port) with an
// application's token.
func New(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{Transport: &http.Transport{
		Proxy:               nil, // never send loopback traffic to a proxy
		MaxIdleConnsPerHost: 16,
	}}}
}

// NewControl returns a client of the admin socket at path.
func NewControl(path string) *Client {
	return &Client{base: "http://control", http: &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// Error is an error answer of the agent; it is an *api.Error.
type Error = api.Error

// IsCode reports whether err is an agent error with this code.
func IsCode(err error, code string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Code == code
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent: decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful response, or the agent's
// error as *api.Error.
func (c *Client) send(ctx context.Context, method, path string, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnreachableError{Err: err}
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &eb) != nil || eb.Error == nil {
		return nil, &api.Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	eb.Error.Status = resp.StatusCode
	return nil, eb.Error
}

// UnreachableError says the agent did not answer at all.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string {
	return "the agent is not answering (is dmpagent running?): " + e.Err.Error()
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// CallOption adds a header to a mutating call.
type CallOption func(http.Header)

// WithIdempotencyKey makes a mutating call safe to resend.
func WithIdempotencyKey(key string) CallOption {
	return func(h http.Header) { h.Set("Idempotency-Key", key) }
}

func headers(opts []CallOption) http.Header {
	h := http.Header{}
	for _, o := range opts {
		o(h)
	}
	return h
}

func insPath(ins string) string { return "/v1/dmp/" + url.PathEscape(ins) }

// Health is GET /v1/health.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var out api.Health
	return out, c.do(ctx, "GET", "/v1/health", nil, nil, &out)
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var out api.Status
	return out, c.do(ctx, "GET", "/v1/status", nil, nil, &out)
}

// Readers is GET /v1/readers.
func (c *Client) Readers(ctx context.Context) ([]api.Reader, error) {
	var out api.Readers
	return out.Readers, c.do(ctx, "GET", "/v1/readers", nil, nil, &out)
}

// CPS is GET /v1/cps.
func (c *Client) CPS(ctx context.Context) (api.CPS, error) {
	var out api.CPS
	return out, c.do(ctx, "GET", "/v1/cps", nil, nil, &out)
}

// Login opens the professional session with the CPS PIN. A wrong PIN is
// an *api.Error with code pin_incorrect and details.tries_left.
func (c *Client) Login(ctx context.Context, pin string) (api.Session, error) {
	var out api.Session
	return out, c.do(ctx, "POST", "/v1/session", nil, jsonBody(api.SessionRequest{PIN: pin}), &out)
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, "DELETE", "/v1/session", nil, nil, nil)
}

// Vitale is GET /v1/vitale.
func (c *Client) Vitale(ctx context.Context) (api.Vitale, error) {
	var out api.Vitale
	return out, c.do(ctx, "GET", "/v1/vitale", nil, nil, &out)
}

// DMP is GET /v1/dmp/{ins}.
func (c *Client) DMP(ctx context.Context, ins string) (api.DMP, error) {
	var out api.DMP
	return out, c.do(ctx, "GET", insPath(ins), nil, nil, &out)
}

// CreateDMP is POST /v1/dmp.
func (c *Client) CreateDMP(ctx context.Context, ins string, consent api.Consent, opts ...CallOption) (api.DMPResult, error) {
	var out api.DMPResult
	return out, c.do(ctx, "POST", "/v1/dmp", headers(opts), jsonBody(api.CreateDMPRequest{INS: ins, Consent: &consent}), &out)
}

// Authorize records (add) or withdraws the patient's consent for the
// session's professional.
func (c *Client) Authorize(ctx context.Context, ins string, add bool, consent api.Consent, opts ...CallOption) (api.DMPResult, error) {
	method := "POST"
	if !add {
		method = "DELETE"
	}
	var out api.DMPResult
	return out, c.do(ctx, method, insPath(ins)+"/authorization", headers(opts), jsonBody(api.ConsentRequest{Consent: &consent}), &out)
}

// SetAttendingPhysician is PUT /v1/dmp/{ins}/attending-physician.
func (c *Client) SetAttendingPhysician(ctx context.Context, ins string, opts ...CallOption) (api.DMPResult, error) {
	var out api.DMPResult
	return out, c.do(ctx, "PUT", insPath(ins)+"/attending-physician", headers(opts), jsonBody(struct{}{}), &out)
}

// EmergencyAccess is POST /v1/dmp/{ins}/emergency-access.
func (c *Client) EmergencyAccess(ctx context.Context, ins string, req api.EmergencyRequest, opts ...CallOption) (api.EmergencyAccess, error) {
	var out api.EmergencyAccess
	return out, c.do(ctx, "POST", insPath(ins)+"/emergency-access", headers(opts), jsonBody(req), &out)
}

// CloseDMP is POST /v1/dmp/{ins}/close.
func (c *Client) CloseDMP(ctx context.Context, ins, reason string, opts ...CallOption) (api.DMPResult, error) {
	var out api.DMPResult
	return out, c.do(ctx, "POST", insPath(ins)+"/close", headers(opts), jsonBody(api.CloseRequest{Reason: reason}), &out)
}

// ReactivateDMP is POST /v1/dmp/{ins}/reactivate.
func (c *Client) ReactivateDMP(ctx context.Context, ins string, consent api.Consent, opts ...CallOption) (api.DMPResult, error) {
	var out api.DMPResult
	return out, c.do(ctx, "POST", insPath(ins)+"/reactivate", headers(opts), jsonBody(api.ConsentRequest{Consent: &consent}), &out)
}

// Feed sends a document to the outbox: it returns as soon as the agent
// holds it (202), and the submission's state tells the rest.
func (c *Client) Feed(ctx context.Context, ins string, md api.DocumentMetadata, content io.Reader, opts ...CallOption) (api.Submission, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			part, err := mw.CreateFormField("metadata")
			if err != nil {
				return err
			}
			if err := json.NewEncoder(part).Encode(md); err != nil {
				return err
			}
			part, err = mw.CreateFormFile("content", "document.pdf")
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, content); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	h := headers(opts)
	h.Set("Content-Type", mw.FormDataContentType())
	var out api.Submission
	err := c.do(ctx, "POST", insPath(ins)+"/documents", h, pr, &out)
	pr.Close()
	return out, err
}

// Submission is GET /v1/submissions/{id}.
func (c *Client) Submission(ctx context.Context, id string) (api.Submission, error) {
	var out api.Submission
	return out, c.do(ctx, "GET", "/v1/submissions/"+url.PathEscape(id), nil, nil, &out)
}

// WaitSubmission polls a submission until it is submitted or failed.
func (c *Client) WaitSubmission(ctx context.Context, id string, every time.Duration) (api.Submission, error) {
	for {
		s, err := c.Submission(ctx, id)
		if err != nil || s.Status == api.SubmissionSubmitted || s.Status == api.SubmissionFailed {
			return s, err
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(every):
		}
	}
}

// DocumentQuery filters a search.
type DocumentQuery struct {
	Status    string // available (default), archived, all
	TypeCodes []string
	From, To  time.Time
}

// Documents is GET /v1/dmp/{ins}/documents.
func (c *Client) Documents(ctx context.Context, ins string, q DocumentQuery) ([]api.Document, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	for _, t := range q.TypeCodes {
		v.Add("type_code", t)
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	path := insPath(ins) + "/documents"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out api.Documents
	return out.Documents, c.do(ctx, "GET", path, nil, nil, &out)
}

// Content streams a document's bytes, as the DMP stores it (a CDA
// document) or, with pdf, the PDF it carries; the caller closes it.
func (c *Client) Content(ctx context.Context, ins, id string, pdf bool) (io.ReadCloser, string, error) {
	path := insPath(ins) + "/documents/" + url.PathEscape(id) + "/content"
	if pdf {
		path += "?format=pdf"
	}
	resp, err := c.send(ctx, "GET", path, nil, nil)
	if err != nil {
		return nil, "", err
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}

// UpdateDocument is PATCH /v1/dmp/{ins}/documents/{id}.
func (c *Client) UpdateDocument(ctx context.Context, ins, id string, p api.DocumentPatch, opts ...CallOption) (api.Document, error) {
	var out api.Document
	return out, c.do(ctx, "PATCH", insPath(ins)+"/documents/"+url.PathEscape(id), headers(opts), jsonBody(p), &out)
}

// DeleteDocument is DELETE /v1/dmp/{ins}/documents/{id}.
func (c *Client) DeleteDocument(ctx context.Context, ins, id string, opts ...CallOption) error {
	return c.do(ctx, "DELETE", insPath(ins)+"/documents/"+url.PathEscape(id), headers(opts), nil, nil)
}

// Consent is GET /v1/consents/{id}: the signed receipt.
func (c *Client) Consent(ctx context.Context, id string) (api.ConsentReceipt, error) {
	var out api.ConsentReceipt
	return out, c.do(ctx, "GET", "/v1/consents/"+url.PathEscape(id), nil, nil, &out)
}

// RequestPairing is POST /v1/pairings.
func (c *Client) RequestPairing(ctx context.Context, app, origin string) (api.Pairing, error) {
	var out api.Pairing
	return out, c.do(ctx, "POST", "/v1/pairings", nil, jsonBody(api.PairingRequest{App: app, Origin: origin}), &out)
}

// PollPairing is GET /v1/pairings/{id}; the token comes once.
func (c *Client) PollPairing(ctx context.Context, id string) (api.Pairing, error) {
	var out api.Pairing
	return out, c.do(ctx, "GET", "/v1/pairings/"+url.PathEscape(id), nil, nil, &out)
}

// Pairings lists pending pairings (admin).
func (c *Client) Pairings(ctx context.Context) ([]api.Pairing, error) {
	var out api.Pairings
	return out.Pairings, c.do(ctx, "GET", "/v1/pairings", nil, nil, &out)
}

// ApprovePairing approves (or, with approve false, denies) a code (admin).
func (c *Client) ApprovePairing(ctx context.Context, code string, approve bool) (api.Pairing, error) {
	path := "/v1/pairings/approve"
	if !approve {
		path = "/v1/pairings/deny"
	}
	var out api.Pairing
	return out, c.do(ctx, "POST", path, nil, jsonBody(api.PairingDecision{Code: code}), &out)
}

// CreateToken is POST /v1/tokens (admin).
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.Token, error) {
	var out api.Token
	return out, c.do(ctx, "POST", "/v1/tokens", nil, jsonBody(req), &out)
}

// Tokens is GET /v1/tokens (admin).
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out api.Tokens
	return out.Tokens, c.do(ctx, "GET", "/v1/tokens", nil, nil, &out)
}

// RevokeToken revokes by token id or application name (admin).
func (c *Client) RevokeToken(ctx context.Context, idOrApp string) ([]api.Token, error) {
	var out api.Tokens
	return out.Tokens, c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(idOrApp), nil, nil, &out)
}

// Audit pages the audit log (admin): entries after seq `after`.
func (c *Client) Audit(ctx context.Context, after uint64, limit int) (api.Audit, error) {
	var out api.Audit
	return out, c.do(ctx, "GET", fmt.Sprintf("/v1/audit?after=%d&limit=%d", after, limit), nil, nil, &out)
}

// Events streams the agent's events until ctx ends or the stream breaks;
// fn is called for each. It does not reconnect: callers that want to
// should call it again with the last Seq they saw.
func (c *Client) Events(ctx context.Context, lastSeq uint64, fn func(api.Event) error) error {
	h := http.Header{"Accept": {"text/event-stream"}}
	if lastSeq > 0 {
		h.Set("Last-Event-ID", strconv.FormatUint(lastSeq, 10))
	}
	resp, err := c.send(ctx, "GET", "/v1/events", h, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				var e api.Event
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("agent: bad event: %w", err)
				}
				if err := fn(e); err != nil {
					return err
				}
			}
			data = data[:0]
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// Get fetches any JSON route into out, for routes without a method here.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, "GET", path, nil, nil, out)
}

// WithTransport returns a copy of c whose requests go through wrap(the
// current transport): for logging, metrics, or checking answers against
// the API description in tests.
func (c *Client) WithTransport(wrap func(http.RoundTripper) http.RoundTripper) *Client {
	cp := *c
	cp.http = &http.Client{Transport: wrap(c.http.Transport), Timeout: c.http.Timeout}
	return &cp
}
