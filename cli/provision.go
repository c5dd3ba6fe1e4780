package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	pivgo "github.com/go-piv/piv-go/v2/piv"
	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/pki"
	"github.com/dmpagent/dmpagent/testcards/sim"
)

func newSimProvisionCmd(simDir dirFunc) *cobra.Command {
	var (
		reader string
		mgmt   string
		yes    bool
	)
	c := &cobra.Command{
		Use:   "provision-token PERSONA",
		Short: "Turn a real PIV token (YubiKey) into a test CPS of a persona",
		Long: `Generate the persona's keys on a real PIV token (slots 9A and 9C RSA-2048,
9E P-256), certify them with the simulation's test PKI and store the
certificates on the token. This OVERWRITES those slots. The token keeps its
own PIN (YubiKeys need at least 6 digits; the factory PIN is 123456).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := simDir()
			if err != nil {
				return err
			}
			if reader == "" {
				cards, err := pivgo.Cards()
				if err != nil {
					return fmt.Errorf("list readers: %w", err)
				}
				for _, c := range cards {
					if strings.Contains(strings.ToLower(c), "yubikey") {
						reader = c
						break
					}
				}
				if reader == "" {
					return fmt.Errorf("no YubiKey among the readers %q: name the token's reader with --reader", cards)
				}
			}
			if !yes {
				return fmt.Errorf("this overwrites slots 9A, 9C and 9E of the token in %q: run again with --yes", reader)
			}
			var mk []byte
			if mgmt != "" {
				if mk, err = parseHex(mgmt); err != nil {
					return fmt.Errorf("--management-key: %w", err)
				}
			}
			p, err := pki.LoadOrCreate(filepath.Join(dir, sim.PKIName))
			if err != nil {
				return err
			}
			res, err := testcards.Provision(reader, p, args[0], testcards.ProvisionOptions{ManagementKey: mk})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "token %q (serial %d) is now a test CPS of %s\n", reader, res.Serial, args[0])
			for _, s := range []string{"9a", "9c", "9e"} {
				if cert := res.Certs[s]; cert != nil {
					fmt.Fprintf(w, "slot %s: %s (serial %X)\n", s, cert.Subject, cert.SerialNumber)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&reader, "reader", "", "PC/SC reader name of the token (default: the first YubiKey)")
	c.Flags().StringVar(&mgmt, "management-key", "", "management key in hex (default: the factory 3DES key)")
	c.Flags().BoolVar(&yes, "yes", false, "confirm that slots 9A, 9C and 9E may be overwritten")
	return c
}
