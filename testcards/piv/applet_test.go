package piv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards/piv"
)

// discovery is GET DATA 5C 01 7E, which OpenSC sends before any SELECT and
// on every lock: it succeeds only while PIV is the selected application.
var discovery = h("00 CB 3F FF 03 5C 01 7E 00")

func TestSelect(t *testing.T) {
	c := newCard(t)
	for _, tc := range []struct {
		name string
		apdu []byte
		want uint16
	}{
		{"full 11-byte AID", h("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00"), 0x9000},
		{"full AID with Le", h("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00 00"), 0x9000},
		{"OpenSC 9-byte partial AID", h("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00"), 0x9000},
		{"piv-go 5-byte AID", h("00 A4 04 00 05 A0 00 00 03 08"), 0x9000},
		{"coolkey probe", h("00 A4 04 00 07 62 76 01 FF 00 00 00"), 0x6A82},
		{"muscle probe", h("00 A4 04 00 06 A0 00 00 00 01 01"), 0x6A82},
		{"sc-hsm probe", h("00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00"), 0x6A82},
		{"EstEID probe, P2 0C", h("00 A4 04 0C 0F D2 33 00 00 00 45 73 74 45 49 44 20 76 33 35"), 0x6A82},
		{"piv-go OTP applet", h("00 A4 04 00 08 A0 00 00 05 27 20 01 01"), 0x6A82},
		{"4-byte prefix of the RID", h("00 A4 04 00 04 A0 00 00 03"), 0x6A82},
		{"AID with one byte too many", h("00 A4 04 00 0C A0 00 00 03 08 00 00 10 00 01 00 00"), 0x6A82},
		{"PIV AID with a wrong last byte", h("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 01"), 0x6A82},
		{"no AID", h("00 A4 04 00"), 0x6A82},
		{"IAS-ECC select by path, P1 09", h("00 A4 09 04 04 3F 00 2F 01"), 0x6A82},
		{"select by file id, P1 00", h("00 A4 00 00 02 3F 00"), 0x6A82},
		{"PIV AID with P1 00", h("00 A4 00 00 09 A0 00 00 03 08 00 00 10 00"), 0x6A82},
		{"PIV AID with P1 02", h("00 A4 02 00 09 A0 00 00 03 08 00 00 10 00"), 0x6A82},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := txSW(t, c, tc.apdu, tc.want)
			if tc.want != 0x9000 {
				if len(r.data) != 0 {
					t.Errorf("error SW with data % X", r.data)
				}
				// A failed SELECT leaves PIV selected.
				txSW(t, c, discovery, 0x9000)
				return
			}
			checkAPT(t, r.data)
		})
	}
}

// checkAPT checks an application property template: 61 { 4F <part of the
// PIV AID> ... 79 { 4F <NIST RID> } }.
func checkAPT(t *testing.T, d []byte) {
	t.Helper()
	ts, err := parseTLVs(one(t, d, 0x61))
	if err != nil {
		t.Fatalf("APT % X: %v", d, err)
	}
	var aid []byte
	for _, x := range ts {
		switch x.tag {
		case 0x4F:
			aid = x.value
		case 0x79:
			if rid := one(t, x.value, 0x4F); !bytes.Equal(rid, piv.AID[:5]) {
				t.Errorf("79/4F = % X; want the NIST RID % X", rid, piv.AID[:5])
			}
		}
	}
	if len(aid) == 0 || !bytes.HasSuffix(piv.AID, aid) {
		t.Errorf("APT % X: 4F is not the PIX or AID of PIV", d)
	}
}

func TestSelectProbesInOpenSCOrder(t *testing.T) {
	// OpenSC's driver probes before PIV claims the card: none may answer
	// 9000, and PIV must still work afterwards without a new SELECT.
	c := newCard(t)
	txSW(t, c, discovery, 0x9000) // before any SELECT: PIV is the default application
	for _, p := range []string{
		"00 A4 04 00 07 62 76 01 FF 00 00 00",
		"00 A4 04 00 06 A0 00 00 00 01 01",
		"00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00",
		"00 CA DF 30 05",
	} {
		if r := tx(t, c, h(p)); r.sw == 0x9000 || r.sw>>8 == 0x61 {
			t.Errorf("probe %s → %v; want an error", p, r)
		}
	}
	d, sw, _ := readObject(t, c, h("5F C1 05"))
	if sw != 0x9000 || len(d) == 0 {
		t.Fatalf("9A certificate after the probes: %04X", sw)
	}
}

