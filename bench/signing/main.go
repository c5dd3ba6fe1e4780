// Command signing measures the time per signature of our crypto.Signer on
// the emulated test CPS against `pkcs11-tool --sign` on the same card, in
// the same run.
//
//	go run ./bench/signing -n 30   # rounds; -k, -p: signatures and pkcs11-tool pairs per round
//
// Three ways to the card's authentication key (PIV 9A, RSA-2048), each asked
// for PKCS#1 v1.5 signatures of a SHA-256 digest:
//
//   - module: pkcs11.LoadModule(opensc-pkcs11.so), Open, Login,
//     Signer(Authentication), Sign — the backend of real CPS cards;
//   - PIV: pkcs11.OpenPIV, Login, Signer, Sign — the backend the agent uses
//     for test tokens;
//   - pkcs11-tool --sign through the same opensc-pkcs11.so, which signs once
//     per process: see toolRun (tool.go) for how process start is taken out.
//
// It needs pcscd with the vsmartcard-vpcd driver, takes the machine-wide
// lock on vpcd's readers and puts the CPS of persona "gp" in one of them
// itself: this process is the card, the others reach it through pcscd.
//
// One program on the card at a time. OpenSC keeps a PC/SC connection to the
// card for as long as the module is loaded, in shared mode (pkcs11-tool
// works beside it), but piv-go takes the card exclusively: OpenPIV fails
// with ErrCardBusy while any process has opensc-pkcs11.so loaded with the
// card, even after Token.Close. So each backend runs in a child process
// started for its turn and gone before the next, and this process never
// loads the module. Each round runs the three in a rotating order, so that
// the machine's drift spreads over all of them.
//
// Before each turn (each child, each pkcs11-tool run) pcscd resets the card,
// so that every program finds it in the same state. OpenSC disconnects
// leaving the card as it is: a pkcs11-tool run that follows another before
// pcscd powers the card down finds the PIN still verified and sends 4 APDUs
// fewer (45 instead of 49 for --sign).
//
// The card counts the APDUs it answers: the count per signature, printed
// next to each figure, shows that the methods compare like with like.
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ebfe/scard"

	"github.com/dmpagent/dmpagent/pkcs11"
	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/piv"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

type config struct {
	rounds, sigs, pairs, reader int
	module                      string
}

// digest is what every method signs.
var digest = sha256.Sum256([]byte("ordonnance du 23 novembre"))

func main() {
	var cfg config
	flag.IntVar(&cfg.rounds, "n", 30, "rounds")
	flag.IntVar(&cfg.sigs, "k", 10, "signatures per backend per round")
	flag.IntVar(&cfg.pairs, "p", 20, "pkcs11-tool sign/baseline pairs per round")
	flag.IntVar(&cfg.reader, "reader", 0, "vpcd reader index")
	flag.StringVar(&cfg.module, "module", "", "OpenSC's PKCS#11 module (default: the usual paths)")
	child := flag.String("child", "", "internal: run as the module or piv signer")
	flag.Parse()
	if cfg.module == "" {
		for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"} {
			if cfg.module = filepath.Join(dir, "opensc-pkcs11.so"); fileExists(cfg.module) {
				break
			}
		}
	}
	var err error
	if *child != "" {
		err = signer(*child, cfg)
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, cfg)
		if err != nil && ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "signing:", err)
		os.Exit(1)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// countingCard is the emulated card, counting the APDUs it answers.
type countingCard struct {
	*piv.Card
	apdus atomic.Int64
}

func (c *countingCard) Transmit(cmd []byte) []byte {
	c.apdus.Add(1)
	return c.Card.Transmit(cmd)
}

// samples are one method's timings and the APDUs the card answered for them.
type samples struct {
	ds    []time.Duration
	apdus int64
}

func (s *samples) add(apdus int64, ds ...time.Duration) {
	s.ds = append(s.ds, ds...)
	s.apdus += apdus
}

