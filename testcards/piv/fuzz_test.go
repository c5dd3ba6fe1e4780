package piv_test

import (
	"bytes"
	"crypto/ecdsa"
	"testing"

	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/piv"
)

// The fuzz input is a sequence of records separated by fuzzSep, so that
// inserting or deleting bytes in one record leaves the others intact. A
// record is a mode byte then a body:
//
//   - mode < 0x80: the body is sent as is (raw APDU, any length fields);
//   - mode ≥ 0x80: the body is CLA INS P1 P2 data, and the harness frames it
//     with the right Lc (extended when the data exceeds 255 bytes) and, when
//     mode has 0x40, an Le of mode&0x3F (0 meaning the maximum). Mutations of
//     the data then still give well-formed commands.
var fuzzSep = []byte{0xD5, 0x1E, 0x5E}

// maxFuzzAPDUs bounds the commands one input sends (each RSA operation
// costs about a millisecond).
const maxFuzzAPDUs = 256

// seq encodes APDUs as FuzzTransmit reads them, framed when their fields
// allow it so that mutations keep them well-formed, raw otherwise.
func seq(apdus ...[]byte) []byte {
	var out []byte
	for i, a := range apdus {
		if bytes.Contains(a, fuzzSep) {
			panic("seed APDU contains the record separator")
		}
		if i > 0 {
			out = append(out, fuzzSep...)
		}
		mode, body := byte(0x00), a
		if c, err := apdu.Parse(a); err == nil {
			le := c.Ne % 64
			if bytes.Equal(frame(c.CLA, c.INS, c.P1, c.P2, c.Data, c.HasLe, le), a) {
				mode = 0x80
				if c.HasLe {
					mode |= 0x40 | byte(le)
				}
				body = cat(a[:4], c.Data)
			}
		}
		out = append(out, mode)
		out = append(out, body...)
	}
	return out
}

// frame encodes a command with consistent length fields; le is the Le byte
// (0 meaning 256, or 65536 for extended length).
func frame(cla, ins, p1, p2 byte, data []byte, hasLe bool, le int) []byte {
	out := []byte{cla, ins, p1, p2}
	ext := len(data) > 255
	if len(data) > 0 {
		if ext {
			out = append(out, 0, byte(len(data)>>8), byte(len(data)))
		} else {
			out = append(out, byte(len(data)))
		}
		out = append(out, data...)
	}
	if hasLe {
		switch {
		case ext:
			out = append(out, 0, byte(le))
		case len(data) == 0 && le == 0:
			out = append(out, 0) // short Le 00, not an extended header
		default:
			out = append(out, byte(le))
		}
	}
	return out
}

// splitSeq decodes a fuzz input into APDUs.
func splitSeq(in []byte) [][]byte {
	var out [][]byte
	for rec := range bytes.SplitSeq(in, fuzzSep) {
		if len(out) == maxFuzzAPDUs {
			break
		}
		if len(rec) == 0 {
			continue
		}
		mode, body := rec[0], rec[1:]
		if mode < 0x80 || len(body) < 4 {
			out = append(out, body)
			continue
		}
		out = append(out, frame(body[0], body[1], body[2], body[3], body[4:], mode&0x40 != 0, int(mode&0x3F)))
	}
	return out
}

