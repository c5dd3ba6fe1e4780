package cardreader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ebfe/scard"
)

// EventKind says what changed. Scripts and logs rely on its values, so they
// never change; the agent names them for its API (card-inserted is the
// event card.inserted).
type EventKind string

const (
	ReaderAdded   EventKind = "reader-added"
	ReaderRemoved EventKind = "reader-removed"
	CardInserted  EventKind = "card-inserted"
	CardRemoved   EventKind = "card-removed"
	// ServiceLost: the PC/SC service went away (pcscd stopped or
	// restarting, Windows' service stopped with the last reader). Every
	// reader has been reported removed just before; the monitor keeps
	// trying to reconnect.
	ServiceLost EventKind = "service-lost"
	// ServiceRestored: the service answers again after ServiceLost; the
	// readers and cards it has follow as ReaderAdded and CardInserted.
	ServiceRestored EventKind = "service-restored"
)

// Event is one change the monitor saw.
type Event struct {
	Kind   EventKind
	Reader string    // empty for the service events
	Card   *CardInfo // CardInserted and CardRemoved: the card that came or went
	Err    error     // ServiceLost: why
	Time   time.Time
}

func (e Event) String() string {
	s := string(e.Kind)
	if e.Reader != "" {
		s += " " + e.Reader
	}
	if e.Card != nil {
		s += ": " + e.Card.String()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// CardInfo is what the monitor knows of a card without asking for a PIN.
type CardInfo struct {
	Identification
	// ATR as the reader reported it; empty for a mute card.
	ATR []byte
	// Probed: a SELECT of the application confirmed what the ATR suggested.
	Probed bool
	// Reason says why Type is TypeUnknown: the ATR is unknown or does not
	// decode, the card is mute, or a probe failed (answered garbage, timed
	// out, the card was pulled). Empty for a recognised card.
	Reason string
}

func (c *CardInfo) String() string {
	s := c.Identification.String()
	if c.Reason != "" {
		s += " [" + c.Reason + "]"
	}
	return s
}

// ReaderStatus is one reader and the card the monitor last reported in it.
type ReaderStatus struct {
	Name string
	Card *CardInfo // nil: empty, or a card still being identified
}

// MonitorConfig tunes a Monitor; the zero value is ready to use.
type MonitorConfig struct {
	Log *slog.Logger // nil: slog.Default()
	// Table replaces the identification table (KnownCards plus the
	// agent's own entries, say); nil means the built-in one.
	Table []Entry
	// ProbeTimeout bounds a confirming probe; a card silent for longer is
	// reported unknown. Default 3 s, well above a real card's few
	// milliseconds and below what a GP would wait for.
	ProbeTimeout time.Duration
}

const (
	defaultProbeTimeout = 3 * time.Second
	// readerPollInterval is how often the monitor lists the readers where
	// the platform has no PnP notification (macOS).
	readerPollInterval = time.Second
	// retryMin and retryMax bound the wait between attempts to reach a
	// PC/SC service that went away. The cap is what a card can take to
	// show up again once pcscd is back, so it stays well under a second;
	// a failed attempt costs one refused local connection.
	retryMin = 100 * time.Millisecond
	retryMax = 500 * time.Millisecond
	// lostCardGrace is how long a card that stopped answering during its
	// probe may take to be reported removed: pcscd polls some readers
	// (vpcd, serial readers) every 400 ms.
	lostCardGrace = time.Second
	// healthySession resets the backoff: a context that worked this long
	// was not failing in a loop.
	healthySession = 2 * time.Second
)

// Monitor watches every PC/SC reader and reports readers and cards coming
// and going. It blocks in SCardGetStatusChange with no timeout (PnP
// notification tells it about readers), so an idle desk costs no CPU; it
// survives the PC/SC service stopping or restarting by establishing a new
// context; it never holds a card: only a confirming probe connects, in
// shared mode and for one transaction.
type Monitor struct {
	log          *slog.Logger
	table        []Entry
	probeTimeout time.Duration
	establish    func() (statusContext, error) // seam for tests
	pnp          bool                          // hasPnP, but tests try both
	pollInterval time.Duration                 // readerPollInterval, without PnP

	mu      sync.Mutex
	readers map[string]*CardInfo
	lost    error // non-nil while the service is gone
}

// NewMonitor returns a monitor; Run starts it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	m := &Monitor{
		log:          cfg.Log,
		table:        cfg.Table,
		probeTimeout: cfg.ProbeTimeout,
		establish:    establishSystem,
		pnp:          hasPnP,
		pollInterval: readerPollInterval,
		readers:      map[string]*CardInfo{},
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.table == nil {
		m.table = knownCards
	}
	if m.probeTimeout <= 0 {
		m.probeTimeout = defaultProbeTimeout
	}
	return m
}

// Readers returns the readers and cards as last reported, sorted by name.
func (m *Monitor) Readers() []ReaderStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ReaderStatus, 0, len(m.readers))
	for name, card := range m.readers {
		out = append(out, ReaderStatus{Name: name, Card: card})
	}
	slices.SortFunc(out, func(a, b ReaderStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// ServiceErr is why the PC/SC service is unavailable, nil while it works.
func (m *Monitor) ServiceErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost
}

// Run watches until ctx ends, sending events to events in the order they
// happened; a slow receiver slows the monitor down, it loses nothing. The
// current readers and cards come first as ReaderAdded and CardInserted. Run
// returns ctx's error once every goroutine it started has ended and its
// PC/SC context is released; only one Monitor may run at a time in a
// process (ErrMonitorRunning).
func (m *Monitor) Run(ctx context.Context, events chan<- Event) error {
	release, err := claimStatus()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	changes := make(chan change)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(changes)
		m.watch(ctx, changes)
	}()
	d := &dispatcher{m: m, ctx: ctx, events: events, results: make(chan probeResult), readers: map[string]*slot{}}
	d.run(changes)
	wg.Wait()
	return ctx.Err()
}

