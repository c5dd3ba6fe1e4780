package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
)

// clientFlags find a running agent: its configuration gives the API
// address and the admin socket; a token (--token or $DMPAGENT_TOKEN) makes
// the command act as that application, else it goes through the admin
// socket, which needs the agent's own user or root.
type clientFlags struct {
	configFlags
	token string
	json  bool
}

func (f *clientFlags) register(c *cobra.Command) {
	c.PersistentFlags().StringVar(&f.path, "config", "", "agent configuration file (default $DMPAGENT_CONFIG, else "+agent.DefaultConfigPath()+")")
	c.PersistentFlags().StringVar(&f.token, "token", "", "application token (default $DMPAGENT_TOKEN; none: use the admin socket)")
	c.PersistentFlags().BoolVar(&f.json, "json", false, "print JSON")
}

func (f *clientFlags) client(cmd *cobra.Command, admin bool) (*client.Client, error) {
	cfg, err := f.load(cmd)
	if err != nil {
		return nil, err
	}
	tok := f.token
	if tok == "" {
		tok = os.Getenv("DMPAGENT_TOKEN")
	}
	if admin || tok == "" {
		return client.NewControl(cfg.ControlSocketPath()), nil
	}
	return client.New(cfg.Listen, tok), nil
}

// print writes v as JSON with --json, else calls human.
func (f *clientFlags) print(cmd *cobra.Command, v any, human func(w io.Writer)) error {
	w := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(w)
	return nil
}

// clientCommand builds a command that calls the agent.
func clientCommand(f *clientFlags, admin bool, use, short string, args cobra.PositionalArgs,
	run func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := f.client(cmd, admin)
			if err != nil {
				return err
			}
			return run(cmd.Context(), cmd, c, a)
		},
	}
}

func newAgentCmds() []*cobra.Command {
	f := &clientFlags{}
	status := clientCommand(f, false, "status", "Show the agent: readers, cards, session, outbox", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			return f.print(cmd, st, func(w io.Writer) {
				fmt.Fprintf(w, "agent %s, up since %s\n", st.Version, st.Started.Local().Format(time.DateTime))
				fmt.Fprintf(w, "PC/SC: %s\nDMP: %s\n", st.PCSC, st.DMPEndpoint)
				if st.Simulation {
					fmt.Fprintln(w, "SIMULATION: test cards or simulated DMP")
				}
				printReaders(w, st.Readers)
				if st.Session != nil {
					fmt.Fprintf(w, "session: %s %s (%s) since %s\n", st.Session.GivenName, st.Session.Surname, st.Session.IDNat, st.Session.Opened.Local().Format(time.TimeOnly))
				} else {
					fmt.Fprintln(w, "session: none")
				}
				fmt.Fprintf(w, "outbox: %d document(s) waiting\n", st.OutboxDepth)
			})
		})
	readers := clientCommand(f, false, "readers", "List the card readers and their cards", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			rs, err := c.Readers(ctx)
			if err != nil {
				return err
			}
			return f.print(cmd, rs, func(w io.Writer) { printReaders(w, rs) })
		})
	cmds := []*cobra.Command{status, readers, newSessionCmd(f), newDMPCmd(f), newTokenCmd(f), newPairCmd(f),
		newAuditCmd(f), newConsentCmd(f), newDoctorCmd(f)}
	for _, c := range cmds {
		f.register(c)
	}
	return cmds
}

func printReaders(w io.Writer, rs []api.Reader) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no card reader")
	}
	for _, r := range rs {
		card := "empty"
		if r.Card != nil {
			card = r.Card.Type
			if r.Card.Description != "" {
				card += " (" + r.Card.Description + ")"
			}
			if r.Card.Reason != "" {
				card += " [" + r.Card.Reason + "]"
			}
		}
		fmt.Fprintf(w, "reader %q: %s\n", r.Name, card)
	}
}

