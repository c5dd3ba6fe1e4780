package cli

import (
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/sim"
)

// dmpFlags configure the simulated DMP that `sim up` runs beside the cards.
type dmpFlags struct {
	addr      string
	agentAddr string
	validate  bool
	wireLog   string
}

func (f *dmpFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.addr, "dmp-addr", "127.0.0.1:0", "listen address of the simulated DMP (port 0: a free port)")
	c.Flags().StringVar(&f.agentAddr, "agent-addr", "", "API address written in DIR/agent.conf (default: kept from an earlier agent.conf, else a free loopback port)")
	c.Flags().BoolVar(&f.validate, "validate", false, "check every message the simulated DMP receives against the XML Schemas ($DMPAGENT_SCHEMAS or ../shared/schemas; needs xmllint)")
	c.Flags().StringVar(&f.wireLog, "wire-log", "", "write every DMP request and answer (documents elided) to this directory")
}

func (f *dmpFlags) args() []string {
	out := []string{"--dmp-addr", f.addr}
	if f.agentAddr != "" {
		out = append(out, "--agent-addr", f.agentAddr)
	}
	if f.validate {
		out = append(out, "--validate")
	}
	if f.wireLog != "" {
		abs, err := filepath.Abs(f.wireLog)
		if err == nil {
			out = append(out, "--wire-log", abs)
		}
	}
	return out
}

// startDMP runs the simulated DMP on the daemon's test PKI, with its state in
// DIR/dmp, and mounts its patient side on the daemon's control socket.
func startDMP(d *sim.Daemon, dir string, f dmpFlags, log *slog.Logger) (*dmptest.Server, error) {
	p := d.PKI()
	cert, err := p.Server()
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	inter.AddCert(p.PersonCA)
	s, err := dmptest.NewServer(dmptest.Config{
		Dir: filepath.Join(dir, "dmp"), Addr: f.addr, Certificate: cert, Roots: p.RootPool(), Intermediates: inter,
		Validate: f.validate, WireLog: f.wireLog, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("simulated DMP: %w", err)
	}
	d.Mount("/patient/", s.PatientHandler())
	conf, err := writeAgentConf(dir, f.agentAddr, s.URL, s.INSiURL, p)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("agent configuration: %w", err)
	}
	d.SetDMP(sim.DMPStatus{URL: s.URL, Dir: filepath.Join(dir, "dmp"), AgentConfig: conf})
	log.Info("simulated DMP up", "url", s.URL, "agent_config", conf)
	return s, nil
}

