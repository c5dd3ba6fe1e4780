package agent

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/audit"
	"github.com/dmpagent/dmpagent/agent/consent"
)

func (a *Agent) getHealth(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, api.Health{Status: "ok", Version: a.version})
}

func (a *Agent) getOpenAPI(w http.ResponseWriter, r *http.Request, c *caller) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(openAPIDocument())
	return err
}

func (a *Agent) status(ctx context.Context) api.Status {
	st := api.Status{Version: a.version, Started: a.started, PCSC: "ok", Readers: a.readers(),
		DMPEndpoint: a.cfg.DMPEndpoint, Simulation: a.cfg.TestMode}
	if err := a.monitor.ServiceErr(); err != nil {
		st.PCSC = err.Error()
	}
	if s := a.currentSession(); s != nil {
		st.Session = s.api()
		st.Simulation = st.Simulation || s.identity.Test
	}
	st.OutboxDepth, _ = a.outbox.Depth(ctx)
	return st
}

func (a *Agent) getStatus(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, a.status(r.Context()))
}

func (a *Agent) getEvents(w http.ResponseWriter, r *http.Request, c *caller) error {
	// An application sees other applications' submissions only as
	// their ids' state: nothing in them is health data.
	a.events.serveSSE(w, r, a.done, nil)
	return nil
}

// Tokens (admin).

func (a *Agent) postToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.TokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	t, secret, err := a.tokens.create(r.Context(), req.App, req.Origin, req.Admin)
	if err != nil {
		return err
	}
	out := t.api()
	out.Secret = secret
	return writeJSON(w, 201, out)
}

func (a *Agent) listTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, api.Tokens{Tokens: a.tokens.list()})
}

func (a *Agent) deleteToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	revoked, err := a.tokens.revoke(r.Context(), r.PathValue("id"))
	if errors.Is(err, errTokenNotFound) {
		return &api.Error{Status: 404, Code: api.CodeTokenNotFound, Message: "no live token has this id or application name"}
	}
	if err != nil {
		return err
	}
	out := api.Tokens{}
	for _, t := range revoked {
		out.Tokens = append(out.Tokens, t.api())
	}
	return writeJSON(w, 200, out)
}

// Pairing.

func (a *Agent) postPairing(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.PairingRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	// A web page may only ask for its own origin: the browser says which.
	if o := r.Header.Get("Origin"); o != "" {
		if req.Origin == "" {
			req.Origin = o
		}
		if norm, err := validateApp(req.App, req.Origin); err != nil || norm != o {
			return &api.Error{Status: 403, Code: api.CodeOriginForbidden, Message: "a web page can only pair its own origin"}
		}
	}
	p, err := a.pairings.request(req.App, req.Origin)
	if err != nil {
		return err
	}
	a.log.Info("pairing requested", "app", p.App, "code", p.Code)
	pub := p
	pub.ID = ""
	a.events.publish(api.Event{Type: api.EventPairingRequested, Pairing: &pub})
	return writeJSON(w, 201, p)
}

func (a *Agent) getPairing(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := a.pairings.poll(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, p)
}

func (a *Agent) listPairings(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, api.Pairings{Pairings: a.pairings.pending()})
}

func (a *Agent) decidePairing(w http.ResponseWriter, r *http.Request, approve bool) error {
	var req api.PairingDecision
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	p, err := a.pairings.decide(req.Code, approve, func(app, origin string) (string, error) {
		_, secret, err := a.tokens.create(r.Context(), app, origin, false)
		return secret, err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, 200, p)
}

func (a *Agent) approvePairing(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.decidePairing(w, r, true)
}

func (a *Agent) denyPairing(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.decidePairing(w, r, false)
}

// Audit.

func auditEntry(actor, action, target, outcome string, details map[string]string) audit.Entry {
	return audit.Entry{Actor: actor, Action: action, Target: target, Outcome: outcome, Details: details}
}

// auditAction appends an API action. The target is the patient or the
// object the route names; the log lives in the protected data directory,
// where an INS may be written (unlike the service log).
func (a *Agent) auditAction(c *caller, action string, r *http.Request, outcome string) {
	target := r.PathValue("ins")
	if id := r.PathValue("id"); id != "" {
		if target != "" {
			target += "/"
		}
		target += id
	}
	details := map[string]string{"method": r.Method, "route": r.Pattern}
	if s := a.currentSession(); s != nil {
		details["professional"] = s.identity.IDNat
	}
	if _, err := a.audit.Append(auditEntry(c.name(), action, target, outcome, details)); err != nil {
		a.log.Error("audit log append failed", "err", err)
	}
}

func (a *Agent) getAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > 1000 {
		limit = 1000
	}
	entries, err := a.audit.Entries(after, limit+1)
	if err != nil {
		return err
	}
	out := api.Audit{Entries: []api.AuditEntry{}}
	if len(entries) > limit {
		entries, out.More = entries[:limit], true
	}
	for _, e := range entries {
		out.Entries = append(out.Entries, api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target,
			Outcome: e.Outcome, Details: e.Details, Prev: e.Prev, Hash: e.Hash})
	}
	return writeJSON(w, 200, out)
}

// Consent receipts.

func (a *Agent) getConsent(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	data, err := a.consents.Get(id)
	if errors.Is(err, consent.ErrNotFound) {
		return &api.Error{Status: 404, Code: api.CodeConsentNotFound, Message: "no such consent receipt"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, 200, api.ConsentReceipt{ID: id, JWS: string(data)})
}
