// Package cardtest puts emulated cards in pcscd's virtual readers for Go
// tests that run on the real PC/SC stack (pcscd + vsmartcard-vpcd), the way
// net/http/httptest puts a server on loopback.
//
// vpcd has two readers shared by every test process on the machine, so each
// test takes a machine-wide lock for as long as it holds cards. Without a
// reachable pcscd with the vpcd driver, tests skip — unless
// DMPAGENT_REQUIRE_PCSC=1 (set by `make test`), where they fail, so CI
// cannot pass by skipping.
package cardtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// RequireEnv names the variable that turns a missing PC/SC stack into a
// test failure.
const RequireEnv = "DMPAGENT_REQUIRE_PCSC"

// Available reports whether pcscd answers and lists vpcd's first reader.
func Available() error {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer ctx.Release()
	readers, err := ctx.ListReaders()
	if err != nil {
		return err
	}
	if !slices.Contains(readers, vpcd.ReaderName(0)) {
		return errNoVPCD
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoVPCD = errString("pcscd lists no vpcd reader: install vsmartcard-vpcd and restart pcscd")

// The flock is per open file, so a second flock from this process would
// wait for the first: the process takes it once and counts its holders. A
// subtest thus shares its parent's hold; tests that use the readers must
// not run in parallel with each other (they would share the readers too).
var (
	heldMu   sync.Mutex
	holders  int
	unlockFn func()
)

// Lock takes the machine-wide lock on vpcd's readers for the rest of the
// test, skipping (or failing, see RequireEnv) when the stack is absent.
//
// The lock comes first and the check after: a test of another package may be
// restarting pcscd under the lock (cardreader's recovery test does).
func Lock(t testing.TB) {
	t.Helper()
	lock(t)
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("real PC/SC stack required (%s=1) but unavailable: %v", RequireEnv, err)
		}
		t.Skipf("no PC/SC stack with vpcd (%v); `make test` starts one", err)
	}
}

func lock(t testing.TB) {
	t.Helper()
	heldMu.Lock()
	defer heldMu.Unlock()
	if holders == 0 {
		// Generous: another package's test may hold the readers for minutes
		// (cardreader's 1,000 cycles take about 7).
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		unlock, err := vpcd.LockReaders(ctx)
		if err != nil {
			t.Fatalf("lock vpcd readers: %v", err)
		}
		unlockFn = unlock
	}
	holders++
	t.Cleanup(func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		if holders--; holders == 0 {
			unlockFn()
			unlockFn = nil
		}
	})
}

// Insert puts card in vpcd reader n and returns once pcscd reports it; the
// card is removed (and pcscd seen empty) when the test ends.
func Insert(t testing.TB, n int, card vpcd.Card, f vpcd.Faults) *vpcd.Slot {
	t.Helper()
	Lock(t)
	slot := vpcd.NewSlot(vpcd.Addr(n), nil)
	if err := slot.Insert(card, f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := vpcd.WaitPCSC(ctx, n, true, slot.ATR()); err != nil {
		slot.Remove()
		t.Fatal(err)
	}
	t.Cleanup(func() { Remove(t, slot, n) })
	return slot
}

// Remove takes the card out of slot n and waits until pcscd reports the
// reader empty.
func Remove(t testing.TB, slot *vpcd.Slot, n int) {
	t.Helper()
	slot.Remove()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := vpcd.WaitPCSC(ctx, n, false, nil); err != nil {
		t.Error(err)
	}
}

var (
	pkiOnce sync.Once
	pkiVal  *pki.PKI
	pkiErr  error
)

// PKI returns the test PKI shared by every test process of this user: it is
// generated once (a second or two of RSA key generation) and loaded after.
func PKI(t testing.TB) *pki.PKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir := os.Getenv("DMPAGENT_TEST_PKI")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("dmpagent-test-pki-%d", os.Getuid()))
		}
		pkiVal, pkiErr = pki.LoadOrCreate(dir)
	})
	if pkiErr != nil {
		t.Fatalf("test PKI: %v", pkiErr)
	}
	return pkiVal
}
