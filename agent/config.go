package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
)

// Config is the agent's configuration. It comes from a file of `key = value`
// lines (what an MSI property or a deb's conffile writes), then environment
// variables DMPAGENT_<KEY>, then command-line flags, each overriding the one
// before. Professionals' situations (profession, specialty, structure) are
// not on the CPS certificate, so they are configured per idNat in
// `[professional <idNat>]` sections, with the workstation's structure as the
// default.
type Config struct {
	Listen        string // loopback host:port of the API
	DataDir       string // outbox, audit log, tokens, consent receipts
	ControlSocket string // admin socket; default DataDir/control.sock
	LogLevel      string // debug, info, warn, error

	DMPEndpoint  string // services root of the DMP
	INSiEndpoint string // INSi teleservice
	INSOID       string // OID of INS values given without one (path parameters)
	// Roots holds the PEM roots that sign the DMP's server certificate and
	// the CPS certificates (IGC-Santé); Intermediates the CA certificates
	// a CPS chain needs (sent in TLS and the VIHF).
	Roots         string
	Intermediates string
	Proxy         string // URL; default: HTTPS_PROXY/NO_PROXY from the environment
	DMPTimeout    time.Duration
	SignatureHash string // sha256 (default) or sha1
	TestMode      bool   // HL7 processingCode D and a "simulation" flag in status
	WireLog       string // directory: log every DMP message (support only)

	// PKCS11Module is the module that reaches the CPS (the Cryptolib CPS in
	// production, OpenSC for test cards).
	PKCS11Module string

	SoftwareName, SoftwareVersion, SoftwareID, Homologation string
	// SourceID is the OID of this submitting system in XDS submission
	// sets; default: a 2.25 OID made once per installation and kept in
	// the data directory.
	SourceID string

	MaxDocumentSize int64 // bytes of one fed document

	Structure     Situation
	Professionals map[string]Situation // by idNat
}

// Situation is what the DMP needs about a professional's activity and the
// card does not say.
type Situation struct {
	Profession    string // TRE_G15 code; default derived from the certificate's title
	Specialty     string
	StructureID   string
	StructureName string
	Sector        string
}

// DefaultConfig returns the built-in defaults: loopback port 7711, the
// production INS OID, data in the platform's service data directory.
func DefaultConfig() Config {
	return Config{
		Listen:          api.DefaultAddr,
		DataDir:         defaultDataDir(),
		LogLevel:        "info",
		INSOID:          "1.2.250.1.213.1.4.8",
		DMPTimeout:      2 * time.Minute,
		SignatureHash:   "sha256",
		SoftwareName:    "dmpagent",
		MaxDocumentSize: 64 << 20,
	}
}

// DefaultConfigPath is where the service looks for its configuration when
// neither --config nor $DMPAGENT_CONFIG says.
func DefaultConfigPath() string {
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(programData(), "dmpagent", "agent.conf")
	case "darwin":
		return "/Library/Application Support/dmpagent/agent.conf"
	default:
		return "/etc/dmpagent/agent.conf"
	}
}

func defaultDataDir() string {
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(programData(), "dmpagent", "data")
	case "darwin":
		return "/Library/Application Support/dmpagent/data"
	default:
		return "/var/lib/dmpagent"
	}
}

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// configKeys maps each file key to its setter. Keys are also the
// environment variables' names (DMPAGENT_ + upper case) and, with '-' for
// '_', the flags'.
var configKeys = map[string]func(c *Config, v string) error{
	"listen":           func(c *Config, v string) error { c.Listen = v; return nil },
	"data_dir":         func(c *Config, v string) error { c.DataDir = v; return nil },
	"control_socket":   func(c *Config, v string) error { c.ControlSocket = v; return nil },
	"log_level":        func(c *Config, v string) error { c.LogLevel = v; return nil },
	"dmp_endpoint":     func(c *Config, v string) error { c.DMPEndpoint = v; return nil },
	"insi_endpoint":    func(c *Config, v string) error { c.INSiEndpoint = v; return nil },
	"ins_oid":          func(c *Config, v string) error { c.INSOID = v; return nil },
	"roots":            func(c *Config, v string) error { c.Roots = v; return nil },
	"intermediates":    func(c *Config, v string) error { c.Intermediates = v; return nil },
	"proxy":            func(c *Config, v string) error { c.Proxy = v; return nil },
	"dmp_timeout":      func(c *Config, v string) error { return parseDuration(&c.DMPTimeout, v) },
	"signature_hash":   func(c *Config, v string) error { c.SignatureHash = strings.ToLower(v); return nil },
	"test_mode":        func(c *Config, v string) error { return parseBool(&c.TestMode, v) },
	"wire_log":         func(c *Config, v string) error { c.WireLog = v; return nil },
	"pkcs11_module":    func(c *Config, v string) error { c.PKCS11Module = v; return nil },
	"software_name":    func(c *Config, v string) error { c.SoftwareName = v; return nil },
	"software_version": func(c *Config, v string) error { c.SoftwareVersion = v; return nil },
	"software_id":      func(c *Config, v string) error { c.SoftwareID = v; return nil },
	"homologation":     func(c *Config, v string) error { c.Homologation = v; return nil },
	"source_id":        func(c *Config, v string) error { c.SourceID = v; return nil },
	"max_document_size": func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number of bytes, got %q", v)
		}
		c.MaxDocumentSize = n
		return nil
	},
	"profession":     func(c *Config, v string) error { c.Structure.Profession = v; return nil },
	"specialty":      func(c *Config, v string) error { c.Structure.Specialty = v; return nil },
	"structure_id":   func(c *Config, v string) error { c.Structure.StructureID = v; return nil },
	"structure_name": func(c *Config, v string) error { c.Structure.StructureName = v; return nil },
	"sector":         func(c *Config, v string) error { c.Structure.Sector = v; return nil },
}

