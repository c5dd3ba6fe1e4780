package cli

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/dmpagent/dmpagent/agent"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// AgentConfName is the agent configuration `sim up` writes in the
// simulation directory (DESIGN §7).
const AgentConfName = "agent.conf"

// writeAgentConf writes DIR/agent.conf: a complete agent configuration for
// the simulation. A configuration already there keeps its API address, so
// that scripts and paired applications find the agent where they left it;
// agentAddr, when set, chooses it.
func writeAgentConf(dir, agentAddr, dmpURL, insiURL string, p *pki.PKI) (string, error) {
	path := filepath.Join(dir, AgentConfName)
	if agentAddr == "" {
		old := agent.DefaultConfig()
		if err := old.LoadConfigFile(path); err == nil {
			agentAddr = old.Listen
		}
	}
	if agentAddr == "" {
		free, err := freeLoopbackAddr()
		if err != nil {
			return "", err
		}
		agentAddr = free
	}
	module := pkcs11.OpenSCModulePath()
	if module == "" {
		module = "piv" // no OpenSC: drive the emulated PIV card with piv-go
	}
	rel := func(abs string) string {
		if r, err := filepath.Rel(dir, abs); err == nil {
			return r
		}
		return abs
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Written by "dmpagent sim up": the agent configuration of this simulation.
# Run the agent on it with: dmpagent run --config %s
# Relative paths are relative to this file's directory.

listen = %s
data_dir = agent
dmp_endpoint = %s
insi_endpoint = %s
ins_oid = %s
roots = %s
intermediates = %s
pkcs11_module = %s
test_mode = true
software_name = dmpagent
software_id = dmpagent-sim
homologation = SIMULATION
`, path, agentAddr, dmpURL, insiURL, dmp.OIDINSNIRTest, rel(p.RootFile()), rel(p.IntermediatesFile()), module)
	for _, pro := range persona.Professionals() {
		fmt.Fprintf(&b, "\n# %s: %s %s\n[professional %s]\nprofession = %s\nspecialty = %s\nstructure_id = %s\nstructure_name = %q\nsector = %s\n",
			pro.Name, pro.GivenName, pro.Surname, pro.IDNat, pro.ProfessionCode, pro.Specialty, pro.StructureID, pro.StructureName, pro.Sector)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
