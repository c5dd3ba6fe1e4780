package piv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"

	"github.com/dmpagent/dmpagent/testcards/apdu"
)

func algorithmOf(pub any) (byte, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 {
			return 0, errors.New("RSA keys must be 2048 bits")
		}
		return AlgRSA2048, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return 0, errors.New("EC keys must be on P-256")
		}
		return AlgECCP256, nil
	}
	return 0, errors.New("unsupported key type")
}

// generalAuthenticate answers GENERAL AUTHENTICATE with a dynamic
// authentication template 7C { 82 00 (response wanted), 81 challenge }:
// for RSA the challenge is the already padded block (both OpenSC and
// piv-go pad in software), for ECDSA it is the hash.
func (c *Card) generalAuthenticate(cmd apdu.Command) []byte {
	k, ok := c.keys[cmd.P2]
	if !ok {
		if cmd.P2 == refManagement {
			// Card management needs the 3DES/AES witness dance, which only
			// provisioning tools use; this card is provisioned at birth.
			return apdu.SecurityNotSatisfied.Bytes()
		}
		return apdu.ReferenceNotFound.Bytes()
	}
	alg, _ := algorithmOf(k.Signer.Public())
	if cmd.P1 != alg {
		return apdu.IncorrectP1P2.Bytes()
	}
	tmpl, err := apdu.ParseTLVs(cmd.Data)
	if err != nil || len(tmpl) != 1 || tmpl[0].Tag != 0x7C {
		return apdu.WrongData.Bytes()
	}
	inner, err := apdu.ParseTLVs(tmpl[0].Value)
	if err != nil {
		return apdu.WrongData.Bytes()
	}
	resp, okResp := apdu.Find(inner, 0x82)
	challenge, okChal := apdu.Find(inner, 0x81)
	if !okResp || len(resp) != 0 || !okChal {
		return apdu.WrongData.Bytes()
	}
	if sw := c.authorize(cmd.P2, k); sw != apdu.OK {
		return sw.Bytes()
	}
	var sig []byte
	switch priv := k.Signer.(type) {
	case *rsa.PrivateKey:
		if sig, err = rawRSA(priv, challenge); err != nil {
			return apdu.WrongData.Bytes()
		}
	case *ecdsa.PrivateKey:
		if len(challenge) == 0 || len(challenge) > 64 {
			return apdu.WrongData.Bytes()
		}
		if sig, err = ecdsa.SignASN1(rand.Reader, priv, challenge); err != nil {
			return apdu.NoPreciseDiagnosis.Bytes()
		}
	default:
		return apdu.NoPreciseDiagnosis.Bytes()
	}
	return c.reply(apdu.Encode(0x7C, apdu.Encode(0x82, sig)), cmd.Ne)
}

// authorize applies the slot's PIN policy.
func (c *Card) authorize(slot byte, k Key) apdu.SW {
	switch k.PINPolicy {
	case PINNever:
		return apdu.OK
	case PINAlways:
		if !c.pinFresh {
			return apdu.SecurityNotSatisfied
		}
		c.pinFresh = false
		return apdu.OK
	default:
		if !c.pinVerified {
			return apdu.SecurityNotSatisfied
		}
		c.pinFresh = false
		return apdu.OK
	}
}

// rawRSA is the RSA private-key operation on an already padded block, which
// is what a PIV card computes. The block must be as long as the modulus and
// smaller than it.
func rawRSA(priv *rsa.PrivateKey, block []byte) ([]byte, error) {
	size := priv.Size()
	if len(block) != size {
		return nil, errors.New("block length differs from the modulus")
	}
	m := new(big.Int).SetBytes(block)
	if m.Cmp(priv.N) >= 0 {
		return nil, errors.New("block not below the modulus")
	}
	priv.Precompute()
	// CRT as in the PKCS #1 decryption primitive; the emulator signs test
	// data only, so no blinding is needed against timing.
	p, q := priv.Primes[0], priv.Primes[1]
	m1 := new(big.Int).Exp(new(big.Int).Mod(m, p), priv.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(new(big.Int).Mod(m, q), priv.Precomputed.Dq, q)
	h := new(big.Int).Sub(m1, m2)
	h.Mul(h, priv.Precomputed.Qinv)
	h.Mod(h, p)
	h.Mul(h, q)
	h.Add(h, m2)
	return h.FillBytes(make([]byte, size)), nil
}

// metadata answers the YubiKey GET METADATA extension, which piv-go uses on
// version 5.3 and later to learn a slot's PIN policy, and reports PIN and
// PUK counters.
func (c *Card) metadata(cmd apdu.Command) []byte {
	if cmd.P1 != 0x00 {
		return apdu.IncorrectP1P2.Bytes()
	}
	switch cmd.P2 {
	case refPIN, refPUK:
		total, left := c.tries, c.pinLeft
		if cmd.P2 == refPUK {
			left = c.pukLeft
		}
		return c.reply(concat(
			apdu.Encode(0x01, []byte{0xFF}),
			apdu.Encode(0x05, []byte{0x00}), // not the factory default value
			apdu.Encode(0x06, []byte{byte(total), byte(left)}),
		), cmd.Ne)
	}
	k, ok := c.keys[cmd.P2]
	if !ok {
		return apdu.ReferenceNotFound.Bytes()
	}
	alg, _ := algorithmOf(k.Signer.Public())
	policy := k.PINPolicy
	if policy == 0 {
		policy = PINOnce
	}
	var pub []byte
	switch p := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		pub = concat(apdu.Encode(0x81, p.N.Bytes()), apdu.Encode(0x82, big.NewInt(int64(p.E)).Bytes()))
	case *ecdsa.PublicKey:
		ecdh, err := p.ECDH()
		if err != nil {
			return apdu.NoPreciseDiagnosis.Bytes()
		}
		pub = apdu.Encode(0x86, ecdh.Bytes())
	}
	return c.reply(concat(
		apdu.Encode(0x01, []byte{alg}),
		apdu.Encode(0x02, []byte{policy, 0x01}), // touch never
		apdu.Encode(0x03, []byte{0x02}),         // imported
		apdu.Encode(0x04, pub),
	), cmd.Ne)
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
