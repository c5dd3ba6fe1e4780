package vpcd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// BasePort is the TCP port of vpcd's first virtual reader ("Virtual PCD 00
// 00"); reader n listens on BasePort+n.
const BasePort = 35963

// Control messages vpcd sends as one-byte frames.
const (
	ctlPowerOff = 0x00
	ctlPowerOn  = 0x01
	ctlReset    = 0x02
	ctlATR      = 0x04
)

// Addr returns the address of vpcd's reader n on this machine.
func Addr(n int) string { return fmt.Sprintf("127.0.0.1:%d", BasePort+n) }

// ReaderName returns the PC/SC name pcscd gives vpcd's reader n.
func ReaderName(n int) string { return fmt.Sprintf("Virtual PCD 00 %02d", n) }

// Faults are knobs that make an inserted card misbehave the way worn cards
// and clumsy users do. The zero value is a well-behaved card.
type Faults struct {
	// Delay is added before every APDU response.
	Delay time.Duration `json:"delay,omitempty"`
	// ForceSW, when non-zero, answers APDUs with this status word alone.
	ForceSW uint16 `json:"force_sw,omitempty"`
	// ForceSWOnINS restricts ForceSW to one instruction byte (0: every APDU).
	ForceSWOnINS byte `json:"force_sw_on_ins,omitempty"`
	// PullAfter, when positive, pulls the card in the middle of the
	// PullAfter-th APDU from now: the command is read, never answered, and
	// the connection closes as if the card left the reader.
	PullAfter int `json:"pull_after,omitempty"`
	// ATR, when set, is presented instead of the card's own answer to reset.
	ATR []byte `json:"atr,omitempty"`
}

// Slot is one virtual reader seen from the card side: it holds at most one
// card and keeps it connected to vpcd, reconnecting when pcscd restarts.
type Slot struct {
	addr string
	log  *slog.Logger
	// noQuickAck turns the TCP_QUICKACK fix off, for the benchmark that
	// measures what it saves.
	noQuickAck bool

	mu        sync.Mutex
	card      Card
	faults    Faults
	apdus     int // APDUs answered since insertion
	connected bool
	connCh    chan struct{} // closed when connected becomes true; replaced on disconnect
	stop      context.CancelFunc
	done      chan struct{}
	pulled    chan struct{} // closed when a PullAfter fault fires
}

// NewSlot returns an empty slot for the vpcd reader at addr (see Addr).
func NewSlot(addr string, log *slog.Logger) *Slot {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Slot{addr: addr, log: log.With("vpcd", addr)}
}

// DisableQuickAck turns off the per-read TCP_QUICKACK. Only benchmarks
// want this: it brings back vpcd's ~40 ms stall per APDU.
func (s *Slot) DisableQuickAck() {
	s.mu.Lock()
	s.noQuickAck = true
	s.mu.Unlock()
}

// ErrOccupied is returned when inserting into a slot that holds a card.
var ErrOccupied = errors.New("vpcd: a card is already in this reader")

// Insert puts a card in the reader. It returns at once; the card reaches
// pcscd when vpcd accepts the connection (see WaitConnected), and comes back
// by itself after pcscd restarts.
func (s *Slot) Insert(card Card, f Faults) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.card != nil {
		return ErrOccupied
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.card, s.faults, s.apdus = card, f, 0
	s.stop, s.done = cancel, make(chan struct{})
	s.connCh, s.pulled = make(chan struct{}), make(chan struct{})
	go s.run(ctx, card, s.done)
	return nil
}

// Remove takes the card out: the connection closes, which vpcd reports to
// pcscd as a removal. Removing from an empty slot does nothing.
func (s *Slot) Remove() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
	s.clear(done)
}

// clear empties the slot if it still holds the card whose goroutine is done.
func (s *Slot) clear(done chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == done {
		if s.stop != nil {
			s.stop()
		}
		s.card, s.stop, s.done, s.connected = nil, nil, nil, false
	}
}

// Card returns the inserted card, or nil.
func (s *Slot) Card() Card {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.card
}

// Connected reports whether the inserted card is connected to vpcd.
func (s *Slot) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// SetFaults replaces the fault knobs of the inserted card.
func (s *Slot) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the current fault knobs.
func (s *Slot) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// WaitConnected waits until the inserted card is connected to vpcd.
func (s *Slot) WaitConnected(ctx context.Context) error {
	s.mu.Lock()
	if s.card == nil {
		s.mu.Unlock()
		return errors.New("vpcd: no card in this reader")
	}
	ch := s.connCh
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vpcd: card not connected to %s (is pcscd running with the vpcd driver?): %w", s.addr, ctx.Err())
	}
}

