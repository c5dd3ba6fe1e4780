package dmptest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
)

// pdfStream is a PDF-looking stream of n bytes generated on the fly, so
// that the test itself holds no document in memory.
func pdfStream(n int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		body := io.LimitReader(rand.NewChaCha8([32]byte{1}), n-9)
		return io.NopCloser(io.MultiReader(strings.NewReader("%PDF-1.7\n"), body)), nil
	}
}

// procStatus reads a field of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// peakRSSGrowth runs fn and returns by how much the process's peak
// resident memory rose above what was resident before. Linux only.
func peakRSSGrowth(t testing.TB, fn func()) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	base := procStatus("VmRSS")
	// Writing 5 resets the peak (VmHWM) to the current RSS.
	if base < 0 || os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) != nil {
		t.Skip("needs Linux /proc to measure resident memory")
	}
	fn()
	return procStatus("VmHWM") - base
}

const bigPDF = 100 << 20

func bigRequest(title string, size int64) dmp.FeedRequest {
	r := feedRequest(insSingle, title, "11488-4", nil)
	r.PDF = pdfStream(size)
	return r
}

// feedBig sends a 100 MB PDF through a client and a dmptest in this
// process and returns the peak resident memory growth.
func feedBig(t testing.TB) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newServer(t, func(c *dmptest.Config) { c.Validate = false })
	gp := professional(t, "gp")
	c := clientFor(t, s, "gp")
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		t.Fatal(err)
	}
	// Warm up: TLS session, VIHF, code paths.
	if _, err := c.Feed(ctx, gp, bigRequest("warm-up", 1<<10)); err != nil {
		t.Fatal(err)
	}
	var res *dmp.FeedResult
	growth := peakRSSGrowth(t, func() {
		var err error
		res, err = c.Feed(ctx, gp, bigRequest("Imagerie 100 Mo", bigPDF))
		if err != nil {
			t.Fatal(err)
		}
	})
	if res.Size < bigPDF*4/3 {
		t.Fatalf("sent a %d-byte CDA for a %d-byte PDF", res.Size, bigPDF)
	}
	return growth
}

// TestFeed100MBMemory holds DESIGN's bound: feeding a 100 MB PDF grows the
// resident memory of client and simulated DMP together by at most 64 MB.
func TestFeed100MBMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB feed")
	}
	growth := feedBig(t)
	t.Logf("peak RSS growth feeding 100 MB: %.1f MB", float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Fatalf("peak RSS grew by %.1f MB (> 64 MB)", float64(growth)/(1<<20))
	}
}

// BenchmarkFeed100MB reports the peak RSS growth of a 100 MB feed.
func BenchmarkFeed100MB(b *testing.B) {
	var worst int64
	for b.Loop() {
		worst = max(worst, feedBig(b))
	}
	b.ReportMetric(float64(worst)/(1<<20), "MB-peak-RSS-growth")
	b.SetBytes(bigPDF)
}

// BenchmarkTransaction measures transactions per second against dmptest on
// loopback, with the round trip of a request refused before any SOAP work
// (an unknown path on the same mutual-TLS connection) as the baseline of
// the same run: ratios say what the DMP protocol costs over HTTPS itself.
func BenchmarkTransaction(b *testing.B) {
	ctx := context.Background()
	s := newServer(b, func(c *dmptest.Config) { c.Validate = false })
	gp := professional(b, "gp")
	c := clientFor(b, s, "gp")
	if err := s.CreateDMPForTest(ctx, insSingle, gp.IDNat); err != nil {
		b.Fatal(err)
	}
	doc := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("x"), 1024-9)...)
	b.Run("baseline-https", func(b *testing.B) {
		p := testPKI(b)
		card, _ := p.Card("gp")
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{card.Auth.Cert.Raw, p.PersonCA.Raw}, PrivateKey: card.Auth.Key}},
			RootCAs:      p.RootPool()}}}
		for b.Loop() {
			resp, err := hc.Get(s.URL + "/none")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("iti41-feed-1KB", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Feed(ctx, gp, feedRequest(insSingle, "1 Ko", "11488-4", doc)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "feeds/s")
	})
	b.Run("iti18-query", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Search(ctx, gp, dmp.StoredQuery{Patient: insSingle, TypeCodes: []dmp.Code{{Code: "60591-5", Scheme: dmp.SchemeLOINC}}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	})
}