func TestClassInstructionAndLengthErrors(t *testing.T) {
	c := newCard(t)
	for _, tc := range []struct {
		name string
		apdu string
		want uint16
	}{
		{"coolkey CLA B0 GET LIFE CYCLE", "B0 F2 00 00 04", 0x6E00},
		{"muscle CLA B0 list objects", "B0 58 00 00 0E", 0x6E00},
		{"CLA B0 with a PIV INS", "B0 CB 3F FF 03 5C 01 7E", 0x6E00},
		{"CLA 80", "80 CA 9F 7F 00", 0x6E00},
		{"CLA 0C secure messaging", "0C CB 3F FF 03 5C 01 7E", 0x6E00},
		{"CLA 01 logical channel", "01 CB 3F FF 03 5C 01 7E", 0x6E00},
		{"CLA FF", "FF CA 00 00 00", 0x6E00},
		{"setcos GET DATA CA", "00 CA DF 30 05", 0x6D00},
		{"READ BINARY", "00 B0 00 00 00", 0x6D00},
		{"YubiKey ATTEST (piv-go < 5.3 expects 6D00)", "00 F9 9A 00 00", 0x6D00},
		{"INS 00", "00 00 00 00", 0x6D00},
		{"empty", "", 0x6700},
		{"1 byte", "00", 0x6700},
		{"2 bytes", "00 A4", 0x6700},
		{"3 bytes", "00 A4 04", 0x6700},
		{"Lc longer than data", "00 A4 04 00 09 A0 00 00 03 08", 0x6700},
		{"Lc shorter than data", "00 A4 04 00 03 A0 00 00 03 08 00", 0x6700},
		{"extended Lc zero", "00 CB 3F FF 00 00 00 5C", 0x6700},
		{"extended Lc past the data", "00 CB 3F FF 00 00 10 5C 01 7E", 0x6700},
		{"extended header cut", "00 CB 3F FF 00 00", 0x6700},
		{"GET RESPONSE, nothing pending", "00 C0 00 00 00", 0},
		{"GET RESPONSE with Le 10, nothing pending", "00 C0 00 00 10", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tx(t, c, h(tc.apdu))
			if len(r.data) != 0 {
				t.Errorf("error answer carries data % X", r.data)
			}
			if tc.want == 0 {
				if r.sw>>8 < 0x64 || r.sw>>8 > 0x6F {
					t.Errorf("SW %04X; want an error status", r.sw)
				}
			} else if r.sw != tc.want {
				t.Errorf("SW %04X; want %04X", r.sw, tc.want)
			}
			// The card works normally afterwards.
			txSW(t, c, discovery, 0x9000)
		})
	}
}

func TestGetResponseAfterTheEnd(t *testing.T) {
	c := newCard(t)
	r := tx(t, c, getDataCmd(h("5F C1 05"), 0x00))
	if _, sw, _ := collect(t, c, r, 256); sw != 0x9000 {
		t.Fatalf("reading the certificate: %04X", sw)
	}
	// Everything has been handed out: one more GET RESPONSE is an error.
	if r := tx(t, c, h("00 C0 00 00 00")); r.sw == 0x9000 || r.sw>>8 == 0x61 || len(r.data) != 0 {
		t.Fatalf("GET RESPONSE past the end → %v; want an error", r)
	}
}

func TestGetResponseDroppedByOtherCommand(t *testing.T) {
	c := newCard(t)
	r := tx(t, c, getDataCmd(h("5F C1 05"), 0x00))
	if r.sw>>8 != 0x61 {
		t.Fatalf("certificate read → %04X; want 61xx", r.sw)
	}
	txSW(t, c, h("00 20 00 80"), 0x63C3) // any other command drops the rest
	if r := tx(t, c, h("00 C0 00 00 00")); r.sw == 0x9000 || r.sw>>8 == 0x61 {
		t.Fatalf("GET RESPONSE after another command → %v; want an error", r)
	}
}

