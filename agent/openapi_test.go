package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
)

// specChecker validates every request to a /v1 route and its answer
// against the agent's OpenAPI document, with libopenapi-validator.
type specChecker struct {
	t     testing.TB
	v     validator.Validator
	paths []*regexp.Regexp
	names []string

	ops map[string]bool // "METHOD /template" documented

	mu   sync.Mutex
	seen map[string]int
}

func newSpecChecker(t testing.TB, doc []byte) *specChecker {
	t.Helper()
	// The document names 127.0.0.1:7711; the tests' agents listen on
	// other ports, which server matching would reject.
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "servers")
	doc, _ = json.Marshal(m)
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	c := &specChecker{t: t, v: v, seen: map[string]int{}, ops: map[string]bool{}}
	for p, item := range m["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			c.ops[strings.ToUpper(method)+" "+p] = true
		}
		c.names = append(c.names, p)
		c.paths = append(c.paths, regexp.MustCompile("^"+regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(p), "[^/]+")+"$"))
	}
	return c
}

func (c *specChecker) template(path string) string {
	best := ""
	for i, re := range c.paths {
		// A literal path beats a template (/v1/pairings/approve over
		// /v1/pairings/{id}).
		if re.MatchString(path) && (best == "" || strings.Count(c.names[i], "{") < strings.Count(best, "{")) {
			best = c.names[i]
		}
	}
	return best
}

type checkingTransport struct {
	c            *specChecker
	base         http.RoundTripper
	responseOnly bool
}

func (c *specChecker) Transport(base http.RoundTripper) http.RoundTripper {
	return &checkingTransport{c: c, base: base}
}

// AdminTransport checks answers only: the admin socket authenticates the
// caller by its operating-system identity, which OpenAPI cannot describe,
// so its requests carry no token.
func (c *specChecker) AdminTransport(base http.RoundTripper) http.RoundTripper {
	return &checkingTransport{c: c, base: base, responseOnly: true}
}

func (ct *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := req.URL.Path
	tpl := ct.c.template(path)
	stream := strings.HasSuffix(path, "/events") || strings.HasSuffix(path, "/content") || strings.HasSuffix(path, "/documents") && req.Method == "POST"
	if tpl == "" || !ct.c.ops[req.Method+" "+tpl] {
		// Not an operation of the document (a CORS preflight, a wrong
		// method): nothing to hold it to.
		return ct.base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && !stream {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := ct.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct.c.mu.Lock()
	ct.c.seen[req.Method+" "+tpl]++
	ct.c.mu.Unlock()
	if resp.StatusCode < 400 {
		coverage.Store(req.Method+" "+tpl, true)
	}
	if stream && resp.StatusCode < 300 {
		return resp, nil
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	check := req.Clone(req.Context())
	if reqBody != nil {
		check.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	checkResp := *resp
	checkResp.Body = io.NopCloser(bytes.NewReader(body))
	var ok bool
	var errs []*validatorError
	if stream || ct.responseOnly {
		good, verrs := ct.c.v.ValidateHttpResponse(check, &checkResp)
		ok, errs = good, convert(verrs)
	} else {
		good, verrs := ct.c.v.ValidateHttpRequestResponse(check, &checkResp)
		ok, errs = good, convert(verrs)
	}
	if !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.msg)
		}
		ct.c.t.Errorf("OpenAPI: %s %s → %d: %s\nbody: %.2000s", req.Method, path, resp.StatusCode, strings.Join(msgs, "; "), body)
	}
	return resp, nil
}

type validatorError struct{ msg string }

func convert(in []*verrors.ValidationError) []*validatorError {
	out := make([]*validatorError, len(in))
	for i, e := range in {
		msg := e.Message + ": " + e.Reason
		for _, f := range e.SchemaValidationErrors {
			msg += " [" + f.FieldPath + ": " + f.Reason + "]"
		}
		out[i] = &validatorError{msg: msg}
	}
	return out
}

func (c *specChecker) Seen() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// coverage collects the operations answered successfully in this test
// binary, so that TestMain can say which were never exercised.
var coverage sync.Map

// stackRan is set once a real-stack test got its stack.
var stackRan atomic.Bool

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && stackRan.Load() && flag.Lookup("test.run").Value.String() == "" {
		var ops map[string]map[string]any
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		json.Unmarshal(agentDocument(), &doc)
		ops = doc.Paths
		var missing []string
		for path, methods := range ops {
			for m := range methods {
				op := strings.ToUpper(m) + " " + path
				if _, ok := coverage.Load(op); !ok {
					missing = append(missing, op)
				}
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			fmt.Fprintf(os.Stderr, "FAIL: no end-to-end test got a successful answer from:\n  %s\n", strings.Join(missing, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

// recordingTB records Errorf so that a test can expect a failure.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestSpecCheckerCatchesDrift: an answer with a field the document does
// not have is reported; a conforming one is not.
func TestSpecCheckerCatchesDrift(t *testing.T) {
	doc := fetchOpenAPI(t)
	for _, c := range []struct {
		body string
		bad  bool
	}{
		{`{"status":"ok","version":"1"}`, false},
		{`{"status":"ok","version":"1","uptime":3}`, true},
		{`{"status":"ok"}`, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, c.body)
		}))
		rec := &recordingTB{TB: t}
		checker := newSpecChecker(rec, doc)
		cl := client.New(strings.TrimPrefix(srv.URL, "http://"), "").WithTransport(checker.Transport)
		if _, err := cl.Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if (len(rec.errs) > 0) != c.bad {
			t.Errorf("%s: checker errors %v", c.body, rec.errs)
		}
	}
}

// fetchOpenAPI starts nothing: the document is the same in every agent,
// so one without cards serves it.
func fetchOpenAPI(t *testing.T) []byte {
	t.Helper()
	s := newBareAgent(t)
	resp, err := http.Get("http://" + s + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// TestOpenAPIDocument: the document is valid OpenAPI 3.1 and describes
// every /v1 route the agent serves.
func TestOpenAPIDocument(t *testing.T) {
	doc := fetchOpenAPI(t)
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Error(e.Error())
		}
	}
	var m struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	json.Unmarshal(doc, &m)
	if m.OpenAPI != "3.1.0" || len(m.Paths) < 25 {
		t.Fatalf("openapi %q with %d paths", m.OpenAPI, len(m.Paths))
	}
	for _, code := range []string{api.CodePINIncorrect, api.CodeVitaleRequired, api.CodeDMPAccessDenied} {
		if !bytes.Contains(doc, []byte(code)) {
			t.Errorf("the document does not list the error code %s", code)
		}
	}
}

// agentDocument is the OpenAPI document as the agent serves it.
var agentDocument = sync.OnceValue(func() []byte {
	cfg := agent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	dir, _ := os.MkdirTemp("", "dmpagent-openapi-")
	defer os.RemoveAll(dir)
	cfg.DataDir = dir + "/agent"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := agent.New(ctx, cfg, agent.Options{})
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() { a.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	resp, err := http.Get("http://" + a.Addr() + "/v1/openapi.json")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
})
