// Package pkcs11 owns CPS signing: a Token (token.go) is one card reached
// through one backend, with typed PIN errors (*PINError, ErrPINBlocked), a
// crypto.Signer per key and a process-wide count of card signatures;
// tls.go turns a token into a mutual-TLS client certificate whose sessions
// resume, so that one professional session costs one card signature.
//
// Backends: piv.go drives PIV test tokens (YubiKeys provisioned as test CPS,
// the emulated test CPS) through piv-go, holding the card for one operation
// at a time; piv_pcsc.go is its only direct PC/SC use. The PKCS#11 module
// backend (Cryptolib CPS, OpenSC, SoftHSM) comes next.
package pkcs11
