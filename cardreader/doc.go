// Package cardreader owns everything between the PC/SC stack and the rest of
// the agent: the PC/SC context, the reader and card monitor (hot-plug),
// identifying the card in a reader from its ATR (plus a confirming probe when
// the ATR alone is ambiguous), reading the patient's Vitale card, and the
// APDU and BER-TLV helpers those need.
//
// Card identification is pure logic over bytes so that it can be table-tested
// and fuzzed without a reader: atr.go decodes an answer to reset as
// ISO/IEC 7816-3 defines it, identify.go maps it to a card type through a
// data table. The PC/SC context, the monitor and the Vitale reader come in a
// later change; they will be the only files that talk PC/SC (through
// github.com/ebfe/scard), with per-OS differences in files named by suffix.
package cardreader
