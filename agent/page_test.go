package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
)

// chromium finds the browser, or skips (fails under make test).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(cardtest.RequireEnv) == "1" {
		t.Fatal("chromium missing (make test installs it)")
	}
	t.Skip("chromium missing: apt-get install chromium")
	return ""
}

// TestPage drives the agent's own page in headless Chromium: status with
// the readers and the CPS holder, a wrong PIN then the right one typed in
// the page (never through the practice software), pairing approval by
// the code the requesting software shows; and a screenshot.
func TestPage(t *testing.T) {
	browser := chromium(t)
	s := newStack(t)
	s.insert(0, "cps", "gp")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1000, 1400),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// A watchdog rather than a context timeout: chromedp ties the
	// browser's life to the context of the first Run.
	watchdog := time.AfterFunc(2*time.Minute, cancel)
	defer watchdog.Stop()

	do := func(acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for _, a := range acts {
			if _, err := chromedp.Run(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	do(chromedp.Navigate("http://"+s.agent.Addr()+"/"),
		chromedp.WaitVisible(`#agent-state[data-state="open"]`),
		chromedp.WaitVisible(`#login-form`))
	readers, cps := text(`#readers`), text(`#cps`)
	if !strings.Contains(readers, "carte CPS") || !strings.Contains(cps, "LIBRE") || !strings.Contains(cps, "899900063480") {
		t.Fatalf("readers %q, cps %q", readers, cps)
	}
	// A wrong PIN: the page says how many tries are left.
	do(chromedp.SendKeys(`#pin`, "9999"), chromedp.Click(`#login`), chromedp.WaitVisible(`#session-error`))
	if pinError := text(`#session-error`); !strings.Contains(pinError, "Il reste 2 essais") {
		t.Fatalf("wrong PIN message %q", pinError)
	}
	do(chromedp.SendKeys(`#pin`, testcards.PIN), chromedp.Click(`#login`), chromedp.WaitVisible(`#session-state[data-state="open"]`))
	if sessionText := text(`#session-state`); !strings.Contains(sessionText, "Max LIBRE") {
		t.Fatalf("session %q", sessionText)
	}
	st, err := s.app.Status(context.Background())
	if err != nil || st.Session == nil || st.Session.IDNat != idNatGP {
		t.Fatalf("the page's login did not open the agent's session: %+v %v", st, err)
	}

	// Pairing: the request shows up (without its code), the person types
	// the code the software displays.
	anon := s.client("")
	p, err := anon.RequestPairing(context.Background(), "Logiciel Cabinet", "")
	if err != nil {
		t.Fatal(err)
	}
	do(chromedp.WaitVisible(`#pairings li.pairing`))
	pending := text(`#pairings`)
	do(chromedp.SendKeys(`#pairing-code`, p.Code), chromedp.Click(`#approve`), chromedp.WaitVisible(`#pairing-result.ok`))
	result := text(`#pairing-result`)
	if !strings.Contains(pending, "Logiciel Cabinet") || strings.Contains(pending, p.Code) {
		t.Fatalf("pending list %q (must name the software, not show its code)", pending)
	}
	if !strings.Contains(result, "Logiciel Cabinet") {
		t.Fatalf("approval result %q", result)
	}
	got, err := anon.PollPairing(context.Background(), p.ID)
	if err != nil || got.State != api.PairingApproved || got.Token == "" {
		t.Fatalf("pairing after the page's approval %+v, %v", got, err)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 {
		t.Fatalf("screenshot of %d bytes", len(png))
	}
	dir := os.Getenv("DMPAGENT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "agent-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	assertNoPIN(t, s)
}
