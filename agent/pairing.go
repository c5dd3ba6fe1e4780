package agent

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// Pairing: an application without a token asks for one (POST /v1/pairings)
// and shows the user a short code; the user approves that code on the
// agent's own page or with `dmpagent pair approve CODE`; the application's
// next poll (GET /v1/pairings/{id}, the id being its secret) collects the
// token, once. Nothing is stored until approval: requests live in memory
// for a few minutes.
const (
	pairingTTL        = 5 * time.Minute
	maxPendingPairing = 8
)

type pairing struct {
	api.Pairing
	secret string // the token, between approval and collection
}

type pairings struct {
	mu  sync.Mutex
	m   map[string]*pairing // by id
	now func() time.Time
}

func newPairings(now func() time.Time) *pairings {
	return &pairings{m: map[string]*pairing{}, now: now}
}

func (p *pairings) expire() {
	now := p.now()
	for id, x := range p.m {
		if now.After(x.Expires) {
			if x.State == api.PairingPending {
				x.State = api.PairingExpired
			}
			if now.After(x.Expires.Add(pairingTTL)) {
				delete(p.m, id)
			}
		}
	}
}

func (p *pairings) request(app, origin string) (api.Pairing, error) {
	origin, err := validateApp(app, origin)
	if err != nil {
		return api.Pairing{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire()
	pending := 0
	for _, x := range p.m {
		if x.State == api.PairingPending {
			pending++
		}
	}
	if pending >= maxPendingPairing {
		return api.Pairing{}, &api.Error{Status: 429, Code: api.CodeTooManyPairings,
			Message: "too many pairing requests are waiting for approval; try again in a few minutes"}
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	x := &pairing{Pairing: api.Pairing{ID: "pair_" + hex.EncodeToString(idb), Code: p.newCode(), App: app,
		Origin: origin, State: api.PairingPending, Expires: p.now().Add(pairingTTL).UTC()}}
	p.m[x.ID] = x
	return x.Pairing, nil
}

// newCode returns a code of 8 digits, unique among the live requests, as
// "1234-5678" so that it reads aloud.
func (p *pairings) newCode() string {
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(100_000_000))
		c := fmt.Sprintf("%04d-%04d", n.Int64()/10000, n.Int64()%10000)
		if p.byCodeLocked(c) == nil {
			return c
		}
	}
}

func (p *pairings) byCodeLocked(code string) *pairing {
	for _, x := range p.m {
		if x.Code == code {
			return x
		}
	}
	return nil
}

func normaliseCode(code string) string {
	digits := make([]byte, 0, 8)
	for i := 0; i < len(code); i++ {
		if c := code[i]; c >= '0' && c <= '9' {
			digits = append(digits, c)
		}
	}
	if len(digits) != 8 {
		return code
	}
	return string(digits[:4]) + "-" + string(digits[4:])
}

var errPairingNotFound = &api.Error{Status: 404, Code: api.CodePairingNotFound, Message: "no pending pairing has this code (it may have expired)"}

// decide approves or denies a pending request; mint makes the token on
// approval.
func (p *pairings) decide(code string, approve bool, mint func(app, origin string) (string, error)) (api.Pairing, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire()
	x := p.byCodeLocked(normaliseCode(code))
	if x == nil || x.State != api.PairingPending {
		return api.Pairing{}, errPairingNotFound
	}
	if !approve {
		x.State = api.PairingDenied
		return x.public(), nil
	}
	secret, err := mint(x.App, x.Origin)
	if err != nil {
		return api.Pairing{}, err
	}
	x.State, x.secret = api.PairingApproved, secret
	return x.public(), nil
}

// public is a pairing as shown to an approver: without the requester's
// id, which would let the approver collect the token.
func (x *pairing) public() api.Pairing {
	out := x.Pairing
	out.ID = ""
	return out
}

// poll is the requester's view; the token is handed out once.
func (p *pairings) poll(id string) (api.Pairing, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire()
	x, ok := p.m[id]
	if !ok {
		return api.Pairing{}, errPairingNotFound
	}
	out := x.Pairing
	if x.secret != "" {
		out.Token, x.secret = x.secret, ""
		delete(p.m, id)
	}
	return out, nil
}

func (p *pairings) pending() []api.Pairing {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire()
	var out []api.Pairing
	for _, x := range p.m {
		if x.State == api.PairingPending {
			out = append(out, x.public())
		}
	}
	return out
}
