package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"log/slog"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"testing"

	p11 "github.com/miekg/pkcs11"
)

func TestSlotForReader(t *testing.T) {
	long := "Gemalto USB Smart Card Reader with a name far too long for PKCS#11 (ABCDEF01) 00 00"
	slots := []Slot{
		{ID: 0, Reader: "Virtual PCD 00 00", TokenPresent: true},
		{ID: 1, Reader: "Virtual PCD 00 00"}, // OpenSC's spare slot of the same reader
		{ID: 4, Reader: "Virtual PCD 00 01"},
		{ID: 8, Reader: long[:64]},
		{ID: 9, Reader: "CPS: Identiv uTrust 2700 R (53691329) 00 00 [contact]"},
		{ID: 10, Reader: "Cherry ST-2000 00 00"},
		{ID: 11, Reader: "Cherry ST-2000 00 00 (1)"},
		{ID: 12, Reader: "x Cherry ST-2000 00 0"},
	}
	tests := []struct {
		reader string
		want   uint
		err    bool
	}{
		{"Virtual PCD 00 00", 0, false},                      // exact, the slot with the token
		{"Virtual PCD 00 00   ", 0, false},                   // padding trimmed
		{"Virtual PCD 00 01", 4, false},                      // exact, empty
		{long, 8, false},                                     // cut at 64 bytes
		{"Identiv uTrust 2700 R (53691329) 00 00", 9, false}, // decorated
		{"Cherry ST-2000 00 00", 10, false},                  // exact beats the decorated one
		{"Cherry ST-2000 00", 0, true},                       // in three descriptions: ambiguous
		{"Virtual PCD 00 02", 0, true},                       // no such reader
		{"Virtual PCD", 0, true},                             // a prefix of two readers
		{"", 0, true},
	}
	for _, tt := range tests {
		s, err := slotForReader(slots, tt.reader)
		if tt.err {
			if !errors.Is(err, ErrNoToken) {
				t.Errorf("slotForReader(%q) = slot %d, %v; want ErrNoToken", tt.reader, s.ID, err)
			}
			continue
		}
		if err != nil || s.ID != tt.want {
			t.Errorf("slotForReader(%q) = slot %d, %v; want slot %d", tt.reader, s.ID, err, tt.want)
		}
	}
}

func TestPINFlagsError(t *testing.T) {
	tests := []struct {
		flags uint
		tries int // -2: ErrPINBlocked
	}{
		{0, -1},
		{p11.CKF_LOGIN_REQUIRED | p11.CKF_TOKEN_INITIALIZED, -1},
		{p11.CKF_USER_PIN_COUNT_LOW, 2},
		{p11.CKF_USER_PIN_COUNT_LOW | p11.CKF_USER_PIN_FINAL_TRY, 1},
		{p11.CKF_USER_PIN_FINAL_TRY, 1},
		{p11.CKF_USER_PIN_LOCKED, -2},
		{p11.CKF_USER_PIN_LOCKED | p11.CKF_USER_PIN_FINAL_TRY | p11.CKF_USER_PIN_COUNT_LOW, -2},
	}
	for _, tt := range tests {
		err := pinFlagsError(tt.flags)
		var pe *PINError
		switch {
		case tt.tries == -2:
			if !errors.Is(err, ErrPINBlocked) {
				t.Errorf("flags %#x: %v, want ErrPINBlocked", tt.flags, err)
			}
		case !errors.As(err, &pe) || pe.TriesLeft != tt.tries:
			t.Errorf("flags %#x: %v, want %d tries left", tt.flags, err, tt.tries)
		}
	}
}

// TestPKCS1Input checks our DigestInfo against Go's own PKCS#1 v1.5
// signatures: raw RSA over the padded DigestInfo must give the same bytes.
func TestPKCS1Input(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := key.Size()
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.MD5SHA1, 0} {
		digest := make([]byte, 36) // hash 0: any length
		if h != 0 {
			digest = make([]byte, h.Size())
		}
		rand.Read(digest)
		want, err := rsa.SignPKCS1v15(nil, key, h, digest)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		in, err := pkcs1Input(h, digest)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		// EM = 00 01 FF…FF 00 ‖ DigestInfo (RFC 8017 §9.2), then m^d mod n.
		em := make([]byte, k)
		em[1] = 1
		for i := 2; i < k-len(in)-1; i++ {
			em[i] = 0xff
		}
		copy(em[k-len(in):], in)
		got := new(big.Int).Exp(new(big.Int).SetBytes(em), key.D, key.N).FillBytes(make([]byte, k))
		if !bytes.Equal(got, want) {
			t.Errorf("%v: PKCS#1 v1.5 from our DigestInfo differs from rsa.SignPKCS1v15", h)
		}
	}
	if _, err := pkcs1Input(crypto.SHA256, make([]byte, 20)); err == nil {
		t.Error("a 20-byte SHA-256 digest was accepted")
	}
	if _, err := pkcs1Input(crypto.MD5, make([]byte, 16)); err == nil {
		t.Error("MD5 was accepted")
	}
}

