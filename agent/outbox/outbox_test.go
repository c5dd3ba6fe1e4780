package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, opt Options) (*Outbox, string) {
	t.Helper()
	dir := t.TempDir()
	if opt.Backoff == nil {
		opt.Backoff = func(int) time.Duration { return time.Millisecond }
	}
	o, err := Open(filepath.Join(dir, "outbox.db"), filepath.Join(dir, "content"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o, dir
}

// run delivers in the background until the returned stop is called.
func run(o *Outbox, d DeliverFunc) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx, d); close(done) }()
	return func() { cancel(); <-done }
}

func waitState(t *testing.T, o *Outbox, id string, st State) Submission {
	t.Helper()
	return waitFor(t, o, id, func(s Submission) bool { return s.State == st })
}

func waitFor(t *testing.T, o *Outbox, id string, cond func(Submission) bool) Submission {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := o.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s (%s%s): condition not met", id, s.State, s.Reason, s.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEnqueueDeliver(t *testing.T) {
	var mu sync.Mutex
	var updates []State
	o, dir := open(t, Options{OnUpdate: func(s Submission) { mu.Lock(); updates = append(updates, s.State); mu.Unlock() }})
	ctx := context.Background()
	s, err := o.Enqueue(ctx, "899900063480", "207058575627097", []byte(`{"k":1}`), strings.NewReader("%PDF-1.4 body"))
	if err != nil || s.State != Queued || !strings.HasPrefix(s.ID, "sub_") || len(s.ID) != 30 || s.Size != 13 {
		t.Fatalf("%+v %v", s, err)
	}
	if n, _ := o.Depth(ctx); n != 1 {
		t.Fatalf("depth %d", n)
	}
	var got []byte
	stop := run(o, func(ctx context.Context, s Submission) (string, error) {
		for range 2 { // the DMP client reads it twice
			r, err := o.Open(ctx, s.ID)
			if err != nil {
				return "", err
			}
			got, _ = io.ReadAll(r)
			r.Close()
		}
		return "2.25.1", nil
	})
	defer stop()
	done := waitState(t, o, s.ID, Submitted)
	if done.Result != "2.25.1" || string(got) != "%PDF-1.4 body" || string(done.Payload) != `{"k":1}` {
		t.Fatalf("%+v %q", done, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "content", s.ID+".bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the content stays on disk after delivery")
	}
	if n, _ := o.Depth(ctx); n != 0 {
		t.Fatalf("depth %d", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(updates) != "[queued sending submitted]" {
		t.Fatalf("updates %v", updates)
	}
}

func TestTooLarge(t *testing.T) {
	o, dir := open(t, Options{MaxSize: 10})
	_, err := o.Enqueue(context.Background(), "a", "p", nil, strings.NewReader(strings.Repeat("x", 11)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "content"))
	list, _ := o.List(context.Background(), ListOptions{})
	if len(ents) != 0 || len(list) != 0 {
		t.Fatalf("left %d files and %d rows", len(ents), len(list))
	}
}

func TestTransientPermanentNotReady(t *testing.T) {
	o, _ := open(t, Options{})
	ctx := context.Background()
	transient, _ := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("a"))
	perm, _ := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("b"))
	other, _ := o.Enqueue(ctx, "nurse", "p", nil, strings.NewReader("c"))
	waiting, _ := o.Enqueue(ctx, "pharmacist", "p", nil, strings.NewReader("d"))
	var mu sync.Mutex
	calls := map[string]int{}
	ready := false
	stop := run(o, func(ctx context.Context, s Submission) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[s.ID]++
		switch s.ID {
		case transient.ID:
			if calls[s.ID] < 3 {
				return "", errors.New("connection reset")
			}
		case perm.ID:
			return "", Permanent(errors.New("DMPAccessDenied: no authorization"))
		case waiting.ID:
			if !ready {
				return "", NotReady("waiting for its author's CPS session")
			}
		}
		return "ok", nil
	})
	defer stop()
	st := waitState(t, o, transient.ID, Submitted)
	if st.Attempts != 2 || st.LastError != "" {
		t.Fatalf("transient: %+v", st)
	}
	f := waitState(t, o, perm.ID, Failed)
	if !strings.Contains(f.Reason, "DMPAccessDenied") {
		t.Fatalf("permanent: %+v", f)
	}
	waitState(t, o, other.ID, Submitted)
	w := waitFor(t, o, waiting.ID, func(s Submission) bool { return s.State == Queued && s.Reason != "" })
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	n := calls[waiting.ID]
	ready = true
	mu.Unlock()
	if n != 1 || w.Attempts != 0 || !strings.Contains(w.Reason, "session") {
		t.Fatalf("not ready: %d calls, %+v", n, w)
	}
	o.Kick()
	waitState(t, o, waiting.ID, Submitted)
	if err := o.Retry(ctx, perm.ID); err != nil {
		t.Fatal(err)
	}
	if s, _ := o.Get(ctx, perm.ID); s.State != Queued && s.State != Sending && s.State != Failed {
		t.Fatalf("retry: %+v", s)
	}
}

