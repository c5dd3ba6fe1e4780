package agent

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// access says who may call a route.
type access int

const (
	public    access = iota // no token: health, the API description, pairing requests
	appAccess               // a paired application's token (or the admin socket)
	adminOnly               // an admin token or the admin socket
	pageOnly                // the agent's own page (same origin), or the admin socket
)

// caller is who makes a request.
type caller struct {
	token   *appToken // the bearer token; nil for the socket and the page
	control bool      // came over the admin socket (peer credentials checked)
	page    bool      // the agent's own page
}

func (c *caller) admin() bool { return c.control || (c.token != nil && c.token.Admin) }

// name is the audit log's actor.
func (c *caller) name() string {
	switch {
	case c.token != nil:
		return "app:" + c.token.App
	case c.control:
		return "admin"
	case c.page:
		return "page"
	}
	return "anonymous"
}

type handler func(w http.ResponseWriter, r *http.Request, c *caller) error

// route is one line of the route table. action names the audit entry of
// the route; read-only routes without health data leave it empty.
type route struct {
	method, pattern string
	access          access
	action          string
	maxBody         int64 // 0: maxJSONBody
	h               handler
}

const maxJSONBody = 64 << 10

// routes is the API, in one table (DESIGN §3). The handlers live in files
// named after what they touch: cards.go, session.go, dmpapi.go, feed.go,
// admin.go, page.go.
func (a *Agent) routes() []route {
	return []route{
		{method: "GET", pattern: "/v1/health", access: public, h: a.getHealth},
		{method: "GET", pattern: "/v1/openapi.json", access: public, h: a.getOpenAPI},
		{method: "GET", pattern: "/v1/status", access: appAccess, h: a.getStatus},
		{method: "GET", pattern: "/v1/readers", access: appAccess, h: a.getReaders},
		{method: "GET", pattern: "/v1/events", access: appAccess, h: a.getEvents},
		{method: "GET", pattern: "/v1/cps", access: appAccess, action: "cps.read", h: a.getCPS},
		{method: "POST", pattern: "/v1/session", access: appAccess, action: "session.open", h: a.postSession},
		{method: "DELETE", pattern: "/v1/session", access: appAccess, action: "session.close", h: a.deleteSession},
		{method: "GET", pattern: "/v1/vitale", access: appAccess, action: "vitale.read", h: a.getVitale},
		{method: "POST", pattern: "/v1/dmp", access: appAccess, action: "dmp.create", h: a.postDMP},
		{method: "GET", pattern: "/v1/dmp/{ins}", access: appAccess, action: "dmp.status", h: a.getDMP},
		{method: "POST", pattern: "/v1/dmp/{ins}/authorization", access: appAccess, action: "dmp.authorization.add", h: a.postAuthorization},
		{method: "DELETE", pattern: "/v1/dmp/{ins}/authorization", access: appAccess, action: "dmp.authorization.remove", h: a.deleteAuthorization},
		{method: "PUT", pattern: "/v1/dmp/{ins}/attending-physician", access: appAccess, action: "dmp.attending_physician", h: a.putAttending},
		{method: "POST", pattern: "/v1/dmp/{ins}/emergency-access", access: appAccess, action: "dmp.emergency_access", h: a.postEmergency},
		{method: "POST", pattern: "/v1/dmp/{ins}/documents", access: appAccess, action: "document.feed", maxBody: -1, h: a.postDocument},
		{method: "GET", pattern: "/v1/dmp/{ins}/documents", access: appAccess, action: "document.search", h: a.getDocuments},
		{method: "GET", pattern: "/v1/dmp/{ins}/documents/{id}/content", access: appAccess, action: "document.retrieve", h: a.getDocumentContent},
		{method: "PATCH", pattern: "/v1/dmp/{ins}/documents/{id}", access: appAccess, action: "document.update", h: a.patchDocument},
		{method: "DELETE", pattern: "/v1/dmp/{ins}/documents/{id}", access: appAccess, action: "document.delete", h: a.deleteDocument},
		{method: "POST", pattern: "/v1/dmp/{ins}/close", access: appAccess, action: "dmp.close", h: a.postClose},
		{method: "POST", pattern: "/v1/dmp/{ins}/reactivate", access: appAccess, action: "dmp.reactivate", h: a.postReactivate},
		{method: "GET", pattern: "/v1/submissions/{id}", access: appAccess, h: a.getSubmission},
		{method: "GET", pattern: "/v1/consents/{id}", access: appAccess, h: a.getConsent},
		{method: "GET", pattern: "/v1/doctor", access: appAccess, h: a.getDoctor},

		{method: "POST", pattern: "/v1/pairings", access: public, action: "pairing.request", h: a.postPairing},
		{method: "GET", pattern: "/v1/pairings/{id}", access: public, h: a.getPairing},
		{method: "GET", pattern: "/v1/pairings", access: adminOnly, h: a.listPairings},
		{method: "POST", pattern: "/v1/pairings/approve", access: adminOnly, action: "pairing.approve", h: a.approvePairing},
		{method: "POST", pattern: "/v1/pairings/deny", access: adminOnly, action: "pairing.deny", h: a.denyPairing},
		{method: "POST", pattern: "/v1/tokens", access: adminOnly, action: "token.create", h: a.postToken},
		{method: "GET", pattern: "/v1/tokens", access: adminOnly, h: a.listTokens},
		{method: "DELETE", pattern: "/v1/tokens/{id}", access: adminOnly, action: "token.revoke", h: a.deleteToken},
		{method: "GET", pattern: "/v1/audit", access: adminOnly, h: a.getAudit},

		{method: "GET", pattern: "/{$}", access: public, h: a.getPage},
		{method: "GET", pattern: "/ui/{file}", access: public, h: a.getPageFile},
		{method: "GET", pattern: "/ui/api/status", access: pageOnly, h: a.getPageStatus},
		{method: "GET", pattern: "/ui/api/events", access: pageOnly, h: a.getPageEvents},
		{method: "POST", pattern: "/ui/api/session", access: pageOnly, action: "session.open", h: a.postSession},
		{method: "DELETE", pattern: "/ui/api/session", access: pageOnly, action: "session.close", h: a.deleteSession},
		{method: "POST", pattern: "/ui/api/pairings/approve", access: pageOnly, action: "pairing.approve", h: a.approvePairing},
		{method: "POST", pattern: "/ui/api/pairings/deny", access: pageOnly, action: "pairing.deny", h: a.denyPairing},
	}
}

