package cardreader_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// These tests run the monitor on the real stack: pcscd with the vpcd
// driver, and the emulated cards of testcards plugged into it. pcscd polls
// vpcd's readers every 400 ms, so an insertion takes up to that long to be
// seen whoever watches; the waits below allow for it.

// eventWait bounds the wait for one event: pcscd's polling plus slack for a
// loaded machine.
const eventWait = 5 * time.Second

// yubiKeyATR is a YubiKey 5 NFC over USB (pcsc-tools' list): an ATR that
// needs the PIV probe.
var yubiKeyATR = []byte{
	0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0,
	0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
}

// watcher runs a Monitor for one test and hands its events out.
type watcher struct {
	t      testing.TB
	m      *cardreader.Monitor
	events chan cardreader.Event
	cancel context.CancelFunc
	done   chan error
}

func startMonitor(t testing.TB, cfg cardreader.MonitorConfig) *watcher {
	t.Helper()
	cardtest.Lock(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{t: t, m: cardreader.NewMonitor(cfg), events: make(chan cardreader.Event, 64), cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- w.m.Run(ctx, w.events) }()
	t.Cleanup(w.stop)
	return w
}

// stop cancels the monitor and checks that Run returns promptly with the
// context's error.
func (w *watcher) stop() {
	w.t.Helper()
	if w.cancel == nil {
		return
	}
	w.cancel()
	w.cancel = nil
	select {
	case err := <-w.done:
		if !errors.Is(err, context.Canceled) {
			w.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		w.t.Fatal("Run did not return within 5 s of its context ending")
	}
}

func (w *watcher) next() cardreader.Event {
	w.t.Helper()
	select {
	case e := <-w.events:
		return e
	case <-time.After(eventWait):
		w.t.Fatalf("no event within %v", eventWait)
		return cardreader.Event{}
	}
}

// expect takes the next event and checks its kind and reader.
func (w *watcher) expect(kind cardreader.EventKind, reader string) cardreader.Event {
	w.t.Helper()
	e := w.next()
	if e.Kind != kind || e.Reader != reader {
		w.t.Fatalf("got event %v, want %s %s", e, kind, reader)
	}
	return e
}

// quiet checks that no event comes for d.
func (w *watcher) quiet(d time.Duration) {
	w.t.Helper()
	select {
	case e := <-w.events:
		w.t.Fatalf("unexpected event %v", e)
	case <-time.After(d):
	}
}

// expectReaders takes the ReaderAdded events the monitor starts with and
// checks that both vpcd readers are among them; other readers on the machine
// are tolerated but must have no card.
func (w *watcher) expectReaders() {
	w.t.Helper()
	want := map[string]bool{vpcd.ReaderName(0): true, vpcd.ReaderName(1): true}
	for len(want) > 0 {
		e := w.next()
		if e.Kind != cardreader.ReaderAdded {
			w.t.Fatalf("got %v before both vpcd readers were added", e)
		}
		delete(want, e.Reader)
	}
}

func TestMonitorReportsEachPersona(t *testing.T) {
	w := startMonitor(t, cardreader.MonitorConfig{})
	w.expectReaders()
	p := cardtest.PKI(t)

	type want struct {
		typ   cardreader.CardType
		model cardreader.Model
	}
	type step struct {
		name   string
		reader int
		card   func() (vpcd.Card, error)
		want   want
	}
	var steps []step
	for _, pro := range persona.Professionals() {
		steps = append(steps, step{"cps " + pro.Name, 0, func() (vpcd.Card, error) { return testcards.NewCPS(p, pro.Name) },
			want{cardreader.TypeCPS, cardreader.ModelTestCPS}})
	}
	for _, pat := range persona.Patients() {
		steps = append(steps, step{"vitale " + pat.Name, 1, func() (vpcd.Card, error) { return testcards.NewVitale(pat.Name) },
			want{cardreader.TypeVitale, cardreader.ModelVitale2}})
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			w.t = t
			card, err := s.card()
			if err != nil {
				t.Fatal(err)
			}
			reader := vpcd.ReaderName(s.reader)
			slot := cardtest.Insert(t, s.reader, card, vpcd.Faults{})
			in := w.expect(cardreader.CardInserted, reader)
			if in.Card.Type != s.want.typ || in.Card.Model != s.want.model || in.Card.Reason != "" {
				t.Errorf("inserted card is %v, want %s/%s", in.Card, s.want.typ, s.want.model)
			}
			if string(in.Card.ATR) != string(card.ATR()) {
				t.Errorf("event ATR % X, card's % X", in.Card.ATR, card.ATR())
			}
			if got := statusOf(w.m, reader); got == nil || got.Model != s.want.model {
				t.Errorf("Readers() shows %v in %s after insertion", got, reader)
			}
			cardtest.Remove(t, slot, s.reader)
			out := w.expect(cardreader.CardRemoved, reader)
			if out.Card == nil || out.Card.Model != s.want.model {
				t.Errorf("removal names %v, want the %s that left", out.Card, s.want.model)
			}
			if got := statusOf(w.m, reader); got != nil {
				t.Errorf("Readers() still shows %v in %s after removal", got, reader)
			}
		})
	}
	w.t = t
	// pcscd polls every 400 ms: a spurious event would have shown by now.
	w.quiet(time.Second)
}