func newSessionCmd(f *clientFlags) *cobra.Command {
	var pinStdin bool
	c := &cobra.Command{Use: "session", Short: "Log in to or out of the CPS"}
	login := clientCommand(f, false, "login", "Open the professional session with the CPS PIN (asked without echo)", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			cps, err := c.CPS(ctx)
			if err != nil {
				return err
			}
			pin, err := readPIN(cmd, pinStdin, fmt.Sprintf("PIN of %s %s's CPS: ", cps.GivenName, cps.Surname))
			if err != nil {
				return err
			}
			s, err := c.Login(ctx, pin)
			if err != nil {
				var e *api.Error
				if errors.As(err, &e) && e.Code == api.CodePINIncorrect {
					if n, ok := e.Details["tries_left"]; ok {
						return fmt.Errorf("wrong PIN: %v tries left before the card blocks (the agent does not retry)", n)
					}
				}
				return err
			}
			return f.print(cmd, s, func(w io.Writer) {
				fmt.Fprintf(w, "session open: %s %s (%s)\n", s.GivenName, s.Surname, s.IDNat)
			})
		})
	login.Flags().BoolVar(&pinStdin, "pin-stdin", false, "read the PIN from the first line of standard input (scripts)")
	logout := clientCommand(f, false, "logout", "End the professional session", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			if err := c.Logout(ctx); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "session closed")
			return nil
		})
	c.AddCommand(login, logout)
	return c
}

// readPIN reads the PIN without echo from the terminal, or a line from
// standard input for scripts. It is never printed nor kept.
func readPIN(cmd *cobra.Command, fromStdin bool, prompt string) (string, error) {
	in := cmd.InOrStdin()
	if file, ok := in.(*os.File); ok && !fromStdin && term.IsTerminal(int(file.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(file.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no PIN on standard input")
	}
	return strings.TrimSpace(line), nil
}

func newTokenCmd(f *clientFlags) *cobra.Command {
	var app, origin string
	var admin bool
	c := &cobra.Command{Use: "token", Short: "Manage application tokens (admin socket)"}
	create := clientCommand(f, true, "create", "Create a token for an application; prints only the token", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			t, err := c.CreateToken(ctx, api.TokenRequest{App: app, Origin: origin, Admin: admin})
			if err != nil {
				return err
			}
			if f.json {
				return f.print(cmd, t, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			return nil
		})
	create.Flags().StringVar(&app, "app", "", "application name")
	create.Flags().StringVar(&origin, "origin", "", "browser origin allowed to use the token (web applications)")
	create.Flags().BoolVar(&admin, "admin", false, "the token may also read the audit log and manage tokens")
	_ = create.MarkFlagRequired("app")
	list := clientCommand(f, true, "list", "List the tokens (never their secrets)", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			ts, err := c.Tokens(ctx)
			if err != nil {
				return err
			}
			return f.print(cmd, ts, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAPP\tORIGIN\tADMIN\tCREATED\tSTATE")
				for _, t := range ts {
					state := "live"
					if t.Revoked != nil {
						state = "revoked " + t.Revoked.Local().Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", t.ID, t.App, t.Origin, t.Admin, t.Created.Local().Format(time.DateTime), state)
				}
				tw.Flush()
			})
		})
	revoke := clientCommand(f, true, "revoke ID|APP", "Revoke a token by id, or every token of an application", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			ts, err := c.RevokeToken(ctx, args[0])
			if err != nil {
				return err
			}
			return f.print(cmd, ts, func(w io.Writer) {
				for _, t := range ts {
					fmt.Fprintf(w, "revoked %s (%s)\n", t.ID, t.App)
				}
			})
		})
	c.AddCommand(create, list, revoke)
	return c
}

func newPairCmd(f *clientFlags) *cobra.Command {
	c := &cobra.Command{Use: "pair", Short: "Approve or deny applications asking to pair (admin socket)"}
	decide := func(approve bool) func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
		return func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			p, err := c.ApprovePairing(ctx, args[0], approve)
			if err != nil {
				return err
			}
			return f.print(cmd, p, func(w io.Writer) { fmt.Fprintf(w, "%s: %s (%s)\n", p.Code, p.State, p.App) })
		}
	}
	list := clientCommand(f, true, "list", "List the pairing requests waiting", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			ps, err := c.Pairings(ctx)
			if err != nil {
				return err
			}
			return f.print(cmd, ps, func(w io.Writer) {
				if len(ps) == 0 {
					fmt.Fprintln(w, "no pairing request waiting")
				}
				for _, p := range ps {
					fmt.Fprintf(w, "%s  %s %s (expires %s)\n", p.Code, p.App, p.Origin, p.Expires.Local().Format(time.TimeOnly))
				}
			})
		})
	c.AddCommand(list,
		clientCommand(f, true, "approve CODE", "Approve the application showing this code", cobra.ExactArgs(1), decide(true)),
		clientCommand(f, true, "deny CODE", "Deny the application showing this code", cobra.ExactArgs(1), decide(false)))
	return c
}