func newSimPatientCmd(simDir dirFunc) *cobra.Command {
	var (
		beneficiary int
		oid         string
	)
	c := &cobra.Command{
		Use:   "patient",
		Short: "What the patient does on their DMP in the simulated DMP: block, mask, history, close",
		Long: `The patient's side of the simulated DMP (Mon espace santé in real life).

PATIENT is a Vitale persona (single, family; --beneficiary picks a
beneficiary on the card, 1 the insured) or an INS of 15 characters.
PROFESSIONAL is a CPS persona (gp, pharmacist, cardiologist, nurse,
emergency) or a national id.`,
	}
	c.PersistentFlags().IntVar(&beneficiary, "beneficiary", 1, "beneficiary on the persona's Vitale card (1 = the insured)")
	c.PersistentFlags().StringVar(&oid, "oid", dmp.OIDINSNIRTest, "INS authority of an INS given as a number")
	path := func(arg string) (string, error) {
		ins, err := patientINS(arg, beneficiary, oid)
		if err != nil {
			return "", err
		}
		return "/patient/" + url.PathEscape(ins.Value) + "?oid=" + url.QueryEscape(ins.OID), nil
	}
	call := func(cmd *cobra.Command, method, p, action string, in any, out any) error {
		cl, err := simDir.client()
		if err != nil {
			return err
		}
		base, query, _ := strings.Cut(p, "?")
		return cl.Do(cmd.Context(), method, base+action+"?"+query, in, out)
	}
	pro := func(cmd *cobra.Command, args []string, action string) error {
		p, err := path(args[0])
		if err != nil {
			return err
		}
		id := professionalID(args[1])
		if err := call(cmd, http.MethodPost, p, "/"+action, map[string]string{"idnat": id}, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s\n", args[0], action+"ed", id)
		return nil
	}
	doc := func(cmd *cobra.Command, args []string, action string) error {
		p, err := path(args[0])
		if err != nil {
			return err
		}
		if err := call(cmd, http.MethodPost, p, "/"+action, map[string]string{"unique_id": args[1]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: document %s %sed\n", args[0], args[1], action)
		return nil
	}
	var limit int
	var reason string
	history := &cobra.Command{
		Use:   "history PATIENT",
		Short: "List every access to the patient's DMP, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := path(args[0])
			if err != nil {
				return err
			}
			var entries []dmptest.HistoryEntry
			if err := call(cmd, http.MethodGet, p+"&limit="+strconv.Itoa(limit), "/history", nil, &entries); err != nil {
				return err
			}
			printHistory(cmd.OutOrStdout(), entries)
			return nil
		},
	}
	history.Flags().IntVar(&limit, "limit", 100, "at most this many entries")
	closeCmd := &cobra.Command{
		Use:   "close PATIENT",
		Short: "Close the patient's DMP: nothing is accepted or shown to professionals until it is reactivated",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := path(args[0])
			if err != nil {
				return err
			}
			if err := call(cmd, http.MethodPost, p, "/close", map[string]string{"reason": reason}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: DMP closed\n", args[0])
			return nil
		},
	}
	closeCmd.Flags().StringVar(&reason, "reason", "", "closing reason (default FERMETURE_DEMANDE_PATIENT)")
	c.AddCommand(
		&cobra.Command{Use: "block PATIENT PROFESSIONAL", Short: "Forbid a professional any access to the DMP, in every mode", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error { return pro(cmd, args, "block") }},
		&cobra.Command{Use: "unblock PATIENT PROFESSIONAL", Short: "Lift a block", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error { return pro(cmd, args, "unblock") }},
		&cobra.Command{Use: "mask PATIENT DOCUMENT-UNIQUEID", Short: "Hide a document from professionals other than its author and the attending physicians", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error { return doc(cmd, args, "mask") }},
		&cobra.Command{Use: "unmask PATIENT DOCUMENT-UNIQUEID", Short: "Show a masked document again", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error { return doc(cmd, args, "unmask") }},
		&cobra.Command{Use: "documents PATIENT", Short: "List the documents the patient sees", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := path(args[0])
				if err != nil {
					return err
				}
				var docs []dmptest.DocumentRecord
				if err := call(cmd, http.MethodGet, p, "/documents", nil, &docs); err != nil {
					return err
				}
				printDocuments(cmd.OutOrStdout(), docs)
				return nil
			}},
		history, closeCmd,
	)
	return c
}

// patientINS resolves a Vitale persona (and beneficiary) or an INS.
func patientINS(arg string, beneficiary int, oid string) (dmp.INS, error) {
	if p, err := persona.LookupPatient(arg); err == nil {
		if beneficiary < 1 || beneficiary > len(p.Beneficiaries) {
			return dmp.INS{}, fmt.Errorf("persona %s has %d beneficiaries", arg, len(p.Beneficiaries))
		}
		return dmp.INS{Value: p.Beneficiaries[beneficiary-1].NIR, OID: dmp.OIDINSNIRTest}, nil
	}
	ins := dmp.INS{Value: arg, OID: oid}
	if err := ins.Valid(); err != nil {
		return dmp.INS{}, fmt.Errorf("%q is neither a Vitale persona nor an INS: %w", arg, err)
	}
	return ins, nil
}

// professionalID resolves a CPS persona to its national id.
func professionalID(arg string) string {
	if p, err := persona.LookupProfessional(arg); err == nil {
		return p.IDNat
	}
	return arg
}

func printHistory(w io.Writer, entries []dmptest.HistoryEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tMODE\tDOCUMENT\tOUTCOME")
	for _, e := range entries {
		outcome := "allowed"
		if !e.Allowed {
			outcome = "denied " + e.Code
		}
		who := e.ActorName
		if e.ActorID != "" && e.ActorID != e.ActorName {
			who += " (" + e.ActorID + ")"
		}
		mode := string(e.Mode)
		if e.Reason != "" {
			mode += ": " + e.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), who, e.Action, mode, e.DocumentUniqueID, outcome)
	}
	tw.Flush()
}

func printDocuments(w io.Writer, docs []dmptest.DocumentRecord) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UNIQUEID\tTYPE\tTITLE\tSTATUS\tVISIBILITY")
	for _, d := range docs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.UniqueID, d.TypeCode, d.Title, d.Status[strings.LastIndexByte(string(d.Status), ':')+1:], strings.Join(d.Confidentiality, ","))
	}
	tw.Flush()
}
