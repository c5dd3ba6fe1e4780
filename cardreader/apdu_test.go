package cardreader

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSWString(t *testing.T) {
	for sw, want := range map[SW]string{SWOK: "9000", 0x6A82: "6A82", 0x61FF: "61FF", 0x0001: "0001"} {
		if got := sw.String(); got != want {
			t.Errorf("SW(%#x).String() = %q, want %q", uint16(sw), got, want)
		}
	}
}

func TestSplitResponse(t *testing.T) {
	tests := []struct {
		in   string
		data string
		sw   SW
		bad  bool
	}{
		{in: "", bad: true},
		{in: "90", bad: true},
		{in: "90 00", data: "", sw: SWOK},
		{in: "6A 82", data: "", sw: 0x6A82},
		{in: "01 02 61 10", data: "01 02", sw: 0x6110},
		{in: "90 00 90 00", data: "90 00", sw: SWOK},
	}
	for _, tt := range tests {
		data, sw, err := SplitResponse(mustHex(t, tt.in))
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), "no status word") {
				t.Errorf("SplitResponse(%s) = %v, want a no-status-word error", tt.in, err)
			}
			continue
		}
		if err != nil || sw != tt.sw || !bytes.Equal(data, mustHex(t, tt.data)) {
			t.Errorf("SplitResponse(%s) = % X, %v, %v; want % X, %v", tt.in, data, sw, err, mustHex(t, tt.data), tt.sw)
		}
	}
}

// sessionScript checks each command against the script and answers the
// scripted response, so a test pins the exact APDUs the session sends.
type sessionScript struct {
	t     *testing.T
	steps [][2]string // command, response (hex)
	n     int
}

func (c *sessionScript) transmit(cmd []byte) ([]byte, error) {
	c.t.Helper()
	if c.n >= len(c.steps) {
		c.t.Fatalf("unexpected command % X after the script's %d", cmd, len(c.steps))
	}
	step := c.steps[c.n]
	c.n++
	if want := mustHex(c.t, step[0]); !bytes.Equal(cmd, want) {
		c.t.Fatalf("command %d = % X, want % X", c.n, cmd, want)
	}
	return mustHex(c.t, step[1]), nil
}

func TestSessionSend(t *testing.T) {
	tests := []struct {
		name  string
		cmd   string
		hasLe bool
		steps [][2]string
		data  string
		sw    SW
	}{
		{name: "plain answer", cmd: "00 B0 00 00 00", hasLe: true,
			steps: [][2]string{{"00 B0 00 00 00", "01 02 90 00"}}, data: "01 02", sw: SWOK},
		{name: "error status returned, not an error", cmd: "00 A4 04 00 02 D2 50",
			steps: [][2]string{{"00 A4 04 00 02 D2 50", "6A 82"}}, sw: 0x6A82},
		{name: "61xx chain", cmd: "00 CB 3F FF 05 5C 03 5F C1 05 00", hasLe: true,
			steps: [][2]string{
				{"00 CB 3F FF 05 5C 03 5F C1 05 00", "01 02 61 00"},
				{"00 C0 00 00 00", "03 04 61 02"},
				{"00 C0 00 00 02", "05 06 90 00"},
			}, data: "01 02 03 04 05 06", sw: SWOK},
		{name: "61xx chain ending in an error", cmd: "00 CB 3F FF 00",
			steps: [][2]string{{"00 CB 3F FF 00", "61 02"}, {"00 C0 00 00 02", "6F 00"}}, sw: 0x6F00},
		{name: "6Cxx retry with the named Le", cmd: "00 B0 01 00 00", hasLe: true,
			steps: [][2]string{{"00 B0 01 00 00", "6C 03"}, {"00 B0 01 00 03", "AA BB CC 90 00"}}, data: "AA BB CC", sw: SWOK},
		{name: "6Cxx then 61xx", cmd: "00 B0 00 00 00", hasLe: true,
			steps: [][2]string{{"00 B0 00 00 00", "6C 04"}, {"00 B0 00 00 04", "61 04"}, {"00 C0 00 00 04", "01 02 03 04 90 00"}},
			data:  "01 02 03 04", sw: SWOK},
		{name: "6Cxx retried once only", cmd: "00 B0 00 00 00", hasLe: true,
			steps: [][2]string{{"00 B0 00 00 00", "6C 04"}, {"00 B0 00 00 04", "6C 02"}}, sw: 0x6C02},
		{name: "6Cxx on a command without Le", cmd: "00 A4 02 00 02 20 01",
			steps: [][2]string{{"00 A4 02 00 02 20 01", "6C 10"}}, sw: 0x6C10},
		{name: "6C00 asks for 256", cmd: "00 B0 00 00 10", hasLe: true,
			steps: [][2]string{{"00 B0 00 00 10", "6C 00"}, {"00 B0 00 00 00", "90 00"}}, sw: SWOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := &sessionScript{t: t, steps: tt.steps}
			cmd := mustHex(t, tt.cmd)
			orig := bytes.Clone(cmd)
			data, sw, err := newAPDUSession(card.transmit).send(cmd, tt.hasLe)
			if err != nil {
				t.Fatal(err)
			}
			if sw != tt.sw || !bytes.Equal(data, mustHex(t, tt.data)) {
				t.Errorf("= % X, %v; want %s, %v", data, sw, tt.data, tt.sw)
			}
			if card.n != len(tt.steps) {
				t.Errorf("sent %d commands, the script has %d", card.n, len(tt.steps))
			}
			if !bytes.Equal(cmd, orig) {
				t.Errorf("send changed the caller's command to % X", cmd)
			}
		})
	}
}