// Pulled returns a channel closed when a PullAfter fault has pulled the card.
func (s *Slot) Pulled() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulled
}

// run keeps the card connected until the context ends or a fault pulls it.
func (s *Slot) run(ctx context.Context, card Card, done chan struct{}) {
	defer close(done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			// pcscd is down or restarting: vpcd's port comes back with it.
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			// The cap keeps a card back in its reader well within a
			// second of pcscd's return (cardreader's recovery test allows
			// 2 s, of which pcscd's own 400 ms polling takes a share).
			backoff = min(backoff*2, 250*time.Millisecond)
			continue
		}
		backoff = 50 * time.Millisecond
		if !s.attach(ctx) {
			conn.Close()
			return
		}
		card.Reset()
		// Cancelling closes the connection, which ends serve's blocking read
		// whatever state the reconnect loop was in when Remove came.
		unhook := context.AfterFunc(ctx, func() { conn.Close() })
		err = s.serve(conn, card)
		unhook()
		conn.Close()
		s.detach()
		if errors.Is(err, errPulled) {
			s.log.Info("card pulled by fault knob")
			s.clear(done)
			return
		}
		if ctx.Err() == nil {
			s.log.Info("vpcd connection lost, reconnecting", "err", err)
		}
	}
}

func (s *Slot) attach(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	s.connected = true
	close(s.connCh)
	return true
}

func (s *Slot) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = false
	s.connCh = make(chan struct{})
}

var errPulled = errors.New("card pulled")

// serve answers vpcd until the connection ends.
func (s *Slot) serve(conn net.Conn, card Card) error {
	var r io.Reader = conn
	s.mu.Lock()
	if !s.noQuickAck {
		r = quickAckReader(conn)
	}
	s.mu.Unlock()
	var hdr [2]byte
	buf := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		buf = buf[:0]
		if cap(buf) < n {
			buf = make([]byte, 0, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		var resp []byte
		switch {
		case n == 0:
			continue
		case n == 1:
			switch buf[0] {
			case ctlPowerOff, ctlPowerOn, ctlReset:
				// A new power cycle starts a new session: no PIN state may
				// survive it, or one process inherits another's login.
				card.Reset()
				continue
			case ctlATR:
				resp = s.atr(card)
			default:
				s.log.Warn("unknown vpcd control message", "byte", buf[0])
				continue
			}
		default:
			var err error
			if resp, err = s.transmit(card, buf); err != nil {
				return err
			}
		}
		if err := writeFrame(conn, resp); err != nil {
			return err
		}
	}
}

func (s *Slot) atr(card Card) []byte {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	return presentedATR(card, f)
}

// ATR returns the answer to reset the inserted card presents now (its own,
// or the one a fault knob imposes), or nil for an empty slot.
func (s *Slot) ATR() []byte {
	s.mu.Lock()
	card, f := s.card, s.faults
	s.mu.Unlock()
	if card == nil {
		return nil
	}
	return presentedATR(card, f)
}

func presentedATR(card Card, f Faults) []byte {
	if len(f.ATR) > 0 {
		return f.ATR
	}
	return card.ATR()
}

// transmit applies the fault knobs around one APDU.
func (s *Slot) transmit(card Card, cmd []byte) ([]byte, error) {
	s.mu.Lock()
	f := s.faults
	s.apdus++
	pull := false
	if f.PullAfter > 0 {
		s.faults.PullAfter--
		if s.faults.PullAfter == 0 {
			pull = true
			close(s.pulled)
		}
	}
	s.mu.Unlock()
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if pull {
		return nil, errPulled
	}
	if f.ForceSW != 0 && (f.ForceSWOnINS == 0 || (len(cmd) > 1 && cmd[1] == f.ForceSWOnINS)) {
		return []byte{byte(f.ForceSW >> 8), byte(f.ForceSW)}, nil
	}
	resp := card.Transmit(cmd)
	if len(resp) < 2 {
		// A card always ends with a status word; an emulator bug must not
		// wedge the reader.
		resp = []byte{0x6F, 0x00}
	}
	return resp, nil
}

func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > 0xFFFF {
		return fmt.Errorf("vpcd: response of %d bytes does not fit a frame", len(payload))
	}
	frame := make([]byte, 2+len(payload))
	binary.BigEndian.PutUint16(frame, uint16(len(payload)))
	copy(frame[2:], payload)
	_, err := w.Write(frame)
	return err
}