func TestDiscoveryObject(t *testing.T) {
	c := newCard(t)
	d, sw, _ := readObject(t, c, []byte{0x7E})
	if sw != 0x9000 {
		t.Fatalf("SW %04X", sw)
	}
	m := children(t, one(t, d, 0x7E), 0x4F, 0x5F2F)
	if !bytes.Equal(m[0x4F], piv.AID) {
		t.Errorf("discovery AID % X; want % X", m[0x4F], piv.AID)
	}
	if p := m[0x5F2F]; len(p) != 2 || p[0]&0x40 == 0 {
		t.Errorf("PIN usage policy % X; want 2 bytes with the PIV PIN bit (40)", p)
	}
	// OpenSC asks for it with Le 08 before SELECT; the object is short.
	r := txSW(t, c, getDataCmd([]byte{0x7E}, 0x08), 0x6100|uint16(len(d)-8))
	if !bytes.Equal(r.data, d[:8]) {
		t.Errorf("first 8 bytes % X; want % X", r.data, d[:8])
	}
}

func TestCCC(t *testing.T) {
	c := newCard(t)
	d, sw, _ := readObject(t, c, h("5F C1 07"))
	if sw != 0x9000 {
		t.Fatalf("SW %04X", sw)
	}
	ts, err := parseTLVs(one(t, d, 0x53))
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint32][]byte{}
	for _, x := range ts {
		m[x.tag] = x.value
	}
	// SP 800-73-4 table 8: card identifier (21 bytes: GSC-RID, manufacturer,
	// card type, 14-byte card id), versions, data model, error detection code.
	if id := m[0xF0]; len(id) != 21 || !bytes.Equal(id[:5], h("A0 00 00 01 16")) {
		t.Errorf("card identifier % X; want 21 bytes starting with the GSC-RID", id)
	}
	for _, tag := range []uint32{0xF1, 0xF2, 0xF5} {
		if len(m[tag]) != 1 {
			t.Errorf("CCC tag %X = % X; want 1 byte", tag, m[tag])
		}
	}
	if v, ok := m[0xFE]; !ok || len(v) != 0 || ts[len(ts)-1].tag != 0xFE {
		t.Error("CCC does not end with an empty FE")
	}
}

func TestCHUID(t *testing.T) {
	cfg := config(t)
	guidOf := func(serial uint32) []byte {
		cfg.Serial = serial
		c, err := piv.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d, sw, _ := readObject(t, c, h("5F C1 02"))
		if sw != 0x9000 {
			t.Fatalf("SW %04X", sw)
		}
		m := children(t, one(t, d, 0x53), 0x30, 0x34, 0x35, 0x3E, 0xFE)
		if len(m[0x30]) != 25 {
			t.Errorf("FASC-N of %d bytes; want 25", len(m[0x30]))
		}
		exp, err := time.Parse("20060102", string(m[0x35]))
		if err != nil || !exp.After(time.Now()) {
			t.Errorf("expiration %q: %v; want a future YYYYMMDD", m[0x35], err)
		}
		if len(m[0x34]) != 16 {
			t.Fatalf("GUID of %d bytes; want 16", len(m[0x34]))
		}
		return m[0x34]
	}
	a, b, other := guidOf(testSerial), guidOf(testSerial), guidOf(testSerial+1)
	if !bytes.Equal(a, b) {
		t.Errorf("GUID changes between cards of the same serial: % X, % X", a, b)
	}
	if bytes.Equal(a, other) {
		t.Errorf("cards of different serials share GUID % X", a)
	}
	if bytes.Equal(a, make([]byte, 16)) {
		t.Error("GUID is all zero")
	}
}

func TestKeyHistory(t *testing.T) {
	c := newCard(t)
	d, sw, _ := readObject(t, c, h("5F C1 0C"))
	if sw != 0x9000 {
		t.Fatalf("SW %04X", sw)
	}
	m := children(t, one(t, d, 0x53), 0xC1, 0xC2, 0xF3, 0xFE)
	if !bytes.Equal(m[0xC1], []byte{0}) || !bytes.Equal(m[0xC2], []byte{0}) {
		t.Errorf("retired keys C1 % X C2 % X; want none", m[0xC1], m[0xC2])
	}
}