// fuzzSeeds are the sessions real tools run (shared/PIV-NOTES.md) and the
// edge cases the unit tests cover.
func fuzzSeeds() [][]byte {
	sign9A := chained(0x87, piv.AlgRSA2048, 0x9A, gaTemplate(pkcs1Block(digestOf("seed"))))
	sign9C := chained(0x87, piv.AlgRSA2048, 0x9C, gaTemplate(pkcs1Block(digestOf("seed"))))
	ec := digestOf("seed ec")
	openSC := seq(
		h("00 CB 3F FF 03 5C 01 7E 08"),
		h("00 A4 04 00 07 62 76 01 FF 00 00 00"),
		h("00 A4 04 00 06 A0 00 00 00 01 01"),
		h("00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00"),
		h("00 CA DF 30 05"),
		h("B0 F2 00 00 04"),
		h("00 A4 04 00 09 A0 00 00 03 08 00 00 10 00 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 07 08"),
		h("00 CB 3F FF 05 5C 03 5F C1 07 00"),
		h("00 CB 3F FF 03 5C 01 7E 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 0C 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 02 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 05 08"),
		h("00 CB 3F FF 05 5C 03 5F C1 05 00"),
		h("00 C0 00 00 00"),
		h("00 C0 00 00 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 0A 00"),
		h("00 C0 00 00 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 0B 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 01 00"),
		h("00 C0 00 00 00"),
		h("00 20 00 80"),
		verifyCmd(testPIN),
		sign9A[0], sign9A[1],
		h("00 C0 00 00 08"),
		verifyCmd(testPIN),
		sign9C[0], sign9C[1],
		h("00 C0 00 00 08"),
		ecdsaCmd(0x9E, ec),
		ecdsaCmd(0x9C, ec),
		h("00 FD 00 00 03"),
	)
	pivGo := seq(
		h("00 A4 04 00 05 A0 00 00 03 08"),
		h("00 FD 00 00 00"),
		h("00 F8 00 00 00"),
		h("00 A4 04 00 08 A0 00 00 05 27 20 01 01"),
		h("00 20 00 80 00"),
		h("00 F7 00 9A 00"),
		h("00 F7 00 9C 00"),
		h("00 F7 00 9E 00"),
		h("00 F7 00 80 00"),
		h("00 F7 00 81 00"),
		h("00 F9 9A 00 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 05 00"),
		h("00 C0 00 00 00"),
		h("00 C0 00 00 00"),
		cat(h("00 20 00 80 08"), pinBlock(testPIN)),
		sign9C[0], sign9C[1],
		h("00 C0 00 00 00"),
	)
	pins := seq(
		verifyCmd("0000"), verifyCmd("0000"), verifyCmd("0000"), verifyCmd(testPIN),
		h("00 20 00 80"),
		resetRetryCmd(pinBlock(testPUK), pinBlock("5678")),
		changeCmd(0x80, pinBlock("5678"), pinBlock("123456")),
		changeCmd(0x81, pinBlock(testPUK), pinBlock("87654321")),
		resetRetryCmd(pinBlock("00000000"), pinBlock("12")),
		h("00 20 FF 80"),
		verifyCmd("123456"),
	)
	badChain := seq(
		verifyCmd(testPIN),
		sign9A[0],
		verifyCmd(testPIN),
		sign9A[1],
		h("10 CB 3F FF 03 5C 01 7E"),
		sign9A[0],
		h("00 CB 3F FF 03 5C 01 7E 00"),
		sign9A[1],
	)
	var long [][]byte
	for range apdu.MaxChained/255 + 2 {
		long = append(long, cat(h("10 87 07 9A FF"), bytes.Repeat([]byte{0xA5}, 255)))
	}
	out := [][]byte{openSC, pivGo, pins, badChain, seq(long...)}
	for _, a := range [][]byte{
		h("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00"),
		h("00 A4 04 0C 0F D2 33 00 00 00 45 73 74 45 49 44 20 76 33 35"),
		h("00 A4 09 04 04 3F 00 2F 01"),
		h("00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00"),
		ecdsaCmd(0x9E, ec),
		h("00 C0 00 00 00"),
		h("00 A4"),
	} {
		out = append(out, seq(a))
	}
	return out
}

