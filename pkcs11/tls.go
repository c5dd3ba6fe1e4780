package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// TLSCertificate is the professional's client certificate for mutual TLS:
// the token's authentication certificate and the intermediates that lead to
// the IGC-Santé root, with the card's authentication key as the private key
// (it never leaves the card; each handshake that is not a resumption costs
// one card signature). The token must be logged in by the time a handshake
// needs the key.
//
// SupportedSignatureAlgorithms lists what the card key can do, so that the
// server's choice never asks the card for something it refuses: PKCS#1 v1.5
// and PSS for RSA (TLS 1.3 allows only PSS), ECDSA P-256 for PIV test
// tokens.
func TLSCertificate(ctx context.Context, tok Token, intermediates []*x509.Certificate) (tls.Certificate, error) {
	leaf, err := tok.Certificate(ctx, Authentication)
	if err != nil {
		return tls.Certificate{}, err
	}
	signer, err := tok.Signer(ctx, Authentication, "")
	if err != nil {
		return tls.Certificate{}, err
	}
	algs, err := signatureSchemes(signer.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	chain := [][]byte{leaf.Raw}
	for _, c := range intermediates {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{
		Certificate:                  chain,
		PrivateKey:                   signer,
		Leaf:                         leaf,
		SupportedSignatureAlgorithms: algs,
	}, nil
}

func signatureSchemes(pub crypto.PublicKey) ([]tls.SignatureScheme, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return []tls.SignatureScheme{
			tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512,
			tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512,
		}, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, nil
		}
		return nil, fmt.Errorf("pkcs11: ECDSA key on %s: only P-256 is supported", k.Curve.Params().Name)
	}
	return nil, fmt.Errorf("pkcs11: %T key cannot authenticate in TLS", pub)
}

// ClientConfig is a TLS client configuration for one professional session:
// the card's certificate, the roots the DMP's server certificate must chain
// to, and a session cache of its own, so that reconnections within the
// session resume instead of asking the card for another signature, while a
// new session (another professional, a reinserted card) starts from a full
// handshake. TLS 1.2 is the floor.
func ClientConfig(cert tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		Certificates:       []tls.Certificate{cert},
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}
}
