// Package pkcs11 will own CPS signing: loading a PKCS#11 module once, the
// slot-to-reader mapping, PIN login with typed errors, a crypto.Signer and a
// tls.Certificate for mutual TLS, and a PIV backend for test tokens
// (DESIGN §2, §5). It is empty until the issue that builds it.
package pkcs11
