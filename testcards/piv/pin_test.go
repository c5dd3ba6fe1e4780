package piv_test

import (
	"testing"

	"github.com/dmpagent/dmpagent/testcards/piv"
)

// probes are the empty VERIFY status probes: OpenSC's (case 1) and piv-go's
// (with a trailing Le 00).
var probes = map[string][]byte{
	"OpenSC": h("00 20 00 80"),
	"piv-go": h("00 20 00 80 00"),
}

func changeCmd(p2 byte, old, next []byte) []byte {
	return cat([]byte{0x00, 0x24, 0x00, p2, 0x10}, old, next)
}

func resetRetryCmd(puk, pin []byte) []byte {
	return cat(h("00 2C 00 80 10"), puk, pin)
}

func TestVerifyProbe(t *testing.T) {
	for name, probe := range probes {
		t.Run(name, func(t *testing.T) {
			c := newCard(t)
			txSW(t, c, probe, 0x63C3)
			login(t, c)
			txSW(t, c, probe, 0x9000)
			txSW(t, c, h("00 20 FF 80"), 0x9000) // log out
			txSW(t, c, probe, 0x63C3)
			if _, sw := signRSA(t, c, 0x9A, digestOf("x")); sw != 0x6982 {
				t.Fatalf("9A after logout: %04X; want 6982", sw)
			}
			if c.PINTriesLeft() != 3 {
				t.Fatalf("probes or logout counted as tries: %d left", c.PINTriesLeft())
			}
		})
	}
}

func TestVerifyWrongPINBlocks(t *testing.T) {
	c := newCard(t)
	for i, want := range []uint16{0x63C2, 0x63C1, 0x63C0} {
		txSW(t, c, verifyCmd("0000"), want)
		if got := c.PINTriesLeft(); got != 2-i {
			t.Fatalf("after %d wrong PINs, %d tries left; want %d", i+1, got, 2-i)
		}
	}
	// Blocked: even the right PIN is refused, and nothing counts any more.
	txSW(t, c, verifyCmd(testPIN), 0x6983)
	txSW(t, c, verifyCmd("0000"), 0x6983)
	for _, p := range probes {
		txSW(t, c, p, 0x6983)
	}
	if c.PINTriesLeft() != 0 {
		t.Fatalf("%d tries left; want 0", c.PINTriesLeft())
	}
	if _, sw := signRSA(t, c, 0x9A, digestOf("x")); sw != 0x6982 {
		t.Fatalf("9A with a blocked PIN: %04X; want 6982", sw)
	}
	// CHANGE REFERENCE DATA with the old PIN does not get round the block.
	txSW(t, c, changeCmd(0x80, pinBlock(testPIN), pinBlock("5678")), 0x6983)
}

func TestVerifyRightPINResetsCounter(t *testing.T) {
	c := newCard(t)
	txSW(t, c, verifyCmd("0000"), 0x63C2)
	txSW(t, c, verifyCmd("12345"), 0x63C1)
	login(t, c)
	if c.PINTriesLeft() != 3 {
		t.Fatalf("%d tries left after the right PIN; want 3", c.PINTriesLeft())
	}
	txSW(t, c, h("00 20 00 80"), 0x9000)
	// A wrong PIN counts from the full counter again and logs out.
	txSW(t, c, verifyCmd("4321"), 0x63C2)
	txSW(t, c, h("00 20 00 80"), 0x63C2)
	if _, sw := signRSA(t, c, 0x9A, digestOf("x")); sw != 0x6982 {
		t.Fatalf("9A after a wrong PIN: %04X; want 6982", sw)
	}
}

func TestVerifyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, apdu string
		want       uint16
	}{
		{"PIN of 4 bytes, unpadded", "00 20 00 80 04 31 32 33 34", 0x6700},
		{"PIN of 7 bytes", "00 20 00 80 07 31 32 33 34 FF FF FF", 0x6700},
		{"PIN of 9 bytes", "00 20 00 80 09 31 32 33 34 FF FF FF FF FF", 0x6700},
		{"P2 81 (PUK)", "00 20 00 81 08 31 32 33 34 FF FF FF FF", 0x6A88},
		{"P2 00 (global PIN)", "00 20 00 00 08 31 32 33 34 FF FF FF FF", 0x6A88},
		{"P2 9A", "00 20 00 9A", 0x6A88},
		{"probe on P2 81", "00 20 00 81", 0x6A88},
		{"P1 01", "00 20 01 80 08 31 32 33 34 FF FF FF FF", 0x6A86},
		{"logout with data", "00 20 FF 80 08 31 32 33 34 FF FF FF FF", 0x6A86},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t)
			txSW(t, c, h(tc.apdu), tc.want)
			if c.PINTriesLeft() != 3 {
				t.Fatalf("a malformed VERIFY counted: %d tries left", c.PINTriesLeft())
			}
			txSW(t, c, h("00 20 00 80"), 0x63C3) // and did not log in
		})
	}
}

