package pkcs11

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
)

// These tests put the card's key in front of a TLS server that is not Go's:
// OpenSSL's s_server, the stand-in for the DMP's front end, which has its
// own ideas of signature algorithms, chain building and verification depth.

// openSSLVersions are the protocol versions the server is limited to, one at
// a time; the client keeps ClientConfig's range, so the version negotiated
// is the server's doing, as it will be with the DMP.
var openSSLVersions = []struct {
	name    string
	flag    string
	version uint16
}{
	{"TLS1.2", "-tls1_2", tls.VersionTLS12},
	{"TLS1.3", "-tls1_3", tls.VersionTLS13},
}

// needOpenSSL returns the openssl binary, or skips — or fails under
// RequireEnv, so that CI cannot pass by skipping.
func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv(cardtest.RequireEnv) == "1" {
			t.Fatalf("openssl not installed but %s=1 (make test installs it)", cardtest.RequireEnv)
		}
		t.Skip("openssl not installed")
	}
	return path
}

// sServerFiles are the PEM files s_server is started with.
type sServerFiles struct {
	root, cert, chain, key string
}

// writeSServerFiles writes the test root and the simulated DMP's
// certificate, chain and key for s_server. The PKI's own directory is shared
// by every test process, so s_server gets copies rather than paths into it.
func writeSServerFiles(t *testing.T) sServerFiles {
	t.Helper()
	p := cardtest.PKI(t)
	srv, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := sServerFiles{
		root:  filepath.Join(dir, "root.pem"),
		cert:  filepath.Join(dir, "srv.pem"),
		chain: filepath.Join(dir, "srv-chain.pem"),
		key:   filepath.Join(dir, "srv.key"),
	}
	var chain []byte
	for _, der := range srv.Certificate[1:] {
		chain = append(chain, pemCert(der)...)
	}
	for name, data := range map[string][]byte{
		f.root:  pemCert(p.Root.Raw),
		f.cert:  pemCert(srv.Certificate[0]),
		f.chain: chain,
		f.key:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sServer is a running `openssl s_server -www`.
type sServer struct {
	url string
	out *lockedBuffer // stdout and stderr, interleaved
}

// waitFor waits until the server's output matches re: the verify callback's
// lines go to stderr as the handshake happens, and may still be in the pipe
// when the client has its answer.
func (s *sServer) waitFor(t *testing.T, re *regexp.Regexp) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !re.MatchString(s.out.String()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// sServerAccept is the line s_server prints once it listens (flushed, even
// into a pipe): a surer sign of readiness than a TCP probe, which could
// reach whoever else took the port and which s_server would log as a failed
// handshake.
var sServerAccept = regexp.MustCompile(`(?m)^ACCEPT`)

// startSServer runs s_server requiring a client certificate that chains to
// the test root, limited to one TLS version, on a free loopback port; it is
// killed when the test ends.
//
// -verify_return_error matters: without it s_server logs a chain that fails
// to verify and carries on with the handshake, so a client sending the
// wrong chain would pass. -www answers each request with a page that gives
// the protocol, the verify result and the client's certificate in PEM.
func startSServer(t *testing.T, openssl string, f sServerFiles, versionFlag string) *sServer {
	t.Helper()
	const attempts = 5
	for range attempts {
		port := freePort(t)
		out := &lockedBuffer{}
		cmd := exec.Command(openssl, "s_server",
			"-accept", "127.0.0.1:"+port,
			"-Verify", "2", "-verify_return_error",
			"-CAfile", f.root,
			"-cert", f.cert, "-cert_chain", f.chain, "-key", f.key,
			versionFlag, "-www")
		// The same writer for both: one pipe, so the lines keep their order.
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("openssl s_server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}

		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
	wait:
		for !sServerAccept.MatchString(out.String()) {
			select {
			case <-exited:
				break wait
			case <-deadline:
				stop()
				t.Fatalf("openssl s_server not listening after 10 s; it printed:\n%s", out)
			case <-tick.C:
			}
		}
		tick.Stop()
		if !sServerAccept.MatchString(out.String()) {
			// The port was taken between freePort and s_server's bind.
			// s_server then exits with status 0, so its output tells.
			if log := out.String(); strings.Contains(log, "Address already in use") || strings.Contains(log, "unable to bind") {
				t.Logf("port %s taken, retrying: %s", port, strings.TrimSpace(log))
				continue
			}
			t.Fatalf("openssl s_server exited before listening:\n%s", out)
		}
		s := &sServer{url: "https://127.0.0.1:" + port + "/", out: out}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("openssl s_server %s printed:\n%s", versionFlag, out)
			}
		})
		return s
	}
	t.Fatalf("openssl s_server could not bind a free port in %d attempts", attempts)
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// get fetches s_server's status page over mutual TLS with cfg. A fresh
// transport per call: a connection or session kept from an earlier call
// would skip the card.
func get(ctx context.Context, s *sServer, cfg *tls.Config) (*http.Response, string, error) {
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// opensslSubject is how openssl prints cert's subject in its own logs (the
// verify callback's "depth=0 …" line uses the same form as `x509 -subject`),
// so the server's log can be compared with the card's certificate rather
// than with a string written down here.
func opensslSubject(t *testing.T, openssl string, cert *x509.Certificate) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "card.pem")
	if err := os.WriteFile(f, pemCert(cert.Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-subject", "-in", f).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -subject: %v\n%s", err, out)
	}
	subject, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "subject=")
	if !ok {
		t.Fatalf("openssl x509 -subject printed %q", out)
	}
	return strings.TrimSpace(subject)
}