func run(ctx context.Context, cfg config) error {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		return fmt.Errorf("%w (apt-get install opensc)", err)
	}
	if !fileExists(cfg.module) {
		return fmt.Errorf("no OpenSC module at %s (apt-get install opensc-pkcs11, or -module)", cfg.module)
	}
	unlock, err := lockReaders(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	p, err := pki.LoadOrCreate(filepath.Join(os.TempDir(), fmt.Sprintf("dmpagent-bench-pki-%d", os.Getuid())))
	if err != nil {
		return err
	}
	keys, err := p.Card("gp")
	if err != nil {
		return err
	}
	cps, err := testcards.NewCPS(p, "gp")
	if err != nil {
		return err
	}
	card := &countingCard{Card: cps}
	reader := vpcd.ReaderName(cfg.reader)
	slot := vpcd.NewSlot(vpcd.Addr(cfg.reader), nil)
	if err := slot.Insert(card, vpcd.Faults{}); err != nil {
		return err
	}
	defer func() {
		// Leave the reader empty, and pcscd knowing it, for the next user.
		slot.Remove()
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = vpcd.WaitPCSC(wctx, cfg.reader, false, nil)
	}()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = vpcd.WaitPCSC(wctx, cfg.reader, true, slot.ATR())
	cancel()
	if err != nil {
		return err
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer sc.Release()
	reset := func() error {
		c, err := sc.Connect(reader, scard.ShareShared, scard.ProtocolAny)
		if err != nil {
			return fmt.Errorf("reset card: %w", err)
		}
		return c.Disconnect(scard.ResetCard)
	}

	dir, err := os.MkdirTemp("", "dmpagent-bench-signing-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The emulated CPS's keys are RSA (testcards/pki), as on real CPS cards.
	pub, ok := keys.Auth.Cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("authentication key of type %T: this benchmark signs with RSA PKCS#1 v1.5", keys.Auth.Cert.PublicKey)
	}
	tr, err := newToolRun(tool, cfg.module, reader, dir, pub, reset)
	if err != nil {
		return err
	}

	var r results
	phases := []string{"module", "piv", "tool"}
	for round := range cfg.rounds {
		for i := range phases {
			switch ph := phases[(round+i)%len(phases)]; ph {
			case "module", "piv":
				first, ds, apdus, err := runSigner(ctx, ph, cfg, reset, card)
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", round+1, ph, err)
				}
				if ph == "module" {
					r.module.add(apdus, ds...)
					r.moduleFirst.add(0, first)
				} else {
					r.piv.add(apdus, ds...)
					r.pivFirst.add(0, first)
				}
			case "tool":
				for j := range cfg.pairs {
					// Which of the pair goes first alternates (ABBA).
					var d [2]time.Duration // sign, baseline
					for _, baseline := range []bool{(round+j)%2 == 1, (round+j)%2 == 0} {
						t, apdus, err := tr.run(ctx, reset, card, baseline)
						if err != nil {
							return fmt.Errorf("round %d: %w", round+1, err)
						}
						if baseline {
							r.base.add(apdus, t)
							d[1] = t
						} else {
							r.sign.add(apdus, t)
							d[0] = t
						}
					}
					r.pairs = append(r.pairs, d[0]-d[1])
				}
			}
		}
	}
	r.report(cfg, reader, pub, tr)
	return nil
}

// lockReaders takes the machine-wide lock on vpcd's readers, waiting as
// cardtest does for tests of other packages that hold them.
func lockReaders(ctx context.Context) (func(), error) {
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	unlock, err := vpcd.LockReaders(short)
	cancel()
	if err == nil {
		return unlock, nil
	}
	fmt.Fprintln(os.Stderr, "signing: waiting for the vpcd readers, held by another process")
	long, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	return vpcd.LockReaders(long)
}

