package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DefaultDir returns the simulation's data directory: $DMPAGENT_SIM_DIR,
// or dmpagent/sim under the user's data directory.
func DefaultDir() (string, error) {
	if d := os.Getenv("DMPAGENT_SIM_DIR"); d != "" {
		return d, nil
	}
	base, err := userDataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "dmpagent", "sim"), nil
}

// userDataDir is where per-user application data lives (Go has no
// os.UserDataDir): XDG on Unix, Application Support on macOS, LocalAppData
// on Windows.
func userDataDir() (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return d, nil
		}
		return os.UserConfigDir()
	case "darwin":
		return os.UserConfigDir() // ~/Library/Application Support
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "share"), nil
}

// Start launches cmd, a command line that runs the daemon on dir, detached
// from the caller's terminal session with its output in DIR/sim.log, and
// waits until it answers. If a daemon already answers, it returns that
// daemon's status and does not start another.
func Start(ctx context.Context, dir string, cmd *exec.Cmd) (Status, bool, error) {
	c := NewClient(dir)
	if st, err := c.Status(ctx); err == nil {
		return st, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Status{}, false, err
	}
	logPath := filepath.Join(dir, LogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return Status{}, false, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr, cmd.Stdin = logf, logf, nil
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return Status{}, false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// The first start generates the test PKI (a few seconds of RSA key
	// generation on a slow machine); later starts load it.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return Status{}, false, fmt.Errorf("simulator exited at start (%v): %s", err, tail(logPath))
		case <-ctx.Done():
			return Status{}, false, fmt.Errorf("simulator did not answer: %w; %s", ctx.Err(), tail(logPath))
		case <-tick.C:
			if st, err := c.Status(ctx); err == nil {
				return st, true, nil
			}
		}
	}
}

// Stop asks the daemon to exit and waits until its socket is gone.
func Stop(ctx context.Context, dir string) error {
	c := NewClient(dir)
	if err := c.Shutdown(ctx); err != nil {
		var nr *ErrNotRunning
		if errors.As(err, &nr) {
			return nr
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for c.Alive(ctx) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("simulator still answers after shutdown: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "log " + path + ":\n" + strings.Join(lines, "\n")
}
