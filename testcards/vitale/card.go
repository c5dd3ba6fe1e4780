package vitale

import (
	"bytes"

	"github.com/dmpagent/dmpagent/testcards/apdu"
	"github.com/dmpagent/dmpagent/testcards/persona"
)

// Instructions the card knows. GET RESPONSE is listed because every T=0 card
// knows it, even one that never announces 61xx.
const (
	insSelect      = 0xA4
	insReadBinary  = 0xB0
	insGetResponse = 0xC0
)

// Status words the apdu package does not name.
const (
	swNoCurrentEF apdu.SW = 0x6986 // ISO 7816-4: command not allowed (no current EF)
)

type ef struct {
	fid  uint16
	data []byte
}

type df struct {
	aid []byte
	efs []ef
}

func (d *df) find(fid uint16) *ef {
	for i := range d.efs {
		if d.efs[i].fid == fid {
			return &d.efs[i]
		}
	}
	return nil
}

// Card is an emulated Vitale 2 card. It is not safe for concurrent use: the
// vpcd transport calls Transmit and Reset from one goroutine, as a reader
// talks to one card at a time; callers sharing a Card must serialise.
type Card struct {
	mf, vitale df  // fixed at New; never written afterwards
	cur        *df // current DF: the MF after reset
	sel        *ef // current EF; nil when none
}

// New builds a card carrying the patient's beneficiaries. It stores what it
// is given, a wrong NIR key included, so tests can build broken cards.
func New(p persona.Patient) *Card {
	c := &Card{
		mf: df{aid: AIDMFVitale, efs: []ef{
			{FIDDir, dirFile()},
			{FIDPAN, panFile(p.CardSerial)},
			{FIDCard, cardFile(p)},
		}},
		vitale: df{aid: AIDVitale, efs: []ef{
			{FIDPointers, pointerTable()},
			{FIDIdentity, identityFile(p.Beneficiaries)},
		}},
	}
	c.Reset()
	return c
}

// ATR returns the answer to reset.
func (c *Card) ATR() []byte { return append([]byte(nil), ATR...) }

// Reset forgets the selected application and file, as a power cycle does.
func (c *Card) Reset() { c.cur, c.sel = &c.mf, nil }

// Transmit answers one command APDU. Checks run in the order a card's
// dispatcher meets them: class, instruction, then the length fields, then
// the parameters.
func (c *Card) Transmit(cmd []byte) []byte {
	if len(cmd) < 4 {
		return apdu.WrongLength.Bytes()
	}
	if cmd[0] != 0x00 {
		return apdu.CLANotSupported.Bytes()
	}
	switch cmd[1] {
	case insSelect, insReadBinary, insGetResponse:
	default:
		return apdu.INSNotSupported.Bytes()
	}
	a, err := apdu.Parse(cmd)
	// The card speaks T=0 only (its ATR has no TD1), which has no extended
	// length.
	if err != nil || a.Extended {
		return apdu.WrongLength.Bytes()
	}
	switch a.INS {
	case insSelect:
		return c.selectFile(a).Bytes()
	case insReadBinary:
		return c.readBinary(a)
	default: // GET RESPONSE: this card never leaves data waiting
		return apdu.ConditionsNotSatisfied.Bytes()
	}
}

// selectFile answers SELECT without data: no FCI is public, and opensc-tool
// over T=0 must see a bare 9000 for SELECT VITALE. A failed SELECT keeps the
// current selection, as ISO 7816-4 cards do.
func (c *Card) selectFile(a apdu.Command) apdu.SW {
	// P2: first occurrence only; FCI, FCP, FMD or nothing are all answered
	// with nothing.
	if a.P2&^0x0C != 0 {
		return apdu.IncorrectP1P2
	}
	switch a.P1 {
	case 0x04: // by DF name
		if len(a.Data) == 0 || len(a.Data) > 16 {
			return apdu.WrongLength
		}
		for _, d := range []*df{&c.mf, &c.vitale} {
			if bytes.Equal(a.Data, d.aid) {
				c.cur, c.sel = d, nil
				return apdu.OK
			}
		}
		return apdu.FileNotFound
	case 0x00: // MF, or a file of the current DF, by identifier
		switch len(a.Data) {
		case 0:
			c.cur, c.sel = &c.mf, nil
			return apdu.OK
		case 2:
		default:
			return apdu.WrongLength
		}
		fid := uint16(a.Data[0])<<8 | uint16(a.Data[1])
		if fid == FIDMF {
			c.cur, c.sel = &c.mf, nil
			return apdu.OK
		}
		return c.selectEF(fid)
	case 0x02: // EF under the current DF
		if len(a.Data) != 2 {
			return apdu.WrongLength
		}
		return c.selectEF(uint16(a.Data[0])<<8 | uint16(a.Data[1]))
	default:
		return apdu.IncorrectP1P2
	}
}

func (c *Card) selectEF(fid uint16) apdu.SW {
	e := c.cur.find(fid)
	if e == nil {
		return apdu.FileNotFound
	}
	c.sel = e
	return apdu.OK
}

// readBinary answers READ BINARY of the current EF. A request running past
// the end returns what is left with 9000, which is what cardpeek's loop
// expects (a 6Cxx would make it fail on files shorter than 256 bytes).
func (c *Card) readBinary(a apdu.Command) []byte {
	if len(a.Data) > 0 {
		return apdu.WrongLength.Bytes()
	}
	if a.P1&0x80 != 0 { // short EF identifier in P1
		if a.P1&0x60 != 0 {
			return apdu.IncorrectP1P2.Bytes()
		}
		return apdu.FileNotFound.Bytes() // no file has one
	}
	if c.sel == nil {
		return swNoCurrentEF.Bytes()
	}
	off := int(a.P1)<<8 | int(a.P2)
	data := c.sel.data
	if off >= len(data) {
		return apdu.WrongP1P2.Bytes()
	}
	// Without Le a T=0 reader still sends P3 = 00, which asks for 256 bytes.
	ne := 256
	if a.HasLe {
		ne = a.Ne
	}
	return apdu.Response(data[off:min(off+ne, len(data))], apdu.OK)
}