// change is what the PC/SC side saw, before identification.
type change struct {
	kind   changeKind
	reader string
	atr    []byte
	mute   bool
	err    error
}

type changeKind int

const (
	serviceUp changeKind = iota
	serviceDown
	readerUp
	readerDown
	cardIn
	cardOut
)

// watch owns the PC/SC context: it establishes one, watches with it until
// the service fails, and starts again, until ctx ends.
func (m *Monitor) watch(ctx context.Context, out chan<- change) {
	backoff := retryMin
	for ctx.Err() == nil {
		start := time.Now()
		sc, err := m.establish()
		if err == nil {
			err = m.session(ctx, sc, out)
			_ = sc.Release()
			if ctx.Err() != nil {
				return
			}
		}
		if !send(ctx, out, change{kind: serviceDown, err: pcscError("watch", err)}) {
			return
		}
		if time.Since(start) > healthySession {
			backoff = retryMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

func send(ctx context.Context, out chan<- change, c change) bool {
	select {
	case out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// seen is the card state of one reader as last observed.
type seen struct {
	present bool
	mute    bool
	count   uint32 // the reader's event counter (high half of the state)
	atr     []byte
}

// session watches with one context until the service fails (its error is
// returned) or ctx ends (nil).
func (m *Monitor) session(ctx context.Context, sc statusContext, out chan<- change) error {
	if !send(ctx, out, change{kind: serviceUp}) {
		return nil
	}
	wake, stop := cancelOnDone(ctx, sc)
	defer stop()

	var states []scard.ReaderState
	if m.pnp {
		states = append(states, scard.ReaderState{Reader: pnpReader, CurrentState: scard.StateUnaware})
	}
	last := map[string]seen{}
	relist := true
	unknownInARow := 0
	for {
		if relist {
			var ok bool
			var err error
			if states, ok, err = m.relist(ctx, sc, states, last, out); err != nil || !ok {
				return err
			}
			relist = false
		}
		timeout := time.Duration(-1) // infinite
		if !m.pnp {
			timeout = m.pollInterval
		}
		err := sc.GetStatusChange(states, timeout)
		wake()
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			unknownInARow = 0
		case errors.Is(err, scard.ErrTimeout):
			relist = !m.pnp
			continue
		case errors.Is(err, scard.ErrCancelled):
			continue
		case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable),
			errors.Is(err, scard.ErrNoReadersAvailable):
			// A reader went between listing and waiting. Listing again
			// settles it; if the service keeps contradicting itself,
			// start over with a new context after a pause.
			if unknownInARow++; unknownInARow > 3 {
				return err
			}
			relist = true
			continue
		default:
			return err
		}
		for i := range states {
			s := &states[i]
			ev := s.EventState
			s.CurrentState = ev &^ scard.StateChanged
			switch {
			case s.Reader == pnpReader:
				if ev&scard.StateChanged != 0 {
					relist = true
				}
			case ev&(scard.StateUnknown|scard.StateIgnore) != 0:
				relist = true // the reader is gone
			default:
				if !m.observe(ctx, s, last, out) {
					return nil
				}
			}
		}
	}
}

// relist lists the readers and brings states (and the receiver) up to date:
// gone readers are reported removed (with their card first), new ones added.
// ok is false when ctx ended.
func (m *Monitor) relist(ctx context.Context, sc statusContext, states []scard.ReaderState, last map[string]seen, out chan<- change) (_ []scard.ReaderState, ok bool, err error) {
	names, err := listReaders(sc)
	if err != nil {
		return nil, false, err
	}
	kept := states[:0]
	for _, s := range states {
		if s.Reader == pnpReader || slices.Contains(names, s.Reader) {
			kept = append(kept, s)
			continue
		}
		delete(last, s.Reader)
		if !send(ctx, out, change{kind: readerDown, reader: s.Reader}) {
			return nil, false, nil
		}
	}
	states = kept
	for _, name := range names {
		if name == pnpReader || slices.ContainsFunc(states, func(s scard.ReaderState) bool { return s.Reader == name }) {
			continue
		}
		states = append(states, scard.ReaderState{Reader: name, CurrentState: scard.StateUnaware})
		if !send(ctx, out, change{kind: readerUp, reader: name}) {
			return nil, false, nil
		}
	}
	return states, true, nil
}

// observe compares a reader's new state with the last one and reports the
// card changes.
func (m *Monitor) observe(ctx context.Context, s *scard.ReaderState, last map[string]seen, out chan<- change) bool {
	ev := s.EventState
	now := seen{
		present: ev&scard.StatePresent != 0,
		mute:    ev&scard.StateMute != 0,
		count:   uint32(ev) >> 16,
	}
	if now.present && !now.mute {
		now.atr = bytes.Clone(s.Atr)
	}
	prev := last[s.Reader]
	m.log.Debug("reader state", "reader", s.Reader, "state", fmt.Sprintf("%#x", uint32(ev)), "atr", fmt.Sprintf("% X", now.atr))
	if prev.present && now.present && sameCard(prev, now) {
		switch {
		case len(prev.atr) == 0 && len(now.atr) > 0:
			// A mute card that now answers: report it again, with
			// what its ATR says.
		case len(now.atr) == 0:
			// The card lost its ATR for a moment (powered down and up
			// by pcscd or another application): still the same card.
			now.atr, now.mute = prev.atr, prev.mute
			last[s.Reader] = now
			return true
		default:
			last[s.Reader] = now
			return true
		}
	}
	last[s.Reader] = now
	if prev.present {
		if !send(ctx, out, change{kind: cardOut, reader: s.Reader}) {
			return false
		}
	}
	if now.present {
		return send(ctx, out, change{kind: cardIn, reader: s.Reader, atr: now.atr, mute: now.mute})
	}
	return true
}

// sameCard tells whether two observations of a present card are of the same
// card. The reader's event counter (pcsc-lite and Windows count insertions
// and removals in the state's high half) is the proof: a card pulled and
// another inserted between two waits moves it even though the reader shows
// a card both times. Where the platform keeps no counter, a different ATR
// is the only sign.
func sameCard(prev, now seen) bool {
	if prev.count != now.count {
		return false
	}
	if now.count == 0 {
		return len(prev.atr) == 0 || len(now.atr) == 0 || bytes.Equal(prev.atr, now.atr)
	}
	return true
}

// cancelOnDone gets a GetStatusChange on sc out of its wait once ctx ends.
// SCardCancel only cancels a wait in progress (pcsc-lite drops a cancel that
// arrives between two waits), so it is repeated until the waiting goroutine
// calls wake after a wait returned: a wake after the first cancel attempt
// proves the waiter has seen ctx end, since it checks ctx after waking.
func cancelOnDone(ctx context.Context, sc statusContext) (wake, stop func()) {
	woke := make(chan struct{}, 1)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-quit:
			return
		}
		select { // forget wakes from before ctx ended
		case <-woke:
		default:
		}
		for {
			_ = sc.Cancel()
			select {
			case <-woke:
				return
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	wake = func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	}
	stop = func() {
		close(quit)
		<-done
	}
	return wake, stop
}

// dispatcher turns changes into events: it identifies cards (starting a
// probe where the ATR is ambiguous), keeps each reader's events in order
// while a probe runs, and keeps the monitor's snapshot.
type dispatcher struct {
	m       *Monitor
	ctx     context.Context
	events  chan<- Event
	results chan probeResult
	readers map[string]*slot
	lost    bool
	seq     uint64
	probes  sync.WaitGroup
}

// slot is a reader as reported: its card, or the card being probed.
type slot struct {
	card    *CardInfo
	pending *CardInfo
	seq     uint64 // of the pending probe
}

type probeResult struct {
	reader string
	seq    uint64
	card   *CardInfo
}

func (d *dispatcher) run(changes <-chan change) {
	defer d.probes.Wait()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return
			}
			d.handle(c)
		case r := <-d.results:
			s := d.readers[r.reader]
			if s == nil || s.pending == nil || s.seq != r.seq {
				continue // the card left before its probe ended
			}
			s.pending, s.card = nil, r.card
			d.emit(Event{Kind: CardInserted, Reader: r.reader, Card: r.card})
		}
	}
}