func TestCertificateObjects(t *testing.T) {
	f := keys(t)
	c := newCard(t)
	for _, tc := range []struct {
		name string
		tag  []byte
		cert []byte
	}{
		{"9A", h("5F C1 05"), f.authCert.Raw},
		{"9C", h("5F C1 0A"), f.signCert.Raw},
		{"9E", h("5F C1 01"), f.cardAuthCert.Raw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, sw, pieces := readObject(t, c, tc.tag)
			if sw != 0x9000 {
				t.Fatalf("SW %04X", sw)
			}
			if want := (len(d) + 255) / 256; pieces != want {
				t.Errorf("%d-byte object came in %d pieces; want %d", len(d), pieces, want)
			}
			m := children(t, one(t, d, 0x53), 0x70, 0x71, 0xFE)
			if !bytes.Equal(m[0x71], []byte{0x00}) {
				t.Errorf("CertInfo % X; want 00 (not compressed)", m[0x71])
			}
			cert, err := x509.ParseCertificate(m[0x70])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cert.Raw, tc.cert) {
				t.Error("certificate differs from the configured one")
			}
		})
	}
	t.Run("9D absent", func(t *testing.T) {
		r := txSW(t, c, getDataCmd(h("5F C1 0B"), 0x00), 0x6A82)
		if len(r.data) != 0 {
			t.Errorf("6A82 with data % X", r.data)
		}
	})
}

func TestCertificateReadInOpenSCSteps(t *testing.T) {
	// OpenSC reads 8 bytes first to learn the length, then the whole object
	// with Le 00 and GET RESPONSE for the rest.
	c := newCard(t)
	full, sw, _ := readObject(t, c, h("5F C1 05"))
	if sw != 0x9000 || len(full) <= 256 {
		t.Fatalf("certificate object of %d bytes, SW %04X; want > 256 bytes", len(full), sw)
	}
	for _, le := range []byte{0x01, 0x08, 0x80, 0xFF} {
		r := tx(t, c, getDataCmd(h("5F C1 05"), le))
		if !bytes.Equal(r.data, full[:le]) {
			t.Fatalf("Le %02X: % X; want the first %d bytes of the object", le, r.data, le)
		}
		left := len(full) - int(le)
		want := uint16(0x6100)
		if left < 256 {
			want |= uint16(left)
		}
		if r.sw != want {
			t.Fatalf("Le %02X: SW %04X; want %04X", le, r.sw, want)
		}
		rest, sw, _ := collect(t, c, r, int(le))
		if sw != 0x9000 || !bytes.Equal(rest, full) {
			t.Fatalf("Le %02X: reassembled %d bytes SW %04X; want the %d-byte object", le, len(rest), sw, len(full))
		}
	}
	// GET RESPONSE with a smaller Le than announced hands out that much.
	r := tx(t, c, getDataCmd(h("5F C1 05"), 0x08))
	r = tx(t, c, h("00 C0 00 00 10"))
	if !bytes.Equal(r.data, full[8:24]) || r.sw>>8 != 0x61 {
		t.Fatalf("GET RESPONSE Le 10 → %v; want bytes 8–23 and 61xx", r)
	}
	// Extended Le: everything at once.
	r = txSW(t, c, cat(h("00 CB 3F FF 00 00 05 5C 03 5F C1 05"), h("00 00")), 0x9000)
	if !bytes.Equal(r.data, full) {
		t.Fatal("extended-length GET DATA differs from the reassembled object")
	}
}

func TestGetDataErrors(t *testing.T) {
	c := newCard(t)
	for _, tc := range []struct {
		name, apdu string
		want       uint16
	}{
		{"P1P2 3FFE", "00 CB 3F FE 03 5C 01 7E 00", 0x6A86},
		{"P1P2 0000", "00 CB 00 00 03 5C 01 7E 00", 0x6A86},
		{"P1P2 FF3F", "00 CB FF 3F 03 5C 01 7E 00", 0x6A86},
		{"no data", "00 CB 3F FF 00", 0x6A80},
		{"tag list not 5C", "00 CB 3F FF 03 5D 01 7E 00", 0x6A80},
		{"5C length past the end", "00 CB 3F FF 03 5C 02 7E 00", 0x6A80},
		{"5C empty", "00 CB 3F FF 02 5C 00 00", 0x6A80},
		{"5C with a 4-byte tag", "00 CB 3F FF 06 5C 04 5F C1 05 01 00", 0x6A80},
		{"two tag lists", "00 CB 3F FF 06 5C 01 7E 5C 01 7E 00", 0x6A80},
		{"trailing byte", "00 CB 3F FF 04 5C 01 7E 00 00", 0x6A80},
		{"truncated length form", "00 CB 3F FF 02 5C 81 00", 0x6A80},
		{"9D certificate absent", "00 CB 3F FF 05 5C 03 5F C1 0B 00", 0x6A82},
		{"facial image absent", "00 CB 3F FF 05 5C 03 5F C1 08 00", 0x6A82},
		{"printed information absent", "00 CB 3F FF 05 5C 03 5F C1 09 00", 0x6A82},
		{"retired key 1 absent", "00 CB 3F FF 05 5C 03 5F C1 0D 00", 0x6A82},
		{"unknown one-byte tag", "00 CB 3F FF 03 5C 01 7D 00", 0x6A82},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := txSW(t, c, h(tc.apdu), tc.want)
			if len(r.data) != 0 {
				t.Errorf("error with data % X", r.data)
			}
		})
	}
}

