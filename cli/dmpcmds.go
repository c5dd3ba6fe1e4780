package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
)

func newDMPCmd(f *clientFlags) *cobra.Command {
	c := &cobra.Command{Use: "dmp", Short: "Patients' DMPs, through the agent's session"}
	status := clientCommand(f, false, "status INS", "Does this patient have a DMP, and may this professional read it", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			d, err := c.DMP(ctx, args[0])
			if err != nil {
				return err
			}
			return f.print(cmd, d, func(w io.Writer) {
				fmt.Fprintf(w, "DMP of %s: %s; authorization: %s; attending physician: %v\n", d.INS, d.Status, d.Authorization, d.AttendingPhysician)
			})
		})

	var consent api.Consent
	create := clientCommand(f, false, "create INS", "Create the patient's DMP (the Vitale card must be in a reader)", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			r, err := c.CreateDMP(ctx, args[0], consent)
			if err != nil {
				return err
			}
			return f.print(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "DMP of %s: %s (consent receipt %s)\n", r.INS, r.Status, r.ConsentReceiptID)
			})
		})
	consentFlags(create, &consent)
	var authConsent api.Consent
	authorize := clientCommand(f, false, "authorize INS", "Record the patient's consent for this professional (Vitale card present)", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			r, err := c.Authorize(ctx, args[0], true, authConsent)
			if err != nil {
				return err
			}
			return f.print(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %s (consent receipt %s)\n", r.INS, r.Status, r.ConsentReceiptID)
			})
		})
	consentFlags(authorize, &authConsent)

	var md api.DocumentMetadata
	var masked, invisible, wait bool
	feed := clientCommand(f, false, "feed INS FILE.pdf", "Send a PDF to the patient's DMP through the outbox", cobra.ExactArgs(2),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			file, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer file.Close()
			md.Format = "pdf"
			if masked || invisible {
				md.Confidentiality = &api.Confidentiality{MaskedFromProfessionals: masked, InvisibleToPatient: invisible}
			}
			s, err := c.Feed(ctx, args[0], md, file)
			if err != nil {
				return err
			}
			if wait {
				if s, err = c.WaitSubmission(ctx, s.ID, 200*time.Millisecond); err != nil {
					return err
				}
			}
			return f.print(cmd, s, func(w io.Writer) {
				fmt.Fprintf(w, "submission %s: %s", s.ID, s.Status)
				if s.DocumentID != "" {
					fmt.Fprintf(w, ", document %s", s.DocumentID)
				}
				if s.Reason != "" {
					fmt.Fprintf(w, " (%s)", s.Reason)
				}
				fmt.Fprintln(w)
			})
		})
	feed.Flags().StringVar(&md.Title, "title", "", "document title")
	feed.Flags().StringVar(&md.TypeCode, "type-code", "11488-4", "LOINC document type (11488-4: consultation report)")
	feed.Flags().BoolVar(&masked, "masked", false, "mask from other professionals")
	feed.Flags().BoolVar(&invisible, "invisible-to-patient", false, "hide from the patient until revealed")
	feed.Flags().BoolVar(&wait, "wait", false, "wait until the DMP has it (or refused it)")
	_ = feed.MarkFlagRequired("title")

	var q client.DocumentQuery
	list := clientCommand(f, false, "list INS", "List the documents this professional may see", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			docs, err := c.Documents(ctx, args[0], q)
			if err != nil {
				return err
			}
			return f.print(cmd, docs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tCREATED\tAUTHOR\tMASKED\tTITLE")
				for _, d := range docs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", d.ID, d.TypeCode, d.Status, d.Created.Local().Format(time.DateOnly),
						d.Author, d.Confidentiality.MaskedFromProfessionals, d.Title)
				}
				tw.Flush()
			})
		})
	list.Flags().StringVar(&q.Status, "status", "", "available (default), archived or all")
	list.Flags().StringSliceVar(&q.TypeCodes, "type-code", nil, "only these LOINC types")

	var out string
	var asPDF bool
	get := clientCommand(f, false, "get INS ID", "Download a document (as the DMP stores it, or --pdf)", cobra.ExactArgs(2),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			body, _, err := c.Content(ctx, args[0], args[1], asPDF)
			if err != nil {
				return err
			}
			defer body.Close()
			w := cmd.OutOrStdout()
			if out != "" && out != "-" {
				file, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			_, err = io.Copy(w, body)
			return err
		})
	get.Flags().StringVarP(&out, "output", "o", "", "write to this new file (default: standard output)")
	get.Flags().BoolVar(&asPDF, "pdf", false, "the PDF the document carries, not the CDA document around it")

	var unmask bool
	mask := clientCommand(f, false, "mask INS ID", "Mask a document from other professionals (--unmask to undo)", cobra.ExactArgs(2),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			v := !unmask
			d, err := c.UpdateDocument(ctx, args[0], args[1], api.DocumentPatch{MaskedFromProfessionals: &v})
			if err != nil {
				return err
			}
			return f.print(cmd, d, func(w io.Writer) {
				fmt.Fprintf(w, "%s: masked from professionals: %v\n", d.ID, d.Confidentiality.MaskedFromProfessionals)
			})
		})
	mask.Flags().BoolVar(&unmask, "unmask", false, "make it visible again")

	var mode, reason string
	emergency := clientCommand(f, false, "emergency INS", "Emergency access: --break-glass REASON, or --centre15", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			req := api.EmergencyRequest{Mode: mode, Reason: reason}
			if reason != "" && mode == "" {
				req.Mode = api.ModeBreakGlass
			}
			e, err := c.EmergencyAccess(ctx, args[0], req)
			if err != nil {
				return err
			}
			return f.print(cmd, e, func(w io.Writer) {
				fmt.Fprintf(w, "%s: %s access for this session (DMP %s)\n", e.INS, e.Mode, e.DMP.Status)
			})
		})
	emergency.Flags().StringVar(&reason, "break-glass", "", "break-glass access with this written reason")
	emergency.Flags().StringVar(&mode, "mode", "", "break_glass or centre15")

	var closeReason string
	closeCmd := clientCommand(f, false, "close INS", "Close the patient's DMP", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			r, err := c.CloseDMP(ctx, args[0], closeReason)
			if err != nil {
				return err
			}
			return f.print(cmd, r, func(w io.Writer) { fmt.Fprintf(w, "DMP of %s: %s\n", r.INS, r.Status) })
		})
	closeCmd.Flags().StringVar(&closeReason, "reason", "", "why (the patient's request, death, …)")
	_ = closeCmd.MarkFlagRequired("reason")

	vitale := clientCommand(f, false, "vitale", "The beneficiaries on the Vitale card present, with their INS", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			v, err := c.Vitale(ctx)
			if err != nil {
				return err
			}
			return f.print(cmd, v, func(w io.Writer) {
				for _, b := range v.Beneficiaries {
					ins := b.INS
					if ins == "" {
						ins = "INS not resolved"
						if b.INSError != "" {
							ins += ": " + b.INSError
						}
					}
					fmt.Fprintf(w, "%s %s, born %s, rank %d: %s\n", b.GivenName, b.Surname, b.BirthDate, b.Rank, ins)
				}
			})
		})
	c.AddCommand(status, create, authorize, feed, list, get, mask, emergency, closeCmd, vitale)
	return c
}

func consentFlags(c *cobra.Command, consent *api.Consent) {
	c.Flags().BoolVar(&consent.Given, "consent", false, "the patient consents (required)")
	c.Flags().BoolVar(&consent.InformationProvided, "informed", false, "the patient was informed (required)")
	c.Flags().BoolVar(&consent.Oppositions.BreakGlass, "oppose-break-glass", false, "the patient opposes break-glass access")
	c.Flags().BoolVar(&consent.Oppositions.Centre15, "oppose-centre15", false, "the patient opposes Centre 15 access")
}
