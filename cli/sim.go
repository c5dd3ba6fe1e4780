package cli

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/testcards/sim"
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

func newSimCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulated cards (and, later, the simulated DMP) for testers and vendors",
		Long: `Simulated CPS and Vitale cards, plugged into the real pcscd through the
vsmartcard-vpcd driver, so every PC/SC and PKCS#11 program sees them as cards.

The simulation keeps its state in --dir (default $DMPAGENT_SIM_DIR, else
dmpagent/sim in your data directory): the test PKI, the daemon's socket and log.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "simulation data directory (default $DMPAGENT_SIM_DIR or the user data directory)")
	simDir := func() (string, error) {
		if dir != "" {
			return dir, nil
		}
		return sim.DefaultDir()
	}
	cmd.AddCommand(
		newSimUpCmd(simDir),
		newSimDownCmd(simDir),
		newSimStatusCmd(simDir),
		newSimInsertCmd(simDir),
		newSimRemoveCmd(simDir),
		newSimFaultCmd(simDir),
		newSimDaemonCmd(simDir),
		newSimProvisionCmd(simDir),
		newSimPatientCmd(simDir),
	)
	return cmd
}

type dirFunc func() (string, error)

// client returns a client for the simulator of the chosen directory.
func (d dirFunc) client() (*sim.Client, error) {
	dir, err := d()
	if err != nil {
		return nil, err
	}
	return sim.NewClient(dir), nil
}

func newSimUpCmd(simDir dirFunc) *cobra.Command {
	var df dmpFlags
	c := &cobra.Command{
		Use:   "up",
		Short: "Start the simulator daemon (no card inserted yet)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := simDir()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			daemon := exec.Command(exe, append([]string{"sim", "daemon", "--dir", dir}, df.args()...)...)
			st, started, err := sim.Start(cmd.Context(), dir, daemon)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !started {
				fmt.Fprintf(w, "simulator already running (pid %d) on %s\n", st.PID, st.Dir)
				return nil
			}
			fmt.Fprintf(w, "simulator running (pid %d) on %s\n", st.PID, st.Dir)
			fmt.Fprintf(w, "test PKI: %s\n", st.PKIDir)
			for _, r := range st.Readers {
				fmt.Fprintf(w, "reader %d: %s\n", r.Index, r.Name)
			}
			if st.DMP != nil {
				fmt.Fprintf(w, "simulated DMP: %s\n", st.DMP.URL)
				if st.DMP.AgentConfig != "" {
					fmt.Fprintf(w, "agent configuration: %s (dmpagent run --config %s)\n", st.DMP.AgentConfig, st.DMP.AgentConfig)
				}
			}
			return nil
		},
	}
	df.register(c)
	return c
}

func newSimDownCmd(simDir dirFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Take every card out and stop the simulator daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := simDir()
			if err != nil {
				return err
			}
			if err := sim.Stop(cmd.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "simulator stopped")
			return nil
		},
	}
}

func newSimStatusCmd(simDir dirFunc) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the virtual readers and the cards in them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := simDir.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(w, "simulator pid %d on %s\n", st.PID, st.Dir)
			for _, r := range st.Readers {
				printReader(w, r)
			}
			if st.DMP != nil {
				fmt.Fprintf(w, "simulated DMP: %s (state in %s)\n", st.DMP.URL, st.DMP.Dir)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printReader(w io.Writer, r sim.ReaderStatus) {
	if r.Card == nil {
		fmt.Fprintf(w, "reader %d (%s): empty\n", r.Index, r.Name)
		return
	}
	c := r.Card
	fmt.Fprintf(w, "reader %d (%s): %s %s, ATR %s", r.Index, r.Name, c.Kind, c.Persona, c.ATR)
	if c.PINTries != nil {
		fmt.Fprintf(w, ", PIN tries left %d, PUK tries left %d", *c.PINTries, *c.PUKTries)
	}
	if !c.Connected {
		fmt.Fprint(w, ", not connected to pcscd")
	}
	fmt.Fprintln(w)
}

// faultFlags are the fault knobs on the command line.
type faultFlags struct {
	atr       string
	delay     time.Duration
	forceSW   string
	forceINS  string
	pullAfter int
}

func (f *faultFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.atr, "atr", "", "present this ATR (hex) instead of the card's own, e.g. the real CPS3 ATR")
	c.Flags().DurationVar(&f.delay, "delay", 0, "delay every APDU response by this much")
	c.Flags().StringVar(&f.forceSW, "force-sw", "", "answer APDUs with this status word alone (hex, e.g. 6A82)")
	c.Flags().StringVar(&f.forceINS, "force-sw-ins", "", "apply --force-sw only to this instruction byte (hex)")
	c.Flags().IntVar(&f.pullAfter, "pull-after", 0, "pull the card in the middle of the Nth APDU from now")
}

func (f *faultFlags) faults() (vpcd.Faults, error) {
	var out vpcd.Faults
	if f.atr != "" {
		atr, err := parseHex(f.atr)
		if err != nil || len(atr) < 2 || len(atr) > 33 {
			return out, fmt.Errorf("--atr %q: want 2 to 33 bytes of hex", f.atr)
		}
		out.ATR = atr
	}
	if f.delay < 0 {
		return out, fmt.Errorf("--delay must not be negative")
	}
	out.Delay = f.delay
	if f.forceSW != "" {
		sw, err := parseHex(f.forceSW)
		if err != nil || len(sw) != 2 {
			return out, fmt.Errorf("--force-sw %q: want two bytes of hex such as 6A82", f.forceSW)
		}
		out.ForceSW = uint16(sw[0])<<8 | uint16(sw[1])
	}
	if f.forceINS != "" {
		ins, err := parseHex(f.forceINS)
		if err != nil || len(ins) != 1 {
			return out, fmt.Errorf("--force-sw-ins %q: want one byte of hex such as 87", f.forceINS)
		}
		out.ForceSWOnINS = ins[0]
	}
	if f.pullAfter < 0 {
		return out, fmt.Errorf("--pull-after must not be negative")
	}
	out.PullAfter = f.pullAfter
	return out, nil
}

func parseHex(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", ":", "", "0x", "").Replace(s)
	return hex.DecodeString(s)
}

func newSimInsertCmd(simDir dirFunc) *cobra.Command {
	var (
		reader int
		fresh  bool
		ff     faultFlags
	)
	c := &cobra.Command{
		Use:   "insert (cps|vitale) PERSONA",
		Short: "Insert a persona's card; returns once pcscd reports it",
		Long: `Insert a persona's card in a virtual reader. Returns once pcscd reports the card.

