package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openLog(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(Entry{Actor: "app:LPS", Action: "dmp.create", Target: "207058575627097", Outcome: "ok",
			Details: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendReopenContinue(t *testing.T) {
	l, path := openLog(t)
	fill(t, l, 3)
	seq, head := l.Head()
	l.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if s, h := l2.Head(); s != seq || h != head {
		t.Fatalf("reopened at %d %s, want %d %s", s, h, seq, head)
	}
	e, err := l2.Append(Entry{Actor: "admin", Action: "token.create", Outcome: "ok"})
	if err != nil || e.Seq != 4 || e.Prev != head {
		t.Fatalf("%+v %v", e, err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	sum, err := Verify(f)
	if err != nil || sum.Entries != 4 || sum.Head != e.Hash {
		t.Fatalf("%+v %v", sum, err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	l, path := openLog(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := l.Append(Entry{Actor: fmt.Sprint("g", g), Action: "x", Outcome: fmt.Sprint(i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(path)
	sum, err := Verify(bytes.NewReader(b))
	if err != nil || sum.Entries != 200 {
		t.Fatalf("%+v %v", sum, err)
	}
	es, err := l.Entries(190, 5)
	if err != nil || len(es) != 5 || es[0].Seq != 191 {
		t.Fatalf("paging: %d entries from %v, %v", len(es), es, err)
	}
	if err := VerifyEntries(es, es[0].Prev, 191); err != nil {
		t.Fatal(err)
	}
}

// TestTampering: every kind of change is found, at the right place.
func TestTampering(t *testing.T) {
	l, path := openLog(t)
	fill(t, l, 5)
	l.Close()
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	cases := []struct {
		name    string
		edit    func([]string) []string
		wantSeq uint64
	}{
		{"edited field", func(ls []string) []string {
			ls[2] = strings.Replace(ls[2], "207058575627097", "275126322074974", 1)
			return ls
		}, 3},
		{"deleted line", func(ls []string) []string { return append(ls[:1:1], ls[2:]...) }, 2},
		{"swapped lines", func(ls []string) []string { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2},
		{"first prev edited", func(ls []string) []string {
			ls[0] = strings.Replace(ls[0], Genesis, strings.Repeat("1", 64), 1)
			return ls
		}, 1},
		{"not JSON", func(ls []string) []string { ls[3] = "garbage\n"; return ls }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Join(c.edit(append([]string(nil), lines...)), "")
			_, err := Verify(strings.NewReader(data))
			var ce *ChainError
			if !errors.As(err, &ce) || (c.wantSeq != 0 && ce.Seq != c.wantSeq) {
				t.Fatalf("got %v, want a break at entry %d", err, c.wantSeq)
			}
			// Open refuses to append to it too.
			p := filepath.Join(t.TempDir(), "audit.log")
			os.WriteFile(p, []byte(data), 0o600)
			if l, err := Open(p, Options{}); err == nil {
				l.Close()
				t.Fatal("Open accepted a broken log")
			}
		})
	}
}

// TestPartialLastLine: a write cut by a kill is dropped at Open.
func TestPartialLastLine(t *testing.T) {
	l, path := openLog(t)
	fill(t, l, 3)
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.WriteString(`{"seq":4,"time":"2026-11-24T10:00:00Z","act`)
	f.Close()
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if seq, _ := l2.Head(); seq != 3 {
		t.Fatalf("head %d", seq)
	}
	if _, err := l2.Append(Entry{Action: "after"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if sum, err := Verify(bytes.NewReader(b)); err != nil || sum.Entries != 4 {
		t.Fatalf("%+v %v", sum, err)
	}
}

func TestRefusesOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, nil, 0o644)
	if l, err := Open(path, Options{}); err == nil {
		l.Close()
		t.Fatal("a world-readable log was accepted")
	}
}

func TestTimeIsUTC(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	l, _ := openLog(t)
	l.now = func() time.Time { return time.Date(2026, 11, 24, 11, 0, 0, 5, paris) }
	e, err := l.Append(Entry{Action: "x"})
	if err != nil || e.Time.Location() != time.UTC || e.Time.Hour() != 10 {
		t.Fatalf("%v %v", e.Time, err)
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(filepath.Join(dir, "a.log"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		l.Append(Entry{Actor: "a", Action: fmt.Sprint(i), Outcome: "ok"})
	}
	l.Close()
	good, _ := os.ReadFile(filepath.Join(dir, "a.log"))
	f.Add(good)
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, err := Verify(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever verifies must re-verify entry by entry.
		var es []Entry
		scan(bytes.NewReader(data), func(e Entry, _ int) error { es = append(es, e); return nil })
		if len(es) != sum.Entries || VerifyEntries(es, Genesis, 1) != nil {
			t.Fatalf("Verify accepted what VerifyEntries refuses: %d entries", len(es))
		}
	})
}
