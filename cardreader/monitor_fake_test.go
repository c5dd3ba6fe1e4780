package cardreader

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"
)

// The monitor's real-stack tests (monitor_test.go) cover what pcsc-lite
// does on demand. These drive it through the statusContext seam with a fake
// that follows pcsc-lite's and Windows' documented behaviour, for what a
// test machine cannot produce: Windows' SCARD_E_SERVICE_STOPPED, readers
// plugged and unplugged, "no readers" answers, cards swapped between two
// waits, and the reader-list poll of platforms without PnP notification.

type fakeCard struct {
	atr  []byte
	mute bool
}

// fakePCSC is one PC/SC service as the monitor sees it through contexts.
type fakePCSC struct {
	mu        sync.Mutex
	readers   []string
	cards     map[string]fakeCard
	counts    map[string]uint32 // per-reader event counters
	failNext  error             // returned by the next GetStatusChange
	establish []error           // errors for the next establish calls
	changed   chan struct{}
	contexts  int // live contexts
}

func newFake(readers ...string) *fakePCSC {
	return &fakePCSC{readers: readers, cards: map[string]fakeCard{}, counts: map[string]uint32{}, changed: make(chan struct{}, 1)}
}

func (f *fakePCSC) update(fn func()) {
	f.mu.Lock()
	fn()
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakePCSC) insert(reader string, atr []byte) {
	f.update(func() { f.cards[reader] = fakeCard{atr: atr}; f.counts[reader]++ })
}

func (f *fakePCSC) remove(reader string) {
	f.update(func() { delete(f.cards, reader); f.counts[reader]++ })
}

func (f *fakePCSC) connect() (statusContext, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.establish) > 0 {
		err := f.establish[0]
		f.establish = f.establish[1:]
		if err != nil {
			return nil, err
		}
	}
	f.contexts++
	return &fakeContext{f: f, cancel: make(chan struct{}, 1)}, nil
}

type fakeContext struct {
	f        *fakePCSC
	cancel   chan struct{}
	released bool
}

func (c *fakeContext) ListReaders() ([]string, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if len(c.f.readers) == 0 {
		return nil, scard.ErrNoReadersAvailable // what pcsc-lite answers
	}
	return slices.Clone(c.f.readers), nil
}

// state computes what the service would report for one reader.
func (f *fakePCSC) state(name string) (scard.StateFlag, []byte) {
	if name == pnpReader {
		return scard.StateFlag(len(f.readers) << 16), nil
	}
	if !slices.Contains(f.readers, name) {
		return scard.StateUnknown | scard.StateIgnore, nil
	}
	st := scard.StateFlag(f.counts[name] << 16)
	if c, ok := f.cards[name]; ok {
		if c.mute {
			return st | scard.StatePresent | scard.StateMute, nil
		}
		return st | scard.StatePresent, c.atr
	}
	return st | scard.StateEmpty, nil
}

func (c *fakeContext) GetStatusChange(states []scard.ReaderState, timeout time.Duration) error {
	var expire <-chan time.Time
	if timeout >= 0 {
		expire = time.After(timeout)
	}
	for {
		c.f.mu.Lock()
		if err := c.f.failNext; err != nil {
			c.f.failNext = nil
			c.f.mu.Unlock()
			return err
		}
		changed := false
		for i := range states {
			st, atr := c.f.state(states[i].Reader)
			if st != states[i].CurrentState&^scard.StateChanged {
				states[i].EventState, states[i].Atr = st|scard.StateChanged, atr
				changed = true
			} else {
				states[i].EventState = st
			}
		}
		c.f.mu.Unlock()
		if changed {
			return nil
		}
		select {
		case <-c.f.changed:
		case <-c.cancel:
			return scard.ErrCancelled
		case <-expire:
			return scard.ErrTimeout
		}
	}
}

func (c *fakeContext) Cancel() error {
	select {
	case c.cancel <- struct{}{}:
	default:
	}
	return nil
}

func (c *fakeContext) Release() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if !c.released {
		c.released = true
		c.f.contexts--
	}
	return nil
}

// vitaleATR and cps3ATR come from DESIGN §5: cards the monitor identifies
// without a probe (the fake has no card to probe).
var (
	vitaleATR = []byte{0x3B, 0x75, 0x13, 0x00, 0x00, 0x47, 0x09, 0xEA, 0x90, 0x00}
	cps3ATR   = []byte{0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00, 0x12, 0x25, 0x00, 0x64, 0x80, 0x00, 0x03, 0x10, 0x00, 0x90, 0x00}
)

type fakeRun struct {
	t      *testing.T
	f      *fakePCSC
	m      *Monitor
	events chan Event
	cancel context.CancelFunc
	done   chan error
}

