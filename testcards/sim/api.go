// Package sim is the simulator daemon behind `dmpagent sim`: it holds the
// emulated cards and keeps them plugged into pcscd's virtual readers, and
// answers a small JSON API on a Unix socket in its data directory. The
// daemon outlives the command that starts it, so a tester can insert and
// remove cards from separate shell commands.
package sim

import (
	"github.com/dmpagent/dmpagent/testcards/vpcd"
)

// Card kinds.
const (
	KindCPS    = "cps"
	KindVitale = "vitale"
)

// InsertRequest asks for a persona's card in a reader.
type InsertRequest struct {
	Kind    string `json:"kind"`    // cps or vitale
	Persona string `json:"persona"` // gp, pharmacist, …, family, single
	Reader  int    `json:"reader"`
	// Fresh inserts a new card instead of the persona's card as it was last
	// left (a blocked PIN stays blocked across removal, as on a real card).
	Fresh  bool        `json:"fresh,omitempty"`
	Faults vpcd.Faults `json:"faults"`
}

// RemoveRequest asks for the card in a reader to be taken out.
type RemoveRequest struct {
	Reader int `json:"reader"`
}

// FaultsRequest changes the fault knobs of the card in a reader.
type FaultsRequest struct {
	Reader int         `json:"reader"`
	Faults vpcd.Faults `json:"faults"`
}

// Status describes the simulator.
type Status struct {
	PID     int            `json:"pid"`
	Dir     string         `json:"dir"`
	PKIDir  string         `json:"pki_dir"`
	Readers []ReaderStatus `json:"readers"`
	DMP     *DMPStatus     `json:"dmp,omitempty"`
}

// DMPStatus describes the simulated DMP running beside the cards.
type DMPStatus struct {
	URL string `json:"url"` // services root, for the agent's DMP endpoint
	Dir string `json:"dir"` // its state: SQLite database and documents
	// AgentConfig is DIR/agent.conf, the agent configuration for this
	// simulation (dmpagent run --config).
	AgentConfig string `json:"agent_config,omitempty"`
}

// ReaderStatus describes one virtual reader.
type ReaderStatus struct {
	Index int         `json:"index"`
	Name  string      `json:"name"` // the PC/SC reader name
	Card  *CardStatus `json:"card,omitempty"`
}

// CardStatus describes the card in a reader.
type CardStatus struct {
	Kind      string      `json:"kind"`
	Persona   string      `json:"persona"`
	ATR       string      `json:"atr"` // as presented, hex with spaces
	Connected bool        `json:"connected"`
	PINTries  *int        `json:"pin_tries_left,omitempty"`
	PUKTries  *int        `json:"puk_tries_left,omitempty"`
	Faults    vpcd.Faults `json:"faults"`
}

type errorBody struct {
	Error string `json:"error"`
}
