package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dmpagent/dmpagent/agent"
)

// configFlags locate and override the agent configuration. The service
// and every client command share them: a client finds the agent (its
// address, its admin socket) in the same file the agent runs on.
type configFlags struct {
	path      string
	overrides map[string]*string
}

// overridable are the keys `run` takes as flags too.
var overridable = []struct{ key, usage string }{
	{"listen", "loopback address of the API"},
	{"data_dir", "data directory (outbox, audit log, tokens, consent receipts)"},
	{"dmp_endpoint", "DMP services root URL"},
	{"pkcs11_module", `PKCS#11 module of the CPS (default: the Cryptolib CPS; "piv" drives PIV test cards with piv-go)`},
	{"wire_log", "write every DMP message to this directory (support only: it holds health data)"},
	{"log_level", "debug, info, warn or error"},
	{"proxy", "proxy URL for the DMP (default: HTTPS_PROXY/NO_PROXY)"},
}

func (f *configFlags) register(c *cobra.Command, withOverrides bool) {
	c.Flags().StringVar(&f.path, "config", "", "agent configuration file (default $DMPAGENT_CONFIG, else "+agent.DefaultConfigPath()+")")
	if !withOverrides {
		return
	}
	f.overrides = map[string]*string{}
	for _, o := range overridable {
		f.overrides[o.key] = c.Flags().String(strings.ReplaceAll(o.key, "_", "-"), "", o.usage)
	}
}

// load builds the configuration: defaults, file, environment, flags.
func (f *configFlags) load(cmd *cobra.Command) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	path, explicit := f.path, f.path != ""
	if !explicit {
		if p := os.Getenv("DMPAGENT_CONFIG"); p != "" {
			path, explicit = p, true
		} else {
			path = agent.DefaultConfigPath()
		}
	}
	if err := cfg.LoadConfigFile(path); err != nil {
		if explicit || !errors.Is(err, os.ErrNotExist) {
			return cfg, fmt.Errorf("configuration: %w", err)
		}
	}
	if err := cfg.LoadEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	for k, v := range f.overrides {
		if cmd.Flags().Changed(strings.ReplaceAll(k, "_", "-")) {
			if err := cfg.Set(k, *v); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, nil
}

func newRunCmd() *cobra.Command {
	var cf configFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (what the service manager starts)",
		Long: `Run the agent in the foreground: the card monitor, the professional session,
the outbox and the localhost API. Configuration comes from the file
(--config, $DMPAGENT_CONFIG or the system default), then DMPAGENT_<KEY>
environment variables, then these flags. Logs go to stderr; SIGINT and
SIGTERM stop it gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(cmd)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
				return fmt.Errorf("log_level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			a, err := agent.New(ctx, cfg, agent.Options{Version: Version(), Logger: log})
			if err != nil {
				return err
			}
			err = a.Serve(ctx)
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		},
	}
	cf.register(c, true)
	return c
}