func TestYubiKeyVersionAndSerial(t *testing.T) {
	c := newCard(t)
	for _, le := range []string{"00", "03"} { // piv-go, OpenSC
		r := txSW(t, c, h("00 FD 00 00 "+le), 0x9000)
		if !bytes.Equal(r.data, testVersion[:]) {
			t.Errorf("GET VERSION Le %s → % X; want exactly % X", le, r.data, testVersion)
		}
	}
	r := txSW(t, c, h("00 F8 00 00 00"), 0x9000)
	if len(r.data) != 4 || binary.BigEndian.Uint32(r.data) != testSerial {
		t.Errorf("GET SERIAL → % X; want %08X", r.data, testSerial)
	}

	// The default version must be one piv-go reads serials and metadata
	// with (5.3 or later) and still exactly 3 bytes.
	cfg := config(t)
	cfg.Version = [3]byte{}
	d, err := piv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r = txSW(t, d, h("00 FD 00 00 00"), 0x9000)
	if len(r.data) != 3 || r.data[0] < 5 || (r.data[0] == 5 && r.data[1] < 3) {
		t.Errorf("default GET VERSION → % X; want 3 bytes, 5.3 or later", r.data)
	}
}

func TestYubiKeyMetadata(t *testing.T) {
	f := keys(t)
	c := newCard(t)
	for _, tc := range []struct {
		slot   byte
		alg    byte
		policy byte
		pub    any
	}{
		{0x9A, piv.AlgRSA2048, piv.PINOnce, f.authCert.PublicKey},
		{0x9C, piv.AlgRSA2048, piv.PINAlways, f.signCert.PublicKey},
		{0x9E, piv.AlgECCP256, piv.PINNever, f.cardAuthCert.PublicKey},
	} {
		// piv-go sends Lc 00 (read as Le 00) and follows 61xx: an RSA
		// key's metadata is longer than 256 bytes.
		md, sw, _ := collect(t, c, tx(t, c, []byte{0x00, 0xF7, 0x00, tc.slot, 0x00}), 256)
		if sw != 0x9000 {
			t.Fatalf("%02X: metadata SW %04X", tc.slot, sw)
		}
		ts, err := parseTLVs(md)
		if err != nil {
			t.Fatalf("%02X: % X: %v", tc.slot, md, err)
		}
		m := map[uint32][]byte{}
		for _, x := range ts {
			m[x.tag] = x.value
		}
		if !bytes.Equal(m[0x01], []byte{tc.alg}) {
			t.Errorf("%02X: algorithm % X; want %02X", tc.slot, m[0x01], tc.alg)
		}
		if p := m[0x02]; len(p) != 2 || p[0] != tc.policy || p[1] < 1 || p[1] > 3 {
			t.Errorf("%02X: policy % X; want %02X then a touch policy", tc.slot, p, tc.policy)
		}
		var got any
		switch want := tc.pub.(type) {
		case *rsa.PublicKey:
			k := children(t, m[0x04], 0x81, 0x82)
			got = &rsa.PublicKey{N: new(big.Int).SetBytes(k[0x81]), E: int(new(big.Int).SetBytes(k[0x82]).Int64())}
			if !want.Equal(got) {
				t.Errorf("%02X: public key differs from the certificate's", tc.slot)
			}
		case *ecdsa.PublicKey:
			pt := one(t, m[0x04], 0x86)
			k, err := ecdh.P256().NewPublicKey(pt)
			if err != nil {
				t.Fatalf("%02X: point % X: %v", tc.slot, pt, err)
			}
			wantECDH, _ := want.ECDH()
			if !wantECDH.Equal(k) {
				t.Errorf("%02X: public key differs from the certificate's", tc.slot)
			}
		}
	}

	retries := func(p2 byte) []byte {
		r := txSW(t, c, []byte{0x00, 0xF7, 0x00, p2, 0x00}, 0x9000)
		ts, err := parseTLVs(r.data)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.tag == 0x06 {
				return x.value
			}
		}
		t.Fatalf("metadata %02X % X has no 06", p2, r.data)
		return nil
	}
	if got := retries(0x80); !bytes.Equal(got, []byte{3, 3}) {
		t.Errorf("PIN retries % X; want 03 03", got)
	}
	txSW(t, c, verifyCmd("0000"), 0x63C2)
	if got := retries(0x80); !bytes.Equal(got, []byte{3, 2}) {
		t.Errorf("PIN retries after a wrong PIN % X; want 03 02", got)
	}
	if got := retries(0x81); !bytes.Equal(got, []byte{3, 3}) {
		t.Errorf("PUK retries % X; want 03 03", got)
	}

	txSW(t, c, h("00 F7 00 9D 00"), 0x6A88) // no key in 9D
	txSW(t, c, h("00 F7 00 05 00"), 0x6A88) // no such slot
	txSW(t, c, h("00 F7 01 9A 00"), 0x6A86) // P1 must be 00
}