func TestPSSParams(t *testing.T) {
	tests := []struct {
		h        crypto.Hash
		salt     int
		hashMech uint
		mgf      uint
		sLen     uint
		err      bool
	}{
		{crypto.SHA256, rsa.PSSSaltLengthEqualsHash, p11.CKM_SHA256, p11.CKG_MGF1_SHA256, 32, false},
		{crypto.SHA256, rsa.PSSSaltLengthAuto, p11.CKM_SHA256, p11.CKG_MGF1_SHA256, 32, false},
		{crypto.SHA384, rsa.PSSSaltLengthEqualsHash, p11.CKM_SHA384, p11.CKG_MGF1_SHA384, 48, false},
		{crypto.SHA512, 0, p11.CKM_SHA512, p11.CKG_MGF1_SHA512, 64, false},
		{crypto.SHA256, 20, p11.CKM_SHA256, p11.CKG_MGF1_SHA256, 20, false},
		{crypto.SHA256, -7, 0, 0, 0, true},
		{crypto.MD5, 0, 0, 0, 0, true},
	}
	for _, tt := range tests {
		hm, mgf, sLen, err := pssParams(tt.h, tt.salt)
		if (err != nil) != tt.err || hm != tt.hashMech || mgf != tt.mgf || sLen != tt.sLen {
			t.Errorf("pssParams(%v, %d) = %#x, %#x, %d, %v", tt.h, tt.salt, hm, mgf, sLen, err)
		}
	}
}

func TestECDSADER(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 { // r or s with leading zero bytes come up now and then
			digest := make([]byte, 32)
			rand.Read(digest)
			r, s, err := ecdsa.Sign(rand.Reader, key, digest)
			if err != nil {
				t.Fatal(err)
			}
			n := (curve.Params().BitSize + 7) / 8
			raw := append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
			der, err := ecdsaDER(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(&key.PublicKey, digest, der) {
				t.Fatalf("%s: converted signature does not verify", curve.Params().Name)
			}
		}
	}
	for _, bad := range [][]byte{nil, {1}, {1, 2, 3}} {
		if _, err := ecdsaDER(bad); err == nil {
			t.Errorf("ecdsaDER(%x) accepted", bad)
		}
	}
}

func FuzzECDSADER(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, raw []byte) {
		der, err := ecdsaDER(raw)
		if err != nil {
			if len(raw) != 0 && len(raw)%2 == 0 {
				t.Fatalf("even-length input refused: %v", err)
			}
			return
		}
		var sig struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &sig)
		if err != nil || len(rest) != 0 {
			t.Fatalf("output is not one DER SEQUENCE: %v", err)
		}
		n := len(raw) / 2
		if !bytes.Equal(sig.R.FillBytes(make([]byte, n)), raw[:n]) || !bytes.Equal(sig.S.FillBytes(make([]byte, n)), raw[n:]) {
			t.Fatal("r or s changed in the conversion")
		}
	})
}

func TestECDSAInput(t *testing.T) {
	d := make([]byte, 64)
	if got := len(ecdsaInput(d, 256)); got != 32 {
		t.Errorf("P-256, SHA-512 digest: %d bytes, want 32", got)
	}
	if got := len(ecdsaInput(d[:32], 384)); got != 32 {
		t.Errorf("P-384, SHA-256 digest: %d bytes, want 32", got)
	}
	if got := len(ecdsaInput(d, 521)); got != 64 {
		t.Errorf("P-521, SHA-512 digest: %d bytes, want 64", got)
	}
}

func TestDefaultModulePath(t *testing.T) {
	want := map[string]string{
		"linux":  "/usr/lib64/libcps3_pkcs11_lux.so",
		"darwin": "/usr/local/lib/libcps3_pkcs11_osx.dylib",
	}
	got := DefaultModulePath()
	switch runtime.GOOS {
	case "windows":
		if !strings.HasSuffix(got, `\System32\cps3_pkcs11_w64.dll`) {
			t.Errorf("DefaultModulePath() = %q", got)
		}
	case "linux", "darwin":
		if got != want[runtime.GOOS] {
			t.Errorf("DefaultModulePath() = %q, want %q", got, want[runtime.GOOS])
		}
	}
}

// moduleLogWatch captures everything logged through slog for the rest of a test,
// so that the test can show that no PIN reached a log or an error.
type moduleLogWatch struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *moduleLogWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *moduleLogWatch) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func watchModuleLogs(t *testing.T) *moduleLogWatch {
	t.Helper()
	w := &moduleLogWatch{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return w
}

// noPIN fails the test if a PIN shows in the captured log or in an error.
// It also fails on an empty log or no errors: a check of nothing proves
// nothing.
func (w *moduleLogWatch) noPIN(t *testing.T, errs []error, pins ...string) {
	t.Helper()
	logged := w.log()
	if logged == "" || len(errs) == 0 {
		t.Fatalf("nothing to check: %d bytes of log, %d errors", len(logged), len(errs))
	}
	for _, pin := range pins {
		if strings.Contains(logged, pin) {
			t.Errorf("PIN %q in the log:\n%s", pin, logged)
		}
		for _, err := range errs {
			if err != nil && strings.Contains(err.Error(), pin) {
				t.Errorf("PIN %q in error %q", pin, err)
			}
		}
	}
	t.Logf("checked %d bytes of log and %d errors for %d PINs", len(logged), len(errs), len(pins))
}

func TestOpenSCHangsOnPull(t *testing.T) {
	for _, c := range []struct {
		manufacturer string
		major, minor byte
		want         bool
	}{
		{"OpenSC Project", 0, 23, true},
		{"OpenSC Project", 0, 24, false},
		{"OpenSC Project", 0, 26, false},
		{"OpenSC Project", 1, 0, false},
		{"ASIP Sante", 5, 1, false},
		{"SoftHSM", 2, 6, false},
	} {
		if got := openSCHangsOnPull(c.manufacturer, c.major, c.minor); got != c.want {
			t.Errorf("openSCHangsOnPull(%q, %d.%d) = %v, want %v", c.manufacturer, c.major, c.minor, got, c.want)
		}
	}
}
