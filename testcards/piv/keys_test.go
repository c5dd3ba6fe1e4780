package piv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/piv"
)

func TestRSASignOpenSCChaining(t *testing.T) {
	f := keys(t)
	for _, tc := range []struct {
		name string
		slot byte
		pub  *rsa.PublicKey
	}{
		{"9A", 0x9A, f.authCert.PublicKey.(*rsa.PublicKey)},
		{"9C", 0x9C, f.signCert.PublicKey.(*rsa.PublicKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t)
			login(t, c)
			digest := digestOf("consent receipt " + tc.name)
			data := gaTemplate(pkcs1Block(digest))
			// Exactly what OpenSC sends: 7C 82 01 06 82 00 81 82 01 00 <block>,
			// 255 bytes with CLA 10 then the last 11 with Le 00.
			if !bytes.Equal(data[:10], h("7C 82 01 06 82 00 81 82 01 00")) || len(data) != 266 {
				t.Fatalf("test template % X…", data[:10])
			}
			first := cat([]byte{0x10, 0x87, 0x07, tc.slot, 0xFF}, data[:255])
			last := cat([]byte{0x00, 0x87, 0x07, tc.slot, 0x0B}, data[255:], []byte{0x00})
			r := txSW(t, c, first, 0x9000)
			if len(r.data) != 0 {
				t.Fatalf("chained part answered with data % X", r.data)
			}
			r = txSW(t, c, last, 0x6108)
			if len(r.data) != 256 {
				t.Fatalf("first part of the signature: %d bytes; want 256", len(r.data))
			}
			rest := txSW(t, c, h("00 C0 00 00 08"), 0x9000)
			full := cat(r.data, rest.data)
			if !bytes.Equal(full[:8], h("7C 82 01 04 82 82 01 00")) {
				t.Fatalf("response template % X…", full[:8])
			}
			sig := signature(t, full)
			if err := rsa.VerifyPKCS1v15(tc.pub, crypto.SHA256, digest, sig); err != nil {
				t.Fatalf("signature does not verify with the certificate key: %v", err)
			}
		})
	}
}

func TestRSARawOperation(t *testing.T) {
	// The card computes the raw RSA private operation on whatever block is
	// below the modulus (PSS, decryption): block = sig^e mod n.
	f := keys(t)
	pub := f.authCert.PublicKey.(*rsa.PublicKey)
	c := newCard(t)
	login(t, c)
	for i := range 3 {
		block := make([]byte, 256)
		rand.Read(block)
		block[0] = byte(i) // 00, 01, 02: all below a 2048-bit modulus
		d, sw := generalAuth(t, c, piv.AlgRSA2048, 0x9A, gaTemplate(block))
		if sw != 0x9000 {
			t.Fatalf("SW %04X", sw)
		}
		sig := signature(t, d)
		if len(sig) != 256 {
			t.Fatalf("signature of %d bytes; want 256 (left-padded)", len(sig))
		}
		s := new(big.Int).SetBytes(sig)
		m := s.Exp(s, big.NewInt(int64(pub.E)), pub.N)
		if !bytes.Equal(m.FillBytes(make([]byte, 256)), block) {
			t.Fatalf("sig^e mod n differs from the block")
		}
	}
	// Block N-1 is the largest accepted.
	nm1 := new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, 256))
	if _, sw := generalAuth(t, c, piv.AlgRSA2048, 0x9A, gaTemplate(nm1)); sw != 0x9000 {
		t.Fatalf("block n-1: SW %04X", sw)
	}
}

func TestECDSASign(t *testing.T) {
	f := keys(t)
	pub := f.cardAuthCert.PublicKey.(*ecdsa.PublicKey)
	c := newCard(t) // 9E needs no PIN
	for i := range 3 {
		digest := digestOf(string(rune('0' + i)))
		r := txSW(t, c, ecdsaCmd(0x9E, digest), 0x9000)
		sig := signature(t, r.data)
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			t.Fatalf("ECDSA signature % X does not verify", sig)
		}
	}
	// Without Le, and with a 48-byte hash (truncated to the curve size).
	digest := digestOf("no Le")
	r := txSW(t, c, cat(h("00 87 11 9E 26 7C 24 82 00 81 20"), digest), 0x9000)
	if !ecdsa.VerifyASN1(pub, digest, signature(t, r.data)) {
		t.Fatal("ECDSA without Le does not verify")
	}
	long := make([]byte, 48)
	rand.Read(long)
	r = txSW(t, c, cat(h("00 87 11 9E 36 7C 34 82 00 81 30"), long, h("00")), 0x9000)
	if !ecdsa.VerifyASN1(pub, long, signature(t, r.data)) {
		t.Fatal("ECDSA over a 48-byte hash does not verify")
	}
}

