package piv

import (
	"bytes"
	"crypto/subtle"

	"github.com/dmpagent/dmpagent/testcards/apdu"
)

// verify answers VERIFY for the PIN (P2 80). Without data it is a status
// probe (OpenSC and piv-go both send it: piv-go with a trailing Le 00); P1 FF
// logs out.
func (c *Card) verify(cmd apdu.Command) []byte {
	if cmd.P2 != refPIN {
		return apdu.ReferenceNotFound.Bytes()
	}
	switch {
	case cmd.P1 == 0xFF && len(cmd.Data) == 0:
		c.pinVerified, c.pinFresh = false, false
		return apdu.OK.Bytes()
	case cmd.P1 != 0x00:
		return apdu.IncorrectP1P2.Bytes()
	case len(cmd.Data) == 0:
		if c.pinLeft == 0 {
			return apdu.AuthMethodBlocked.Bytes()
		}
		if c.pinVerified {
			return apdu.OK.Bytes()
		}
		return apdu.RetriesLeft(c.pinLeft).Bytes()
	case len(cmd.Data) != 8:
		return apdu.WrongLength.Bytes()
	}
	// 6983 only when already blocked: the attempt that uses up the last
	// try answers 63C0 (SP 800-73-4 3.2.1).
	if c.pinLeft == 0 {
		return apdu.AuthMethodBlocked.Bytes()
	}
	if !c.checkPIN(cmd.Data) {
		return apdu.RetriesLeft(c.pinLeft).Bytes()
	}
	c.pinVerified, c.pinFresh = true, true
	return apdu.OK.Bytes()
}

// checkPIN compares a presented PIN, counting a failure against the retry
// counter and resetting it on success. A blocked PIN fails without counting.
func (c *Card) checkPIN(presented []byte) bool {
	if c.pinLeft == 0 {
		return false
	}
	if subtle.ConstantTimeCompare(presented, c.pin) != 1 {
		c.pinLeft--
		c.pinVerified, c.pinFresh = false, false
		return false
	}
	c.pinLeft = c.tries
	return true
}

func (c *Card) checkPUK(presented []byte) bool {
	if c.pukLeft == 0 {
		return false
	}
	if subtle.ConstantTimeCompare(presented, c.puk) != 1 {
		c.pukLeft--
		return false
	}
	c.pukLeft = c.tries
	return true
}

// changeReference answers CHANGE REFERENCE DATA: old value then new value,
// 8 bytes each, for the PIN (P2 80) or the PUK (P2 81).
func (c *Card) changeReference(cmd apdu.Command) []byte {
	if cmd.P1 != 0x00 {
		return apdu.IncorrectP1P2.Bytes()
	}
	if cmd.P2 != refPIN && cmd.P2 != refPUK {
		return apdu.ReferenceNotFound.Bytes()
	}
	if len(cmd.Data) != 16 {
		return apdu.WrongLength.Bytes()
	}
	old, next := cmd.Data[:8], cmd.Data[8:]
	minLen := 4
	if cmd.P2 == refPUK {
		minLen = 6
	}
	if !validPadded(next, minLen) {
		return apdu.WrongData.Bytes()
	}
	if cmd.P2 == refPIN {
		if c.pinLeft == 0 {
			return apdu.AuthMethodBlocked.Bytes()
		}
		if !c.checkPIN(old) {
			return apdu.RetriesLeft(c.pinLeft).Bytes()
		}
		c.pin = bytes.Clone(next)
		c.pinVerified = true
		return apdu.OK.Bytes()
	}
	if c.pukLeft == 0 {
		return apdu.AuthMethodBlocked.Bytes()
	}
	if !c.checkPUK(old) {
		return apdu.RetriesLeft(c.pukLeft).Bytes()
	}
	c.puk = bytes.Clone(next)
	return apdu.OK.Bytes()
}

// resetRetry answers RESET RETRY COUNTER: the PUK then a new PIN unblock
// the PIN.
func (c *Card) resetRetry(cmd apdu.Command) []byte {
	if cmd.P1 != 0x00 {
		return apdu.IncorrectP1P2.Bytes()
	}
	if cmd.P2 != refPIN {
		return apdu.ReferenceNotFound.Bytes()
	}
	if len(cmd.Data) != 16 {
		return apdu.WrongLength.Bytes()
	}
	if !validPadded(cmd.Data[8:], 4) {
		return apdu.WrongData.Bytes()
	}
	if c.pukLeft == 0 {
		return apdu.AuthMethodBlocked.Bytes()
	}
	if !c.checkPUK(cmd.Data[:8]) {
		return apdu.RetriesLeft(c.pukLeft).Bytes()
	}
	c.pin = bytes.Clone(cmd.Data[8:])
	c.pinLeft = c.tries
	c.pinVerified, c.pinFresh = false, false
	return apdu.OK.Bytes()
}

// validPadded checks an 8-byte reference value: minLen to 8 characters,
// then FF padding only.
func validPadded(v []byte, minLen int) bool {
	n := bytes.IndexByte(v, 0xFF)
	if n < 0 {
		n = len(v)
	}
	if n < minLen {
		return false
	}
	for _, b := range v[n:] {
		if b != 0xFF {
			return false
		}
	}
	return true
}
