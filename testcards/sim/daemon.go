package sim

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vitale"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// Readers is the number of virtual readers vpcd offers by default.
const Readers = 2

// Files in the data directory.
const (
	SocketName = "sim.sock"
	PIDName    = "sim.pid"
	LogName    = "sim.log"
	PKIName    = "pki"
)

// pcscTimeout bounds how long insert and remove wait for pcscd to report
// the change; vpcd polls its cards about twice a second.
const pcscTimeout = 5 * time.Second

// Daemon holds the emulated cards.
type Daemon struct {
	dir   string
	log   *slog.Logger
	pki   *pki.PKI
	slots []*vpcd.Slot

	mu       sync.Mutex // guards the maps and inserted, and serialises insert/remove
	cps      map[string]*piv.Card
	vitale   map[string]*vitale.Card
	inserted []*insertedCard // by reader index
	shutdown chan struct{}

	// Services hosted beside the cards (the simulated DMP's patient side),
	// mounted before Serve.
	extra map[string]http.Handler
	dmp   *DMPStatus
}

type insertedCard struct {
	kind, persona string
	card          vpcd.Card
}

// NewDaemon prepares a daemon on dir, creating the test PKI there on first
// use.
func NewDaemon(dir string, log *slog.Logger) (*Daemon, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := pki.LoadOrCreate(filepath.Join(dir, PKIName))
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	d := &Daemon{
		dir: dir, log: log, pki: p,
		cps:      map[string]*piv.Card{},
		vitale:   map[string]*vitale.Card{},
		inserted: make([]*insertedCard, Readers),
		shutdown: make(chan struct{}),
	}
	for i := range Readers {
		d.slots = append(d.slots, vpcd.NewSlot(vpcd.Addr(i), log))
	}
	return d, nil
}

// Serve answers the control API on DIR/sim.sock until ctx ends or a
// shutdown request arrives, then takes every card out.
func (d *Daemon) Serve(ctx context.Context) error {
	sock := filepath.Join(d.dir, SocketName)
	if c := NewClient(d.dir); c.Alive(ctx) {
		return fmt.Errorf("a simulator already runs on %s", d.dir)
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	unlock, err := vpcd.LockReaders(lctx)
	cancel()
	if err != nil {
		return err
	}
	defer unlock()
	_ = os.Remove(sock) // stale socket of a daemon that died
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	// The socket controls cards holding test keys: owner only.
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, PIDName), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(filepath.Join(d.dir, PIDName))

	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	d.log.Info("simulator up", "dir", d.dir, "pid", os.Getpid())
	select {
	case <-ctx.Done():
	case <-d.shutdown:
	case err := <-errc:
		return err
	}
	for i := range d.slots {
		d.slots[i].Remove()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	os.Remove(sock)
	d.log.Info("simulator down")
	return err
}

// PKI is the test PKI of the simulation.
func (d *Daemon) PKI() *pki.PKI { return d.pki }

// Mount serves h on the control socket under pattern (a net/http pattern),
// for services that run beside the cards; call it before Serve.
func (d *Daemon) Mount(pattern string, h http.Handler) {
	if d.extra == nil {
		d.extra = map[string]http.Handler{}
	}
	d.extra[pattern] = h
}

// SetDMP records where the simulated DMP listens, for the status.
func (d *Daemon) SetDMP(st DMPStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dmp = &st
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range d.extra {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.status())
	})
	mux.HandleFunc("POST /v1/insert", func(w http.ResponseWriter, r *http.Request) {
		var req InsertRequest
		if !decode(w, r, &req) {
			return
		}
		rs, err := d.insert(r.Context(), req)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, rs)
	})
	mux.HandleFunc("POST /v1/remove", func(w http.ResponseWriter, r *http.Request) {
		var req RemoveRequest
		if !decode(w, r, &req) {
			return
		}
		if err := d.remove(r.Context(), req.Reader); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.status().Readers[req.Reader])
	})
	mux.HandleFunc("POST /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		var req FaultsRequest
		if !decode(w, r, &req) {
			return
		}
		if err := d.setFaults(req); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.status().Readers[req.Reader])
	})
	mux.HandleFunc("POST /v1/shutdown", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, struct{}{})
		select {
		case <-d.shutdown:
		default:
			close(d.shutdown)
		}
	})
	return mux
}

// userError is a request the daemon refuses; it maps to 4xx.
type userError struct {
	status int
	msg    string
}

func (e *userError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &userError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &userError{http.StatusConflict, fmt.Sprintf(format, args...)}
}

func (d *Daemon) checkReader(n int) error {
	if n < 0 || n >= len(d.slots) {
		return badRequest("no reader %d: vpcd offers readers 0 to %d", n, len(d.slots)-1)
	}
	return nil
}