// FuzzTransmit feeds one card a sequence of APDUs. Every answer must carry a
// plausible status word, no more data than asked for, and no data with an
// error; the card must neither panic nor hang, and must work after a reset.
func FuzzTransmit(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	ref := newCard(f)
	wantDiscovery := ref.Transmit(discovery)
	ecPub := keys(f).cardAuthCert.PublicKey.(*ecdsa.PublicKey)

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := piv.New(config(t))
		if err != nil {
			t.Fatal(err)
		}
		announced := -1 // bytes a 61xx promised to the next GET RESPONSE
		for i, raw := range splitSeq(in) {
			orig := bytes.Clone(raw)
			out := c.Transmit(raw)
			if !bytes.Equal(raw, orig) {
				t.Fatalf("APDU %d: Transmit modified its input", i)
			}
			if len(out) < 2 {
				t.Fatalf("APDU %d % X → % X: no status word", i, raw, out)
			}
			data := out[:len(out)-2]
			sw1, sw2 := out[len(out)-2], out[len(out)-1]
			sw := uint16(sw1)<<8 | uint16(sw2)
			if !(sw == 0x9000 || sw1 >= 0x61 && sw1 <= 0x6F) {
				t.Fatalf("APDU %d % X → SW %04X", i, raw, sw)
			}
			if len(data) > 0 && sw != 0x9000 && sw1 != 0x61 {
				t.Fatalf("APDU %d % X → error %04X with data", i, raw, sw)
			}
			cmd, err := apdu.Parse(raw)
			if err != nil {
				if sw != 0x6700 {
					t.Fatalf("APDU %d % X: unparsable, answered %04X; want 6700", i, raw, sw)
				}
				announced = -1
				continue
			}
			ne := cmd.Ne
			if ne == 0 {
				ne = 256
			}
			if len(data) > ne {
				t.Fatalf("APDU %d % X: %d bytes for Ne %d", i, raw, len(data), ne)
			}
			if cmd.INS == 0xC0 && cmd.CLA&^0x10 == 0 && announced > 0 && ne >= announced {
				if len(data) != announced || sw != 0x9000 {
					t.Fatalf("APDU %d: 61%02X announced, GET RESPONSE gave %d bytes and %04X", i, announced, len(data), sw)
				}
			}
			announced = -1
			if sw1 == 0x61 {
				announced = int(sw2)
				if len(data) == 0 && cmd.INS != 0xC0 {
					t.Fatalf("APDU %d % X: 61xx without data", i, raw)
				}
			}
		}
		if n := c.PINTriesLeft(); n < 0 || n > 3 {
			t.Fatalf("PIN tries %d", n)
		}
		if n := c.PUKTriesLeft(); n < 0 || n > 3 {
			t.Fatalf("PUK tries %d", n)
		}
		// Whatever happened, a reset gives a working card.
		c.Reset()
		if got := c.Transmit(discovery); !bytes.Equal(got, wantDiscovery) {
			t.Fatalf("discovery after reset: % X", got)
		}
		digest := digestOf("after fuzz")
		r := c.Transmit(ecdsaCmd(0x9E, digest))
		if len(r) < 2 || !bytes.Equal(r[len(r)-2:], []byte{0x90, 0x00}) {
			t.Fatalf("9E after reset: % X", r)
		}
		tl, err := parseTLVs(r[:len(r)-2])
		if err != nil || len(tl) != 1 {
			t.Fatalf("9E response % X", r)
		}
		sig, err := parseTLVs(tl[0].value)
		if err != nil || len(sig) != 1 || !ecdsa.VerifyASN1(ecPub, digest, sig[0].value) {
			t.Fatalf("9E signature after fuzz does not verify")
		}
	})
}

func TestSplitSeq(t *testing.T) {
	apdus := [][]byte{
		h("00 A4 04 00"),
		h("00 C0 00 00 00"),
		h("00 CB 3F FF 05 5C 03 5F C1 05 08"),
		h("00 20 00 80 00"),
		h("00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00"),
		h("00 A4"),
		{},
	}
	apdus = append(apdus, chained(0x87, 0x07, 0x9A, gaTemplate(pkcs1Block(digestOf("x"))))...)
	got := splitSeq(seq(apdus...))
	if len(got) != len(apdus) {
		t.Fatalf("%d APDUs back; want %d", len(got), len(apdus))
	}
	for i := range apdus {
		if !bytes.Equal(got[i], apdus[i]) {
			t.Errorf("APDU %d: % X; want % X", i, got[i], apdus[i])
		}
	}
	// A framed record whose data shrank is still well-formed.
	rec := cat([]byte{0x80}, h("00 24 00 80 31 32"))
	if got := splitSeq(rec); len(got) != 1 || !bytes.Equal(got[0], h("00 24 00 80 02 31 32")) {
		t.Fatalf("framed: % X", got)
	}
	// Extended framing.
	long := make([]byte, 300)
	got = splitSeq(cat([]byte{0xC0}, h("00 87 07 9A"), long))
	if c, err := apdu.Parse(got[0]); err != nil || !c.Extended || len(c.Data) != 300 || c.Ne != 65536 {
		t.Fatalf("extended framing: %+v, %v", c, err)
	}
}
