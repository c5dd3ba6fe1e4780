package pkcs11

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
)

// intermediates reads the test PKI's intermediate CA certificates.
func intermediates(t testing.TB) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(cardtest.PKI(t).IntermediatesFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// pivTLSCertificate inserts the GP's test CPS, logs its token in and
// returns the card with its mutual-TLS client certificate.
func pivTLSCertificate(t testing.TB) (pivCard, tls.Certificate) {
	t.Helper()
	c := pivInsertCPS(t, "gp")
	tok := pivOpen(t)
	ctx := pivCtx(t)
	if err := tok.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	cert, err := TLSCertificate(ctx, tok, intermediates(t))
	if err != nil {
		t.Fatal(err)
	}
	return c, cert
}

// mtlsServer is an HTTPS server that requires a client certificate chaining
// to the test IGC-Santé root and answers with the client's subject CN.
func mtlsServer(t testing.TB, maxVersion uint16) *httptest.Server {
	t.Helper()
	p := cardtest.PKI(t)
	cert, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.RootPool(),
		MaxVersion:   maxVersion,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestTLSSessionCostsOneSignature: one professional session of 200 requests
// over mutual TLS with the card's key, with a forced reconnection halfway,
// costs at most two card signatures — connection reuse and resumption work —
// over TLS 1.3 and TLS 1.2.
func TestTLSSessionCostsOneSignature(t *testing.T) {
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			_, cert := pivTLSCertificate(t)
			srv := mtlsServer(t, v.max)
			tr := &http.Transport{TLSClientConfig: ClientConfig(cert, cardtest.PKI(t).RootPool())}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			before := Signatures()
			resumed := false
			for i := range 200 {
				if i == 100 {
					tr.CloseIdleConnections() // a new TCP connection: resumption, not a new signature
				}
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "899900063480" {
					t.Fatalf("server saw client CN %q", body)
				}
				if i == 100 {
					resumed = resp.TLS.DidResume
					if resp.TLS.Version != v.max {
						t.Errorf("negotiated %x, want %x", resp.TLS.Version, v.max)
					}
				}
			}
			n := Signatures() - before
			t.Logf("%s: 200 requests with one forced reconnection cost %d card signature(s); reconnection resumed: %v", v.name, n, resumed)
			if n < 1 || n > 2 {
				t.Errorf("%d card signatures for one session, want 1 or 2", n)
			}
			if !resumed {
				t.Error("the reconnection did not resume the TLS session")
			}
		})
	}
}

// TestTLSWithoutCard: a session started after the card left fails with
// ErrCardRemoved in the chain, not a hang or a vague handshake failure.
func TestTLSWithoutCard(t *testing.T) {
	c, cert := pivTLSCertificate(t)
	srv := mtlsServer(t, tls.VersionTLS13)
	cardtest.Remove(t, c.slot, 0)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ClientConfig(cert, cardtest.PKI(t).RootPool())}}
	reqCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL, nil)
	_, err := client.Do(req)
	if err == nil {
		t.Fatal("request succeeded without the card")
	}
	if !strings.Contains(err.Error(), ErrCardRemoved.Error()) {
		t.Fatalf("error without the card: %v, want it to say %q", err, ErrCardRemoved)
	}
	t.Logf("without the card: %v", err)
}
