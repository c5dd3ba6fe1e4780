package dmp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// WireLog writes each request and response to a directory for support
// (--wire-log DIR), on the client and on the simulated DMP. Document parts are never written, only their ids; the
// PIN never reaches this layer. Files are readable by the owner only: the
// envelopes still carry patient identities.
type WireLog struct {
	dir string
	seq atomic.Uint64
}

// NewWireLog prepares dir; an empty dir means no log (a nil *WireLog, whose
// Write does nothing).
func NewWireLog(dir string) (*WireLog, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dmp: wire log: %w", err)
	}
	return &WireLog{dir: dir}, nil
}

// Write records one message, listing the ids of its MTOM parts instead of
// their bytes, and returns the file written; a failure to log never fails
// the call.
func (w *WireLog) Write(now time.Time, action, direction string, msg []byte, parts []string) string {
	if w == nil {
		return ""
	}
	name := fmt.Sprintf("%s-%04d-%s-%s.xml", now.UTC().Format("20060102T150405.000Z"), w.seq.Add(1), shortAction(action), direction)
	body := append(append([]byte(nil), msg...), elideParts(parts)...)
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return ""
	}
	return path
}

// shortAction keeps the last word of an action URI, safe for a file name.
func shortAction(action string) string {
	if i := strings.LastIndexAny(action, ":/"); i >= 0 {
		action = action[i+1:]
	}
	action = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, action)
	if action == "" {
		return "message"
	}
	return action
}
