package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
)

// cardState is what the agent knows of the cards beyond the monitor's
// view: the open PKCS#11 token and the identity of each CPS, and what each
// Vitale card says. Everything about a reader is forgotten when its card
// goes.
type cardState struct {
	mu         sync.Mutex
	tokens     map[string]pkcs11.Token
	identities map[string]cardreader.Identity
	vitale     map[string]*vitaleCard
}

type vitaleCard struct {
	done chan struct{} // closed when the read ended
	data cardreader.VitaleData
	err  error
	// ins caches INSi's answers by beneficiary NIR.
	ins map[string]insResult
}

type insResult struct {
	identity *dmp.INSIdentity
	err      error
}

func newCardState() *cardState {
	return &cardState{tokens: map[string]pkcs11.Token{}, identities: map[string]cardreader.Identity{}, vitale: map[string]*vitaleCard{}}
}

// forget drops a reader's card.
func (s *cardState) forget(reader string) {
	s.mu.Lock()
	tok := s.tokens[reader]
	delete(s.tokens, reader)
	delete(s.identities, reader)
	delete(s.vitale, reader)
	s.mu.Unlock()
	if tok != nil {
		tok.Close()
	}
}

func (s *cardState) closeAll() {
	if s == nil {
		return
	}
	s.mu.Lock()
	toks := s.tokens
	s.tokens = map[string]pkcs11.Token{}
	s.mu.Unlock()
	for _, t := range toks {
		t.Close()
	}
}

// watchCards turns the monitor's events into API events and keeps the
// card state: a removed CPS ends its session, an inserted Vitale card is
// read at once (it has no PIN), so that the practice software finds its
// beneficiaries ready.
func (a *Agent) watchCards(ctx context.Context, events <-chan cardreader.Event) {
	for {
		var ev cardreader.Event
		select {
		case <-ctx.Done():
			return
		case ev = <-events:
		}
		out := api.Event{Reader: ev.Reader, Time: ev.Time.UTC()}
		switch ev.Kind {
		case cardreader.ReaderAdded:
			out.Type = api.EventReaderAdded
		case cardreader.ReaderRemoved:
			out.Type = api.EventReaderRemoved
		case cardreader.CardInserted:
			out.Type = api.EventCardInserted
			out.Card = cardAPI(ev.Card)
			if ev.Card != nil && ev.Card.Type == cardreader.TypeVitale {
				a.readVitale(ctx, ev.Reader)
			}
		case cardreader.CardRemoved:
			out.Type = api.EventCardRemoved
			out.Card = cardAPI(ev.Card)
		case cardreader.ServiceLost:
			out.Type = api.EventPCSCLost
			if ev.Err != nil {
				out.Message = ev.Err.Error()
			}
		case cardreader.ServiceRestored:
			out.Type = api.EventPCSCRestored
		default:
			continue
		}
		a.log.Info("card event", "event", out.Type, "reader", ev.Reader)
		a.events.publish(out)
		// What went away is said first, then what it ended.
		switch ev.Kind {
		case cardreader.ReaderRemoved:
			a.cardGone(ev.Reader, "reader removed")
		case cardreader.CardRemoved:
			a.cardGone(ev.Reader, "card removed")
		}
	}
}

// cardGone forgets a reader's card and ends a session that used it.
func (a *Agent) cardGone(reader, why string) {
	a.sessMu.Lock()
	s := a.session
	a.sessMu.Unlock()
	if s != nil && s.reader == reader {
		a.endSession(why)
	}
	a.cards.forget(reader)
}

func cardAPI(c *cardreader.CardInfo) *api.Card {
	if c == nil {
		return nil
	}
	return &api.Card{Type: string(c.Type), Model: string(c.Model), ATR: strings.ToUpper(hex.EncodeToString(c.ATR)),
		Description: c.Description, Reason: c.Reason}
}

func (a *Agent) readers() []api.Reader {
	rs := a.monitor.Readers()
	out := make([]api.Reader, 0, len(rs))
	for _, r := range rs {
		out = append(out, api.Reader{Name: r.Name, Card: cardAPI(r.Card)})
	}
	return out
}

func (a *Agent) getReaders(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, api.Readers{Readers: a.readers()})
}

// cpsReader is the reader of the professional's card: the first one
// holding a CPS (or a PIV token, which may carry a test CPS identity).
func (a *Agent) cpsReader() (string, error) {
	if err := a.monitor.ServiceErr(); err != nil {
		return "", &api.Error{Status: 503, Code: api.CodeServiceUnavailable, Message: "the smart-card service (PC/SC) is not available: " + err.Error()}
	}
	var piv string
	for _, r := range a.monitor.Readers() {
		if r.Card == nil {
			continue
		}
		switch r.Card.Type {
		case cardreader.TypeCPS:
			return r.Name, nil
		case cardreader.TypePIV:
			if piv == "" {
				piv = r.Name
			}
		}
	}
	if piv != "" {
		return piv, nil
	}
	return "", &api.Error{Status: 409, Code: api.CodeNoCPS, Message: "no CPS card in any reader: insert the professional's card"}
}