func (d *dispatcher) handle(c change) {
	switch c.kind {
	case serviceUp:
		if d.lost {
			d.lost = false
			d.emit(Event{Kind: ServiceRestored})
		}
	case serviceDown:
		for _, name := range d.names() {
			d.dropReader(name)
		}
		if !d.lost {
			d.lost = true
			d.m.log.Warn("PC/SC service unavailable; retrying", "err", c.err)
			d.emit(Event{Kind: ServiceLost, Err: c.err})
		}
	case readerUp:
		if d.readers[c.reader] == nil {
			d.readers[c.reader] = &slot{}
			d.emit(Event{Kind: ReaderAdded, Reader: c.reader})
		}
	case readerDown:
		d.dropReader(c.reader)
	case cardIn:
		s := d.readers[c.reader]
		if s == nil { // a state for a reader not listed yet: list order
			s = &slot{}
			d.readers[c.reader] = s
			d.emit(Event{Kind: ReaderAdded, Reader: c.reader})
		}
		d.cardOut(c.reader, s)
		card := identifyCard(d.m.table, c.atr, c.mute)
		if !card.NeedsProbe {
			s.card = card
			d.emit(Event{Kind: CardInserted, Reader: c.reader, Card: card})
			return
		}
		d.seq++
		s.pending, s.seq = card, d.seq
		d.startProbe(c.reader, d.seq, card)
	case cardOut:
		if s := d.readers[c.reader]; s != nil {
			d.cardOut(c.reader, s)
		}
	}
}

