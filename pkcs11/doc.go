// Package pkcs11 owns CPS signing: a Token (token.go) is one card reached
// through one backend, with typed PIN errors (*PINError, ErrPINBlocked), a
// crypto.Signer per key and a process-wide count of card signatures;
// tls.go turns a token into a mutual-TLS client certificate whose sessions
// resume, so that one professional session costs one card signature.
//
// Backends:
//   - module.go: a PKCS#11 module (the Cryptolib CPS in production, OpenSC,
//     SoftHSM), loaded once per process; Module.Open finds the slot whose
//     description is the PC/SC reader name where cardreader saw the card.
//     It needs cgo; module_nocgo.go says so at run time otherwise.
//     module_common.go holds its pure parts (slot matching, PIN flags,
//     DigestInfo, PSS, ECDSA encodings), tested without a module.
//   - piv.go: PIV test tokens (YubiKeys provisioned as test CPS, the
//     emulated test CPS) through piv-go, holding the card for one
//     operation at a time.
//   - pcsc.go: the only direct PC/SC use: PIV's pre-open check, and the
//     card reset that makes a card forget its PIN after a logout through
//     either backend (OpenSC's PIV logout leaves the card verified).
//
// One backend per card: piv-go connects exclusively, and OpenSC keeps a
// shared connection to every card it has seen until the process ends, so
// the two exclude each other on one card (ErrCardBusy).
package pkcs11
