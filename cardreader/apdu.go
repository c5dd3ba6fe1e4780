package cardreader

import (
	"errors"
	"fmt"
)

// SW is an ISO 7816-4 status word.
type SW uint16

// SWOK is the status word of a command that succeeded.
const SWOK SW = 0x9000

func (s SW) String() string { return fmt.Sprintf("%04X", uint16(s)) }

// SplitResponse separates a response APDU into its data and status word.
// The data aliases resp.
func SplitResponse(resp []byte) ([]byte, SW, error) {
	if len(resp) < 2 {
		return nil, 0, fmt.Errorf("cardreader: response of %d bytes has no status word", len(resp))
	}
	n := len(resp) - 2
	return resp[:n], SW(resp[n])<<8 | SW(resp[n+1]), nil
}

// TransmitFunc sends one command APDU to a card and returns the response
// APDU, status word included. (*scard.Card).Transmit is one; tests pass a
// function over an emulator or canned bytes, so that the code reading a card
// is tested without a reader.
type TransmitFunc func(cmd []byte) ([]byte, error)

// Instruction bytes of ISO 7816-4 that the readers in this package send.
const (
	insSelect      = 0xA4
	insReadBinary  = 0xB0
	insGetResponse = 0xC0
)

// Default bounds of an apduSession. 2048 commands read a Vitale card many
// times over (it takes a few dozen) and a PIV certificate (about 3 KB, a
// dozen GET RESPONSEs); 64 KiB is the longest response an extended-length
// APDU can carry, so no legitimate answer is longer.
const (
	maxSessionCommands = 2048
	maxSessionResponse = 0x10000
)

// Errors of an apduSession that hit its bounds. They mean the card (or
// whatever answers in its place) misbehaves, not that it is absent.
var (
	errTooManyCommands  = errors.New("cardreader: card still answering after the session's command limit")
	errResponseTooLarge = errors.New("cardreader: card response longer than the session's limit")
)

// apduSession sends the commands of one logical operation (reading a Vitale
// card, reading one PIV certificate, a probe SELECT) and completes the T=0
// dialogue for each, which PC/SC leaves to the application: a T=0 card may
// answer 61xx ("xx more bytes, ask with GET RESPONSE") or 6Cxx ("wrong Le,
// xx is right") where a T=1 card would answer the data at once.
//
// It counts every command it sends and stops at maxCommands, and it stops
// collecting a chained response past maxResponse bytes, so a card that
// answers 61xx forever or a hostile emulator cannot hold the caller. Use a
// new session per operation: the count spans the session's life.
//
// It speaks short APDUs only (Le is the command's last byte), which is what
// Vitale and PIV cards are read with. It is not safe for concurrent use; a
// card handle is not either.
type apduSession struct {
	tx          TransmitFunc
	commands    int
	maxCommands int
	maxResponse int
}

func newAPDUSession(tx TransmitFunc) *apduSession {
	return &apduSession{tx: tx, maxCommands: maxSessionCommands, maxResponse: maxSessionResponse}
}

// call sends one command and splits the answer; transport errors (a removed
// card, a stopped PC/SC service) come back wrapped so callers can match them.
func (s *apduSession) call(cmd []byte) ([]byte, SW, error) {
	if s.commands >= s.maxCommands {
		return nil, 0, fmt.Errorf("%w (%d)", errTooManyCommands, s.maxCommands)
	}
	s.commands++
	resp, err := s.tx(cmd)
	if err != nil {
		return nil, 0, fmt.Errorf("cardreader: transmit: %w", err)
	}
	return SplitResponse(resp)
}

// send sends cmd and returns the whole response data and the final status
// word. hasLe says whether cmd ends in an Le byte: only then is a 6Cxx
// answered by sending cmd once more with Le = xx (a command without Le has
// no length to correct, and rewriting its last byte would corrupt its data).
// Then, while the card answers 61xx, it sends GET RESPONSE with Le = xx and
// appends what comes back. A status other than 9000 is returned as is, not
// as an error: what it means depends on the command.
func (s *apduSession) send(cmd []byte, hasLe bool) ([]byte, SW, error) {
	data, sw, err := s.call(cmd)
	if err != nil {
		return nil, 0, err
	}
	if sw&0xFF00 == 0x6C00 && hasLe && len(cmd) >= 5 {
		retry := append([]byte(nil), cmd...)
		retry[len(retry)-1] = byte(sw)
		if data, sw, err = s.call(retry); err != nil {
			return nil, 0, err
		}
	}
	out := append([]byte(nil), data...)
	for sw&0xFF00 == 0x6100 {
		if len(out) > s.maxResponse {
			return nil, 0, fmt.Errorf("%w (%d bytes)", errResponseTooLarge, s.maxResponse)
		}
		if data, sw, err = s.call([]byte{0x00, insGetResponse, 0x00, 0x00, byte(sw)}); err != nil {
			return nil, 0, err
		}
		out = append(out, data...)
	}
	return out, sw, nil
}
