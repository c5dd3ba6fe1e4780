// Command agent measures the agent's service figures (issue 7), each
// against a baseline measured in the same run:
//
//	agent -mode api -d 10s -c 64   # GET /v1/status vs a bare net/http handler: req/s, p50/p99
//	agent -mode events -n 30       # card insertion → SSE event vs an in-process cardreader.Monitor
//	agent -mode idle -d 60s        # CPU and RSS of `dmpagent run` idle, with a CPS and a Vitale card in
//	agent -mode start -n 20        # exec → first 200 on /v1/health, vs exec → `dmpagent version` exit
//
// The events, idle and start modes run the real binary (-bin, default
// bin/dmpagent) and, for events and idle, need pcscd with vpcd (make bench's
// with-pcscd.sh starts one). Figures are machine-dependent; the ratios to
// the baselines are what carry over.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/bench/internal/proc"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/pkcs11"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

func main() {
	mode := flag.String("mode", "api", "api, events, idle or start")
	d := flag.Duration("d", 10*time.Second, "api: load duration; idle: idle time measured")
	conc := flag.Int("c", 64, "api: concurrent connections")
	n := flag.Int("n", 20, "events: insertions; start: starts")
	bin := flag.String("bin", "bin/dmpagent", "the dmpagent binary (events, idle, start)")
	flag.Parse()
	var err error
	switch *mode {
	case "api":
		err = apiBench(*d, *conc)
	case "events":
		err = eventsBench(*bin, *n)
	case "idle":
		err = idleBench(*bin, *d)
	case "start":
		err = startBench(*bin, *n)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench agent:", err)
		os.Exit(1)
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// config writes an agent configuration in a fresh directory.
func config(dmpURL string) (string, agent.Config, error) {
	dir, err := os.MkdirTemp("", "dmpagent-bench-")
	if err != nil {
		return "", agent.Config{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", agent.Config{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	module := pkcs11.OpenSCModulePath()
	if module == "" {
		module = "piv"
	}
	cfg := agent.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.DMPEndpoint, cfg.PKCS11Module, cfg.LogLevel = addr, filepath.Join(dir, "data"), dmpURL, module, "warn"
	path := filepath.Join(dir, "agent.conf")
	body := fmt.Sprintf("listen = %s\ndata_dir = data\ndmp_endpoint = %s\npkcs11_module = %s\nlog_level = warn\n", addr, dmpURL, module)
	return path, cfg, os.WriteFile(path, []byte(body), 0o600)
}

// apiBench loads GET /v1/status of an in-process agent and a bare handler
// answering a status-sized JSON body, one after the other, with the same
// client settings.
func apiBench(d time.Duration, conc int) error {
	_, cfg, err := config("https://127.0.0.1:1/unused")
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(cfg.DataDir))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := agent.New(ctx, cfg, agent.Options{Version: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	go a.Serve(ctx)
	tok, err := client.NewControl(a.ControlSocket()).CreateToken(ctx, api.TokenRequest{App: "bench"})
	if err != nil {
		return err
	}
	st, err := client.New(a.Addr(), tok.Secret).Status(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(st)
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go bare.Serve(ln)
	defer bare.Close()

	fmt.Printf("agent api: GET /v1/status, %d connections, %s each, after 1 s of warm-up (machine-dependent)\n", conc, d)
	bareRate, bareP50, bareP99, err := load("http://"+ln.Addr().String()+"/v1/status", "", conc, d)
	if err != nil {
		return err
	}
	rate, p50, p99, err := load("http://"+a.Addr()+"/v1/status", tok.Secret, conc, d)
	if err != nil {
		return err
	}
	fmt.Printf("  bare net/http handler: %8.0f req/s  p50 %s  p99 %s\n", bareRate, ms(bareP50), ms(bareP99))
	fmt.Printf("  agent /v1/status:      %8.0f req/s  p50 %s  p99 %s\n", rate, ms(p50), ms(p99))
	fmt.Printf("  ratio %.2f of bare (goal ≥ 0.50: %s); p99 %s (goal ≤ 5 ms: %s)\n", rate/bareRate, met(rate/bareRate >= 0.5), ms(p99), met(p99 <= 5*time.Millisecond))
	return nil
}

func load(url, token string, conc int, d time.Duration) (float64, time.Duration, time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func() (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		return time.Since(t0), err
	}
	run := func(d time.Duration, keep bool) ([]time.Duration, error) {
		var mu sync.Mutex
		var all []time.Duration
		var firstErr error
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(stop) {
					lat, err := get()
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					if keep {
						mine = append(mine, lat)
					}
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, firstErr
	}
	if _, err := run(time.Second, false); err != nil {
		return 0, 0, 0, err
	}
	lats, err := run(d, true)
	if err != nil {
		return 0, 0, 0, err
	}
	return float64(len(lats)) / d.Seconds(), percentile(lats, 0.5), percentile(lats, 0.99), nil
}

// startAgent runs `dmpagent run` on a configuration and waits for health.
func startAgent(bin, conf, addr string) (*exec.Cmd, time.Duration, error) {
	cmd := exec.Command(bin, "run", "--config", conf)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for time.Since(t0) < 20*time.Second {
		resp, err := c.Get("http://" + addr + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, time.Since(t0), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, 0, fmt.Errorf("the agent did not become healthy in 20 s")
}

func stopAgent(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// startBench: exec → healthy, against exec → exit of `dmpagent version`
// (the cost of starting the binary at all).
func startBench(bin string, n int) error {
	var starts, versions []time.Duration
	for range n {
		t0 := time.Now()
		if err := exec.Command(bin, "version").Run(); err != nil {
			return err
		}
		versions = append(versions, time.Since(t0))
		conf, cfg, err := config("https://127.0.0.1:1/unused")
		if err != nil {
			return err
		}
		cmd, d, err := startAgent(bin, conf, cfg.Listen)
		if err != nil {
			return err
		}
		starts = append(starts, d)
		stopAgent(cmd)
		os.RemoveAll(filepath.Dir(conf))
	}
	p50 := percentile(starts, 0.5)
	fmt.Printf("agent start: exec → first 200 on /v1/health, %d starts on a fresh data directory (machine-dependent)\n", n)
	fmt.Printf("  dmpagent version (exec → exit): p50 %s\n", ms(percentile(versions, 0.5)))
	fmt.Printf("  dmpagent run → healthy:         p50 %s  max %s  (goal ≤ 150 ms: %s)\n", ms(p50), ms(slices.Max(starts)), met(p50 <= 150*time.Millisecond))
	return nil
}

func withCards(fn func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	unlock, err := vpcd.LockReaders(ctx)
	cancel()
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

func benchPKI() (*pki.PKI, error) {
	return pki.LoadOrCreate(filepath.Join(os.TempDir(), fmt.Sprintf("dmpagent-bench-pki-%d", os.Getuid())))
}

// idleBench: a CPS and a Vitale card sit in the readers while `dmpagent
// run` idles; its CPU time over the window and its RSS at the end.
func idleBench(bin string, d time.Duration) error {
	return withCards(func() error {
		p, err := benchPKI()
		if err != nil {
			return err
		}
		cps, err := testcards.NewCPS(p, "gp")
		if err != nil {
			return err
		}
		vit, err := testcards.NewVitale("family")
		if err != nil {
			return err
		}
		for i, c := range []vpcd.Card{cps, vit} {
			s := vpcd.NewSlot(vpcd.Addr(i), nil)
			if err := s.Insert(c, vpcd.Faults{}); err != nil {
				return err
			}
			defer s.Remove()
		}
		conf, cfg, err := config("https://127.0.0.1:1/unused")
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(conf))
		cmd, _, err := startAgent(bin, conf, cfg.Listen)
		if err != nil {
			return err
		}
		defer stopAgent(cmd)
		time.Sleep(3 * time.Second) // start-up and the Vitale read settle
		c0, err := proc.CPUTime(cmd.Process.Pid)
		if err != nil {
			return err
		}
		time.Sleep(d)
		c1, err := proc.CPUTime(cmd.Process.Pid)
		if err != nil {
			return err
		}
		rss, err := proc.RSSKB(cmd.Process.Pid)
		if err != nil {
			return err
		}
		cpu := c1 - c0
		budget := time.Duration(float64(5*time.Millisecond) * d.Seconds() / 60)
		fmt.Printf("agent idle: `dmpagent run` with a CPS and a Vitale card in, %s (machine-dependent)\n", d)
		fmt.Printf("  CPU %s (goal ≤ %s: %s)   RSS %.1f MB (goal ≤ 30 MB: %s)\n", ms(cpu), ms(budget), met(cpu <= budget),
			float64(rss)/1024, met(rss <= 30*1024))
		fmt.Println("  (baseline: the card monitor alone, `go run ./bench/cardevents -mode idle`)")
		return nil
	})
}

// eventsBench: a card goes into reader 0 at a random phase of pcscd's
// polling; the time until the agent's SSE stream shows card.inserted, and
// until a cardreader.Monitor in this process sees it (the baseline: the
// agent's own monitor plus what the API adds).
func eventsBench(bin string, n int) error {
	return withCards(func() error {
		p, err := benchPKI()
		if err != nil {
			return err
		}
		conf, cfg, err := config("https://127.0.0.1:1/unused")
		if err != nil {
			return err
		}
		defer os.RemoveAll(filepath.Dir(conf))
		cmd, _, err := startAgent(bin, conf, cfg.Listen)
		if err != nil {
			return err
		}
		defer stopAgent(cmd)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tok, err := client.NewControl(cfg.ControlSocketPath()).CreateToken(ctx, api.TokenRequest{App: "bench"})
		if err != nil {
			return err
		}
		sse := make(chan time.Time, 16)
		go client.New(cfg.Listen, tok.Secret).Events(ctx, 0, func(e api.Event) error {
			if e.Type == api.EventCardInserted && e.Reader == vpcd.ReaderName(0) {
				sse <- time.Now()
			}
			return nil
		})
		mon := make(chan cardreader.Event, 16)
		m := cardreader.NewMonitor(cardreader.MonitorConfig{Log: slog.New(slog.DiscardHandler)})
		go m.Run(ctx, mon)
		time.Sleep(2 * time.Second)
		slot := vpcd.NewSlot(vpcd.Addr(0), nil)
		var agentLat, monLat []time.Duration
		for range n {
			card, err := testcards.NewVitale("single")
			if err != nil {
				return err
			}
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			t0 := time.Now()
			if err := slot.Insert(card, vpcd.Faults{}); err != nil {
				return err
			}
			var tm, ts time.Time
			deadline := time.After(10 * time.Second)
			for tm.IsZero() || ts.IsZero() {
				select {
				case e := <-mon:
					if e.Kind == cardreader.CardInserted && e.Reader == vpcd.ReaderName(0) {
						tm = time.Now()
					}
				case ts = <-sse:
				case <-deadline:
					return fmt.Errorf("no event within 10 s")
				}
			}
			monLat, agentLat = append(monLat, tm.Sub(t0)), append(agentLat, ts.Sub(t0))
			slot.Remove()
			time.Sleep(900 * time.Millisecond)
		}
		_ = p
		var diffs []time.Duration
		for i := range agentLat {
			diffs = append(diffs, agentLat[i]-monLat[i])
		}
		fmt.Printf("agent events: card insertion → card.inserted on GET /v1/events, %d insertions (machine-dependent; pcscd polls vpcd every 400 ms)\n", n)
		fmt.Printf("  cardreader.Monitor in-process: p50 %s  p99 %s\n", ms(percentile(monLat, 0.5)), ms(percentile(monLat, 0.99)))
		fmt.Printf("  agent SSE:                     p50 %s  p99 %s\n", ms(percentile(agentLat, 0.5)), ms(percentile(agentLat, 0.99)))
		fmt.Printf("  agent − monitor, same insertion: p50 %s  p99 %s\n", ms(percentile(diffs, 0.5)), ms(percentile(diffs, 0.99)))
		return nil
	})
}
