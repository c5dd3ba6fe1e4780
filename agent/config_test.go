package agent

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.conf")
	os.WriteFile(path, []byte(`# comment
listen = 127.0.0.1:7799
data_dir = data
dmp_endpoint = "https://dmp.example/si-dmp-server/v2/services"
roots = pki/root.pem
dmp_timeout = 45s
test_mode = true
structure_id = 499900063480001
sector = SA07

[professional 899900063480]
profession = 10
specialty = SM26
structure_name = "CABINET DR LIBRE"
`), 0o600)
	c := DefaultConfig()
	if err := c.LoadConfigFile(path); err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Listen != "127.0.0.1:7799", c.DataDir != filepath.Join(dir, "data"), c.Roots != filepath.Join(dir, "pki/root.pem"),
		c.DMPEndpoint != "https://dmp.example/si-dmp-server/v2/services", c.DMPTimeout != 45*time.Second, !c.TestMode,
		c.Structure.StructureID != "499900063480001", c.Professionals["899900063480"].Specialty != "SM26",
		c.Professionals["899900063480"].StructureName != "CABINET DR LIBRE":
		t.Fatalf("%+v", c)
	}
	env := map[string]string{"DMPAGENT_LISTEN": "127.0.0.1:7800", "DMPAGENT_LOG_LEVEL": "debug"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7800" || c.LogLevel != "debug" {
		t.Fatalf("env: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key":            "colour = blue\n",
		"no equals":              "listen\n",
		"bad duration":           "dmp_timeout = soon\n",
		"bad section":            "[structure x]\n",
		"unknown key in section": "[professional 8999]\npin = 1234\n",
		"bad max size":           "max_document_size = -1\n",
		"bad bool":               "test_mode = perhaps\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.parse("agent.conf", strings.NewReader(body))
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line < 1 {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestValidateListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7711": true, "[::1]:7711": true, "127.0.0.2:7711": true,
		"0.0.0.0:7711": false, ":7711": false, "localhost:7711": false, "192.168.1.10:7711": false, "127.0.0.1:99999": false,
	} {
		c := DefaultConfig()
		c.Listen = addr
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func FuzzConfig(f *testing.F) {
	f.Add("listen = 127.0.0.1:7711\n[professional 1]\nspecialty = SM26\n")
	f.Add("a=b\n[")
	f.Fuzz(func(t *testing.T, body string) {
		c := DefaultConfig()
		if err := c.parse("agent.conf", strings.NewReader(body)); err != nil {
			return
		}
		_ = c.Validate()
	})
}

// TestProxyFromEnvironment: HTTPS_PROXY and NO_PROXY apply to the DMP
// connection (the end-to-end test uses a configured proxy: Go never
// proxies loopback addresses, where the simulated DMP listens).
func TestProxyFromEnvironment(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.cabinet.example:3128")
	t.Setenv("NO_PROXY", ".sante.example")
	a := &Agent{cfg: DefaultConfig()}
	tr := a.transport(nil)
	for target, want := range map[string]string{
		"https://lps2.dmp.gouv.fr/si-dmp-server/v2/services": "http://proxy.cabinet.example:3128",
		"https://dmp.sante.example/services":                 "",
	} {
		req, _ := http.NewRequest("POST", target, nil)
		u, err := tr.Proxy(req)
		if err != nil || (u == nil) != (want == "") || (u != nil && u.String() != want) {
			t.Errorf("%s: proxy %v, %v; want %q", target, u, err, want)
		}
	}
	a.cfg.Proxy = "http://configured.example:8080"
	req, _ := http.NewRequest("POST", "https://dmp.sante.example/services", nil)
	if u, _ := a.transport(nil).Proxy(req); u == nil || u.Host != "configured.example:8080" {
		t.Errorf("configured proxy: %v", u)
	}
}