func (d *dispatcher) names() []string {
	names := make([]string, 0, len(d.readers))
	for n := range d.readers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (d *dispatcher) dropReader(name string) {
	s := d.readers[name]
	if s == nil {
		return
	}
	d.cardOut(name, s)
	delete(d.readers, name)
	d.emit(Event{Kind: ReaderRemoved, Reader: name})
}

// cardOut reports the card of s gone. A card pulled while its probe ran is
// first reported inserted, as unknown, so that every removal follows an
// insertion and the receiver learns why it was never identified.
func (d *dispatcher) cardOut(reader string, s *slot) {
	if s.pending != nil {
		card := unknownCard(s.pending, "card removed during identification")
		s.pending = nil
		d.emit(Event{Kind: CardInserted, Reader: reader, Card: card})
		d.emit(Event{Kind: CardRemoved, Reader: reader, Card: card})
		return
	}
	if s.card != nil {
		card := s.card
		s.card = nil
		d.emit(Event{Kind: CardRemoved, Reader: reader, Card: card})
	}
}

// startProbe confirms card's type in the background. PC/SC cannot cancel a
// transmission, so a silent card keeps its probe goroutine until the card or
// the reader gives up; the timeout only stops the wait for it.
func (d *dispatcher) startProbe(reader string, seq uint64, card *CardInfo) {
	type outcome struct {
		card *CardInfo
		lost bool
	}
	d.probes.Add(2)
	done := make(chan outcome, 1)
	go func() {
		defer d.probes.Done()
		res, lost := probeCard(reader, card)
		done <- outcome{res, lost}
	}()
	go func() {
		defer d.probes.Done()
		var res *CardInfo
		select {
		case o := <-done:
			res = o.card
			if o.lost {
				// Give pcscd time to notice a pulled card: its removal
				// then reaches the dispatcher first and this result is
				// dropped (see cardOut).
				select {
				case <-time.After(lostCardGrace):
				case <-d.ctx.Done():
					return
				}
			}
		case <-time.After(d.m.probeTimeout):
			res = unknownCard(card, "no answer to the identification probe within "+d.m.probeTimeout.String())
		case <-d.ctx.Done():
			return
		}
		select {
		case d.results <- probeResult{reader, seq, res}:
		case <-d.ctx.Done():
		}
	}()
}

// emit records e in the snapshot, then delivers it.
func (d *dispatcher) emit(e Event) {
	e.Time = time.Now()
	m := d.m
	m.mu.Lock()
	switch e.Kind {
	case ReaderAdded, CardRemoved:
		m.readers[e.Reader] = nil
	case ReaderRemoved:
		delete(m.readers, e.Reader)
	case CardInserted:
		m.readers[e.Reader] = e.Card
	case ServiceLost:
		m.lost = e.Err
	case ServiceRestored:
		m.lost = nil
	}
	m.mu.Unlock()
	m.log.Debug("card event", "event", e.String())
	select {
	case d.events <- e:
	case <-d.ctx.Done():
	}
}

// identifyCard is what the ATR alone says, with the reason when it says
// nothing useful.
func identifyCard(table []Entry, atr []byte, mute bool) *CardInfo {
	if mute || len(atr) == 0 {
		return &CardInfo{
			Identification: Identification{Type: TypeUnknown, Model: ModelUnknown},
			Reason:         "card is mute (no answer to reset)",
		}
	}
	card := &CardInfo{Identification: IdentifyWith(table, atr), ATR: bytes.Clone(atr)}
	switch {
	case card.Err != nil:
		card.Reason = "ATR does not decode: " + card.Err.Error()
	case card.Type == TypeUnknown:
		card.Reason = "ATR matches no known card"
	}
	return card
}

// unknownCard is card demoted to unknown for reason; the ATR stays.
func unknownCard(card *CardInfo, reason string) *CardInfo {
	return &CardInfo{
		Identification: Identification{Type: TypeUnknown, Model: ModelUnknown, ATR: card.Identification.ATR},
		ATR:            card.ATR,
		Reason:         reason,
	}
}