func TestVerifyAcceptsEightCharacterPIN(t *testing.T) {
	cfg := config(t)
	cfg.PIN = "12345678"
	c, err := piv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	txSW(t, c, verifyCmd("1234567"), 0x63C2)
	txSW(t, c, verifyCmd("12345678"), 0x9000)
}

func TestChangePIN(t *testing.T) {
	c := newCard(t)
	txSW(t, c, changeCmd(0x80, pinBlock(testPIN), pinBlock("567890")), 0x9000)
	txSW(t, c, verifyCmd(testPIN), 0x63C2)
	txSW(t, c, verifyCmd("567890"), 0x9000)
	if c.PINTriesLeft() != 3 {
		t.Fatalf("%d tries left; want 3", c.PINTriesLeft())
	}

	// A wrong old PIN counts down, changes nothing, then blocks.
	for _, want := range []uint16{0x63C2, 0x63C1, 0x63C0, 0x6983} {
		txSW(t, c, changeCmd(0x80, pinBlock("0000"), pinBlock("1111")), want)
	}
	txSW(t, c, verifyCmd("1111"), 0x6983)
}

func TestChangePUK(t *testing.T) {
	c := newCard(t)
	txSW(t, c, changeCmd(0x81, pinBlock(testPUK), pinBlock("87654321")), 0x9000)
	blockPIN(t, c)
	txSW(t, c, resetRetryCmd(pinBlock(testPUK), pinBlock("2468")), 0x63C2)
	txSW(t, c, resetRetryCmd(pinBlock("87654321"), pinBlock("2468")), 0x9000)
	txSW(t, c, verifyCmd("2468"), 0x9000)

	// A wrong old PUK counts down and blocks the PUK.
	for _, want := range []uint16{0x63C2, 0x63C1, 0x63C0, 0x6983} {
		txSW(t, c, changeCmd(0x81, pinBlock("00000000"), pinBlock("11111111")), want)
	}
	if c.PUKTriesLeft() != 0 {
		t.Fatalf("%d PUK tries left; want 0", c.PUKTriesLeft())
	}
}

func TestChangeReferenceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		apdu []byte
		want uint16
	}{
		{"new PIN of 3 digits", changeCmd(0x80, pinBlock(testPIN), pinBlock("123")), 0x6A80},
		{"new PIN all FF", changeCmd(0x80, pinBlock(testPIN), pinBlock("")), 0x6A80},
		{"new PIN with a gap in the padding", changeCmd(0x80, pinBlock(testPIN), h("31 32 33 34 FF 35 FF FF")), 0x6A80},
		{"new PIN padded with 00", changeCmd(0x80, pinBlock(testPIN), h("31 32 33 34 00 00 00 00")), 0},
		{"new PUK of 5 digits", changeCmd(0x81, pinBlock(testPUK), pinBlock("12345")), 0x6A80},
		{"new PUK with a gap", changeCmd(0x81, pinBlock(testPUK), h("31 32 33 34 35 36 FF 37")), 0x6A80},
		{"15 bytes", cat(h("00 24 00 80 0F"), pinBlock(testPIN), pinBlock("5678")[:7]), 0x6700},
		{"8 bytes", cat(h("00 24 00 80 08"), pinBlock(testPIN)), 0x6700},
		{"P2 9A", changeCmd(0x9A, pinBlock(testPIN), pinBlock("5678")), 0x6A88},
		{"P1 01", cat(h("00 24 01 80 10"), pinBlock(testPIN), pinBlock("5678")), 0x6A86},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t)
			r := tx(t, c, tc.apdu)
			if tc.want == 0 {
				// 00 padding is not FF padding, but an 8-character PIN
				// with 00 bytes is a valid value: either answer is fine,
				// as long as the card stays consistent.
				if r.sw == 0x9000 {
					txSW(t, c, verifyCmd(testPIN), 0x63C2)
					txSW(t, c, cat(h("00 20 00 80 08"), h("31 32 33 34 00 00 00 00")), 0x9000)
				} else {
					txSW(t, c, verifyCmd(testPIN), 0x9000)
				}
				return
			}
			if r.sw != tc.want {
				t.Fatalf("SW %04X; want %04X", r.sw, tc.want)
			}
			if c.PINTriesLeft() != 3 || c.PUKTriesLeft() != 3 {
				t.Fatalf("a refused change counted: PIN %d PUK %d", c.PINTriesLeft(), c.PUKTriesLeft())
			}
			login(t, c) // the PIN is unchanged
			txSW(t, c, resetRetryCmd(pinBlock(testPUK), pinBlock(testPIN)), 0x9000)
		})
	}
}