func TestSigningSecurity(t *testing.T) {
	digest := digestOf("security")
	ecdsaSW := func(t *testing.T, c *piv.Card) uint16 { return tx(t, c, ecdsaCmd(0x9E, digest)).sw }
	rsaSW := func(slot byte) func(*testing.T, *piv.Card) uint16 {
		return func(t *testing.T, c *piv.Card) uint16 { _, sw := signRSA(t, c, slot, digest); return sw }
	}
	sign9A, sign9C := rsaSW(0x9A), rsaSW(0x9C)

	t.Run("9A needs the PIN once", func(t *testing.T) {
		c := newCard(t)
		if sw := sign9A(t, c); sw != 0x6982 {
			t.Fatalf("without PIN: %04X; want 6982", sw)
		}
		login(t, c)
		for i := range 3 {
			if sw := sign9A(t, c); sw != 0x9000 {
				t.Fatalf("use %d after VERIFY: %04X", i+1, sw)
			}
			tx(t, c, discovery) // other commands in between do not matter
		}
	})
	t.Run("9C needs VERIFY before each use", func(t *testing.T) {
		c := newCard(t)
		if sw := sign9C(t, c); sw != 0x6982 {
			t.Fatalf("without PIN: %04X; want 6982", sw)
		}
		for range 2 {
			login(t, c)
			if sw := sign9C(t, c); sw != 0x9000 {
				t.Fatalf("right after VERIFY: %04X", sw)
			}
			if sw := sign9C(t, c); sw != 0x6982 {
				t.Fatalf("second use without VERIFY: %04X; want 6982", sw)
			}
		}
		// Still logged in for 9A meanwhile.
		if sw := sign9A(t, c); sw != 0x9000 {
			t.Fatalf("9A while logged in: %04X", sw)
		}
		// pkcs11-tool's sequence: VERIFY, GET DATA 7E (lock), VERIFY, sign.
		login(t, c)
		tx(t, c, discovery)
		if sw := sign9C(t, c); sw != 0x9000 {
			t.Fatalf("9C after VERIFY and GET DATA: %04X", sw)
		}
	})
	t.Run("a failed VERIFY does not leave 9C usable", func(t *testing.T) {
		c := newCard(t)
		login(t, c)
		txSW(t, c, verifyCmd("0000"), 0x63C2)
		if sw := sign9C(t, c); sw != 0x6982 {
			t.Fatalf("9C after a wrong PIN: %04X; want 6982", sw)
		}
	})
	t.Run("logout ends both", func(t *testing.T) {
		c := newCard(t)
		login(t, c)
		txSW(t, c, h("00 20 FF 80"), 0x9000)
		if sw := sign9A(t, c); sw != 0x6982 {
			t.Fatalf("9A after logout: %04X", sw)
		}
		if sw := sign9C(t, c); sw != 0x6982 {
			t.Fatalf("9C after logout: %04X", sw)
		}
	})
	t.Run("9E needs no PIN", func(t *testing.T) {
		c := newCard(t)
		for range 2 {
			if sw := ecdsaSW(t, c); sw != 0x9000 {
				t.Fatalf("9E without PIN: %04X", sw)
			}
		}
		blockPIN(t, c)
		if sw := ecdsaSW(t, c); sw != 0x9000 {
			t.Fatalf("9E with a blocked PIN: %04X", sw)
		}
	})
}