// listener says which door a request came through.
type listenerKind int

const (
	tcpListener listenerKind = iota
	controlListener
)

type ctxKey int

const listenerKey ctxKey = 0

// handler builds the HTTP handler of the route table: every request goes
// through the same checks, in this order: Host (DNS rebinding), Origin,
// token, body size, idempotency, then the route; errors come out in the
// API's error format and every action with a name lands in the audit log.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	byPattern := map[string]map[string]route{}
	var order []string
	for _, rt := range a.routes() {
		if byPattern[rt.pattern] == nil {
			byPattern[rt.pattern] = map[string]route{}
			order = append(order, rt.pattern)
		}
		byPattern[rt.pattern][rt.method] = rt
	}
	for _, p := range order {
		methods := byPattern[p]
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.serveRoute(w, r, methods)
		}))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.checkHost(w, r) {
			return
		}
		writeError(w, &api.Error{Status: 404, Code: api.CodeNotFound, Message: "no such route: " + r.URL.Path})
	}))
	return mux
}

func (a *Agent) serveRoute(w http.ResponseWriter, r *http.Request, methods map[string]route) {
	start := time.Now()
	control := r.Context().Value(listenerKey) == controlListener
	if !control && !a.checkHost(w, r) {
		return
	}
	origin := r.Header.Get("Origin")
	if r.Method == http.MethodOptions && origin != "" && !control {
		a.preflight(w, r, methods)
		return
	}
	rt, ok := methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		rt, ok = methods["GET"]
	}
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, &api.Error{Status: 405, Code: api.CodeMethodNotAllowed, Message: r.Method + " is not allowed here"})
		return
	}
	c, apiErr := a.authenticate(r, rt, control)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if c.token != nil && c.token.Origin != "" && origin == c.token.Origin {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	switch rt.maxBody {
	case 0:
		r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
	case -1:
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxDocumentSize+maxJSONBody)
	default:
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	}
	rec := &statusRecorder{ResponseWriter: w}
	err := a.idempotent(rec, r, c, rt)
	outcome := "ok"
	if err != nil {
		e := a.apiError(err)
		outcome = e.Code
		if !rec.wrote {
			writeError(rec, e)
		} else {
			a.log.Warn("error after the answer started", "route", rt.pattern, "err", err)
		}
	}
	if rt.action != "" {
		a.auditAction(c, rt.action, r, outcome)
	}
	a.log.Debug("request", "method", r.Method, "route", rt.pattern, "status", rec.status, "caller", c.name(), "duration", time.Since(start))
}