// blockPIN exhausts the PIN tries.
func blockPIN(t *testing.T, c *piv.Card) {
	t.Helper()
	for range 3 {
		tx(t, c, verifyCmd("0000"))
	}
	txSW(t, c, h("00 20 00 80"), 0x6983)
}

func TestResetRetryCounterUnblocks(t *testing.T) {
	c := newCard(t)
	blockPIN(t, c)
	txSW(t, c, resetRetryCmd(pinBlock(testPUK), pinBlock("9753")), 0x9000)
	if c.PINTriesLeft() != 3 {
		t.Fatalf("%d PIN tries after unblock; want 3", c.PINTriesLeft())
	}
	txSW(t, c, h("00 20 00 80"), 0x63C3) // unblocked but not logged in
	txSW(t, c, verifyCmd(testPIN), 0x63C2)
	txSW(t, c, verifyCmd("9753"), 0x9000)
	if _, sw := signRSA(t, c, 0x9A, digestOf("unblocked")); sw != 0x9000 {
		t.Fatalf("9A after unblock and login: %04X", sw)
	}
}

func TestResetRetryCounterWrongPUK(t *testing.T) {
	c := newCard(t)
	blockPIN(t, c)
	for i, want := range []uint16{0x63C2, 0x63C1, 0x63C0} {
		txSW(t, c, resetRetryCmd(pinBlock("87654321"), pinBlock("9753")), want)
		if got := c.PUKTriesLeft(); got != 2-i {
			t.Fatalf("%d PUK tries left; want %d", got, 2-i)
		}
	}
	// The PUK is blocked: the right one no longer unblocks the PIN.
	txSW(t, c, resetRetryCmd(pinBlock(testPUK), pinBlock("9753")), 0x6983)
	txSW(t, c, h("00 20 00 80"), 0x6983)
	txSW(t, c, verifyCmd("9753"), 0x6983)
	txSW(t, c, h("00 F7 00 81 00"), 0x9000)
}

func TestResetRetryCounterRightPUKResetsItsCounter(t *testing.T) {
	c := newCard(t)
	txSW(t, c, resetRetryCmd(pinBlock("87654321"), pinBlock("9753")), 0x63C2)
	txSW(t, c, resetRetryCmd(pinBlock(testPUK), pinBlock("9753")), 0x9000)
	if c.PUKTriesLeft() != 3 {
		t.Fatalf("%d PUK tries; want 3", c.PUKTriesLeft())
	}
}

func TestResetRetryCounterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		apdu []byte
		want uint16
	}{
		{"new PIN too short", resetRetryCmd(pinBlock(testPUK), pinBlock("12")), 0x6A80},
		{"new PIN bad padding", resetRetryCmd(pinBlock(testPUK), h("31 32 33 34 FF FF 00 FF")), 0x6A80},
		{"new PIN all FF", resetRetryCmd(pinBlock(testPUK), pinBlock("")), 0x6A80},
		{"16 bytes missing", h("00 2C 00 80 08 31 32 33 34 35 36 37 38"), 0x6700},
		{"P2 81", cat(h("00 2C 00 81 10"), pinBlock(testPUK), pinBlock("9753")), 0x6A88},
		{"P1 01", cat(h("00 2C 01 80 10"), pinBlock(testPUK), pinBlock("9753")), 0x6A86},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t)
			blockPIN(t, c)
			txSW(t, c, tc.apdu, tc.want)
			if c.PUKTriesLeft() != 3 || c.PINTriesLeft() != 0 {
				t.Fatalf("refused reset changed counters: PIN %d PUK %d", c.PINTriesLeft(), c.PUKTriesLeft())
			}
		})
	}
}