// runSigner runs one backend's turn in a child process (see the top of the
// file) and returns its first signature's time, the times of the -k
// measured ones and the APDUs these took.
func runSigner(ctx context.Context, backend string, cfg config, reset func() error, card *countingCard) (first time.Duration, ds []time.Duration, apdus int64, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, nil, 0, err
	}
	if err := reset(); err != nil {
		return 0, nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-child", backend, "-reader", strconv.Itoa(cfg.reader),
		"-module", cfg.module, "-k", strconv.Itoa(cfg.sigs))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, 0, err
	}
	defer func() {
		stdin.Close()
		if werr := cmd.Wait(); err == nil {
			err = werr
		}
	}()
	lines := bufio.NewScanner(stdout)
	ns := func(s string) (time.Duration, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		return time.Duration(n), err
	}
	if !lines.Scan() {
		return 0, nil, 0, errors.New("child ended before its first signature")
	}
	word, arg, _ := strings.Cut(lines.Text(), " ")
	if word != "ready" {
		return 0, nil, 0, fmt.Errorf("child: %q", lines.Text())
	}
	if first, err = ns(arg); err != nil {
		return 0, nil, 0, err
	}
	// The child is idle between "ready" and "done" but for the measured
	// signatures: what the card answers in between is theirs.
	before := card.apdus.Load()
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		return 0, nil, 0, err
	}
	for lines.Scan() && lines.Text() != "done" {
		d, err := ns(lines.Text())
		if err != nil {
			return 0, nil, 0, fmt.Errorf("child: %q", lines.Text())
		}
		ds = append(ds, d)
	}
	apdus = card.apdus.Load() - before
	if len(ds) != cfg.sigs {
		return 0, nil, 0, fmt.Errorf("child gave %d of %d signatures", len(ds), cfg.sigs)
	}
	return first, ds, apdus, nil
}

// signer is the child. It opens the token, logs in, makes a first
// signature (which also runs code and fills caches for the first time: not
// what an agent that has been running pays, reported apart), says "ready",
// and at "go" times -k signatures. It keeps the token until its stdin
// closes, so that closing is not counted with the signatures.
func signer(backend string, cfg config) error {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ctx := context.Background()
	reader := vpcd.ReaderName(cfg.reader)
	var tok pkcs11.Token
	var err error
	switch backend {
	case "module":
		var m *pkcs11.Module
		if m, err = pkcs11.LoadModule(cfg.module); err == nil {
			tok, err = m.Open(ctx, reader)
		}
	case "piv":
		tok, err = pkcs11.OpenPIV(ctx, reader)
	default:
		err = fmt.Errorf("unknown backend %q", backend)
	}
	if err != nil {
		return err
	}
	defer tok.Close()
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		return err
	}
	s, err := tok.Signer(ctx, pkcs11.Authentication, "")
	if err != nil {
		return err
	}
	sigs := make([][]byte, cfg.sigs+1)
	ds := make([]time.Duration, cfg.sigs+1)
	sign := func(i int) error {
		start := time.Now()
		sigs[i], err = s.Sign(rand.Reader, digest[:], crypto.SHA256)
		ds[i] = time.Since(start)
		return err
	}
	if err := sign(0); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready", int64(ds[0]))
	if !in.Scan() || in.Text() != "go" {
		return errors.New("no go from the parent")
	}
	for i := 1; i <= cfg.sigs; i++ {
		if err := sign(i); err != nil {
			return err
		}
	}
	for i, sig := range sigs {
		if err := verify(s.Public(), sig); err != nil {
			return err
		}
		if i > 0 {
			fmt.Println(int64(ds[i]))
		}
	}
	fmt.Println("done")
	for in.Scan() {
	}
	return nil
}

// verify checks a signature of digest.
func verify(pub crypto.PublicKey, sig []byte) error {
	return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig)
}

type results struct {
	module, moduleFirst, piv, pivFirst, sign, base samples
	pairs                                          []time.Duration // sign - baseline, runs side by side
}