func TestReopenAfterCrash(t *testing.T) {
	dir := t.TempDir()
	dbPath, content := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "content")
	o, err := Open(dbPath, content, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, _ := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("x"))
	// The process dies mid-delivery and mid-enqueue.
	o.set(ctx, &s, Sending, func() {})
	os.WriteFile(filepath.Join(content, "tmp-123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(content, "sub_orphan.bin"), []byte("never committed"), 0o600)
	o.Close()
	o, err = Open(dbPath, content, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, _ := o.Get(ctx, s.ID); got.State != Queued {
		t.Fatalf("after reopen: %+v", got)
	}
	ents, _ := os.ReadDir(content)
	if len(ents) != 1 || ents[0].Name() != s.ID+".bin" {
		t.Fatalf("files after reopen: %v", ents)
	}
}

func TestCancelDuringDelivery(t *testing.T) {
	o, _ := open(t, Options{})
	s, _ := o.Enqueue(context.Background(), "gp", "p", nil, strings.NewReader("x"))
	started := make(chan struct{})
	stop := run(o, func(ctx context.Context, _ Submission) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	})
	<-started
	stop()
	if got, _ := o.Get(context.Background(), s.ID); got.State != Queued || got.Attempts != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestConcurrentEnqueueExactlyOnce(t *testing.T) {
	o, _ := open(t, Options{})
	var mu sync.Mutex
	calls := map[string]int{}
	stop := run(o, func(ctx context.Context, s Submission) (string, error) {
		mu.Lock()
		calls[s.ID]++
		mu.Unlock()
		return "ok", nil
	})
	var wg sync.WaitGroup
	ids := make(chan string, 400)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				s, err := o.Enqueue(context.Background(), fmt.Sprint("owner", g%3), "p", nil, bytes.NewReader([]byte(fmt.Sprint(i))))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- s.ID
				o.Kick()
			}
		}()
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		waitState(t, o, id, Submitted)
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 400 {
		t.Fatalf("%d delivered", len(calls))
	}
	for id, n := range calls {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 5: 32 * time.Second, 20: 5 * time.Minute} {
		for range 20 {
			d := DefaultBackoff(attempt)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("attempt %d: %v, want %v ± 20%%", attempt, d, want)
			}
		}
	}
}

func TestFutureSchema(t *testing.T) {
	o, dir := open(t, Options{})
	o.db.Exec(`UPDATE meta SET value = 99 WHERE key = 'schema'`)
	o.Close()
	if _, err := Open(filepath.Join(dir, "outbox.db"), filepath.Join(dir, "content"), Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("future schema: %v", err)
	}
}

func TestDepthCounter(t *testing.T) {
	o, dir := open(t, Options{})
	ctx := context.Background()
	ok, _ := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("a"))
	bad, _ := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("b"))
	o.Enqueue(ctx, "nurse", "p", nil, strings.NewReader("c"))
	if n, _ := o.Depth(ctx); n != 3 {
		t.Fatalf("depth %d", n)
	}
	stop := run(o, func(ctx context.Context, s Submission) (string, error) {
		switch s.ID {
		case ok.ID:
			return "x", nil
		case bad.ID:
			return "", Permanent(errors.New("no"))
		}
		return "", NotReady("later")
	})
	waitState(t, o, ok.ID, Submitted)
	waitState(t, o, bad.ID, Failed)
	stop()
	if n, _ := o.Depth(ctx); n != 1 {
		t.Fatalf("depth %d after one delivered and one failed", n)
	}
	o.Retry(ctx, bad.ID)
	if n, _ := o.Depth(ctx); n != 2 {
		t.Fatalf("depth %d after a retry", n)
	}
	o.Close()
	o2, err := Open(filepath.Join(dir, "outbox.db"), filepath.Join(dir, "content"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if n, _ := o2.Depth(ctx); n != 2 {
		t.Fatalf("depth %d after reopening", n)
	}
}

func TestEnqueueKey(t *testing.T) {
	o, _ := open(t, Options{})
	ctx := context.Background()
	a, existing, err := o.EnqueueKey(ctx, "app\x00k1", "gp", "p", []byte("m"), strings.NewReader("first"))
	if err != nil || existing {
		t.Fatal(existing, err)
	}
	b, existing, err := o.EnqueueKey(ctx, "app\x00k1", "gp", "p", []byte("m"), strings.NewReader("second"))
	if err != nil || !existing || b.ID != a.ID {
		t.Fatalf("%+v %v %v", b, existing, err)
	}
	c, existing, err := o.EnqueueKey(ctx, "other\x00k1", "gp", "p", nil, strings.NewReader("x"))
	if err != nil || existing || c.ID == a.ID {
		t.Fatalf("another caller's key: %+v %v %v", c, existing, err)
	}
	if _, err := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("no key")); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(ctx, "gp", "p", nil, strings.NewReader("no key again")); err != nil {
		t.Fatal("two submissions without a key collide:", err)
	}
	if n, _ := o.Depth(ctx); n != 4 {
		t.Fatalf("depth %d", n)
	}
	// Concurrent requests with one key: one submission.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := o.EnqueueKey(ctx, "app\x00race", "gp", "p", nil, strings.NewReader("r"))
			if err != nil {
				t.Error(err)
				return
			}
			ids <- s.ID
		}()
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("two submissions for one key: %s, %s", first, id)
		}
	}
}
