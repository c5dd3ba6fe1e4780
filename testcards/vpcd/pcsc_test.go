package vpcd_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// versionCard answers GET VERSION (00 FD) like piv-go expects and 6D00 to
// everything else; enough to time round trips through pcscd.
type versionCard struct{ resets int }

func (c *versionCard) ATR() []byte { return []byte{0x3B, 0x80, 0x80, 0x01, 0x01} }
func (c *versionCard) Transmit(cmd []byte) []byte {
	if len(cmd) >= 2 && cmd[1] == 0xFD {
		return []byte{5, 7, 1, 0x90, 0x00}
	}
	return []byte{0x6D, 0x00}
}
func (c *versionCard) Reset() { c.resets++ }

// TestInsertRemoveSeenByPCSCD checks, through the real pcscd, that an
// inserted card shows with its ATR and answers, that removal is reported,
// and that a reinsertion works.
func TestInsertRemoveSeenByPCSCD(t *testing.T) {
	card := &versionCard{}
	for round := range 3 {
		slot := vpcd.NewSlot(vpcd.Addr(1), nil)
		cardtest.Lock(t)
		if err := slot.Insert(card, vpcd.Faults{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := vpcd.WaitPCSC(ctx, 1, true, card.ATR()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		cancel()
		resp := transmitOnce(t, vpcd.ReaderName(1), []byte{0x00, 0xFD, 0x00, 0x00, 0x00})
		if !bytes.Equal(resp, []byte{5, 7, 1, 0x90, 0x00}) {
			t.Fatalf("round %d: GET VERSION through pcscd = % X", round, resp)
		}
		cardtest.Remove(t, slot, 1)
		if c, release, err := connect(vpcd.ReaderName(1)); err == nil {
			c.Disconnect(scard.LeaveCard)
			release()
			t.Fatalf("round %d: connected to a removed card", round)
		}
	}
}

// TestWaitPCSCGivesUp checks that waiting for a card that never comes ends
// at the deadline with an error.
func TestWaitPCSCGivesUp(t *testing.T) {
	cardtest.Lock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := vpcd.WaitPCSC(ctx, 1, true, []byte{0x3B, 0x00}); err == nil {
		t.Fatal("WaitPCSC reported a card in an empty reader")
	}
}

// connect opens a shared connection; release frees its PC/SC context.
func connect(reader string) (*scard.Card, func(), error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return nil, nil, err
	}
	c, err := ctx.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		ctx.Release()
		return nil, nil, err
	}
	return c, func() { ctx.Release() }, nil
}

func transmitOnce(t testing.TB, reader string, cmd []byte) []byte {
	t.Helper()
	ctx, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Release()
	c, err := ctx.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(scard.LeaveCard)
	resp, err := c.Transmit(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// BenchmarkAPDURoundTrip times one APDU through pcscd and vpcd to the
// emulator and back, with the TCP_QUICKACK fix and without it (the
// baseline: vpcd's Nagle meets our delayed ACK, ~40 ms an APDU).
//
//	go test -run '^$' -bench APDURoundTrip -benchtime 50x ./testcards/vpcd/
func BenchmarkAPDURoundTrip(b *testing.B) {
	for _, quick := range []bool{true, false} {
		name := "quickack"
		if !quick {
			name = "no-quickack"
		}
		b.Run(name, func(b *testing.B) {
			slot := vpcd.NewSlot(vpcd.Addr(1), nil)
			if !quick {
				slot.DisableQuickAck()
			}
			card := &versionCard{}
			cardtest.Lock(b)
			if err := slot.Insert(card, vpcd.Faults{}); err != nil {
				b.Fatal(err)
			}
			defer cardtest.Remove(b, slot, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := vpcd.WaitPCSC(ctx, 1, true, card.ATR()); err != nil {
				b.Fatal(err)
			}
			c, release, err := connect(vpcd.ReaderName(1))
			if err != nil {
				b.Fatal(err)
			}
			defer release()
			defer c.Disconnect(scard.LeaveCard)
			cmd := []byte{0x00, 0xFD, 0x00, 0x00, 0x00}
			b.ResetTimer()
			for range b.N {
				if _, err := c.Transmit(cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