// sessionChainCard answers any command but GET RESPONSE with 61xx and hands
// data out in pieces of at most 256 bytes, as a T=0 PIV card hands out a
// certificate.
type sessionChainCard struct {
	data, pending []byte
	getResponses  int
}

func (c *sessionChainCard) transmit(cmd []byte) ([]byte, error) {
	if cmd[1] != insGetResponse {
		c.pending = c.data
		return []byte{0x61, 0x00}, nil
	}
	c.getResponses++
	ne := int(cmd[4])
	if ne == 0 {
		ne = 256
	}
	n := min(ne, len(c.pending))
	out := bytes.Clone(c.pending[:n])
	c.pending = c.pending[n:]
	switch {
	case len(c.pending) == 0:
		return append(out, 0x90, 0x00), nil
	case len(c.pending) >= 256:
		return append(out, 0x61, 0x00), nil
	}
	return append(out, 0x61, byte(len(c.pending))), nil
}

func TestSessionCertificateSizedChain(t *testing.T) {
	cert := make([]byte, 3000)
	for i := range cert {
		cert[i] = byte(i * 7)
	}
	card := &sessionChainCard{data: cert}
	data, sw, err := newAPDUSession(card.transmit).send(mustHex(t, "00 CB 3F FF 05 5C 03 5F C1 05 00"), true)
	if err != nil || sw != SWOK || !bytes.Equal(data, cert) {
		t.Fatalf("= %d bytes, %v, %v; want the 3000 bytes, 9000", len(data), sw, err)
	}
	if card.getResponses != 12 { // 11 × 256 + 184
		t.Errorf("%d GET RESPONSEs, want 12", card.getResponses)
	}
}

func TestSessionBounds(t *testing.T) {
	t.Run("endless 61xx hits the command cap", func(t *testing.T) {
		sent := 0
		s := newAPDUSession(func([]byte) ([]byte, error) { sent++; return []byte{0x61, 0x01}, nil })
		_, _, err := s.send([]byte{0x00, 0xB0, 0x00, 0x00, 0x00}, true)
		if !errors.Is(err, errTooManyCommands) {
			t.Fatalf("err = %v, want errTooManyCommands", err)
		}
		if sent != maxSessionCommands {
			t.Errorf("sent %d commands, want the cap, %d", sent, maxSessionCommands)
		}
	})
	t.Run("the cap spans the session", func(t *testing.T) {
		s := newAPDUSession(func([]byte) ([]byte, error) { return []byte{0x90, 0x00}, nil })
		s.maxCommands = 3
		for i := range 3 {
			if _, _, err := s.send([]byte{0x00, 0xA4, 0x00, 0x00}, false); err != nil {
				t.Fatalf("command %d: %v", i+1, err)
			}
		}
		if _, _, err := s.send([]byte{0x00, 0xA4, 0x00, 0x00}, false); !errors.Is(err, errTooManyCommands) {
			t.Fatalf("fourth command: %v, want errTooManyCommands", err)
		}
	})
	t.Run("endless data hits the size cap", func(t *testing.T) {
		sent := 0
		full := append(make([]byte, 256), 0x61, 0x00)
		s := newAPDUSession(func([]byte) ([]byte, error) { sent++; return full, nil })
		_, _, err := s.send([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x00}, true)
		if !errors.Is(err, errResponseTooLarge) {
			t.Fatalf("err = %v, want errResponseTooLarge", err)
		}
		if want := maxSessionResponse/256 + 1; sent != want {
			t.Errorf("sent %d commands, want %d", sent, want)
		}
	})
}

func TestSessionTransportErrors(t *testing.T) {
	removed := errors.New("card removed")
	_, _, err := newAPDUSession(func([]byte) ([]byte, error) { return nil, removed }).send([]byte{0x00, 0xA4, 0x00, 0x00}, false)
	if !errors.Is(err, removed) {
		t.Errorf("err = %v, want it to wrap the transport's", err)
	}
	// A failure in the middle of a chain is reported, not a partial answer.
	calls := 0
	data, _, err := newAPDUSession(func([]byte) ([]byte, error) {
		calls++
		if calls == 1 {
			return []byte{0xAA, 0x61, 0x05}, nil
		}
		return nil, removed
	}).send([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x00}, true)
	if !errors.Is(err, removed) || data != nil {
		t.Errorf("= % X, %v; want nil and the transport's error", data, err)
	}
	_, _, err = newAPDUSession(func([]byte) ([]byte, error) { return []byte{0x90}, nil }).send([]byte{0x00, 0xA4, 0x00, 0x00}, false)
	if err == nil || !strings.Contains(err.Error(), "no status word") {
		t.Errorf("one-byte response: %v", err)
	}
}