// statusRecorder notes whether and what a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = 200, true
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		s.wrote = true
		if s.status == 0 {
			s.status = 200
		}
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// checkHost refuses a Host header that is not the agent's own loopback
// address: a page on evil.example whose name is rebound to 127.0.0.1 sends
// Host: evil.example:7711 and is stopped here.
func (a *Agent) checkHost(w http.ResponseWriter, r *http.Request) bool {
	if r.Context().Value(listenerKey) == controlListener {
		return true
	}
	if _, ok := a.hosts[strings.ToLower(r.Host)]; ok {
		return true
	}
	writeError(w, &api.Error{Status: 403, Code: api.CodeHostForbidden,
		Message: "Host must be the agent's loopback address (DNS rebinding protection)"})
	return false
}

// pageOrigin reports whether origin is the agent's own page.
func (a *Agent) pageOrigin(origin string) bool {
	host, ok := strings.CutPrefix(origin, "http://")
	if !ok {
		return false
	}
	_, ok = a.hosts[strings.ToLower(host)]
	return ok
}

func (a *Agent) authenticate(r *http.Request, rt route, control bool) (*caller, *api.Error) {
	if control {
		return &caller{control: true}, nil
	}
	origin := r.Header.Get("Origin")
	forbidden := &api.Error{Status: 403, Code: api.CodeOriginForbidden,
		Message: "this browser origin is not registered for the application; pair it with its origin"}
	switch rt.access {
	case public:
		// The page's files and the health check carry no data; a
		// pairing request is checked against its origin by its handler.
		return &caller{page: origin != "" && a.pageOrigin(origin)}, nil
	case pageOnly:
		// Browsers always send Origin on a POST, and on a GET they
		// send Sec-Fetch-Site; a foreign page can forge neither.
		if origin != "" && !a.pageOrigin(origin) {
			return nil, forbidden
		}
		if origin == "" && r.Method != http.MethodGet {
			return nil, forbidden
		}
		if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
			return nil, forbidden
		}
		return &caller{page: true}, nil
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && r.Method == http.MethodGet && rt.pattern == "/v1/events" {
		// EventSource cannot set headers: the stream takes its token
		// from the query.
		secret, ok = r.URL.Query().Get("access_token"), true
	}
	unauthorized := &api.Error{Status: 401, Code: api.CodeUnauthorized,
		Message: "a valid bearer token is required (dmpagent token create, or pair the application)"}
	if !ok || secret == "" {
		return nil, unauthorized
	}
	t, ok := a.tokens.lookup(strings.TrimSpace(secret))
	if !ok {
		return nil, unauthorized
	}
	if origin != "" && origin != t.Origin {
		return nil, forbidden
	}
	c := &caller{token: t}
	if rt.access == adminOnly && !c.admin() {
		return nil, &api.Error{Status: 403, Code: api.CodeAdminRequired, Message: "this route needs an admin token or the admin socket"}
	}
	return c, nil
}

// preflight answers a CORS preflight for a registered origin only.
func (a *Agent) preflight(w http.ResponseWriter, r *http.Request, methods map[string]route) {
	origin := r.Header.Get("Origin")
	if !a.tokens.originAllowed(origin) {
		writeError(w, &api.Error{Status: 403, Code: api.CodeOriginForbidden, Message: "origin not registered"})
		return
	}
	h := w.Header()
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", strings.Join(allow, ", "))
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeError(w http.ResponseWriter, e *api.Error) {
	if e.Status == 0 {
		e.Status = 500
	}
	writeJSON(w, e.Status, api.ErrorBody{Error: e})
}

// decodeJSON reads a JSON body strictly: one object, known fields only, so
// that a misspelt field is an error rather than a silent default.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &api.Error{Status: 415, Code: api.CodeBadRequest, Message: "the body must be application/json"}
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &api.Error{Status: 400, Code: api.CodeMalformedJSON, Message: "the body holds more than one JSON value"}
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &api.Error{Status: 413, Code: api.CodeBodyTooLarge, Message: "the body is larger than the agent accepts",
			Details: map[string]any{"limit": tooBig.Limit}}
	}
	if errors.Is(err, io.EOF) {
		return &api.Error{Status: 400, Code: api.CodeMalformedJSON, Message: "the body is empty; a JSON object is expected"}
	}
	return &api.Error{Status: 400, Code: api.CodeMalformedJSON, Message: "the body is not the expected JSON: " + err.Error()}
}

// hostsFor lists the Host values that reach the agent at addr.
func hostsFor(addr net.Addr) map[string]struct{} {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	port := tcp.AddrPort().Port()
	hosts := map[string]struct{}{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		hosts[h+":"+strconv.Itoa(int(port))] = struct{}{}
	}
	return hosts
}