var situationKeys = map[string]func(s *Situation, v string){
	"profession":     func(s *Situation, v string) { s.Profession = v },
	"specialty":      func(s *Situation, v string) { s.Specialty = v },
	"structure_id":   func(s *Situation, v string) { s.StructureID = v },
	"structure_name": func(s *Situation, v string) { s.StructureName = v },
	"sector":         func(s *Situation, v string) { s.Sector = v },
}

// ConfigKeys lists the keys a configuration file may set, sorted.
func ConfigKeys() []string {
	keys := make([]string, 0, len(configKeys))
	for k := range configKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Set sets one key as a file line would.
func (c *Config) Set(key, value string) error {
	set, ok := configKeys[key]
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	if err := set(c, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// ConfigError is a bad line of a configuration file.
type ConfigError struct {
	File string
	Line int
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfigFile applies the file at path onto c. Relative paths in it are
// relative to the file's directory, so that a configuration written by
// `sim up` can be moved with its directory.
func (c *Config) LoadConfigFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return c.parse(path, bytes.NewReader(b))
}

func (c *Config) parse(name string, r io.Reader) error {
	base := filepath.Dir(name)
	sc := bufio.NewScanner(r)
	n := 0
	var section *Situation
	var sectionID string
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		bad := func(format string, args ...any) error {
			return &ConfigError{File: name, Line: n, Err: fmt.Errorf(format, args...)}
		}
		if line[0] == '[' {
			if section != nil {
				c.setProfessional(sectionID, *section)
			}
			inner, ok := strings.CutSuffix(line[1:], "]")
			kind, id, _ := strings.Cut(strings.TrimSpace(inner), " ")
			id = strings.TrimSpace(id)
			if !ok || kind != "professional" || id == "" {
				return bad("want a section [professional <idNat>], got %s", line)
			}
			section, sectionID = &Situation{}, id
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return bad("want key = value, got %q", line)
		}
		key, value = strings.TrimSpace(key), unquote(strings.TrimSpace(value))
		if section != nil {
			set, ok := situationKeys[key]
			if !ok {
				return bad("unknown key %q in a professional section", key)
			}
			set(section, value)
			continue
		}
		if pathKeys[key] && value != "" && !filepath.IsAbs(value) {
			value = filepath.Join(base, value)
		}
		if err := c.Set(key, value); err != nil {
			return &ConfigError{File: name, Line: n, Err: err}
		}
	}
	if section != nil {
		c.setProfessional(sectionID, *section)
	}
	return sc.Err()
}

var pathKeys = map[string]bool{"data_dir": true, "control_socket": true, "roots": true,
	"intermediates": true, "wire_log": true}

func (c *Config) setProfessional(id string, s Situation) {
	if c.Professionals == nil {
		c.Professionals = map[string]Situation{}
	}
	c.Professionals[id] = s
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	}
	return v
}

// LoadEnv applies DMPAGENT_<KEY> variables found by lookup.
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	for _, k := range ConfigKeys() {
		if v, ok := lookup("DMPAGENT_" + strings.ToUpper(k)); ok {
			if err := c.Set(k, v); err != nil {
				return fmt.Errorf("$DMPAGENT_%s: %w", strings.ToUpper(k), err)
			}
		}
	}
	return nil
}

// Validate checks what the agent cannot run without, with the fix in the
// message.
func (c *Config) Validate() error {
	var errs []error
	if err := checkLoopback(c.Listen); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.SignatureHash != "sha256" && c.SignatureHash != "sha1" {
		errs = append(errs, fmt.Errorf("signature_hash %q: want sha256 or sha1", c.SignatureHash))
	}
	if c.DMPTimeout <= 0 {
		errs = append(errs, errors.New("dmp_timeout must be positive"))
	}
	return errors.Join(errs...)
}

// checkLoopback refuses a listen address that is not a loopback IP: the
// API holds a signing key and health data, and DNS names could resolve
// elsewhere.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listen %q: bad port", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen %q: the API listens on a loopback address only (127.0.0.1 or [::1])", addr)
	}
	return nil
}

// controlSocket is where the admin socket lives.
func (c *Config) controlSocket() string {
	if c.ControlSocket != "" {
		return c.ControlSocket
	}
	return filepath.Join(c.DataDir, "control.sock")
}

// ControlSocketPath is the admin socket's path for clients.
func (c *Config) ControlSocketPath() string { return c.controlSocket() }

func parseDuration(d *time.Duration, v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*d = x
	return nil
}

func parseBool(b *bool, v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	*b = x
	return nil
}
