// Package cardreader owns everything between the PC/SC stack and the rest of
// the agent: the PC/SC context, the reader and card monitor (hot-plug),
// identifying the card in a reader from its ATR (plus a confirming probe when
// the ATR alone is ambiguous), reading the patient's Vitale card, and the
// APDU and BER-TLV helpers those need.
//
// A reader finds each behaviour by file name:
//
//   - atr.go, identify.go: decoding an ATR (ISO/IEC 7816-3) and mapping it to
//     a card type through a documented data table; pure logic, table-tested
//     and fuzzed.
//   - monitor.go: the Monitor, blocked in SCardGetStatusChange (with the PnP
//     pseudo-reader where the platform has one), recovering from a PC/SC
//     service that stops or restarts; probe.go: the confirming SELECT for
//     ambiguous ATRs.
//   - card.go: operations on one card (ReadIdentity, DirectVitale), each
//     holding the card for a single shared-mode transaction (WithCard).
//   - identity.go, pivcert.go: the CPS identity parsed from the
//     authentication certificate; vitale.go: the Vitale 2 layout decoder
//     behind the VitaleReader interface; apdu.go, tlv.go, nir.go: helpers.
//   - pcsc.go and pcsc_<os>.go: the only files that talk PC/SC (through
//     github.com/ebfe/scard), with the per-OS differences.
//
// Nothing here asks for a PIN, and nothing logs a name or a NIR: the
// certificate read without a PIN is public, and the Vitale card's contents
// go to the caller only (errors name fields, never their values).
package cardreader
