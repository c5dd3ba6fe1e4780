package piv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards/piv"
)

// Card secrets and identity used by every test card.
const (
	testPIN    = "1234"
	testPUK    = "12345678"
	testSerial = uint32(0x0A0B0C0D)
)

var testVersion = [3]byte{5, 4, 3}

// fixture holds the keys and certificates shared by every card of the test
// binary: RSA-2048 generation is slow, so it happens once.
type fixture struct {
	authKey, signKey *rsa.PrivateKey   // 9A, 9C
	cardAuthKey      *ecdsa.PrivateKey // 9E
	authCert         *x509.Certificate
	signCert         *x509.Certificate
	cardAuthCert     *x509.Certificate
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func keys(tb testing.TB) *fixture {
	tb.Helper()
	fixOnce.Do(func() { fixErr = fix.generate() })
	if fixErr != nil {
		tb.Fatalf("generating test keys: %v", fixErr)
	}
	return &fix
}

func (f *fixture) generate() error {
	var err error
	var wg sync.WaitGroup
	var errA, errS error
	wg.Add(2)
	go func() { defer wg.Done(); f.authKey, errA = rsa.GenerateKey(rand.Reader, 2048) }()
	go func() { defer wg.Done(); f.signKey, errS = rsa.GenerateKey(rand.Reader, 2048) }()
	wg.Wait()
	if err = errors.Join(errA, errS); err != nil {
		return err
	}
	if f.cardAuthKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if f.authCert, err = selfSigned(f.authKey, "PIV test 9A", 1); err != nil {
		return err
	}
	if f.signCert, err = selfSigned(f.signKey, "PIV test 9C", 2); err != nil {
		return err
	}
	f.cardAuthCert, err = selfSigned(f.cardAuthKey, "PIV test 9E", 3)
	return err
}

func selfSigned(key crypto.Signer, cn string, serial int64) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"dmpagent piv tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// config is the standard test card: 9A RSA PIN once, 9C RSA PIN always, 9E
// P-256 no PIN, nothing in 9D.
func config(tb testing.TB) piv.Config {
	f := keys(tb)
	return piv.Config{
		PIN:     testPIN,
		PUK:     testPUK,
		Serial:  testSerial,
		Version: testVersion,
		Keys: map[byte]piv.Key{
			piv.SlotAuthentication:     {Signer: f.authKey, Cert: f.authCert, PINPolicy: piv.PINOnce},
			piv.SlotSignature:          {Signer: f.signKey, Cert: f.signCert, PINPolicy: piv.PINAlways},
			piv.SlotCardAuthentication: {Signer: f.cardAuthKey, Cert: f.cardAuthCert, PINPolicy: piv.PINNever},
		},
	}
}

func newCard(tb testing.TB) *piv.Card {
	tb.Helper()
	c, err := piv.New(config(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// h decodes hex written with optional spaces: h("00 A4 04 00").
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// resp is a response APDU split into data and status word.
type resp struct {
	data []byte
	sw   uint16
}

func (r resp) String() string { return fmt.Sprintf("% X %04X", r.data, r.sw) }

// tx sends one raw command APDU.
func tx(tb testing.TB, c *piv.Card, raw []byte) resp {
	tb.Helper()
	in := bytes.Clone(raw)
	out := c.Transmit(in)
	if !bytes.Equal(in, raw) {
		tb.Fatalf("Transmit(% X) modified its input", raw)
	}
	if len(out) < 2 {
		tb.Fatalf("Transmit(% X) = % X: no status word", raw, out)
	}
	n := len(out) - 2
	return resp{data: out[:n], sw: uint16(out[n])<<8 | uint16(out[n+1])}
}

// txSW sends one command and checks its status word.
func txSW(tb testing.TB, c *piv.Card, raw []byte, want uint16) resp {
	tb.Helper()
	r := tx(tb, c, raw)
	if r.sw != want {
		tb.Fatalf("% X → %v; want SW %04X", raw, r, want)
	}
	return r
}

// collect follows 61xx with GET RESPONSE (Le = xx, as OpenSC does) and
// returns the reassembled data with the final status word. Each piece must
// be at most 256 bytes and no longer than the Le that asked for it.
func collect(tb testing.TB, c *piv.Card, first resp, firstNe int) (data []byte, sw uint16, pieces int) {
	tb.Helper()
	r, ne := first, firstNe
	for {
		pieces++
		if len(r.data) > 256 || len(r.data) > ne {
			tb.Fatalf("piece %d of %d bytes; asked for at most %d", pieces, len(r.data), ne)
		}
		data = append(data, r.data...)
		if r.sw>>8 != 0x61 {
			return data, r.sw, pieces
		}
		if pieces > 1000 {
			tb.Fatal("GET RESPONSE never ends")
		}
		le := byte(r.sw)
		ne = int(le)
		if ne == 0 {
			ne = 256
		}
		r = tx(tb, c, []byte{0x00, 0xC0, 0x00, 0x00, le})
	}
}

// getDataCmd builds GET DATA for an object tag (1 to 3 bytes) with Le.
func getDataCmd(tag []byte, le byte) []byte {
	data := cat([]byte{0x5C, byte(len(tag))}, tag)
	return cat([]byte{0x00, 0xCB, 0x3F, 0xFF, byte(len(data))}, data, []byte{le})
}

// readObject reads a whole data object with GET DATA (Le 00) and GET RESPONSE.
func readObject(tb testing.TB, c *piv.Card, tag []byte) ([]byte, uint16, int) {
	tb.Helper()
	return collect(tb, c, tx(tb, c, getDataCmd(tag, 0x00)), 256)
}

// tlv is one BER-TLV object as the tests parse it, independently of the
// apdu package under test.
type tlv struct {
	tag   uint32
	value []byte
}

// parseTLVs decodes BER-TLV strictly: tags of up to 3 bytes, definite and
// minimal (DER) lengths only, as piv-go's encoding/asn1 requires.
func parseTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		tag := uint32(b[0])
		i := 1
		if b[0]&0x1F == 0x1F {
			for {
				if i >= len(b) || i > 2 {
					return nil, errors.New("bad tag")
				}
				tag = tag<<8 | uint32(b[i])
				i++
				if b[i-1]&0x80 == 0 {
					break
				}
			}
		}
		if i >= len(b) {
			return nil, errors.New("missing length")
		}
		l := int(b[i])
		i++
		if l >= 0x80 {
			n := l & 0x7F
			if n == 0 || n > 3 || i+n > len(b) {
				return nil, fmt.Errorf("bad length form %02X", l|0x80)
			}
			l = 0
			for _, x := range b[i : i+n] {
				l = l<<8 | int(x)
			}
			if b[i] == 0 || l < 0x80 {
				return nil, fmt.Errorf("non-minimal length encoding % X", b[i-1:i+n])
			}
			i += n
		}
		if i+l > len(b) {
			return nil, fmt.Errorf("length %d past the end", l)
		}
		out = append(out, tlv{tag, b[i : i+l]})
		b = b[i+l:]
	}
	return out, nil
}

// one parses b as exactly one TLV with the given tag and returns its value.
func one(tb testing.TB, b []byte, tag uint32) []byte {
	tb.Helper()
	ts, err := parseTLVs(b)
	if err != nil {
		tb.Fatalf("% X: %v", b, err)
	}
	if len(ts) != 1 || ts[0].tag != tag {
		tb.Fatalf("% X: want a single %X object", b, tag)
	}
	return ts[0].value
}

// children parses b as a list of TLVs, checks they carry exactly the tags
// wanted in that order, and returns them by tag.
func children(tb testing.TB, b []byte, tags ...uint32) map[uint32][]byte {
	tb.Helper()
	ts, err := parseTLVs(b)
	if err != nil {
		tb.Fatalf("% X: %v", b, err)
	}
	var got []uint32
	m := map[uint32][]byte{}
	for _, t := range ts {
		got = append(got, t.tag)
		m[t.tag] = t.value
	}
	if fmt.Sprint(got) != fmt.Sprint(tags) {
		tb.Fatalf("tags %X; want %X", got, tags)
	}
	return m
}

// pinBlock pads a PIN to 8 bytes with FF, as VERIFY carries it.
func pinBlock(pin string) []byte {
	b := bytes.Repeat([]byte{0xFF}, 8)
	copy(b, pin)
	return b
}

func verifyCmd(pin string) []byte {
	return cat(h("00 20 00 80 08"), pinBlock(pin))
}

// login presents the right PIN.
func login(tb testing.TB, c *piv.Card) {
	tb.Helper()
	txSW(tb, c, verifyCmd(testPIN), 0x9000)
}

// sha256DigestInfo is the DER prefix of a PKCS #1 v1.5 SHA-256 DigestInfo.
var sha256DigestInfo = h("3031300d060960864801650304020105000420")

// pkcs1Block pads a SHA-256 digest for a 2048-bit PKCS #1 v1.5 signature,
// as OpenSC and piv-go do in software before GENERAL AUTHENTICATE.
func pkcs1Block(digest []byte) []byte {
	t := cat(sha256DigestInfo, digest)
	ps := bytes.Repeat([]byte{0xFF}, 256-3-len(t))
	return cat([]byte{0x00, 0x01}, ps, []byte{0x00}, t)
}

// gaTemplate is the dynamic authentication template 7C { 82 00, 81 challenge }.
func gaTemplate(challenge []byte) []byte {
	inner := cat([]byte{0x82, 0x00}, tlvEnc(0x81, challenge))
	return tlvEnc(0x7C, inner)
}

// tlvEnc encodes a one- or two-byte tag with a DER length (test side).
func tlvEnc(tag uint32, v []byte) []byte {
	var out []byte
	if tag > 0xFF {
		out = append(out, byte(tag>>8))
	}
	out = append(out, byte(tag))
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, v...)
}

// chained splits a command's data the way OpenSC does: 255-byte parts with
// CLA 10, the last with CLA 00 and Le 00.
func chained(ins, p1, p2 byte, data []byte) [][]byte {
	var out [][]byte
	for len(data) > 255 {
		out = append(out, cat([]byte{0x10, ins, p1, p2, 0xFF}, data[:255]))
		data = data[255:]
	}
	if len(data) == 0 {
		return append(out, []byte{0x00, ins, p1, p2, 0x00}) // case 2: Le only
	}
	return append(out, cat([]byte{0x00, ins, p1, p2, byte(len(data))}, data, []byte{0x00}))
}

// generalAuth sends a GENERAL AUTHENTICATE, chained if needed, and returns
// the reassembled response and final status word.
func generalAuth(tb testing.TB, c *piv.Card, alg, slot byte, data []byte) ([]byte, uint16) {
	tb.Helper()
	parts := chained(0x87, alg, slot, data)
	for _, p := range parts[:len(parts)-1] {
		if r := tx(tb, c, p); r.sw != 0x9000 || len(r.data) != 0 {
			return nil, r.sw
		}
	}
	d, sw, _ := collect(tb, c, tx(tb, c, parts[len(parts)-1]), 256)
	return d, sw
}

// signature extracts the 82 signature from a 7C response template.
func signature(tb testing.TB, d []byte) []byte {
	tb.Helper()
	return one(tb, one(tb, d, 0x7C), 0x82)
}

// signRSA signs a SHA-256 digest with PKCS #1 v1.5 on an RSA slot.
func signRSA(tb testing.TB, c *piv.Card, slot byte, digest []byte) ([]byte, uint16) {
	tb.Helper()
	d, sw := generalAuth(tb, c, piv.AlgRSA2048, slot, gaTemplate(pkcs1Block(digest)))
	if sw != 0x9000 {
		return nil, sw
	}
	return signature(tb, d), sw
}

// ecdsaCmd is OpenSC's ECDSA P-256 GENERAL AUTHENTICATE, unchained.
func ecdsaCmd(slot byte, digest []byte) []byte {
	return cat([]byte{0x00, 0x87, piv.AlgECCP256, slot, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20}, digest, []byte{0x00})
}

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}
