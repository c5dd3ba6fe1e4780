package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// broker fans events out to the SSE streams. A slow subscriber loses
// events rather than slowing the agent: its channel is bounded and it is
// told, on reconnection, which sequence numbers it missed (Last-Event-ID
// against the ring of recent events).
type broker struct {
	mu     sync.Mutex
	seq    uint64
	subs   map[chan api.Event]struct{}
	recent []api.Event // ring of the last events, for Last-Event-ID
	now    func() time.Time
}

const (
	recentEvents    = 256
	subscriberQueue = 64
)

func newBroker(now func() time.Time) *broker {
	return &broker{subs: map[chan api.Event]struct{}{}, now: now}
}

func (b *broker) publish(e api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = b.now().UTC()
	}
	if len(b.recent) == recentEvents {
		copy(b.recent, b.recent[1:])
		b.recent = b.recent[:recentEvents-1]
	}
	b.recent = append(b.recent, e)
	for c := range b.subs {
		select {
		case c <- e:
		default: // subscriber too slow: it will see a gap in seq
		}
	}
}

// subscribe returns a channel of events after seq `after` (0: only new ones)
// and a cancel function.
func (b *broker) subscribe(after uint64) (<-chan api.Event, []api.Event, func()) {
	c := make(chan api.Event, subscriberQueue)
	b.mu.Lock()
	var backlog []api.Event
	if after > 0 {
		for _, e := range b.recent {
			if e.Seq > after {
				backlog = append(backlog, e)
			}
		}
	}
	b.subs[c] = struct{}{}
	b.mu.Unlock()
	return c, backlog, func() {
		b.mu.Lock()
		delete(b.subs, c)
		b.mu.Unlock()
	}
}

// sseKeepAlive is the interval of comment lines that keep proxies and
// idle-connection reapers from closing a quiet stream.
const sseKeepAlive = 30 * time.Second

// serveSSE streams events as Server-Sent Events until the client goes or
// the agent stops. filter, when set, drops events the caller may not see.
func (b *broker) serveSSE(w http.ResponseWriter, r *http.Request, done <-chan struct{}, filter func(api.Event) bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, &api.Error{Status: 500, Code: api.CodeInternal, Message: "streaming unsupported"})
		return
	}
	after, _ := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
	events, backlog, cancel := b.subscribe(after)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	write := func(e api.Event) bool {
		if filter != nil && !filter(e) {
			return true
		}
		data, err := json.Marshal(e)
		if err != nil {
			return false
		}
		_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data)
		return err == nil
	}
	for _, e := range backlog {
		if !write(e) {
			return
		}
	}
	fl.Flush()
	keep := time.NewTimer(sseKeepAlive)
	defer keep.Stop()
	for {
		select {
		case e := <-events:
			if !write(e) {
				return
			}
			fl.Flush()
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
			keep.Reset(sseKeepAlive)
		case <-r.Context().Done():
			return
		case <-done:
			return
		}
	}
}
