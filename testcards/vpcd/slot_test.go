package vpcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeVPCD speaks vpcd's side of the protocol on loopback. The real vpcd is
// exercised through pcscd in pcsc_test.go; this one lets a test drive the
// control messages and kill the connection at will.
type fakeVPCD struct {
	ln    net.Listener
	conns chan net.Conn
}

func newFakeVPCD(t *testing.T, addr string) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVPCD{ln: ln, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeVPCD) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the card never connected")
		return nil
	}
}

func send(t *testing.T, c net.Conn, payload ...byte) {
	t.Helper()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(payload)))
	if _, err := c.Write(append(frame, payload...)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// echoCard answers every APDU with its INS byte and 9000, and counts resets.
type echoCard struct {
	mu     sync.Mutex
	resets int
}

func (c *echoCard) ATR() []byte { return []byte{0x3B, 0x00} }
func (c *echoCard) Transmit(cmd []byte) []byte {
	return []byte{cmd[1], 0x90, 0x00}
}
func (c *echoCard) Reset() {
	c.mu.Lock()
	c.resets++
	c.mu.Unlock()
}
func (c *echoCard) resetCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

func TestSlotProtocol(t *testing.T) {
	f := newFakeVPCD(t, "127.0.0.1:0")
	card := &echoCard{}
	s := NewSlot(f.ln.Addr().String(), nil)
	if err := s.Insert(card, Faults{}); err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	if err := s.Insert(card, Faults{}); err != ErrOccupied {
		t.Fatalf("second insert: %v, want ErrOccupied", err)
	}
	c := f.accept(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	send(t, c, ctlATR)
	if got := recv(t, c); !bytes.Equal(got, card.ATR()) {
		t.Fatalf("ATR = % X", got)
	}
	before := card.resetCount()
	for _, ctl := range []byte{ctlPowerOff, ctlPowerOn, ctlReset} {
		send(t, c, ctl)
	}
	send(t, c, 0x00, 0xA4, 0x04, 0x00)
	if got := recv(t, c); !bytes.Equal(got, []byte{0xA4, 0x90, 0x00}) {
		t.Fatalf("APDU answer = % X", got)
	}
	// Power off, power on and reset each end the card session.
	if got := card.resetCount() - before; got != 3 {
		t.Fatalf("%d resets for power off/on/reset, want 3", got)
	}

	// Fault knobs: a forced status word, restricted to one INS.
	s.SetFaults(Faults{ForceSW: 0x6A82, ForceSWOnINS: 0xCB})
	send(t, c, 0x00, 0xCB, 0x3F, 0xFF)
	if got := recv(t, c); !bytes.Equal(got, []byte{0x6A, 0x82}) {
		t.Fatalf("forced SW: % X", got)
	}
	send(t, c, 0x00, 0xA4, 0x04, 0x00)
	if got := recv(t, c); !bytes.Equal(got, []byte{0xA4, 0x90, 0x00}) {
		t.Fatalf("other INS under ForceSWOnINS: % X", got)
	}
	// Another ATR.
	s.SetFaults(Faults{ATR: []byte{0x3B, 0x01, 0x02}})
	send(t, c, ctlATR)
	if got := recv(t, c); !bytes.Equal(got, []byte{0x3B, 0x01, 0x02}) {
		t.Fatalf("ATR knob: % X", got)
	}
	// Delay.
	s.SetFaults(Faults{Delay: 30 * time.Millisecond})
	start := time.Now()
	send(t, c, 0x00, 0xB0, 0x00, 0x00)
	recv(t, c)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("delay knob: answered after %v", d)
	}
}

func TestSlotPullAfter(t *testing.T) {
	f := newFakeVPCD(t, "127.0.0.1:0")
	s := NewSlot(f.ln.Addr().String(), nil)
	if err := s.Insert(&echoCard{}, Faults{PullAfter: 2}); err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	c := f.accept(t)
	pulled := s.Pulled()
	send(t, c, 0x00, 0x01, 0x00, 0x00)
	recv(t, c)
	send(t, c, 0x00, 0x02, 0x00, 0x00)
	// The second APDU is never answered: the connection closes instead.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("after the pull: read %d bytes, %v; want EOF", n, err)
	}
	select {
	case <-pulled:
	case <-time.After(5 * time.Second):
		t.Fatal("Pulled() never closed")
	}
	// A pulled card does not come back by itself, and the slot is free.
	deadline := time.Now().Add(5 * time.Second)
	for s.Card() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Card() != nil {
		t.Fatal("slot still holds the pulled card")
	}
	select {
	case c := <-f.conns:
		c.Close()
		t.Fatal("a pulled card reconnected")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSlotReconnects plays a pcscd restart: vpcd's port goes away and comes
// back, and the card reconnects by itself.
func TestSlotReconnects(t *testing.T) {
	f := newFakeVPCD(t, "127.0.0.1:0")
	addr := f.ln.Addr().String()
	card := &echoCard{}
	s := NewSlot(addr, nil)
	if err := s.Insert(card, Faults{}); err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	c := f.accept(t)
	f.ln.Close()
	c.Close()

	time.Sleep(200 * time.Millisecond) // the card retries against a closed port
	f2 := newFakeVPCD(t, addr)
	c2 := f2.accept(t)
	send(t, c2, 0x00, 0x42, 0x00, 0x00)
	if got := recv(t, c2); !bytes.Equal(got, []byte{0x42, 0x90, 0x00}) {
		t.Fatalf("after reconnect: % X", got)
	}
	if !s.Connected() {
		t.Fatal("Connected() false after reconnect")
	}
}

func TestSlotRemoveClosesConnection(t *testing.T) {
	f := newFakeVPCD(t, "127.0.0.1:0")
	s := NewSlot(f.ln.Addr().String(), nil)
	if err := s.Insert(&echoCard{}, Faults{}); err != nil {
		t.Fatal(err)
	}
	c := f.accept(t)
	s.Remove()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after Remove: %v, want EOF (vpcd reads EOF as removal)", err)
	}
	if s.Card() != nil || s.Connected() {
		t.Fatal("slot not empty after Remove")
	}
	s.Remove() // removing from an empty slot is harmless
	if err := s.Insert(&echoCard{}, Faults{}); err != nil {
		t.Fatalf("re-insert after Remove: %v", err)
	}
	f.accept(t)
	s.Remove()
}
