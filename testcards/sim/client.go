package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// Client talks to a running simulator daemon.
type Client struct {
	dir string
	hc  *http.Client
}

// NewClient returns a client for the daemon of the data directory dir.
func NewClient(dir string) *Client {
	sock := filepath.Join(dir, SocketName)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	return &Client{dir: dir, hc: &http.Client{Transport: tr}}
}

// ErrNotRunning is returned when no daemon answers on the socket.
type ErrNotRunning struct {
	Dir string
	Err error
}

func (e *ErrNotRunning) Error() string {
	return fmt.Sprintf("no simulator runs on %s (start it with `dmpagent sim up`): %v", e.Dir, e.Err)
}

func (e *ErrNotRunning) Unwrap() error { return e.Err }

// Alive reports whether a daemon answers.
func (c *Client) Alive(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := c.Status(ctx)
	return err == nil
}

// Status returns the readers and cards.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Insert puts a persona's card in a reader; it returns once pcscd reports it.
func (c *Client) Insert(ctx context.Context, req InsertRequest) (ReaderStatus, error) {
	var rs ReaderStatus
	err := c.do(ctx, http.MethodPost, "/v1/insert", req, &rs)
	return rs, err
}

// Remove takes the card out of a reader; it returns once pcscd reports it.
func (c *Client) Remove(ctx context.Context, reader int) error {
	return c.do(ctx, http.MethodPost, "/v1/remove", RemoveRequest{Reader: reader}, nil)
}

// SetFaults changes the fault knobs of the card in a reader.
func (c *Client) SetFaults(ctx context.Context, req FaultsRequest) (ReaderStatus, error) {
	var rs ReaderStatus
	err := c.do(ctx, http.MethodPost, "/v1/faults", req, &rs)
	return rs, err
}

// Shutdown asks the daemon to take every card out and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/shutdown", struct{}{}, nil)
}

// Do sends a JSON request to the daemon and decodes its JSON answer into
// out (unless nil); services mounted beside the cards use it.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.do(ctx, method, path, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sim"+path, &body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &ErrNotRunning{Dir: c.dir, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error != "" {
			return fmt.Errorf("simulator: %s", eb.Error)
		}
		return fmt.Errorf("simulator: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