// token returns the open token of reader's card, opening it on first use.
// Cards are opened lazily and kept until they go, as yubikey-agent does.
func (a *Agent) token(ctx context.Context, reader string) (pkcs11.Token, error) {
	a.cards.mu.Lock()
	defer a.cards.mu.Unlock()
	if t, ok := a.cards.tokens[reader]; ok {
		return t, nil
	}
	var t pkcs11.Token
	var err error
	if a.cfg.PKCS11Module == "piv" {
		t, err = pkcs11.OpenPIV(ctx, reader)
	} else {
		path := a.cfg.PKCS11Module
		if path == "" {
			path = pkcs11.DefaultModulePath()
		}
		var m *pkcs11.Module
		if m, err = pkcs11.LoadModule(path); err == nil {
			t, err = m.Open(ctx, reader)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the CPS in %q: %w", reader, err)
	}
	a.cards.tokens[reader] = t
	return t, nil
}

// identity reads the professional's identity from the authentication
// certificate, which needs no PIN.
func (a *Agent) identity(ctx context.Context, reader string) (cardreader.Identity, error) {
	a.cards.mu.Lock()
	id, ok := a.cards.identities[reader]
	a.cards.mu.Unlock()
	if ok {
		return id, nil
	}
	tok, err := a.token(ctx, reader)
	if err != nil {
		return cardreader.Identity{}, err
	}
	cert, err := tok.Certificate(ctx, pkcs11.Authentication)
	if err != nil {
		return cardreader.Identity{}, err
	}
	id, err = cardreader.IdentityFromCertificate(cert)
	if err != nil {
		return cardreader.Identity{}, err
	}
	a.cards.mu.Lock()
	a.cards.identities[reader] = id
	a.cards.mu.Unlock()
	return id, nil
}

func (a *Agent) getCPS(w http.ResponseWriter, r *http.Request, c *caller) error {
	reader, err := a.cpsReader()
	if err != nil {
		return err
	}
	id, err := a.identity(r.Context(), reader)
	if err != nil {
		return err
	}
	sit := a.situation(id)
	return writeJSON(w, 200, api.CPS{IDNat: id.IDNat, Surname: id.Surname, GivenName: id.GivenName,
		Profession: sit.Profession, ProfessionLabel: id.Profession, Specialty: sit.Specialty,
		StructureID: sit.StructureID, StructureName: sit.StructureName,
		NotAfter: id.NotAfter.UTC(), Reader: reader, Test: id.Test})
}

// readVitale reads a Vitale card in the background; getVitale waits for it.
func (a *Agent) readVitale(ctx context.Context, reader string) {
	v := &vitaleCard{done: make(chan struct{}), ins: map[string]insResult{}}
	a.cards.mu.Lock()
	a.cards.vitale[reader] = v
	a.cards.mu.Unlock()
	go func() {
		defer close(v.done)
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		v.data, v.err = a.vitale.ReadVitale(rctx, reader)
		if v.err != nil {
			a.log.Warn("reading the Vitale card failed", "reader", reader, "err", v.err)
		}
	}()
}

// vitaleCards returns the Vitale cards present, read.
func (a *Agent) vitaleCards(ctx context.Context) (map[string]*vitaleCard, error) {
	for _, r := range a.monitor.Readers() {
		if r.Card == nil || r.Card.Type != cardreader.TypeVitale {
			continue
		}
		a.cards.mu.Lock()
		_, ok := a.cards.vitale[r.Name]
		a.cards.mu.Unlock()
		if !ok { // inserted before the agent watched, or the read was dropped
			a.readVitale(context.WithoutCancel(ctx), r.Name)
		}
	}
	a.cards.mu.Lock()
	cards := make(map[string]*vitaleCard, len(a.cards.vitale))
	for k, v := range a.cards.vitale {
		cards[k] = v
	}
	a.cards.mu.Unlock()
	for _, v := range cards {
		select {
		case <-v.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return cards, nil
}

var errNoVitale = &api.Error{Status: 409, Code: api.CodeVitaleRequired,
	Message: "the patient's Vitale card must be in a reader: consent is captured with the card present"}

// vitaleError explains a Vitale card that could not be read.
func vitaleError(err error) *api.Error {
	e := &api.Error{Status: 409, Code: api.CodeVitaleRequired, Message: "the Vitale card could not be read: " + err.Error()}
	if errors.Is(err, cardreader.ErrNotVitale) {
		e.Message = "the card in the reader is not a readable Vitale card"
	}
	return e
}
