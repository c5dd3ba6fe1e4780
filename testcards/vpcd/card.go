// Package vpcd plugs emulated cards into a real pcscd through the
// vsmartcard-vpcd reader driver. vpcd listens on TCP (35963 for the first
// virtual reader, 35964 for the second); the card is the TCP client. Frames
// both ways are a 2-byte big-endian length and a payload; one-byte payloads
// from vpcd are control messages, anything longer is a command APDU.
package vpcd

// Card is an emulated card as the reader sees it.
type Card interface {
	// ATR returns the answer to reset.
	ATR() []byte
	// Transmit answers one command APDU with response data and status word.
	// It must never panic, whatever the bytes.
	Transmit(cmd []byte) []byte
	// Reset drops all volatile state (PIN verified, selected application,
	// pending chains): the reader calls it on power off, power on and reset.
	Reset()
}