func TestGeneralAuthenticateErrors(t *testing.T) {
	f := keys(t)
	n := f.authKey.N.FillBytes(make([]byte, 256))
	good := pkcs1Block(digestOf("errors"))
	hash := digestOf("errors")
	for _, tc := range []struct {
		name      string
		alg, slot byte
		data      []byte
		want      uint16
	}{
		{"ECC algorithm on RSA 9A", piv.AlgECCP256, 0x9A, gaTemplate(good), 0x6A86},
		{"RSA-1024 on 9A", 0x06, 0x9A, gaTemplate(good), 0x6A86},
		{"RSA algorithm on EC 9E", piv.AlgRSA2048, 0x9E, gaTemplate(hash), 0x6A86},
		{"P-384 on 9E", 0x14, 0x9E, gaTemplate(hash), 0x6A86},
		{"absent 9D", piv.AlgRSA2048, 0x9D, gaTemplate(good), 0x6A88},
		{"absent retired 82", piv.AlgRSA2048, 0x82, gaTemplate(good), 0x6A88},
		{"unknown key 00", piv.AlgRSA2048, 0x00, gaTemplate(good), 0x6A88},
		{"not a 7C template", piv.AlgRSA2048, 0x9A, tlvEnc(0x7D, cat(h("82 00"), tlvEnc(0x81, good))), 0x6A80},
		{"7C length past the end", piv.AlgECCP256, 0x9E, h("7C 30 82 00 81 20"), 0x6A80},
		{"two templates", piv.AlgECCP256, 0x9E, cat(gaTemplate(hash), gaTemplate(hash)), 0x6A80},
		{"no 82", piv.AlgECCP256, 0x9E, tlvEnc(0x7C, tlvEnc(0x81, hash)), 0x6A80},
		{"no 81", piv.AlgECCP256, 0x9E, tlvEnc(0x7C, h("82 00")), 0x6A80},
		{"82 not empty", piv.AlgECCP256, 0x9E, tlvEnc(0x7C, cat(h("82 01 00"), tlvEnc(0x81, hash))), 0x6A80},
		{"inner TLV truncated", piv.AlgECCP256, 0x9E, tlvEnc(0x7C, h("82 00 81 20 00")), 0x6A80},
		{"empty data", piv.AlgECCP256, 0x9E, nil, 0x6A80},
		{"empty hash", piv.AlgECCP256, 0x9E, gaTemplate(nil), 0x6A80},
		{"RSA block equal to the modulus", piv.AlgRSA2048, 0x9A, gaTemplate(n), 0x6A80},
		{"RSA block all FF", piv.AlgRSA2048, 0x9A, gaTemplate(bytes.Repeat([]byte{0xFF}, 256)), 0x6A80},
		{"RSA block of 255 bytes", piv.AlgRSA2048, 0x9A, gaTemplate(good[1:]), 0x6A80},
		{"RSA block of 257 bytes", piv.AlgRSA2048, 0x9A, gaTemplate(cat(h("00"), good)), 0x6A80},
		{"RSA block of 32 bytes", piv.AlgRSA2048, 0x9A, gaTemplate(hash), 0x6A80},
		{"RSA block empty", piv.AlgRSA2048, 0x9A, gaTemplate(nil), 0x6A80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t)
			login(t, c) // so that only the data decides
			if _, sw := generalAuth(t, c, tc.alg, tc.slot, tc.data); sw != tc.want {
				t.Fatalf("SW %04X; want %04X", sw, tc.want)
			}
			// The card still signs afterwards.
			if _, sw := signRSA(t, c, 0x9A, hash); sw != 0x9000 {
				t.Fatalf("9A after the error: %04X", sw)
			}
		})
	}
	t.Run("management key 9B", func(t *testing.T) {
		c := newCard(t)
		login(t, c)
		if _, sw := generalAuth(t, c, 0x03, 0x9B, h("7C 02 80 00")); sw == 0x9000 || sw>>8 == 0x61 {
			t.Fatalf("9B authentication → %04X; want an error", sw)
		}
	})
}

