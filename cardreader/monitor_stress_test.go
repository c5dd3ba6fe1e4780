package cardreader_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// expectKinds takes len(kinds) events and checks their kinds in order.
func (w *watcher) expectKinds(kinds ...cardreader.EventKind) []cardreader.Event {
	w.t.Helper()
	var got []cardreader.Event
	for _, k := range kinds {
		e := w.next()
		got = append(got, e)
		if e.Kind != k {
			w.t.Fatalf("event %d is %v, want the sequence %v", len(got), e, kinds)
		}
	}
	return got
}

// collectUntil gathers events until n of kind have come or the deadline
// passes.
func (w *watcher) collectUntil(deadline time.Time, n int, kind cardreader.EventKind) []cardreader.Event {
	var got []cardreader.Event
	for countKind(got, kind) < n {
		select {
		case e := <-w.events:
			got = append(got, e)
		case <-time.After(time.Until(deadline)):
			return got
		}
	}
	return got
}

func countKind(es []cardreader.Event, k cardreader.EventKind) int {
	n := 0
	for _, e := range es {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// TestMonitorCycles inserts and removes cards many times in both readers at
// once — a CPS whose ATR needs the probe in one, a Vitale card in the other —
// and checks that every cycle gives exactly one insertion and one removal,
// and that goroutines and file descriptors stay flat. pcscd polls vpcd every
// 400 ms, so a cycle takes 0.8 s per reader: 1,000 cycles take about 7
// minutes; -short runs 20.
func TestMonitorCycles(t *testing.T) {
	cycles := 1000
	if testing.Short() {
		cycles = 20
	}
	if s := os.Getenv("DMPAGENT_MONITOR_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			t.Fatalf("DMPAGENT_MONITOR_CYCLES=%q", s)
		}
		cycles = n
	}
	// The monitor's debug log (reader states as PC/SC reports them) is
	// kept for the last events and shown if a cycle goes wrong.
	logs := &tailLog{max: 60}
	w := startMonitor(t, cardreader.MonitorConfig{Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	w.expectReaders()
	cps, err := testcards.NewCPS(cardtest.PKI(t), "gp")
	if err != nil {
		t.Fatal(err)
	}
	vit, err := testcards.NewVitale("single")
	if err != nil {
		t.Fatal(err)
	}
	readers := []struct {
		card   vpcd.Card
		faults vpcd.Faults
		want   cardreader.CardType
	}{
		{cps, vpcd.Faults{ATR: yubiKeyATR}, cardreader.TypeCPS},
		{vit, vpcd.Faults{}, cardreader.TypeVitale},
	}
	// Route each reader's events to its own channel.
	perReader := []chan cardreader.Event{make(chan cardreader.Event, 4), make(chan cardreader.Event, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var route sync.WaitGroup
	route.Add(1)
	go func() {
		defer route.Done()
		for {
			select {
			case e := <-w.events:
				for i := range perReader {
					if e.Reader == vpcd.ReaderName(i) {
						perReader[i] <- e
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	defer route.Wait()
	defer cancel()

	var g0, fd0 int
	var baseline sync.Once
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	var start sync.WaitGroup
	start.Add(len(readers))
	perReaderCycles := cycles / len(readers)
	warm := min(10, perReaderCycles/2)
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := vpcd.NewSlot(vpcd.Addr(i), nil)
			defer slot.Remove()
			wait := func(kind cardreader.EventKind, cycle int) bool {
				select {
				case e := <-perReader[i]:
					if e.Kind != kind || (kind == cardreader.CardInserted && e.Card.Type != r.want) {
						fail("reader %d cycle %d: got %v, want %s", i, cycle, e, kind)
						return false
					}
					return true
				case <-time.After(eventWait):
					fail("reader %d cycle %d: no %s within %v", i, cycle, kind, eventWait)
					return false
				}
			}
			for c := range perReaderCycles {
				if c == warm { // both readers reach here before the baseline
					start.Done()
					start.Wait()
					baseline.Do(func() { g0, fd0 = settle(t) })
				}
				if err := slot.Insert(r.card, r.faults); err != nil {
					fail("insert: %v", err)
					return
				}
				if !wait(cardreader.CardInserted, c) {
					return
				}
				slot.Remove()
				if !wait(cardreader.CardRemoved, c) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Logf("monitor log, last lines:\n%s", logs)
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	g1, fd1 := settle(t)
	t.Logf("%d insert/remove cycles over 2 readers: goroutines %d -> %d, open fds %d -> %d", perReaderCycles*len(readers), g0, g1, fd0, fd1)
	// The slots' own goroutines have ended too (Remove waits for them).
	if g1 > g0 || fd1 > fd0 {
		t.Errorf("not flat: goroutines %d -> %d, open fds %d -> %d", g0, g1, fd0, fd1)
	}
	select {
	case e := <-w.events:
		t.Errorf("event after the last cycle: %v", e)
	default:
	}
}

// tailLog keeps the last max lines written to it.
type tailLog struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}