func runFake(t *testing.T, f *fakePCSC, pnp bool) *fakeRun {
	t.Helper()
	m := NewMonitor(MonitorConfig{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	m.establish = f.connect
	m.pnp = pnp
	m.pollInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	r := &fakeRun{t: t, f: f, m: m, events: make(chan Event, 32), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx, r.events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.contexts != 0 {
			t.Errorf("%d PC/SC contexts left unreleased", f.contexts)
		}
	})
	return r
}

// want takes events and compares "kind reader" pairs in order.
func (r *fakeRun) want(seq ...string) []Event {
	r.t.Helper()
	var got []Event
	for i, w := range seq {
		select {
		case e := <-r.events:
			got = append(got, e)
			s := string(e.Kind)
			if e.Reader != "" {
				s += " " + e.Reader
			}
			if s != w {
				r.t.Fatalf("event %d is %q (%v), want %q in %q", i, s, e, w, seq)
			}
		case <-time.After(5 * time.Second):
			r.t.Fatalf("no event %d (%q) within 5 s", i, w)
		}
	}
	return got
}

func (r *fakeRun) quiet() {
	r.t.Helper()
	select {
	case e := <-r.events:
		r.t.Fatalf("unexpected event %v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestFakeServiceStoppedAndBack(t *testing.T) {
	f := newFake("R1")
	f.insert("R1", vitaleATR)
	r := runFake(t, f, true)
	r.want("reader-added R1", "card-inserted R1")
	// Windows: the last reader is unplugged and the service stops; it
	// refuses contexts for a while, then comes back with the reader.
	f.update(func() {
		f.failNext = scard.ErrServiceStopped
		f.establish = []error{scard.ErrNoService, scard.ErrNoService}
	})
	evs := r.want("card-removed R1", "reader-removed R1", "service-lost")
	if !errors.Is(evs[2].Err, ErrNoService) || !errors.Is(evs[2].Err, scard.ErrServiceStopped) {
		t.Errorf("service-lost error %v, want ErrNoService wrapping SCARD_E_SERVICE_STOPPED", evs[2].Err)
	}
	r.want("service-restored", "reader-added R1", "card-inserted R1")
	r.quiet()
}

func TestFakeNoServiceAtStart(t *testing.T) {
	f := newFake("R1")
	f.establish = []error{scard.ErrNoService, scard.ErrNoService, scard.ErrNoService}
	r := runFake(t, f, true)
	r.want("service-lost")
	if r.m.ServiceErr() == nil {
		t.Error("ServiceErr() is nil while the service is down")
	}
	// Retries are not reported again, only the recovery.
	r.want("service-restored", "reader-added R1")
	r.quiet()
}

func TestFakeReadersPluggedAndUnplugged(t *testing.T) {
	for _, pnp := range []bool{true, false} {
		name := "pnp"
		if !pnp {
			name = "poll"
		}
		t.Run(name, func(t *testing.T) {
			f := newFake() // no reader: ListReaders says SCARD_E_NO_READERS_AVAILABLE
			r := runFake(t, f, pnp)
			r.quiet()
			f.update(func() { f.readers = []string{"R1"} })
			r.want("reader-added R1")
			f.insert("R1", cps3ATR)
			e := r.want("card-inserted R1")[0]
			if e.Card.Model != ModelCPS3 {
				t.Errorf("card %v, want a CPS3", e.Card)
			}
			f.remove("R1")
			r.want("card-removed R1")
			f.insert("R1", vitaleATR)
			r.want("card-inserted R1")
			f.update(func() { f.readers = []string{"R1", "R2"} })
			r.want("reader-added R2")
			// Unplugging a reader with its card in: the card goes first.
			f.update(func() { f.readers = []string{"R2"}; delete(f.cards, "R1") })
			r.want("card-removed R1", "reader-removed R1")
			if rs := r.m.Readers(); len(rs) != 1 || rs[0].Name != "R2" {
				t.Errorf("Readers() = %v", rs)
			}
			r.quiet()
		})
	}
}

func TestFakeCardSwappedBetweenWaits(t *testing.T) {
	f := newFake("R1")
	f.insert("R1", vitaleATR)
	r := runFake(t, f, true)
	r.want("reader-added R1", "card-inserted R1")
	// Powered down and up again (pcscd's idle power-off, another
	// application's reset): the reader shows no ATR for a while, then the
	// same one, and the counter does not move. Same card, no event.
	f.update(func() { f.cards["R1"] = fakeCard{mute: true} })
	r.quiet()
	f.update(func() { f.cards["R1"] = fakeCard{atr: vitaleATR} })
	r.quiet()
	// Out and in again before the monitor waits again: still present, but
	// the event counter moved by two.
	f.update(func() { f.cards["R1"] = fakeCard{atr: cps3ATR}; f.counts["R1"] += 2 })
	evs := r.want("card-removed R1", "card-inserted R1")
	if evs[0].Card.Type != TypeVitale || evs[1].Card.Type != TypeCPS {
		t.Errorf("swap reported %v then %v", evs[0].Card, evs[1].Card)
	}
	// A state change that is not the card's (another application connects)
	// is no event.
	f.update(func() {})
	r.quiet()
}

func TestFakeUnknownReaderRecovers(t *testing.T) {
	f := newFake("R1")
	r := runFake(t, f, true)
	r.want("reader-added R1")
	// The reader vanishes between listing and waiting.
	f.update(func() { f.failNext = scard.ErrUnknownReader; f.readers = nil })
	r.want("reader-removed R1")
	r.quiet()
}

func TestFakeMuteCardThenAnswers(t *testing.T) {
	f := newFake("R1")
	f.update(func() { f.cards["R1"] = fakeCard{mute: true}; f.counts["R1"]++ })
	r := runFake(t, f, true)
	evs := r.want("reader-added R1", "card-inserted R1")
	if evs[1].Card.Type != TypeUnknown || !strings.Contains(evs[1].Card.Reason, "mute") {
		t.Fatalf("mute card reported as %v", evs[1].Card)
	}
	// The card answers at last (pcscd powered it again): reported again
	// with what its ATR says.
	f.update(func() { f.cards["R1"] = fakeCard{atr: vitaleATR} })
	evs = r.want("card-removed R1", "card-inserted R1")
	if evs[1].Card.Type != TypeVitale {
		t.Fatalf("card reported as %v once it answers", evs[1].Card)
	}
}