func TestChainingChangesINS(t *testing.T) {
	c := newCard(t)
	parts := chained(0x87, piv.AlgRSA2048, 0x9A, gaTemplate(pkcs1Block(digestOf("chain"))))
	for _, tc := range []struct {
		name string
		next []byte
	}{
		{"VERIFY ends a GENERAL AUTHENTICATE chain", verifyCmd(testPIN)},
		{"other key reference", cat([]byte{0x00, 0x87, 0x07, 0x9C}, parts[1][4:])},
		{"other algorithm", cat([]byte{0x00, 0x87, 0x11, 0x9A}, parts[1][4:])},
		{"CHANGE REFERENCE DATA", changeCmd(0x80, pinBlock(testPIN), pinBlock("5678"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txSW(t, c, parts[0], 0x9000)
			r := tx(t, c, tc.next)
			if r.sw == 0x9000 || r.sw>>8 == 0x61 || r.sw>>8 == 0x63 {
				t.Fatalf("mixed chain → %v; want it refused", r)
			}
			// Nothing was executed: not logged in, PIN unchanged.
			txSW(t, c, h("00 20 00 80"), 0x63C3)
			// The chain is gone: its last part alone is malformed.
			login(t, c)
			txSW(t, c, parts[1], 0x6A80)
			// And a whole signature works.
			if _, sw := signRSA(t, c, 0x9A, digestOf("after")); sw != 0x9000 {
				t.Fatalf("sign after the refused chain: %04X", sw)
			}
			txSW(t, c, h("00 20 FF 80"), 0x9000)
		})
	}
}

func TestChainDroppedByNonChainableCommand(t *testing.T) {
	c := newCard(t)
	login(t, c)
	parts := chained(0x87, piv.AlgRSA2048, 0x9A, gaTemplate(pkcs1Block(digestOf("chain"))))
	txSW(t, c, parts[0], 0x9000)
	// OpenSC's GET DATA 7E on lock in the middle: answered normally.
	txSW(t, c, discovery, 0x9000)
	txSW(t, c, parts[1], 0x6A80)
}

func TestChainingOfNonChainableINS(t *testing.T) {
	c := newCard(t)
	for _, a := range []string{
		"10 CB 3F FF 03 5C 01 7E",
		"10 A4 04 00 05 A0 00 00 03 08",
		"10 FD 00 00",
		"10 F8 00 00",
		"10 F7 00 9A",
		"10 CA DF 30 05",
	} {
		t.Run(a, func(t *testing.T) {
			r := txSW(t, c, h(a), 0x6884)
			if len(r.data) != 0 {
				t.Fatalf("6884 with data % X", r.data)
			}
			// No chain was opened: the unchained form just works.
			txSW(t, c, discovery, 0x9000)
			txSW(t, c, h("00 FD 00 00 00"), 0x9000)
		})
	}
}

func TestChainTooLong(t *testing.T) {
	c := newCard(t)
	login(t, c)
	piece := bytes.Repeat([]byte{0x5A}, 255)
	cmd := cat(h("10 87 07 9A FF"), piece)
	i := 0
	for ; (i+1)*255 <= apdu.MaxChained; i++ {
		txSW(t, c, cmd, 0x9000)
	}
	txSW(t, c, cmd, 0x6700) // part i+1 takes the chain past MaxChained
	// The chain was dropped: an unchained command is not taken as its end
	// but as a lone (here malformed) template.
	txSW(t, c, h("00 87 07 9A 02 7C 00"), 0x6A80)
	if _, sw := signRSA(t, c, 0x9A, digestOf("after")); sw != 0x9000 {
		t.Fatalf("sign after an over-long chain: %04X", sw)
	}

	// One extended-length chained part over the limit at once.
	big := make([]byte, apdu.MaxChained+1)
	ext := cat(h("10 87 07 9A 00"), []byte{byte(len(big) >> 8), byte(len(big))}, big)
	txSW(t, c, ext, 0x6700)
	txSW(t, c, discovery, 0x9000)
	if _, sw := signRSA(t, c, 0x9A, digestOf("after")); sw != 0x9000 {
		t.Fatalf("sign after an over-long extended chain: %04X", sw)
	}
}

func TestChainedVERIFY(t *testing.T) {
	// VERIFY may be chained (ISO 7816-4); the assembled command counts.
	c := newCard(t)
	pin := pinBlock(testPIN)
	txSW(t, c, cat(h("10 20 00 80 03"), pin[:3]), 0x9000)
	txSW(t, c, cat(h("00 20 00 80 05"), pin[3:]), 0x9000)
	txSW(t, c, h("00 20 00 80"), 0x9000)
}

func TestExtendedLengthSign(t *testing.T) {
	// One extended APDU instead of a chain gives the whole answer at once.
	f := keys(t)
	c := newCard(t)
	login(t, c)
	digest := digestOf("extended")
	data := gaTemplate(pkcs1Block(digest))
	cmd := cat(h("00 87 07 9A 00"), []byte{byte(len(data) >> 8), byte(len(data))}, data, h("00 00"))
	r := txSW(t, c, cmd, 0x9000)
	sig := signature(t, r.data)
	if err := rsa.VerifyPKCS1v15(f.authCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest, sig); err != nil {
		t.Fatal(err)
	}
}
