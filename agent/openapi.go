package agent

import (
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// The OpenAPI 3.1 document served at /v1/openapi.json is built from the
// route table and the wire types of agent/api by reflection, so that it
// cannot drift from the code; what reflection cannot know (summaries,
// statuses, bodies) is in routeDocs, and a test checks real answers of the
// running agent against the result.

// routeDoc describes one route for the document.
type routeDoc struct {
	summary  string
	request  any   // a wire type, "multipart" or nil
	status   int   // success status
	response any   // a wire type, "binary", "sse" or nil
	errors   []int // error statuses besides the common ones
	query    []param
}

type param struct {
	name, typ, desc string
	array           bool
	enum            []string
}

var (
	dmpErrors  = []int{403, 404, 409, 502, 503, 504}
	cardErrors = []int{409, 503}
)

// routeDocs is keyed by "METHOD pattern" as in the route table.
var routeDocs = map[string]routeDoc{
	"GET /v1/health":       {summary: "Liveness and version (no token, no data)", status: 200, response: api.Health{}},
	"GET /v1/openapi.json": {summary: "This document", status: 200, response: "json"},
	"GET /v1/status":       {summary: "Agent, readers, cards, session, outbox depth", status: 200, response: api.Status{}},
	"GET /v1/readers":      {summary: "Readers and the card in each", status: 200, response: api.Readers{}},
	"GET /v1/events": {summary: "Server-Sent Events: reader.added, reader.removed, card.inserted, card.removed, session.opened, session.closed, submission.updated, pairing.requested, pcsc.lost, pcsc.restored; each data line is an Event object. EventSource clients pass the token as access_token.",
		status: 200, response: "sse", query: []param{{name: "access_token", typ: "string", desc: "the bearer token, for EventSource which cannot set headers"}}},
	"GET /v1/cps":                           {summary: "The professional's identity read from the inserted CPS (no PIN)", status: 200, response: api.CPS{}, errors: cardErrors},
	"POST /v1/session":                      {summary: "PIN login on the CPS; opens the professional session. A wrong PIN is 401 pin_incorrect with details.tries_left; a blocked card 423 pin_blocked. The agent never retries a PIN.", request: api.SessionRequest{}, status: 201, response: api.Session{}, errors: []int{409, 423, 503}},
	"DELETE /v1/session":                    {summary: "Log out (a removed CPS closes the session too)", status: 200, response: closedAnswer{}},
	"GET /v1/vitale":                        {summary: "Beneficiaries on the inserted Vitale card, with their INS once INSi resolved them (needs a session)", status: 200, response: api.Vitale{}, errors: []int{409, 503}},
	"POST /v1/dmp":                          {summary: "Create the patient's DMP: needs a session, the patient's Vitale card present and the consent object; answers with the signed consent receipt's id", request: api.CreateDMPRequest{}, status: 201, response: api.DMPResult{}, errors: append([]int{422}, dmpErrors...)},
	"GET /v1/dmp/{ins}":                     {summary: "Does this patient have a DMP, its state, this professional's authorization, the attending-physician flag", status: 200, response: api.DMP{}, errors: dmpErrors},
	"POST /v1/dmp/{ins}/authorization":      {summary: "Record the patient's consent for this professional (Vitale card present)", request: api.ConsentRequest{}, status: 200, response: api.DMPResult{}, errors: append([]int{422}, dmpErrors...)},
	"DELETE /v1/dmp/{ins}/authorization":    {summary: "Withdraw the patient's consent for this professional (Vitale card present)", request: api.ConsentRequest{}, status: 200, response: api.DMPResult{}, errors: dmpErrors},
	"PUT /v1/dmp/{ins}/attending-physician": {summary: "Declare the session's professional the patient's médecin traitant", request: struct{}{}, status: 200, response: api.DMPResult{}, errors: dmpErrors},
	"POST /v1/dmp/{ins}/emergency-access":   {summary: "Emergency access for this session: break_glass with a written reason, or centre15; traced by the DMP", request: api.EmergencyRequest{}, status: 200, response: api.EmergencyAccess{}, errors: dmpErrors},
	"POST /v1/dmp/{ins}/documents":          {summary: "Feed a document: multipart with a `metadata` JSON part then the `content` part (a PDF); answers 202 once the outbox holds it", request: "multipart", status: 202, response: api.Submission{}, errors: []int{409, 415}},
	"GET /v1/dmp/{ins}/documents": {summary: "Search the documents' metadata", status: 200, response: api.Documents{}, errors: dmpErrors,
		query: []param{{name: "status", typ: "string", enum: []string{"available", "archived", "all"}}, {name: "type_code", typ: "string", array: true, desc: "LOINC document types"},
			{name: "from", typ: "date-time", desc: "created at or after"}, {name: "to", typ: "date-time", desc: "created before"}}},
	"GET /v1/dmp/{ins}/documents/{id}/content": {summary: "The document, streamed: as the DMP stores it (a CDA document), or with format=pdf the PDF it carries", status: 200, response: "binary", errors: append([]int{415}, dmpErrors...),
		query: []param{{name: "format", typ: "string", enum: []string{"cda", "pdf"}, desc: "cda (default): as stored; pdf: the PDF a level-1 CDA document carries"}}},
	"PATCH /v1/dmp/{ins}/documents/{id}":  {summary: "Mask from professionals, make (in)visible to the patient, archive or unarchive", request: api.DocumentPatch{}, status: 200, response: api.Document{}, errors: dmpErrors},
	"DELETE /v1/dmp/{ins}/documents/{id}": {summary: "Logical deletion", status: 200, response: deletedAnswer{}, errors: dmpErrors},
	"POST /v1/dmp/{ins}/close":            {summary: "Close the DMP", request: api.CloseRequest{}, status: 200, response: api.DMPResult{}, errors: dmpErrors},
	"POST /v1/dmp/{ins}/reactivate":       {summary: "Reopen a closed DMP (Vitale card present; the consent object is optional)", request: api.ConsentRequest{}, status: 200, response: api.DMPResult{}, errors: append([]int{422}, dmpErrors...)},
	"GET /v1/submissions/{id}":            {summary: "A submission's state: queued, sending, submitted or failed (with the DMP's reason)", status: 200, response: api.Submission{}, errors: []int{404}},
	"GET /v1/consents/{id}":               {summary: "A signed consent receipt (JWS, flattened JSON serialisation), to verify offline", status: 200, response: api.ConsentReceipt{}, errors: []int{404}},
	"GET /v1/doctor":                      {summary: "Checks of everything the agent needs, each with the fix to apply", status: 200, response: Doctor{}},
	"POST /v1/pairings":                   {summary: "An application without a token asks to pair; the user approves its code (no token)", request: api.PairingRequest{}, status: 201, response: api.Pairing{}, errors: []int{429}},
	"GET /v1/pairings/{id}":               {summary: "The requester polls its pairing; the token comes once, after approval (no token: the id is the requester's secret)", status: 200, response: api.Pairing{}, errors: []int{404}},
	"GET /v1/pairings":                    {summary: "Pending pairings (admin)", status: 200, response: api.Pairings{}},
	"POST /v1/pairings/approve":           {summary: "Approve the pairing showing this code (admin)", request: api.PairingDecision{}, status: 200, response: api.Pairing{}, errors: []int{404}},
	"POST /v1/pairings/deny":              {summary: "Deny the pairing showing this code (admin)", request: api.PairingDecision{}, status: 200, response: api.Pairing{}, errors: []int{404}},
	"POST /v1/tokens":                     {summary: "Create an application token; the secret is in this answer only (admin)", request: api.TokenRequest{}, status: 201, response: api.Token{}},
	"GET /v1/tokens":                      {summary: "List tokens, never their secrets (admin)", status: 200, response: api.Tokens{}},
	"DELETE /v1/tokens/{id}":              {summary: "Revoke a token by id, or every token of an application by name (admin)", status: 200, response: api.Tokens{}, errors: []int{404}},
	"GET /v1/audit": {summary: "The hash-chained audit log, by pages (admin)", status: 200, response: api.Audit{},
		query: []param{{name: "after", typ: "integer", desc: "entries after this seq"}, {name: "limit", typ: "integer", desc: "at most this many (1000 max)"}}},
}

type closedAnswer struct {
	Closed bool `json:"closed"`
}

type deletedAnswer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

var (
	openAPIOnce sync.Once
	openAPIJSON []byte
)

// openAPIDocument returns the document, built once.
func openAPIDocument() []byte {
	openAPIOnce.Do(func() {
		b, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
		if err != nil {
			panic(err)
		}
		openAPIJSON = b
	})
	return openAPIJSON
}

var wildcard = regexp.MustCompile(`\{([a-z_]+)\}`)

func buildOpenAPI() map[string]any {
	schemas := map[string]any{}
	g := &schemaGen{schemas: schemas}
	paths := map[string]any{}
	for _, rt := range (&Agent{}).routes() {
		if !strings.HasPrefix(rt.pattern, "/v1/") {
			continue // the agent's own page
		}
		doc, ok := routeDocs[rt.method+" "+rt.pattern]
		if !ok {
			panic("openapi: no routeDocs entry for " + rt.method + " " + rt.pattern)
		}
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		item[strings.ToLower(rt.method)] = g.operation(rt, doc)
	}
	schemas["Error"] = map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"code", "message"},
		"properties": map[string]any{
			"code":    map[string]any{"type": "string", "description": "snake_case; see the list in info.description"},
			"message": map[string]any{"type": "string"},
			"details": map[string]any{"type": "object"},
		},
	}
	schemas["ErrorBody"] = map[string]any{"type": "object", "additionalProperties": false, "required": []string{"error"},
		"properties": map[string]any{"error": ref("Error")}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "dmpagent localhost API",
			"version": "1",
			"description": "The localhost API of dmpagent, the CPS and Vitale card agent for the DMP. It listens on loopback only " +
				"and checks the Host header (DNS rebinding) and the browser Origin against the application's registered origin. " +
				"Every route but the public ones needs `Authorization: Bearer <token>`: a token per application, from " +
				"`dmpagent token create --app NAME` or the pairing flow. Admin routes need an admin token or the admin socket. " +
				"Errors are `{\"error\":{\"code\",\"message\",\"details\"}}`; the DMP's own code is in details.dmp_code. " +
				"Mutating calls accept `Idempotency-Key`. Times are RFC 3339 UTC. The agent's own page (/ and /ui/) is not part of this API. " +
				"Error codes: " + strings.Join(errorCodes(), ", ") + ".",
		},
		"servers":  []any{map[string]any{"url": "http://127.0.0.1:7711"}},
		"security": []any{map[string]any{"bearer": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas":         schemas,
			"responses": map[string]any{"Error": map[string]any{
				"description": "An error, in the API's error format",
				"content":     map[string]any{"application/json": map[string]any{"schema": ref("ErrorBody")}},
			}},
		},
	}
}