// peerCertificate is the client certificate on s_server's status page.
func peerCertificate(t *testing.T, page string) *x509.Certificate {
	t.Helper()
	_, after, ok := strings.Cut(page, "Client certificate")
	if !ok {
		t.Fatalf("s_server's page shows no client certificate:\n%s", page)
	}
	blk, _ := pem.Decode([]byte(after))
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate after \"Client certificate\" on s_server's page:\n%s", page)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sessionSection is the "SSL-Session:" part of s_server's page, for error
// messages: the whole page is mostly s_server's cipher list.
func sessionSection(page string) string {
	_, s, ok := strings.Cut(page, "SSL-Session:")
	if !ok {
		return page
	}
	s, _, _ = strings.Cut(s, "---")
	return "SSL-Session:" + s
}

// TestOpenSSLServerMTLS: mutual TLS with the card's key against
// `openssl s_server -Verify 2 -CAfile <test root>` succeeds over TLS 1.2 and
// 1.3, and s_server verified and shows the CPS certificate the token holds.
func TestOpenSSLServerMTLS(t *testing.T) {
	openssl := needOpenSSL(t)
	files := writeSServerFiles(t)
	pro, err := persona.LookupProfessional("gp")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range openSSLVersions {
		t.Run(v.name, func(t *testing.T) {
			pivInsertCPS(t, pro.Name)
			tok := pivOpen(t)
			ctx := pivCtx(t)
			if err := tok.Login(ctx, "1234"); err != nil {
				t.Fatal(err)
			}
			leaf, err := tok.Certificate(ctx, Authentication)
			if err != nil {
				t.Fatal(err)
			}
			// The persona's identity, so that "the CPS subject" below is
			// not merely whatever the token happens to return.
			if leaf.Subject.CommonName != pro.IDNat {
				t.Fatalf("token's certificate has CN %q, want the persona's idNat %q", leaf.Subject.CommonName, pro.IDNat)
			}
			cert, err := TLSCertificate(ctx, tok, intermediates(t))
			if err != nil {
				t.Fatal(err)
			}
			srv := startSServer(t, openssl, files, v.flag)

			before := Signatures()
			resp, page, err := get(ctx, srv, ClientConfig(cert, cardtest.PKI(t).RootPool()))
			if err != nil {
				t.Fatalf("GET %s: %v", srv.url, err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("s_server answered %s:\n%s", resp.Status, page)
			}
			if got := resp.TLS.Version; got != v.version {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(v.version))
			}
			if n := Signatures() - before; n != 1 {
				t.Errorf("the handshake cost %d card signatures, want 1 (the key is the card's)", n)
			}

			// s_server's view of the same session.
			proto := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[v.version]
			if !regexp.MustCompile(`Protocol\s*:\s*` + regexp.QuoteMeta(proto) + `\b`).MatchString(page) {
				t.Errorf("s_server's page does not say Protocol %s:\n%s", proto, sessionSection(page))
			}
			if !strings.Contains(page, "Verify return code: 0 (ok)") {
				t.Errorf("s_server did not verify the client chain to the test root:\n%s", sessionSection(page))
			}
			if peer := peerCertificate(t, page); !peer.Equal(leaf) {
				t.Errorf("s_server shows client certificate %q, not the token's %q", peer.Subject, leaf.Subject)
			}
			if !strings.Contains(page, "CN="+leaf.Subject.CommonName) {
				t.Errorf("s_server's page does not show CN=%s", leaf.Subject.CommonName)
			}
			subject := opensslSubject(t, openssl, leaf)
			if !srv.waitFor(t, regexp.MustCompile(`(?m)^depth=0 `+regexp.QuoteMeta(subject)+`$`)) {
				t.Errorf("s_server did not log the client subject %q at depth 0:\n%s", subject, srv.out)
			} else {
				t.Logf("%s: s_server verified depth=0 %s", tls.VersionName(resp.TLS.Version), subject)
			}
		})
	}
}

// TestOpenSSLServerWithoutCard: once the card has left, a handshake with
// s_server fails promptly with ErrCardRemoved in the message, not a hang or
// a bare handshake failure.
func TestOpenSSLServerWithoutCard(t *testing.T) {
	openssl := needOpenSSL(t)
	files := writeSServerFiles(t)
	for _, v := range openSSLVersions {
		t.Run(v.name, func(t *testing.T) {
			c, cert := pivTLSCertificate(t)
			srv := startSServer(t, openssl, files, v.flag)
			cardtest.Remove(t, c.slot, 0)

			// The deadline turns a hang into a failure: the error would then
			// be the context's, which the check below rejects.
			reqCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, page, err := get(reqCtx, srv, ClientConfig(cert, cardtest.PKI(t).RootPool()))
			if err == nil {
				t.Fatalf("request succeeded without the card; s_server answered:\n%s", sessionSection(page))
			}
			// Over TLS 1.3 crypto/tls flattens the signer's error into its
			// own message ("tls: failed to sign handshake: …"), so
			// errors.Is cannot see ErrCardRemoved there: the message is
			// what holds for both versions, and what the user gets.
			if !strings.Contains(err.Error(), ErrCardRemoved.Error()) {
				t.Fatalf("error without the card: %v, want it to say %q", err, ErrCardRemoved)
			}
			t.Logf("%s without the card, after %v: %v", v.name, time.Since(start).Round(time.Millisecond), err)
		})
	}
}
