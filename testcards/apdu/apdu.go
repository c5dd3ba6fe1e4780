// Package apdu parses ISO 7816-4 command APDUs and builds responses for the
// card emulators. It is written for the card side: every malformed input maps
// to the status word a real card returns, never to a panic.
package apdu

import (
	"errors"
	"fmt"

	"github.com/dmpagent/dmpagent/cardreader"
)

// SW is an ISO 7816-4 status word.
type SW uint16

// Status words the emulators answer with.
const (
	OK                     SW = 0x9000
	WrongLength            SW = 0x6700
	SecurityNotSatisfied   SW = 0x6982
	AuthMethodBlocked      SW = 0x6983
	ConditionsNotSatisfied SW = 0x6985
	WrongData              SW = 0x6A80
	FuncNotSupported       SW = 0x6A81
	FileNotFound           SW = 0x6A82
	RecordNotFound         SW = 0x6A83
	IncorrectP1P2          SW = 0x6A86
	ReferenceNotFound      SW = 0x6A88
	WrongP1P2              SW = 0x6B00
	INSNotSupported        SW = 0x6D00
	CLANotSupported        SW = 0x6E00
	NoPreciseDiagnosis     SW = 0x6F00
	LastCommandExpected    SW = 0x6883
	ChainingNotSupported   SW = 0x6884
	EndOfFile              SW = 0x6282
)

// Bytes returns the two bytes of the status word.
func (s SW) Bytes() []byte { return []byte{byte(s >> 8), byte(s)} }

func (s SW) String() string { return fmt.Sprintf("%04X", uint16(s)) }

// RetriesLeft returns the 63Cx status word for n tries left (n is capped at 15).
func RetriesLeft(n int) SW {
	if n < 0 {
		n = 0
	}
	if n > 15 {
		n = 15
	}
	return SW(0x63C0 | n)
}

// BytesAvailable returns the 61xx status word announcing n more bytes for
// GET RESPONSE; 256 or more is announced as 00, as ISO 7816-4 says.
func BytesAvailable(n int) SW {
	if n >= 256 {
		n = 0
	}
	return SW(0x6100 | n)
}

// Command is a parsed command APDU.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	// Ne is the maximum number of response bytes expected; 0 when the
	// command carries no Le field. An Le of 00 means 256 (65536 when extended).
	Ne int
	// HasLe reports whether the command carried an Le field.
	HasLe    bool
	Extended bool
}

// Chained reports whether the CLA announces that more of this command follows
// (ISO 7816-4 command chaining, CLA bit 0x10).
func (c Command) Chained() bool { return c.CLA&0x10 != 0 }

// ErrWrongLength is returned for APDUs whose length fields disagree with their
// size; a card answers them with 6700.
var ErrWrongLength = errors.New("apdu: wrong length")

// Parse decodes a short or extended command APDU (ISO 7816-3 cases 1 to 4).
func Parse(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, ErrWrongLength
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2 short
		c.HasLe, c.Ne = true, shortNe(body[0])
		return c, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			c.Data = body[1:]
			return c, nil
		case 2 + lc:
			c.Data = body[1 : 1+lc]
			c.HasLe, c.Ne = true, shortNe(body[1+lc])
			return c, nil
		}
		return Command{}, ErrWrongLength
	}
	// body[0] == 0 and len(body) >= 2: extended length.
	c.Extended = true
	if len(body) == 3 { // case 2 extended
		c.HasLe, c.Ne = true, extNe(body[1], body[2])
		return c, nil
	}
	if len(body) < 3 {
		return Command{}, ErrWrongLength
	}
	lc := int(body[1])<<8 | int(body[2])
	if lc == 0 {
		return Command{}, ErrWrongLength
	}
	switch len(body) {
	case 3 + lc:
		c.Data = body[3:]
		return c, nil
	case 5 + lc:
		c.Data = body[3 : 3+lc]
		c.HasLe, c.Ne = true, extNe(body[3+lc], body[4+lc])
		return c, nil
	}
	return Command{}, ErrWrongLength
}

func shortNe(b byte) int {
	if b == 0 {
		return 256
	}
	return int(b)
}

func extNe(hi, lo byte) int {
	n := int(hi)<<8 | int(lo)
	if n == 0 {
		return 65536
	}
	return n
}

// Bytes encodes the command, choosing the short form when it fits.
func (c Command) Bytes() []byte {
	out := []byte{c.CLA, c.INS, c.P1, c.P2}
	ext := c.Extended || len(c.Data) > 255 || c.Ne > 256
	if len(c.Data) > 0 {
		if ext {
			out = append(out, 0, byte(len(c.Data)>>8), byte(len(c.Data)))
		} else {
			out = append(out, byte(len(c.Data)))
		}
		out = append(out, c.Data...)
	}
	if c.HasLe {
		switch {
		case ext && len(c.Data) > 0:
			out = append(out, byte(c.Ne>>8), byte(c.Ne))
		case ext:
			out = append(out, 0, byte(c.Ne>>8), byte(c.Ne))
		default:
			out = append(out, byte(c.Ne))
		}
	}
	return out
}

// Response builds a response APDU: data followed by the status word.
func Response(data []byte, sw SW) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return append(out, sw.Bytes()...)
}

// SplitResponse separates a response APDU into data and status word, as
// the host does (cardreader.SplitResponse), typed for the card side.
func SplitResponse(r []byte) ([]byte, SW, error) {
	data, sw, err := cardreader.SplitResponse(r)
	return data, SW(sw), err
}