CPS personas: gp, pharmacist, cardiologist, nurse, emergency (PIN 1234, PUK 12345678).
Vitale personas: family (two beneficiaries), single.

A card keeps its state across removal (a blocked PIN stays blocked); --fresh
inserts a new one.`,
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{sim.KindCPS, sim.KindVitale},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := simDir.client()
			if err != nil {
				return err
			}
			f, err := ff.faults()
			if err != nil {
				return err
			}
			rs, err := c.Insert(cmd.Context(), sim.InsertRequest{
				Kind: args[0], Persona: args[1], Reader: reader, Fresh: fresh, Faults: f,
			})
			if err != nil {
				return err
			}
			printReader(cmd.OutOrStdout(), rs)
			return nil
		},
	}
	c.Flags().IntVar(&reader, "reader", 0, "virtual reader index (0 or 1)")
	c.Flags().BoolVar(&fresh, "fresh", false, "insert a new card rather than the persona's card as last left")
	ff.register(c)
	return c
}

func newSimRemoveCmd(simDir dirFunc) *cobra.Command {
	var reader int
	c := &cobra.Command{
		Use:   "remove --reader N",
		Short: "Remove the card from a reader; returns once pcscd reports it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := simDir.client()
			if err != nil {
				return err
			}
			if err := c.Remove(cmd.Context(), reader); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reader %d: empty\n", reader)
			return nil
		},
	}
	c.Flags().IntVar(&reader, "reader", 0, "virtual reader index")
	_ = c.MarkFlagRequired("reader")
	return c
}

func newSimFaultCmd(simDir dirFunc) *cobra.Command {
	var (
		reader int
		ff     faultFlags
	)
	c := &cobra.Command{
		Use:   "fault --reader N [knobs]",
		Short: "Set the fault knobs of an inserted card (no knob: behave again)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := simDir.client()
			if err != nil {
				return err
			}
			f, err := ff.faults()
			if err != nil {
				return err
			}
			rs, err := c.SetFaults(cmd.Context(), sim.FaultsRequest{Reader: reader, Faults: f})
			if err != nil {
				return err
			}
			printReader(cmd.OutOrStdout(), rs)
			return nil
		},
	}
	c.Flags().IntVar(&reader, "reader", 0, "virtual reader index")
	_ = c.MarkFlagRequired("reader")
	ff.register(c)
	return c
}

func newSimDaemonCmd(simDir dirFunc) *cobra.Command {
	var (
		verbose bool
		df      dmpFlags
	)
	c := &cobra.Command{
		Use:    "daemon",
		Short:  "Run the simulator in the foreground (what `sim up` starts)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := simDir()
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			d, err := sim.NewDaemon(dir, log)
			if err != nil {
				return err
			}
			s, err := startDMP(d, dir, df, log)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return d.Serve(ctx)
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logs")
	df.register(c)
	return c
}
