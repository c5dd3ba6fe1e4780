package piv

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/dmpagent/dmpagent/testcards/apdu"
)

// Data object tags (SP 800-73-4 table 3).
const (
	tagCCC           = 0x5FC107
	tagCHUID         = 0x5FC102
	tagDiscovery     = 0x7E
	tagKeyHistory    = 0x5FC10C
	tagCertAuth      = 0x5FC105
	tagCertSignature = 0x5FC10A
	tagCertKeyMgmt   = 0x5FC10B
	tagCertCardAuth  = 0x5FC101
)

var certObjectTag = map[byte]uint32{
	SlotAuthentication:     tagCertAuth,
	SlotSignature:          tagCertSignature,
	SlotKeyManagement:      tagCertKeyMgmt,
	SlotCardAuthentication: tagCertCardAuth,
}

// fascN is the FASC-N of SP 800-73-4's test cards (agency 9999, system
// 9999, credential 999999): a valid encoding no real credential carries.
var fascN = []byte{0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58, 0x21, 0x08, 0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB}

func (c *Card) buildObjects() {
	guid := c.guid()
	// The CHUID's GUID is what pkcs11-tool -L shows as the token serial.
	c.objects[tagCHUID] = apdu.Encode(0x53,
		apdu.Encode(0x30, fascN),
		apdu.Encode(0x34, guid),
		apdu.Encode(0x35, []byte(time.Now().AddDate(5, 0, 0).Format("20060102"))),
		apdu.Encode(0x3E, nil), // no issuer signature: nothing reads it
		apdu.Encode(0xFE, nil),
	)
	// CCC: card identifier = GSC-RID A0 00 00 01 16, manufacturer FF
	// (unassigned), card type 02 (Java card, as most PIV cards), then a
	// 14-byte id derived from the serial.
	cardID := append([]byte{0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02}, guid[:14]...)
	c.objects[tagCCC] = apdu.Encode(0x53,
		apdu.Encode(0xF0, cardID),
		apdu.Encode(0xF1, []byte{0x21}),
		apdu.Encode(0xF2, []byte{0x21}),
		apdu.Encode(0xF3, nil),
		apdu.Encode(0xF4, []byte{0x00}),
		apdu.Encode(0xF5, []byte{0x10}),
		apdu.Encode(0xF6, nil),
		apdu.Encode(0xF7, nil),
		apdu.Encode(0xFA, nil),
		apdu.Encode(0xFB, nil),
		apdu.Encode(0xFC, nil),
		apdu.Encode(0xFD, nil),
		apdu.Encode(0xFE, nil),
	)
	// Discovery: the PIV AID and a PIN usage policy of "PIV PIN only".
	c.objects[tagDiscovery] = apdu.Encode(0x7E,
		apdu.Encode(0x4F, AID),
		apdu.Encode(0x5F2F, []byte{0x40, 0x00}),
	)
	// Key history: no retired keys.
	c.objects[tagKeyHistory] = apdu.Encode(0x53,
		apdu.Encode(0xC1, []byte{0}),
		apdu.Encode(0xC2, []byte{0}),
		apdu.Encode(0xF3, nil),
		apdu.Encode(0xFE, nil),
	)
	for slot, k := range c.keys {
		if k.Cert == nil {
			continue
		}
		c.objects[certObjectTag[slot]] = apdu.Encode(0x53,
			apdu.Encode(0x70, k.Cert.Raw),
			apdu.Encode(0x71, []byte{0x00}), // not compressed
			apdu.Encode(0xFE, nil),
		)
	}
}

// guid derives a stable 16-byte card GUID from the serial.
func (c *Card) guid() []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c.serial)
	h := sha256.Sum256(append([]byte("dmpagent test CPS "), b[:]...))
	return h[:16]
}

// getData answers GET DATA: 5C carries the tag of the object wanted.
func (c *Card) getData(cmd apdu.Command) []byte {
	if cmd.P1 != 0x3F || cmd.P2 != 0xFF {
		return apdu.IncorrectP1P2.Bytes()
	}
	tlvs, err := apdu.ParseTLVs(cmd.Data)
	if err != nil || len(tlvs) != 1 || tlvs[0].Tag != 0x5C {
		return apdu.WrongData.Bytes()
	}
	v := tlvs[0].Value
	if len(v) == 0 || len(v) > 3 {
		return apdu.WrongData.Bytes()
	}
	var tag uint32
	for _, b := range v {
		tag = tag<<8 | uint32(b)
	}
	obj, ok := c.objects[tag]
	if !ok {
		return apdu.FileNotFound.Bytes()
	}
	return c.reply(obj, cmd.Ne)
}
