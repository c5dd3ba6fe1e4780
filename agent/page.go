package agent

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/dmpagent/dmpagent/agent/api"
)

// The local page (agent/web): status, pairing approval and PIN entry for
// the person at the desk, so that the PIN need not pass through the
// practice software. Plain HTML and JavaScript, in French, served from
// the binary.
//
//go:embed web
var webFiles embed.FS

// pageCSP forbids everything the page does not use: no inline script, no
// third-party origin, no framing (clickjacking the approve button).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (a *Agent) servePageFile(w http.ResponseWriter, name string) error {
	b, err := fs.ReadFile(webFiles, path.Join("web", name))
	if err != nil {
		return &api.Error{Status: 404, Code: api.CodeNotFound, Message: "no such file"}
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	_, err = w.Write(b)
	return err
}

func (a *Agent) getPage(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.servePageFile(w, "index.html")
}

func (a *Agent) getPageFile(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.servePageFile(w, r.PathValue("file"))
}

// pageStatus is what the page shows: the agent's status, the CPS holder
// and the pairings waiting for approval.
type pageStatus struct {
	api.Status
	CPS      *api.CPS      `json:"cps,omitempty"`
	CPSError string        `json:"cps_error,omitempty"`
	Pairings []api.Pairing `json:"pairings"`
}

func (a *Agent) getPageStatus(w http.ResponseWriter, r *http.Request, c *caller) error {
	out := pageStatus{Status: a.status(r.Context()), Pairings: []api.Pairing{}}
	for _, p := range a.pairings.pending() {
		// The page does not show the codes: the person approving types
		// the code the requesting software displays, which is what ties
		// the approval to that software.
		p.Code = ""
		out.Pairings = append(out.Pairings, p)
	}
	if reader, err := a.cpsReader(); err == nil {
		if id, err := a.identity(r.Context(), reader); err == nil {
			out.CPS = &api.CPS{IDNat: id.IDNat, Surname: id.Surname, GivenName: id.GivenName, ProfessionLabel: id.Profession,
				NotAfter: id.NotAfter.UTC(), Reader: reader, Test: id.Test}
		} else {
			out.CPSError = a.apiError(err).Message
		}
	}
	return writeJSON(w, 200, out)
}

func (a *Agent) getPageEvents(w http.ResponseWriter, r *http.Request, c *caller) error {
	a.events.serveSSE(w, r, a.done, nil)
	return nil
}
