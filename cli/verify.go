package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/audit"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/agent/consent"
)

func newAuditCmd(f *clientFlags) *cobra.Command {
	var file string
	c := &cobra.Command{Use: "audit", Short: "The agent's hash-chained audit log"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain (from the running agent, or --file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				defer fh.Close()
				sum, err := audit.Verify(fh)
				if err != nil {
					return fmt.Errorf("audit log %s: %w", file, err)
				}
				fmt.Fprintf(w, "audit log intact: %d entries, head %s\n", sum.Entries, sum.Head)
				return nil
			}
			c, err := f.client(cmd, true)
			if err != nil {
				return err
			}
			n, head, err := verifyAuditFromAgent(cmd.Context(), c)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "audit log intact: %d entries, head %s\n", n, head)
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "verify this audit.log file instead of asking the agent")
	c.AddCommand(verify)
	return c
}

// verifyAuditFromAgent pages through the log and checks the chain here,
// not in the agent: a tampering agent could not vouch for itself.
func verifyAuditFromAgent(ctx context.Context, c *client.Client) (int, string, error) {
	prev := audit.Genesis
	var after uint64
	n := 0
	for {
		page, err := c.Audit(ctx, after, 1000)
		if err != nil {
			return 0, "", err
		}
		entries := make([]audit.Entry, len(page.Entries))
		for i, e := range page.Entries {
			entries[i] = audit.Entry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target,
				Outcome: e.Outcome, Details: e.Details, Prev: e.Prev, Hash: e.Hash}
		}
		if err := audit.VerifyEntries(entries, prev, after+1); err != nil {
			return 0, "", fmt.Errorf("audit log: %w", err)
		}
		n += len(entries)
		if len(entries) > 0 {
			prev, after = entries[len(entries)-1].Hash, entries[len(entries)-1].Seq
		}
		if !page.More {
			return n, prev, nil
		}
	}
}

func newConsentCmd(f *clientFlags) *cobra.Command {
	var file, roots string
	c := &cobra.Command{Use: "consent", Short: "Signed consent receipts"}
	verify := &cobra.Command{
		Use:   "verify ID",
		Short: "Check a consent receipt's signature and certificate chain",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if roots == "" {
				roots = cfg.Roots
			}
			if roots == "" {
				return errors.New("no trusted roots: set roots in the agent configuration or pass --roots")
			}
			pool, err := loadRoots(roots)
			if err != nil {
				return err
			}
			var data []byte
			switch {
			case file != "":
				if data, err = os.ReadFile(file); err != nil {
					return err
				}
			case len(args) == 1:
				c, err := f.client(cmd, false)
				if err != nil {
					return err
				}
				r, err := c.Consent(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				data = []byte(r.JWS)
			default:
				return errors.New("give a receipt id, or --file")
			}
			v, err := consent.Verify(data, consent.VerifyOptions{Roots: pool})
			if err != nil {
				return fmt.Errorf("consent receipt NOT valid: %w", err)
			}
			return f.print(cmd, v.Receipt, func(w io.Writer) {
				r := v.Receipt
				fmt.Fprintf(w, "consent receipt %s is valid\n", r.ID)
				fmt.Fprintf(w, "  scope: %s\n  patient INS: %s\n  Vitale card: %s\n  professional: %s (%s)\n  time: %s\n",
					r.Scope, r.PatientINS, r.VitaleCard, r.ProfessionalIDNat, v.Signer.Subject.CommonName, r.Time.Format("2006-01-02 15:04:05 MST"))
				fmt.Fprintf(w, "  consent given: %v, informed: %v, opposes break-glass: %v, opposes Centre 15: %v\n",
					r.Consent.Given, r.Consent.InformationProvided, r.Consent.Oppositions.BreakGlass, r.Consent.Oppositions.Centre15)
			})
		},
	}
	verify.Flags().StringVar(&file, "file", "", "verify this receipt file instead of asking the agent")
	verify.Flags().StringVar(&roots, "roots", "", "PEM roots the CPS certificate must chain to (default: the configuration's roots)")
	c.AddCommand(verify)
	return c
}

func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			pool.AddCert(c)
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return pool, nil
}

var _ = api.CodeInternal