func TestReset(t *testing.T) {
	c := newCard(t)
	digest := digestOf("reset")

	// Counters survive a reset; PIN state does not.
	txSW(t, c, verifyCmd("0000"), 0x63C2)
	login(t, c)
	txSW(t, c, verifyCmd("0000"), 0x63C2)
	login(t, c)
	if _, sw := signRSA(t, c, 0x9A, digest); sw != 0x9000 {
		t.Fatalf("sign before reset: %04X", sw)
	}
	txSW(t, c, verifyCmd("0000"), 0x63C2)
	c.Reset()
	if c.PINTriesLeft() != 2 {
		t.Fatalf("PIN tries after reset %d; want 2", c.PINTriesLeft())
	}
	txSW(t, c, h("00 20 00 80"), 0x63C2)
	if _, sw := signRSA(t, c, 0x9A, digest); sw != 0x6982 {
		t.Fatalf("9A after reset without VERIFY: %04X; want 6982", sw)
	}

	// A verified PIN (and a fresh one for 9C) is forgotten.
	login(t, c)
	c.Reset()
	txSW(t, c, h("00 20 00 80"), 0x63C3)
	if _, sw := signRSA(t, c, 0x9C, digest); sw != 0x6982 {
		t.Fatalf("9C after VERIFY then reset: %04X; want 6982", sw)
	}

	// A pending GET RESPONSE is dropped.
	if r := tx(t, c, getDataCmd(h("5F C1 05"), 0x08)); r.sw>>8 != 0x61 {
		t.Fatalf("short read: %v", r)
	}
	c.Reset()
	if r := tx(t, c, h("00 C0 00 00 00")); r.sw == 0x9000 || r.sw>>8 == 0x61 {
		t.Fatalf("GET RESPONSE after reset → %v; want an error", r)
	}

	// A chain in progress is dropped: its last part alone is a malformed
	// template, not a signature.
	login(t, c)
	parts := chained(0x87, piv.AlgRSA2048, 0x9A, gaTemplate(pkcs1Block(digest)))
	txSW(t, c, parts[0], 0x9000)
	c.Reset()
	login(t, c)
	txSW(t, c, parts[1], 0x6A80)

	// A changed PIN stays changed; PIV stays the selected application.
	txSW(t, c, cat(h("00 24 00 80 10"), pinBlock(testPIN), pinBlock("98765")), 0x9000)
	c.Reset()
	txSW(t, c, discovery, 0x9000)
	txSW(t, c, verifyCmd("98765"), 0x9000)
	if c.PINTriesLeft() != 3 {
		t.Fatalf("PIN tries %d; want 3", c.PINTriesLeft())
	}
}

