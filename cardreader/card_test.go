package cardreader_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/vitale"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// Card operations on the real stack: reading the CPS identity and the
// Vitale card through pcscd, the errors a desk produces, and the sharing
// discipline (the card is ours for one transaction only).

func TestReadIdentityEachProfessional(t *testing.T) {
	p := cardtest.PKI(t)
	for _, pro := range persona.Professionals() {
		t.Run(pro.Name, func(t *testing.T) {
			c, err := testcards.NewCPS(p, pro.Name)
			if err != nil {
				t.Fatal(err)
			}
			cardtest.Insert(t, 0, c, vpcd.Faults{})
			id, err := cardreader.ReadIdentity(t.Context(), vpcd.ReaderName(0))
			if err != nil {
				t.Fatal(err)
			}
			if id.IDNat != pro.IDNat || id.Kind != cardreader.KindRPPS || id.Surname != pro.Surname ||
				id.GivenName != pro.GivenName || id.Profession != pro.ProfessionLabel || !id.Test {
				t.Errorf("identity %+v, want persona %+v", id, pro)
			}
			if err := id.Valid(time.Now()); err != nil {
				t.Errorf("test certificate not valid now: %v", err)
			}
			// No PIN was asked: the card's PIN counter is untouched.
			if n := c.PINTriesLeft(); n != 3 {
				t.Errorf("PIN tries left %d after reading the identity, want 3", n)
			}
		})
	}
}

func TestReadIdentityOfAVitaleCard(t *testing.T) {
	v, err := testcards.NewVitale("single")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 1, v, vpcd.Faults{})
	if _, err := cardreader.ReadIdentity(t.Context(), vpcd.ReaderName(1)); !errors.Is(err, cardreader.ErrNotPIV) {
		t.Fatalf("ReadIdentity on a Vitale card: %v, want ErrNotPIV", err)
	}
}

func TestReadVitaleEachPatient(t *testing.T) {
	for _, pat := range persona.Patients() {
		t.Run(pat.Name, func(t *testing.T) {
			v, err := testcards.NewVitale(pat.Name)
			if err != nil {
				t.Fatal(err)
			}
			cardtest.Insert(t, 1, v, vpcd.Faults{})
			var r cardreader.VitaleReader = cardreader.DirectVitale{}
			data, err := r.ReadVitale(t.Context(), vpcd.ReaderName(1))
			if err != nil {
				t.Fatal(err)
			}
			if len(data.Beneficiaries) != len(pat.Beneficiaries) {
				t.Fatalf("%d beneficiaries, want %d", len(data.Beneficiaries), len(pat.Beneficiaries))
			}
			for i, want := range pat.Beneficiaries {
				got := data.Beneficiaries[i]
				if got.NIR != want.NIR || got.Surname != vitale.CardText(want.Surname) ||
					got.GivenName != vitale.CardText(want.GivenName) || got.BirthDate != want.BirthDate ||
					got.Rank != want.Rank || got.Quality != want.Quality {
					t.Errorf("beneficiary %d: got %+v, want %+v", i, got, want)
				}
			}
			if data.Card.ValidFrom != pat.ValidFrom || data.Card.Serial != pat.CardSerial {
				t.Errorf("card data %+v, want valid from %s serial %s", data.Card, pat.ValidFrom, pat.CardSerial)
			}
			// Right after our read, the practice software can have the
			// card to itself.
			if err := exclusiveConnect(vpcd.ReaderName(1)); err != nil {
				t.Errorf("exclusive connect after ReadVitale: %v", err)
			}
		})
	}
}

// TestReadVitaleWhileAnotherAppReads: another application connected in
// shared mode does not stop us; one holding the card exclusively gives
// ErrCardBusy at once rather than a wait.
func TestReadVitaleWhileAnotherAppReads(t *testing.T) {
	v, err := testcards.NewVitale("family")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 1, v, vpcd.Faults{})
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()

	shared, err := sc.Connect(vpcd.ReaderName(1), scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (cardreader.DirectVitale{}).ReadVitale(t.Context(), vpcd.ReaderName(1)); err != nil {
		t.Fatalf("read with another application connected in shared mode: %v", err)
	}
	shared.Disconnect(scard.LeaveCard)

	excl, err := sc.Connect(vpcd.ReaderName(1), scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	defer excl.Disconnect(scard.LeaveCard)
	_, err = cardreader.DirectVitale{}.ReadVitale(t.Context(), vpcd.ReaderName(1))
	if !errors.Is(err, cardreader.ErrCardBusy) {
		t.Fatalf("read while another application holds the card exclusively: %v, want ErrCardBusy", err)
	}
}

func TestCardErrors(t *testing.T) {
	cardtest.Lock(t)
	read := func(ctx context.Context, reader string) error {
		_, err := cardreader.DirectVitale{}.ReadVitale(ctx, reader)
		return err
	}
	t.Run("empty reader", func(t *testing.T) {
		if err := read(t.Context(), vpcd.ReaderName(1)); !errors.Is(err, cardreader.ErrNoCard) {
			t.Fatalf("got %v, want ErrNoCard", err)
		}
	})
	t.Run("no such reader", func(t *testing.T) {
		if err := read(t.Context(), "Unplugged Reader 00 00"); !errors.Is(err, cardreader.ErrNoReader) {
			t.Fatalf("got %v, want ErrNoReader", err)
		}
	})
	t.Run("pulled mid-read", func(t *testing.T) {
		v, err := testcards.NewVitale("family")
		if err != nil {
			t.Fatal(err)
		}
		cardtest.Insert(t, 1, v, vpcd.Faults{PullAfter: 4})
		err = read(t.Context(), vpcd.ReaderName(1))
		if !errors.Is(err, cardreader.ErrCardRemoved) {
			t.Fatalf("got %v, want ErrCardRemoved", err)
		}
	})
	t.Run("card slower than the deadline", func(t *testing.T) {
		v, err := testcards.NewVitale("single")
		if err != nil {
			t.Fatal(err)
		}
		cardtest.Insert(t, 1, v, vpcd.Faults{Delay: time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err = read(ctx, vpcd.ReaderName(1))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	})
}