func (r *results) report(cfg config, reader string, pub crypto.PublicKey, tr *toolRun) {
	fmt.Printf("signing: %d rounds, emulated CPS in %q, authentication key (RSA-%d), PKCS#1 v1.5 over SHA-256, %s (machine-dependent)\n",
		cfg.rounds, reader, pub.(*rsa.PublicKey).N.BitLen(), cfg.module)
	fmt.Printf("  pkcs11-tool run:      %s\n  pkcs11-tool baseline: %s\n", strings.Join(tr.sign[2:], " "), strings.Join(tr.base[2:], " "))
	fmt.Printf("  %-40s %10s %10s %6s %8s\n", "", "median", "p90", "APDUs", "samples")
	row := func(name string, s samples) {
		apdus := "-"
		if s.apdus > 0 {
			apdus = fmt.Sprintf("%.1f", float64(s.apdus)/float64(len(s.ds)))
		}
		fmt.Printf("  %-40s %10s %10s %6s %8d\n", name, ms(median(s.ds)), ms(quantile(s.ds, 0.9)), apdus, len(s.ds))
	}
	row("ours, module backend, per signature", r.module)
	row("ours, module backend, 1st after Login", r.moduleFirst)
	row("ours, PIV backend, per signature", r.piv)
	row("ours, PIV backend, 1st after Login", r.pivFirst)
	row("pkcs11-tool --sign, whole process", r.sign)
	row("pkcs11-tool baseline, whole process", r.base)

	// Process times are noisy, and the noise carries into the difference
	// of their medians: 90% bootstrap intervals say how far. The median
	// of the paired differences cancels the machine's drift between
	// rounds, and is tighter for it.
	perSig := median(r.sign.ds) - median(r.base.ds)
	lo, hi := interval(func(rs resampler) float64 { return ms64(median(rs(r.sign.ds)) - median(rs(r.base.ds))) })
	fmt.Printf("  %-40s %10s   90%%: %.2f to %.2f ms   APDUs %.1f\n", "pkcs11-tool per signature (*)", ms(perSig), lo, hi,
		float64(r.sign.apdus)/float64(len(r.sign.ds))-float64(r.base.apdus)/float64(len(r.base.ds)))
	lo, hi = interval(func(rs resampler) float64 { return ms64(median(rs(r.pairs))) })
	fmt.Printf("  %-40s %10s   90%%: %.2f to %.2f ms\n", "  cross-check: median of paired diffs", ms(median(r.pairs)), lo, hi)
	fmt.Println("  (*) median of --sign runs - median of baseline runs")

	ratio := func(s samples) (x, lo, hi float64) {
		f := func(ours, sign, base []time.Duration) float64 {
			if d := median(sign) - median(base); d > 0 {
				return float64(median(ours)) / float64(d)
			}
			return math.Inf(1) // pkcs11-tool's signature free
		}
		lo, hi = interval(func(rs resampler) float64 { return f(rs(s.ds), rs(r.sign.ds), rs(r.base.ds)) })
		return f(s.ds, r.sign.ds, r.base.ds), lo, hi
	}
	x, lo, hi := ratio(r.module)
	fmt.Printf("  ratio ours (module) / pkcs11-tool, per signature: %.3f (90%%: %.3f to %.3f)\n", x, lo, hi)
	verdict := "met"
	switch {
	case lo > 1.1:
		verdict = "NOT met"
	case hi > 1.1:
		verdict = "undecided at this noise: more pairs (-p, -n) or a quieter machine"
	}
	fmt.Printf("  goal ours (module) ≤ 1.1 × pkcs11-tool: %s\n", verdict)
	x, lo, hi = ratio(r.piv)
	fmt.Printf("  ratio ours (PIV) / pkcs11-tool, per signature:    %.3f (90%%: %.3f to %.3f)\n", x, lo, hi)
}

type resampler func([]time.Duration) []time.Duration

// interval is the 90% bootstrap interval of stat.
func interval(stat func(resampler) float64) (lo, hi float64) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	rs := func(ds []time.Duration) []time.Duration {
		out := make([]time.Duration, len(ds))
		for i := range out {
			out[i] = ds[rng.IntN(len(ds))]
		}
		return out
	}
	const n = 2000
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = stat(rs)
	}
	slices.Sort(xs)
	return xs[n/20], xs[n-1-n/20]
}

func median(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }

// quantile is the nearest-rank quantile q of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", ms64(d)) }