func (d *Daemon) insert(ctx context.Context, req InsertRequest) (ReaderStatus, error) {
	if err := d.checkReader(req.Reader); err != nil {
		return ReaderStatus{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	slot := d.slots[req.Reader]
	if d.inserted[req.Reader] != nil && slot.Card() != nil {
		return ReaderStatus{}, conflict("reader %d already holds a card (%s %s): remove it first", req.Reader, d.inserted[req.Reader].kind, d.inserted[req.Reader].persona)
	}
	d.inserted[req.Reader] = nil
	for i, in := range d.inserted {
		if in != nil && in.kind == req.Kind && in.persona == req.Persona && d.slots[i].Card() != nil {
			return ReaderStatus{}, conflict("the %s card of %s is already in reader %d", req.Kind, req.Persona, i)
		}
	}
	card, err := d.card(req)
	if err != nil {
		return ReaderStatus{}, err
	}
	if err := slot.Insert(card, req.Faults); err != nil {
		return ReaderStatus{}, conflict("reader %d: %v", req.Reader, err)
	}
	d.inserted[req.Reader] = &insertedCard{req.Kind, req.Persona, card}
	atr := slot.ATR()
	wctx, cancel := context.WithTimeout(ctx, pcscTimeout)
	defer cancel()
	if err := slot.WaitConnected(wctx); err != nil {
		slot.Remove()
		d.inserted[req.Reader] = nil
		return ReaderStatus{}, err
	}
	if err := vpcd.WaitPCSC(wctx, req.Reader, true, atr); err != nil {
		slot.Remove()
		d.inserted[req.Reader] = nil
		return ReaderStatus{}, err
	}
	d.log.Info("card inserted", "reader", req.Reader, "kind", req.Kind, "persona", req.Persona)
	return d.readerStatusLocked(req.Reader), nil
}

// card returns the persona's card, the one last used unless Fresh is set.
func (d *Daemon) card(req InsertRequest) (vpcd.Card, error) {
	switch req.Kind {
	case KindCPS:
		if c, ok := d.cps[req.Persona]; ok && !req.Fresh {
			return c, nil
		}
		c, err := testcards.NewCPS(d.pki, req.Persona)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		d.cps[req.Persona] = c
		return c, nil
	case KindVitale:
		if c, ok := d.vitale[req.Persona]; ok && !req.Fresh {
			return c, nil
		}
		c, err := testcards.NewVitale(req.Persona)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		d.vitale[req.Persona] = c
		return c, nil
	}
	return nil, badRequest("unknown card kind %q: want cps or vitale", req.Kind)
}

func (d *Daemon) remove(ctx context.Context, n int) error {
	if err := d.checkReader(n); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.slots[n].Remove()
	d.inserted[n] = nil
	wctx, cancel := context.WithTimeout(ctx, pcscTimeout)
	defer cancel()
	return vpcd.WaitPCSC(wctx, n, false, nil)
}

func (d *Daemon) setFaults(req FaultsRequest) error {
	if err := d.checkReader(req.Reader); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.slots[req.Reader].Card() == nil {
		return conflict("reader %d is empty", req.Reader)
	}
	d.slots[req.Reader].SetFaults(req.Faults)
	return nil
}

func (d *Daemon) status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{PID: os.Getpid(), Dir: d.dir, PKIDir: d.pki.Dir, DMP: d.dmp}
	for i := range d.slots {
		st.Readers = append(st.Readers, d.readerStatusLocked(i))
	}
	return st
}

func (d *Daemon) readerStatusLocked(n int) ReaderStatus {
	rs := ReaderStatus{Index: n, Name: vpcd.ReaderName(n)}
	slot, in := d.slots[n], d.inserted[n]
	card := slot.Card()
	if card == nil || in == nil {
		return rs
	}
	cs := &CardStatus{Kind: in.kind, Persona: in.persona, ATR: hexSpaced(slot.ATR()), Connected: slot.Connected(), Faults: slot.Faults()}
	if p, ok := card.(*piv.Card); ok {
		pin, puk := p.PINTriesLeft(), p.PUKTriesLeft()
		cs.PINTries, cs.PUKTries = &pin, &puk
	}
	rs.Card = cs
	return rs
}

func hexSpaced(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, errorBody{"malformed request: " + err.Error()})
		return false
	}
	return true
}

func fail(w http.ResponseWriter, err error) {
	var ue *userError
	if errors.As(err, &ue) {
		reply(w, ue.status, errorBody{ue.msg})
		return
	}
	reply(w, http.StatusServiceUnavailable, errorBody{err.Error()})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