func statusOf(m *cardreader.Monitor, reader string) *cardreader.CardInfo {
	for _, r := range m.Readers() {
		if r.Name == reader {
			return r.Card
		}
	}
	return nil
}

// TestMonitorBothReaders puts a CPS and a Vitale card in at once, as on a
// GP's desk, and pulls them in the other order.
func TestMonitorBothReaders(t *testing.T) {
	w := startMonitor(t, cardreader.MonitorConfig{})
	w.expectReaders()
	cps, err := testcards.NewCPS(cardtest.PKI(t), "gp")
	if err != nil {
		t.Fatal(err)
	}
	vit, err := testcards.NewVitale("family")
	if err != nil {
		t.Fatal(err)
	}
	s0 := cardtest.Insert(t, 0, cps, vpcd.Faults{})
	s1 := cardtest.Insert(t, 1, vit, vpcd.Faults{})
	got := map[string]cardreader.CardType{}
	for range 2 {
		e := w.next()
		if e.Kind != cardreader.CardInserted {
			t.Fatalf("got %v, want two insertions", e)
		}
		got[e.Reader] = e.Card.Type
	}
	if got[vpcd.ReaderName(0)] != cardreader.TypeCPS || got[vpcd.ReaderName(1)] != cardreader.TypeVitale {
		t.Fatalf("insertions %v", got)
	}
	if rs := w.m.Readers(); len(rs) < 2 {
		t.Fatalf("Readers() = %v", rs)
	}
	cardtest.Remove(t, s1, 1)
	w.expect(cardreader.CardRemoved, vpcd.ReaderName(1))
	cardtest.Remove(t, s0, 0)
	w.expect(cardreader.CardRemoved, vpcd.ReaderName(0))
}

// TestMonitorAlreadyInserted: cards in the readers before the monitor
// starts are reported right after their readers.
func TestMonitorAlreadyInserted(t *testing.T) {
	cardtest.Lock(t)
	vit, err := testcards.NewVitale("single")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 1, vit, vpcd.Faults{})
	w := startMonitor(t, cardreader.MonitorConfig{})
	seenReader := false
	for {
		e := w.next()
		if e.Kind == cardreader.ReaderAdded && e.Reader == vpcd.ReaderName(1) {
			seenReader = true
		}
		if e.Kind == cardreader.CardInserted {
			if !seenReader || e.Reader != vpcd.ReaderName(1) || e.Card.Type != cardreader.TypeVitale {
				t.Fatalf("got %v (reader reported first: %v)", e, seenReader)
			}
			return
		}
	}
}

// garbageCard answers every APDU with bytes that end in no valid status
// word.
type garbageCard struct{ atr []byte }

func (c garbageCard) ATR() []byte                { return c.atr }
func (c garbageCard) Transmit(cmd []byte) []byte { return []byte{0x13, 0x37, 0x42} }
func (c garbageCard) Reset()                     {}

// TestMonitorUnknownCards: ATRs that say nothing, and cards that fail the
// identification probe, are reported unknown with a reason; the monitor
// goes on with the next card.
func TestMonitorUnknownCards(t *testing.T) {
	w := startMonitor(t, cardreader.MonitorConfig{ProbeTimeout: time.Second})
	w.expectReaders()
	cps := func() vpcd.Card {
		c, err := testcards.NewCPS(cardtest.PKI(t), "gp")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name   string
		card   vpcd.Card
		faults vpcd.Faults
		typ    cardreader.CardType
		reason string // substring; empty: recognised
	}{
		{"unknown ATR", cps(), vpcd.Faults{ATR: []byte{0x3B, 0x02, 0x14, 0x50}}, cardreader.TypeUnknown, "matches no known card"},
		{"ATR that does not decode", cps(), vpcd.Faults{ATR: []byte{0x3B, 0xFF, 0x00}}, cardreader.TypeUnknown, "does not decode"},
		{"YubiKey provisioned as a test CPS", cps(), vpcd.Faults{ATR: yubiKeyATR}, cardreader.TypeCPS, ""},
		{"YubiKey with another PIV identity", plainPIV(t), vpcd.Faults{ATR: yubiKeyATR}, cardreader.TypePIV, ""},
		{"YubiKey refusing PIV", cps(), vpcd.Faults{ATR: yubiKeyATR, ForceSW: 0x6A82}, cardreader.TypeUnknown, "refused SELECT"},
		{"YubiKey answering garbage", garbageCard{yubiKeyATR}, vpcd.Faults{}, cardreader.TypeUnknown, "garbage"},
		{"YubiKey too slow", cps(), vpcd.Faults{ATR: yubiKeyATR, Delay: 2 * time.Second}, cardreader.TypeUnknown, "no answer"},
		{"YubiKey pulled during the probe", cps(), vpcd.Faults{ATR: yubiKeyATR, PullAfter: 1}, cardreader.TypeUnknown, "removed during identification"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			slot := vpcd.NewSlot(vpcd.Addr(0), nil)
			if err := slot.Insert(c.card, c.faults); err != nil {
				t.Fatal(err)
			}
			defer func() {
				slot.Remove()
				// Whatever happened, the card's exit is reported once.
				w.expect(cardreader.CardRemoved, vpcd.ReaderName(0))
			}()
			in := w.expect(cardreader.CardInserted, vpcd.ReaderName(0))
			if in.Card.Type != c.typ || !strings.Contains(in.Card.Reason, c.reason) || (c.reason == "") != (in.Card.Reason == "") {
				t.Fatalf("card reported as %v, want %s with reason containing %q", in.Card, c.typ, c.reason)
			}
			if c.reason == "" && !in.Card.Probed {
				t.Errorf("YubiKey not marked probed: %+v", in.Card)
			}
			if c.typ == cardreader.TypeCPS && in.Card.Model != cardreader.ModelTestCPS {
				t.Errorf("YubiKey with a CPS certificate is %s, want %s", in.Card.Model, cardreader.ModelTestCPS)
			}
		})
	}
}

