// Command cardevents measures the card monitor (cardreader.Monitor) on the
// real PC/SC stack against a bare github.com/ebfe/scard GetStatusChange loop
// watching the same reader in the same run.
//
//	cardevents -mode latency -n 50   # insertion → event latency, p50/p99
//	cardevents -mode idle -d 60s     # CPU used while two cards sit in two readers
//
// It needs pcscd with the vsmartcard-vpcd driver (make test's with-pcscd.sh
// starts one) and takes the machine-wide lock on vpcd's readers. The bare
// loop runs in a child process, because ebfe/scard's GetStatusChange may not
// be called from two goroutines of one process (see cardreader/pcsc.go);
// a process of its own is also what "a bare loop" means. Both processes
// timestamp with the wall clock of the same machine.
//
// pcscd polls vpcd's readers every 400 ms, so the absolute latency of an
// emulated insertion is that polling phase (0 to 400 ms) for any watcher;
// the figure that belongs to the monitor is its difference from the bare
// loop on the same insertion.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/bench/internal/proc"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

func main() {
	mode := flag.String("mode", "latency", "latency or idle")
	n := flag.Int("n", 50, "latency: insertions to measure")
	d := flag.Duration("d", 60*time.Second, "idle: how long to measure")
	child := flag.String("child", "", "internal: run as the bare loop (bare) or the card holder (hold)")
	flag.Parse()
	var err error
	switch {
	case *child == "bare":
		err = bareLoop()
	case *child == "hold":
		err = holdCards()
	case *mode == "latency":
		err = latency(*n)
	case *mode == "idle":
		err = idle(*d)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cardevents:", err)
		os.Exit(1)
	}
}

// bareReader is the reader both watchers watch in latency mode.
const bareReader = 1

// bareLoop is the baseline: the simplest correct watcher of one reader, as
// ebfe/scard's own example writes it. It prints "in NANOS" / "out NANOS" at
// each change of presence, and "ready" once it waits.
func bareLoop() error {
	sc, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer sc.Release()
	rs := []scard.ReaderState{{Reader: vpcd.ReaderName(bareReader), CurrentState: scard.StateUnaware}}
	if err := sc.GetStatusChange(rs, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return err
	}
	present := rs[0].EventState&scard.StatePresent != 0
	rs[0].CurrentState = rs[0].EventState &^ scard.StateChanged
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ready")
	w.Flush()
	for {
		if err := sc.GetStatusChange(rs, -1); err != nil {
			return err
		}
		now := time.Now()
		rs[0].CurrentState = rs[0].EventState &^ scard.StateChanged
		if p := rs[0].EventState&scard.StatePresent != 0; p != present {
			present = p
			word := "out"
			if p {
				word = "in"
			}
			fmt.Fprintln(w, word, now.UnixNano())
			w.Flush()
		}
	}
}

// holdCards keeps a CPS in reader 0 and a Vitale card in reader 1 until its
// stdin closes, so that the idle measurement's process runs no emulator.
func holdCards() error {
	p, err := pki.LoadOrCreate(filepath.Join(os.TempDir(), fmt.Sprintf("dmpagent-bench-pki-%d", os.Getuid())))
	if err != nil {
		return err
	}
	cps, err := testcards.NewCPS(p, "gp")
	if err != nil {
		return err
	}
	vit, err := testcards.NewVitale("family")
	if err != nil {
		return err
	}
	for i, c := range []vpcd.Card{cps, vit} {
		s := vpcd.NewSlot(vpcd.Addr(i), nil)
		if err := s.Insert(c, vpcd.Faults{}); err != nil {
			return err
		}
		defer s.Remove()
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// startChild runs this program in a child role and returns its stdout
// lines; the child ends when the returned stop is called.
func startChild(role string) (lines <-chan string, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, "-child", role)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	select {
	case l := <-ch:
		if l != "ready" {
			return nil, nil, fmt.Errorf("child %s: %q", role, l)
		}
	case <-time.After(30 * time.Second):
		return nil, nil, fmt.Errorf("child %s not ready after 30 s", role)
	}
	stop = func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	return ch, stop, nil
}

func lockReaders() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return vpcd.LockReaders(ctx)
}

// runMonitor starts the monitor and returns its events.
func runMonitor(ctx context.Context) (<-chan cardreader.Event, <-chan error) {
	events := make(chan cardreader.Event, 16)
	done := make(chan error, 1)
	m := cardreader.NewMonitor(cardreader.MonitorConfig{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { done <- m.Run(ctx, events) }()
	return events, done
}

func waitEvent(events <-chan cardreader.Event, kind cardreader.EventKind, reader string) (time.Time, error) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == kind && e.Reader == reader {
				return e.Time, nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("no %s in %s within 10 s", kind, reader)
		}
	}
}