func TestATR(t *testing.T) {
	c := newCard(t)
	a := c.ATR()
	if !bytes.Equal(a, piv.ATR) || len(a) < 2 || a[0] != 0x3B {
		t.Fatalf("ATR % X", a)
	}
	a[0] = 0 // the caller's copy only
	if c.ATR()[0] != 0x3B {
		t.Fatal("ATR returns the card's own slice")
	}
	// T=1 must be offered (piv-go refuses T=0-only cards): some TDi names T=1.
	t1 := false
	for i := 1; ; {
		y := a[i] >> 4
		j := i + 1
		for _, bit := range []byte{1, 2, 4} { // TAi, TBi, TCi
			if y&bit != 0 {
				j++
			}
		}
		if y&8 == 0 {
			break
		}
		if j >= len(a) {
			t.Fatalf("ATR % X truncated", piv.ATR)
		}
		t1 = t1 || a[j]&0x0F == 1
		i = j
	}
	if !t1 {
		t.Errorf("ATR % X does not offer T=1", piv.ATR)
	}
}

func TestNewRejectsBadConfigs(t *testing.T) {
	f := keys(t)
	for _, tc := range []struct {
		name string
		mod  func(*piv.Config)
	}{
		{"PIN too short", func(c *piv.Config) { c.PIN = "123" }},
		{"PIN too long", func(c *piv.Config) { c.PIN = "123456789" }},
		{"PUK too short", func(c *piv.Config) { c.PUK = "12345" }},
		{"PIN with FF", func(c *piv.Config) { c.PIN = "12\xff4" }},
		{"key in 9B", func(c *piv.Config) {
			c.Keys[0x9B] = piv.Key{Signer: f.authKey, Cert: f.authCert}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(t)
			cfg.Keys = map[byte]piv.Key{}
			for k, v := range config(t).Keys {
				cfg.Keys[k] = v
			}
			tc.mod(&cfg)
			if _, err := piv.New(cfg); err == nil {
				t.Fatal("New accepted the configuration")
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	// One card driven by several goroutines (as vpcd's transport and a
	// status query do), plus cards sharing the same keys signing in
	// parallel; run with -race.
	shared := newCard(t)
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds*8)
	check := func(r []byte) {
		if len(r) < 2 {
			errs <- "short response"
			return
		}
		if sw1 := r[len(r)-2]; sw1 != 0x90 && (sw1 < 0x61 || sw1 > 0x6F) {
			errs <- "implausible SW"
		}
	}
	for w := range workers {
		wg.Go(func() {
			cmds := [][]byte{
				discovery,
				h("00 20 00 80"),
				verifyCmd(testPIN),
				getDataCmd(h("5F C1 05"), 0x00),
				h("00 C0 00 00 00"),
				ecdsaCmd(0x9E, digestOf("concurrent")),
				h("00 F7 00 80 00"),
				h("00 FD 00 00 00"),
			}
			for i := range rounds {
				cmd := cmds[(i+w)%len(cmds)]
				check(shared.Transmit(cmd))
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			if n := shared.PINTriesLeft(); n != 3 {
				errs <- "PIN tries changed"
			}
			if n := shared.PUKTriesLeft(); n != 3 {
				errs <- "PUK tries changed"
			}
			shared.Reset()
		}
	})
	pub := keys(t).authKey.Public().(*rsa.PublicKey)
	for _, c := range []*piv.Card{newCard(t), newCard(t)} {
		wg.Go(func() {
			for i := range 3 {
				d := digestOf(string(rune('a' + i)))
				if r := c.Transmit(verifyCmd(testPIN)); !bytes.Equal(r, []byte{0x90, 0x00}) {
					errs <- "VERIFY failed"
					return
				}
				parts := chained(0x87, piv.AlgRSA2048, 0x9A, gaTemplate(pkcs1Block(d)))
				c.Transmit(parts[0])
				r := c.Transmit(parts[1])
				if len(r) != 258 || r[256] != 0x61 {
					errs <- "signature not 256 bytes + 61xx"
					return
				}
				rest := c.Transmit([]byte{0x00, 0xC0, 0x00, 0x00, r[257]})
				full := cat(r[:256], rest[:len(rest)-2])
				sig := full[len(full)-256:]
				if rsa.VerifyPKCS1v15(pub, crypto.SHA256, d, sig) != nil {
					errs <- "signature does not verify"
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	shared.Reset()
	txSW(t, shared, discovery, 0x9000)
}
