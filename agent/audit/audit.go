// Package audit is the agent's append-only audit log: one JSON line per API
// action and DMP transaction, each carrying the SHA-256 of the previous one,
// so that editing, removing or reordering an entry breaks the chain that
// `dmpagent audit verify` checks.
//
// What it does not protect against: someone able to rewrite the whole file
// can recompute every hash; cutting whole entries off the end leaves a
// shorter valid chain. Anchoring the head elsewhere (a copy of Head() sent
// off the machine) closes both; the file is the agent user's only (0600)
// in the agent's data directory, since entries name patients by INS.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Genesis is the prev of the first entry.
var Genesis = strings.Repeat("0", 64)

// maxLine bounds one entry, so that a hostile file cannot exhaust memory.
const maxLine = 1 << 20

// Entry is one line of the log.
type Entry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details,omitempty"`
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash,omitempty"`
}

// digest is the hash of everything in the entry but the hash: the JSON of
// the entry with Hash empty (fixed field order; encoding/json sorts the
// details' keys), time in UTC with nanoseconds.
func (e Entry) digest() string {
	e.Hash = ""
	e.Time = e.Time.UTC()
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ChainError says where the chain breaks.
type ChainError struct {
	Seq    uint64 // the entry's seq as expected at that place
	Line   int    // 1-based line in the file, 0 when verifying entries
	Reason string
}

func (e *ChainError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("audit chain broken at line %d (entry %d): %s", e.Line, e.Seq, e.Reason)
	}
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Reason)
}

// check verifies e as the entry following prev at seq.
func check(e Entry, prev string, seq uint64) string {
	switch {
	case e.Seq != seq:
		return fmt.Sprintf("seq %d where %d was expected (an entry was removed or moved)", e.Seq, seq)
	case e.Prev != prev:
		return "prev does not match the previous entry's hash"
	case e.Hash != e.digest():
		return "hash does not match the entry (it was edited)"
	}
	return ""
}

// VerifyEntries checks entries as the continuation of a chain whose last
// hash is prev and whose next seq is nextSeq (Genesis and 1 from the start).
func VerifyEntries(entries []Entry, prev string, nextSeq uint64) error {
	for _, e := range entries {
		if r := check(e, prev, nextSeq); r != "" {
			return &ChainError{Seq: nextSeq, Reason: r}
		}
		prev, nextSeq = e.Hash, nextSeq+1
	}
	return nil
}

// Summary describes a verified log.
type Summary struct {
	Entries     int
	Head        string // hash of the last entry (Genesis when empty)
	First, Last time.Time
}

// Verify reads a whole log and checks its chain.
func Verify(r io.Reader) (Summary, error) {
	s := Summary{Head: Genesis}
	_, err := scan(r, func(e Entry, line int) error {
		if reason := check(e, s.Head, uint64(s.Entries)+1); reason != "" {
			return &ChainError{Seq: uint64(s.Entries) + 1, Line: line, Reason: reason}
		}
		if s.Entries == 0 {
			s.First = e.Time
		}
		s.Entries++
		s.Head, s.Last = e.Hash, e.Time
		return nil
	})
	return s, err
}

// scan calls fn for each complete line; it returns the offset after the
// last complete line (a final line without newline is not given to fn).
func scan(r io.Reader, fn func(Entry, int) error) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for line := 1; ; line++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, &ChainError{Seq: 0, Line: line, Reason: err.Error()}
		}
		if b[len(b)-1] != '\n' {
			return off, errPartial // the process died mid-write
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return off, &ChainError{Line: line, Reason: "not an entry: " + err.Error()}
		}
		if err := fn(e, line); err != nil {
			return off, err
		}
		off += int64(len(b))
	}
}

var errPartial = errors.New("audit: last line incomplete")

// readLine reads one line, newline included, refusing lines over maxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(out) > 0 {
			return out, nil // partial last line; the caller sees no newline
		}
		return out, err
	}
}

// Options tune a Log.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Log is an open audit log, safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	seq  uint64
	head string
	now  func() time.Time
}

// Open opens or creates the log at path, verifying what it holds: a broken
// chain is an error, since appending to a tampered log would bury the
// tampering. An incomplete last line (the agent was killed mid-write; the
// entry was never acknowledged) is cut off.
func Open(path string, opt Options) (*Log, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" {
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			f.Close()
			return nil, fmt.Errorf("audit log %s is readable by others (%v): chmod 600 it", path, fi.Mode().Perm())
		}
	}
	l := &Log{f: f, path: path, head: Genesis, now: now}
	end, err := scan(f, func(e Entry, line int) error {
		if reason := check(e, l.head, l.seq+1); reason != "" {
			return &ChainError{Seq: l.seq + 1, Line: line, Reason: reason}
		}
		l.seq, l.head = e.Seq, e.Hash
		return nil
	})
	if errors.Is(err, errPartial) {
		log.Warn("audit log: cutting off an incomplete last entry (the agent stopped mid-write)", "path", path)
		if err = f.Truncate(end); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// Append adds an entry, filling Seq, Time (when zero), Prev and Hash; the
// line is written in one write and synced before Append returns.
func (l *Log) Append(e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return Entry{}, errors.New("audit: log closed")
	}
	e.Seq, e.Prev = l.seq+1, l.head
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	e.Hash = e.digest()
	b, err := json.Marshal(e)
	if err != nil {
		return Entry{}, err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return Entry{}, fmt.Errorf("audit: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return Entry{}, fmt.Errorf("audit: %w", err)
	}
	l.seq, l.head = e.Seq, e.Hash
	return e, nil
}

// Head is the last entry's seq and hash.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// Entries returns at most limit entries with Seq > after, reading the file
// from the start (the log is read rarely: by an admin verifying it).
func (l *Log) Entries(after uint64, limit int) ([]Entry, error) {
	l.mu.Lock()
	path := l.path
	l.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	stop := errors.New("enough")
	_, err = scan(f, func(e Entry, _ int) error {
		if e.Seq > after {
			out = append(out, e)
			if len(out) >= limit {
				return stop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) && !errors.Is(err, errPartial) {
		return nil, err
	}
	return out, nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
