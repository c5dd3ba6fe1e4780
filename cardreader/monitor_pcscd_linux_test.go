package cardreader_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// RestartableEnv is set by testcards/scripts/with-pcscd.sh when it started
// pcscd itself: only then may a test kill and restart it (a developer's own
// pcscd is left alone).
const restartableEnv = "DMPAGENT_PCSCD_RESTARTABLE"

// TestMonitorSurvivesPcscdRestart kills pcscd under a running monitor with
// two cards in, starts it again, and checks that the monitor reports the
// loss, then the readers and cards again within 2 s of pcscd being back.
func TestMonitorSurvivesPcscdRestart(t *testing.T) {
	if os.Getenv(restartableEnv) != "1" {
		t.Skipf("%s is not 1: this pcscd is not ours to restart (make test starts one that is)", restartableEnv)
	}
	w := startMonitor(t, cardreader.MonitorConfig{})
	w.expectReaders()
	cps, err := testcards.NewCPS(cardtest.PKI(t), "emergency")
	if err != nil {
		t.Fatal(err)
	}
	vit, err := testcards.NewVitale("family")
	if err != nil {
		t.Fatal(err)
	}
	cardtest.Insert(t, 0, cps, vpcd.Faults{})
	cardtest.Insert(t, 1, vit, vpcd.Faults{})
	w.expectKinds(cardreader.CardInserted, cardreader.CardInserted)

	for round := range 2 { // the second round proves the first recovery was complete
		killPcscd(t)
		w.expectKinds(cardreader.CardRemoved, cardreader.ReaderRemoved, cardreader.CardRemoved,
			cardreader.ReaderRemoved, cardreader.ServiceLost)
		if err := w.m.ServiceErr(); err == nil || !strings.Contains(err.Error(), "unavailable") {
			t.Errorf("ServiceErr() = %v while pcscd is down", err)
		}
		time.Sleep(300 * time.Millisecond) // let the monitor retry against nothing
		back := startPcscd(t)
		deadline := back.Add(2 * time.Second)
		got := w.collectUntil(deadline, 2, cardreader.CardInserted)
		kinds := make([]string, len(got))
		for i, e := range got {
			kinds[i] = string(e.Kind)
		}
		if len(got) == 0 || got[0].Kind != cardreader.ServiceRestored || countKind(got, cardreader.CardInserted) != 2 ||
			countKind(got, cardreader.ReaderAdded) < 2 {
			t.Fatalf("round %d: within 2 s of pcscd being back got %v, want service-restored, the readers and both cards", round, kinds)
		}
		t.Logf("round %d: cards reported again %v after pcscd was back", round, got[len(got)-1].Time.Sub(back).Round(time.Millisecond))
		if w.m.ServiceErr() != nil {
			t.Errorf("ServiceErr() = %v after recovery", w.m.ServiceErr())
		}
	}
}

// killPcscd stops every pcscd and waits until they are gone.
func killPcscd(t *testing.T) {
	t.Helper()
	pids := pcscdPIDs()
	if len(pids) == 0 {
		t.Fatal("no pcscd to kill")
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for range 100 {
		if len(pcscdPIDs()) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("pcscd still running 5 s after SIGTERM")
}

func pcscdPIDs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "pcscd" {
			continue
		}
		// A pcscd that has exited but not been reaped is not running.
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// startPcscd starts pcscd the way with-pcscd.sh does and returns when it
// lists vpcd's readers: the moment "pcscd is back" for a PC/SC client.
func startPcscd(t *testing.T) time.Time {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(os.TempDir(), "dmpagent-pcscd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("pcscd", "--foreground")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it ends while we run
	for range 1000 {
		if listsVPCD() {
			return time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("pcscd does not list the vpcd readers 5 s after start")
	return time.Time{}
}

func listsVPCD() bool {
	sc, err := scard.EstablishContext()
	if err != nil {
		return false
	}
	defer sc.Release()
	rs, err := sc.ListReaders()
	return err == nil && slices.Contains(rs, vpcd.ReaderName(0)) && slices.Contains(rs, vpcd.ReaderName(1))
}
