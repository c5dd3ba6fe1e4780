package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/client"
)

func newDoctorCmd(f *clientFlags) *cobra.Command {
	return clientCommand(f, false, "doctor", "Check everything the agent needs, with the fix for what is wrong", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			if _, err := c.Health(ctx); err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "✗ agent: %v\n  fix: start it (systemctl start dmpagent, or dmpagent run --config FILE)\n", err)
				return fmt.Errorf("the agent is not running")
			}
			var d agent.Doctor
			if err := c.Get(ctx, "/v1/doctor", &d); err != nil {
				return err
			}
			failed := 0
			err := f.print(cmd, d, func(w io.Writer) {
				fmt.Fprintln(w, "✓ agent: running")
				for _, ch := range d.Checks {
					mark := "✓"
					switch {
					case !ch.OK:
						mark = "✗"
					case ch.Warning:
						mark = "!"
					}
					fmt.Fprintf(w, "%s %s: %s\n", mark, ch.Name, ch.Detail)
					if ch.Fix != "" {
						fmt.Fprintf(w, "  fix: %s\n", ch.Fix)
					}
				}
			})
			for _, ch := range d.Checks {
				if !ch.OK {
					failed++
				}
			}
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d check(s) failed", failed)
			}
			return err
		})
}