// plainPIV is a PIV token with no CPS identity: only a card authentication
// key (9E), no PIV authentication certificate.
func plainPIV(t testing.TB) vpcd.Card {
	keys, err := cardtest.PKI(t).Card("gp")
	if err != nil {
		t.Fatal(err)
	}
	c, err := piv.New(piv.Config{PIN: testcards.PIN, PUK: testcards.PUK, Keys: map[byte]piv.Key{
		piv.SlotCardAuthentication: {Signer: keys.CardAuth.Key, Cert: keys.CardAuth.Cert, PINPolicy: piv.PINNever},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMonitorDoesNotHoldCards: with the monitor running (and after it
// probed a card), another application can take the card exclusively.
func TestMonitorDoesNotHoldCards(t *testing.T) {
	w := startMonitor(t, cardreader.MonitorConfig{})
	w.expectReaders()
	c, err := testcards.NewCPS(cardtest.PKI(t), "nurse")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 0, c, vpcd.Faults{ATR: yubiKeyATR})
	if e := w.expect(cardreader.CardInserted, vpcd.ReaderName(0)); !e.Card.Probed {
		t.Fatalf("want a probed card, got %v", e.Card)
	}
	if err := exclusiveConnect(vpcd.ReaderName(0)); err != nil {
		t.Fatalf("another application cannot take the card exclusively while the monitor runs: %v", err)
	}
}

// TestOneMonitorPerProcess: a second Run refuses rather than race the first
// inside ebfe/scard.
func TestOneMonitorPerProcess(t *testing.T) {
	w := startMonitor(t, cardreader.MonitorConfig{})
	w.expectReaders()
	err := cardreader.NewMonitor(cardreader.MonitorConfig{}).Run(context.Background(), make(chan cardreader.Event))
	if !errors.Is(err, cardreader.ErrMonitorRunning) {
		t.Fatalf("second Run returned %v, want ErrMonitorRunning", err)
	}
}

// TestMonitorStopLeavesNothing starts and stops the monitor repeatedly:
// goroutines and file descriptors come back to where they were.
func TestMonitorStopLeavesNothing(t *testing.T) {
	cardtest.Lock(t)
	run := func() {
		w := startMonitor(t, cardreader.MonitorConfig{})
		w.expectReaders()
		w.stop()
	}
	run() // warm up whatever the runtime and libpcsclite keep
	g0, fd0 := settle(t)
	for range 20 {
		run()
	}
	g1, fd1 := settle(t)
	t.Logf("goroutines %d -> %d, fds %d -> %d over 20 start/stop", g0, g1, fd0, fd1)
	if g1 > g0 || fd1 > fd0 {
		t.Errorf("leak: goroutines %d -> %d, fds %d -> %d", g0, g1, fd0, fd1)
	}
}

// settle waits for goroutines that are ending to end and returns the
// goroutine and open file counts.
func settle(t testing.TB) (goroutines, fds int) {
	t.Helper()
	g := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		if n := runtime.NumGoroutine(); n >= g {
			break
		} else {
			g = n
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return runtime.NumGoroutine(), len(ents)
}

// exclusiveConnect does what a program that wants the card to itself does:
// connect in exclusive mode (it fails with a sharing violation while anyone
// else is connected).
func exclusiveConnect(reader string) error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer sc.Release()
	c, err := sc.Connect(reader, scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		return err
	}
	return c.Disconnect(scard.LeaveCard)
}
