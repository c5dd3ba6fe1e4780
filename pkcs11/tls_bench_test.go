package pkcs11

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"github.com/dmpagent/dmpagent/testcards/cardtest"
)

// BenchmarkTLSHandshake measures mutual-TLS handshakes per second against a
// Go HTTPS server (one request per connection, keep-alive off), with:
//   - card/full: the emulated card's key, no session cache: every handshake
//     costs one card signature, which is what a new professional session
//     pays once;
//   - card/resumed: the same with ClientConfig's session cache: every
//     handshake after the first resumes and asks the card nothing;
//   - memory/full: the same certificate with its private key in memory,
//     the baseline that shows what the card adds.
//
// Run with `go test -run '^$' -bench TLSHandshake -benchtime 100x ./pkcs11`
// on the real stack (make bench).
func BenchmarkTLSHandshake(b *testing.B) {
	for _, v := range openSSLVersions {
		b.Run(v.name, func(b *testing.B) {
			c, cardCert := pivTLSCertificate(b)
			memCert := cardCert
			memCert.PrivateKey = c.keys.Auth.Key
			srv := mtlsServer(b, v.version)
			roots := cardtest.PKI(b).RootPool()

			for _, m := range []struct {
				name   string
				cert   tls.Certificate
				resume bool
			}{
				{"card/full", cardCert, false},
				{"card/resumed", cardCert, true},
				{"memory/full", memCert, false},
			} {
				b.Run(m.name, func(b *testing.B) {
					cfg := ClientConfig(m.cert, roots)
					if !m.resume {
						cfg.ClientSessionCache = nil
					}
					client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
					defer client.CloseIdleConnections()
					get := func() {
						resp, err := client.Get(srv.URL)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.TLS.Version != v.version {
							b.Fatalf("negotiated %x, want %x", resp.TLS.Version, v.version)
						}
					}
					get() // the resumed case starts with a session to resume
					before := Signatures()
					for b.Loop() {
						get()
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
					b.ReportMetric(float64(Signatures()-before)/float64(b.N), "card-signatures/op")
				})
			}
		})
	}
}