// errorCodes lists the api.Code* constants' values.
func errorCodes() []string {
	codes := []string{api.CodeBadRequest, api.CodeMalformedJSON, api.CodeInvalidField, api.CodeBodyTooLarge, api.CodeUnauthorized,
		api.CodeAdminRequired, api.CodeHostForbidden, api.CodeOriginForbidden, api.CodeNotFound, api.CodeMethodNotAllowed,
		api.CodeIdempotencyReused, api.CodeIdempotencyPending, api.CodeNoCPS, api.CodeSessionRequired, api.CodePINIncorrect,
		api.CodePINBlocked, api.CodePINFormat, api.CodeCardRemoved, api.CodeCardError, api.CodeVitaleRequired, api.CodeVitaleMismatch,
		api.CodeConsentRequired, api.CodeINSUnresolved, api.CodeUnsupportedFormat, api.CodeDMPAccessDenied, api.CodeDMPBlocked,
		api.CodeDMPClosed, api.CodeDMPOpposition, api.CodeDMPNotFound, api.CodeDMPExists, api.CodeDocumentNotFound, api.CodeDMPFault,
		api.CodeDMPCredentials, api.CodeDMPUnreachable, api.CodeDMPTimeout, api.CodeSubmissionNotFound, api.CodeConsentNotFound,
		api.CodePairingNotFound, api.CodeTooManyPairings, api.CodeTokenNotFound, api.CodeServiceUnavailable, api.CodeInternal,
		"session_open", "situation_incomplete", "document_exists"}
	sort.Strings(codes)
	return codes
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func (g *schemaGen) operation(rt route, doc routeDoc) map[string]any {
	op := map[string]any{
		"operationId": operationID(rt),
		"summary":     doc.summary,
	}
	var params []any
	for _, m := range wildcard.FindAllStringSubmatch(rt.pattern, -1) {
		p := map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}}
		if m[1] == "ins" {
			p["schema"] = map[string]any{"type": "string", "pattern": "^[0-9]{5}[0-9AB][0-9]{9}$"}
			p["description"] = "the patient's INS: 15 characters (NIR and key)"
		}
		params = append(params, p)
	}
	for _, q := range doc.query {
		s := map[string]any{"type": q.typ}
		if q.typ == "date-time" {
			s = map[string]any{"type": "string", "format": "date-time"}
		}
		if q.enum != nil {
			s["enum"] = q.enum
		}
		if q.array {
			s = map[string]any{"type": "array", "items": s}
		}
		p := map[string]any{"name": q.name, "in": "query", "required": false, "schema": s}
		if q.desc != "" {
			p["description"] = q.desc
		}
		params = append(params, p)
	}
	if rt.method != "GET" && rt.access != public {
		params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "required": false,
			"description": "makes the call safe to resend: the same key and request give the first answer again",
			"schema":      map[string]any{"type": "string", "maxLength": maxKeyLen}})
	}
	if rt.pattern == "/v1/events" {
		params = append(params, map[string]any{"name": "Last-Event-ID", "in": "header", "required": false, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.access == public {
		op["security"] = []any{}
	}
	switch r := doc.request.(type) {
	case nil:
	case string: // multipart
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"multipart/form-data": map[string]any{
			"schema": map[string]any{"type": "object", "required": []string{"metadata", "content"}, "properties": map[string]any{
				"metadata": g.schema(reflect.TypeOf(api.DocumentMetadata{})),
				"content":  map[string]any{"type": "string", "contentMediaType": "application/pdf"},
			}},
			"encoding": map[string]any{"metadata": map[string]any{"contentType": "application/json"}},
		}}}
	default:
		op["requestBody"] = map[string]any{"required": rt.method != "DELETE" && rt.method != "PUT",
			"content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(r))}}}
	}
	responses := map[string]any{}
	success := map[string]any{"description": "success"}
	switch r := doc.response.(type) {
	case string:
		switch r {
		case "binary":
			success["content"] = map[string]any{"*/*": map[string]any{"schema": map[string]any{}}}
		case "sse":
			success["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
			success["description"] = "an event stream; each event's data is: " + "#/components/schemas/Event"
			g.schema(reflect.TypeOf(api.Event{}))
		case "json":
			success["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
	default:
		success["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(r))}}
	}
	responses[itoa3(doc.status)] = success
	errs := []int{400, 403, 500}
	if rt.access != public {
		errs = append(errs, 401)
	}
	if doc.request != nil {
		errs = append(errs, 413, 415)
	}
	if rt.method != "GET" && rt.access != public {
		errs = append(errs, 409, 422)
	}
	errs = append(errs, doc.errors...)
	for _, s := range errs {
		responses[itoa3(s)] = map[string]any{"$ref": "#/components/responses/Error"}
	}
	op["responses"] = responses
	return op
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, part := range strings.Split(strings.TrimPrefix(rt.pattern, "/v1/"), "/") {
		part = strings.Trim(part, "{}")
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// schemaGen turns Go wire types into JSON Schema (2020-12, as OpenAPI 3.1
// uses), named by their Go type in components.
type schemaGen struct {
	schemas map[string]any
}

var timeType = reflect.TypeOf(time.Time{})

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = map[string]any{} // recursion guard
			g.schemas[name] = g.object(t)
		}
		return ref(name)
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return map[string]any{"type": "number"}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case t.Kind() == reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		s := g.schema(f.Type)
		if f.Type.Kind() == reflect.Slice && !strings.Contains(opts, "omitempty") {
			// encoding/json writes a nil slice as null.
			s = map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	out := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if required != nil {
		out["required"] = required
	}
	return out
}