func waitLine(lines <-chan string, word string) (time.Time, error) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return time.Time{}, errors.New("bare loop ended")
			}
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == word {
				ns, err := strconv.ParseInt(f[1], 10, 64)
				return time.Unix(0, ns), err
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("bare loop saw no %q within 10 s", word)
		}
	}
}

func latency(n int) error {
	unlock, err := lockReaders()
	if err != nil {
		return err
	}
	defer unlock()
	lines, stop, err := startChild("bare")
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := runMonitor(ctx)
	reader := vpcd.ReaderName(bareReader)
	card, err := testcards.NewVitale("single")
	if err != nil {
		return err
	}
	slot := vpcd.NewSlot(vpcd.Addr(bareReader), nil)
	defer slot.Remove()

	var mon, bare, diff []time.Duration
	for i := range n + 2 {
		// Insert at a random phase of pcscd's 400 ms polling, as a hand
		// would; back to back, every insertion would wait the full period.
		time.Sleep(rand.N(400 * time.Millisecond))
		t0 := time.Now()
		if err := slot.Insert(card, vpcd.Faults{}); err != nil {
			return err
		}
		tm, err := waitEvent(events, cardreader.CardInserted, reader)
		if err != nil {
			return err
		}
		tb, err := waitLine(lines, "in")
		if err != nil {
			return err
		}
		slot.Remove()
		if _, err := waitEvent(events, cardreader.CardRemoved, reader); err != nil {
			return err
		}
		if _, err := waitLine(lines, "out"); err != nil {
			return err
		}
		if i < 2 { // warm-up: first connections, page faults
			continue
		}
		mon = append(mon, tm.Sub(t0))
		bare = append(bare, tb.Sub(t0))
		diff = append(diff, tm.Sub(tb))
	}
	p50m, p99m := percentiles(mon)
	p50b, p99b := percentiles(bare)
	p50d, p99d := percentiles(diff)
	fmt.Printf("cardevents latency: %d insertions of an emulated Vitale card into %s, seen by the monitor and by a bare GetStatusChange loop (machine-dependent)\n", n, reader)
	fmt.Printf("  %-22s %10s %10s\n", "", "p50", "p99")
	fmt.Printf("  %-22s %10s %10s\n", "bare loop", ms(p50b), ms(p99b))
	fmt.Printf("  %-22s %10s %10s\n", "monitor", ms(p50m), ms(p99m))
	fmt.Printf("  %-22s %10s %10s\n", "monitor - bare (same insertion)", ms(p50d), ms(p99d))
	goal := time.Duration(1.05*float64(p50b)) + 2*time.Millisecond
	verdict := "met"
	if p50m > goal {
		verdict = "NOT met"
	}
	fmt.Printf("  ratio at p50: %.3f; goal p50 ≤ 1.05 × bare + 2 ms = %s: %s\n", float64(p50m)/float64(p50b), ms(goal), verdict)
	return nil
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func idle(d time.Duration) error {
	unlock, err := lockReaders()
	if err != nil {
		return err
	}
	defer unlock()
	_, stopHold, err := startChild("hold")
	if err != nil {
		return err
	}
	defer stopHold()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := runMonitor(ctx)
	for _, r := range []int{0, 1} {
		if _, err := waitEvent(events, cardreader.CardInserted, vpcd.ReaderName(r)); err != nil {
			return err
		}
	}
	// The bare loop in its own process is the baseline: the least any Go
	// program blocked in GetStatusChange costs.
	_, stopBare, err := startChild("bare")
	if err != nil {
		return err
	}
	defer stopBare()
	time.Sleep(time.Second) // let start-up settle in both
	barePID, err := childPID("bare")
	if err != nil {
		return err
	}
	m0, err := proc.CPUTime(os.Getpid())
	if err != nil {
		return err
	}
	b0, err := proc.CPUTime(barePID)
	if err != nil {
		return err
	}
	time.Sleep(d)
	m1, err := proc.CPUTime(os.Getpid())
	if err != nil {
		return err
	}
	b1, err := proc.CPUTime(barePID)
	if err != nil {
		return err
	}
	select {
	case e := <-events:
		return fmt.Errorf("unexpected event while idle: %v", e)
	default:
	}
	mon, bare := m1-m0, b1-b0
	fmt.Printf("cardevents idle: %s with a CPS and a Vitale card in two readers, CPU time from /proc/PID/task/*/schedstat (machine-dependent)\n", d)
	fmt.Printf("  monitor process: %s   bare loop process: %s   (goal: monitor ≤ 5 ms per 60 s: %s)\n",
		ms(mon), ms(bare), met(float64(mon) <= float64(5*time.Millisecond)*d.Seconds()/60))
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// childPID finds the child started with -child role.
func childPID(role string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, "-child") && slices.Contains(args, role) && statPPID(pid) == os.Getpid() {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child %s", role)
}

func statPPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
