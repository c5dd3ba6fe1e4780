package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/cardreader"
	"github.com/dmpagent/dmpagent/pkcs11"
)

// Check is one line of `dmpagent doctor`: what was checked, whether it is
// fine, and when not, the fix to apply.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Warning marks a check that passes but needs attention soon.
	Warning bool `json:"warning,omitempty"`
}

// Doctor is GET /v1/doctor.
type Doctor struct {
	Checks []Check `json:"checks"`
}

// maxClockSkew is what the DMP tolerates on a VIHF's instants (the
// simulated DMP's default; the real service is stricter in places).
const maxClockSkew = 2 * time.Minute

func (a *Agent) getDoctor(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, 200, Doctor{Checks: a.doctor(r.Context())})
}

// doctor runs the checks the agent is best placed to run: it is the
// process that must reach pcscd, load the module and reach the DMP.
func (a *Agent) doctor(ctx context.Context) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }

	if err := a.monitor.ServiceErr(); err != nil {
		add(Check{Name: "pcsc", Detail: err.Error(), Fix: "start the smart-card service: systemctl start pcscd (Linux), or plug a reader in (Windows stops the service without one)"})
	} else {
		add(Check{Name: "pcsc", OK: true, Detail: "smart-card service answering"})
	}
	readers := a.monitor.Readers()
	if len(readers) == 0 {
		add(Check{Name: "readers", Detail: "no card reader", Fix: "plug in a card reader; on a terminal server, check that smart-card redirection is on"})
	} else {
		add(Check{Name: "readers", OK: true, Detail: fmt.Sprintf("%d reader(s)", len(readers))})
	}
	reader, err := a.cpsReader()
	var id cardreader.Identity
	if err != nil {
		add(Check{Name: "cps", Detail: a.apiError(err).Message, Fix: "insert the professional's CPS card"})
	} else if id, err = a.identity(ctx, reader); err != nil {
		add(Check{Name: "cps", Detail: a.apiError(err).Message, Fix: "check the PKCS#11 module (pkcs11_module) matches the card"})
	} else {
		c := Check{Name: "cps", OK: true, Detail: fmt.Sprintf("CPS of %s in %q, valid until %s", id.IDNat, reader, id.NotAfter.Format(time.DateOnly))}
		switch left := id.NotAfter.Sub(a.now()); {
		case left < 0:
			c.OK, c.Fix = false, "the CPS certificate has expired: order a new card (ANS)"
		case left < 30*24*time.Hour:
			c.Warning, c.Fix = true, "the CPS certificate expires within 30 days: order its renewal"
		}
		add(c)
	}
	if a.cfg.PKCS11Module == "piv" {
		add(Check{Name: "pkcs11_module", OK: true, Detail: "PIV test tokens through piv-go"})
	} else {
		path := a.cfg.PKCS11Module
		if path == "" {
			path = pkcs11.DefaultModulePath()
		}
		if _, err := pkcs11.LoadModule(path); err != nil {
			add(Check{Name: "pkcs11_module", Detail: err.Error(), Fix: "install the Cryptolib CPS, or set pkcs11_module to the module's path"})
		} else {
			add(Check{Name: "pkcs11_module", OK: true, Detail: path + " loads"})
		}
	}
	for _, cert := range a.intermediates {
		if left := cert.NotAfter.Sub(a.now()); left < 60*24*time.Hour {
			add(Check{Name: "intermediates", OK: left > 0, Warning: left > 0, Detail: cert.Subject.CommonName + " expires " + cert.NotAfter.Format(time.DateOnly),
				Fix: "update the IGC-Santé certificates (intermediates) from the ANS"})
		}
	}
	add(a.checkDMP(ctx))
	if s := a.currentSession(); s != nil {
		add(a.checkClock(ctx, s))
	} else {
		add(Check{Name: "clock", OK: true, Warning: true, Detail: "not checked: needs an open session to ask the DMP its time", Fix: "log in, then run doctor again"})
	}
	return out
}

// checkDMP dials the DMP (through the proxy when one applies) and checks
// its server certificate against the configured roots.
func (a *Agent) checkDMP(ctx context.Context) Check {
	u, err := url.Parse(a.cfg.DMPEndpoint)
	if err != nil || u.Host == "" {
		return Check{Name: "dmp", Detail: "dmp_endpoint is not set or not a URL", Fix: "set dmp_endpoint in the agent configuration"}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr := a.transport(&tls.Config{RootCAs: a.roots, MinVersion: tls.VersionTLS12})
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if p, _ := tr.Proxy(req); p != nil {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil && !isTLSAlert(err) {
			return Check{Name: "dmp", Detail: "through proxy " + p.Redacted() + ": " + err.Error(), Fix: "check the proxy (proxy, HTTPS_PROXY, NO_PROXY) and that it allows " + u.Host}
		}
		if resp != nil {
			resp.Body.Close()
		}
		return Check{Name: "dmp", OK: true, Detail: u.Host + " reachable through " + p.Redacted()}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{RootCAs: a.roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil && !isTLSAlert(err) {
		fix := "check the network and dmp_endpoint; behind a proxy set proxy or HTTPS_PROXY"
		var uerr x509UnknownAuthority
		if errors.As(err, &uerr) {
			fix = "the DMP's certificate does not chain to the configured roots: update roots (IGC-Santé)"
		}
		return Check{Name: "dmp", Detail: err.Error(), Fix: fix}
	}
	if conn != nil {
		conn.Close()
	}
	return Check{Name: "dmp", OK: true, Detail: u.Host + " reachable, server certificate trusted"}
}

// checkClock compares the agent's clock with the DMP's Date header: a VIHF
// from a machine whose clock is off is refused.
func (a *Agent) checkClock(ctx context.Context, s *session) Check {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, a.cfg.DMPEndpoint, nil)
	resp, err := s.http.Do(req)
	if err != nil {
		return Check{Name: "clock", Detail: "could not ask the DMP its time: " + err.Error(), Fix: "see the dmp check"}
	}
	resp.Body.Close()
	remote, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return Check{Name: "clock", OK: true, Warning: true, Detail: "the DMP sent no Date header"}
	}
	skew := a.now().Sub(remote)
	if skew < 0 {
		skew = -skew
	}
	c := Check{Name: "clock", OK: skew <= maxClockSkew, Detail: fmt.Sprintf("%s from the DMP's clock", skew.Round(time.Second))}
	if !c.OK {
		c.Fix = "synchronise the clock (NTP: timedatectl set-ntp true, or w32tm /resync)"
	}
	return c
}

type x509UnknownAuthority interface{ error }

func isTLSAlert(err error) bool {
	var alert tls.AlertError
	return errors.As(err, &alert)
}

var _ = api.CodeInternal
