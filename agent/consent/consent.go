// Package consent writes and checks the receipts of the consents a
// professional records with a patient at the card: creating the patient's
// DMP, authorizing or withdrawing a professional's access. A receipt names
// the patient (INS), the Vitale card present, the professional (idNat), the
// time and the scope, and is signed with the professional's CPS signature
// key.
//
// Format: a JWS in the flattened JSON serialisation (RFC 7515 §7.2.2), the
// signing certificate chain in the protected header (x5c): any auditor's
// JOSE tooling reads it, and `dmpagent consent verify` checks it offline
// against the IGC-Santé roots. Receipts hold the patient's INS, so the store
// sits in the agent's protected data directory.
package consent

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/cardreader"
)

// Scopes of a receipt.
const (
	ScopeCreate     = "dmp.create"
	ScopeAuthorize  = "authorization.add"
	ScopeWithdraw   = "authorization.remove"
	ScopeReactivate = "dmp.reactivate"
	receiptType     = "dmpagent-consent+jws"
	maxReceipt      = 64 << 10
	currentVersion  = 1
	idPrefix        = "cr_"
)

// Oppositions are the patient's refusals of emergency access.
type Oppositions struct {
	BreakGlass bool `json:"break_glass"`
	Centre15   bool `json:"centre15"`
}

// Consent is what the patient said.
type Consent struct {
	Given               bool        `json:"given"`
	InformationProvided bool        `json:"information_provided"`
	Oppositions         Oppositions `json:"oppositions"`
}

// Receipt is the signed statement.
type Receipt struct {
	ID                string    `json:"id"`
	Version           int       `json:"version"`
	Scope             string    `json:"scope"`
	PatientINS        string    `json:"patient_ins"`
	INSOID            string    `json:"ins_oid"`
	VitaleCard        string    `json:"vitale_card"`
	BeneficiaryRank   int       `json:"beneficiary_rank,omitempty"`
	ProfessionalIDNat string    `json:"professional_id_nat"`
	Time              time.Time `json:"time"`
	Consent           Consent   `json:"consent"`
	Software          string    `json:"software,omitempty"`
}

// NewID returns a fresh receipt id: cr_ and 128 random bits in hex.
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return idPrefix + hex.EncodeToString(b)
}

// Errors.
var (
	ErrMalformed            = errors.New("consent: malformed receipt")
	ErrBadSignature         = errors.New("consent: signature does not verify")
	ErrWrongProfessional    = errors.New("consent: the signing certificate is not the receipt's professional's")
	ErrUnsupportedAlgorithm = errors.New("consent: unsupported signature algorithm")
	ErrNotFound             = errors.New("consent: no such receipt")
)

// ChainError is a signing certificate that does not chain to the roots.
type ChainError struct{ Err error }

func (e *ChainError) Error() string { return "consent: certificate chain: " + e.Err.Error() }
func (e *ChainError) Unwrap() error { return e.Err }

type header struct {
	Alg string   `json:"alg"`
	Typ string   `json:"typ"`
	X5C []string `json:"x5c"`
}

type jws struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

var b64 = base64.RawURLEncoding

// Sign signs r with signer, whose certificate is chain[0]; it makes one
// signature (one card operation).
func Sign(signer crypto.Signer, chain []*x509.Certificate, r Receipt) ([]byte, error) {
	if len(chain) == 0 {
		return nil, errors.New("consent: no certificate")
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, errors.New("consent: the certificate is not the signer's")
	}
	alg := ""
	switch signer.Public().(type) {
	case *rsa.PublicKey:
		alg = "RS256"
	case *ecdsa.PublicKey:
		alg = "ES256"
	default:
		return nil, ErrUnsupportedAlgorithm
	}
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	r.Version = currentVersion
	h := header{Alg: alg, Typ: receiptType}
	for _, c := range chain {
		h.X5C = append(h.X5C, base64.StdEncoding.EncodeToString(c.Raw))
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	pb, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := jws{Protected: b64.EncodeToString(hb), Payload: b64.EncodeToString(pb)}
	digest := sha256.Sum256([]byte(out.Protected + "." + out.Payload))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("consent: signing: %w", err)
	}
	if alg == "ES256" {
		if sig, err = ecdsaRaw(sig); err != nil {
			return nil, err
		}
	}
	out.Signature = b64.EncodeToString(sig)
	return json.Marshal(out)
}

// ecdsaRaw turns an ASN.1 ECDSA signature into JWS's r||s.
func ecdsaRaw(der []byte) ([]byte, error) {
	var s struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &s); err != nil || len(rest) > 0 {
		return nil, errors.New("consent: bad ECDSA signature from the signer")
	}
	out := make([]byte, 64)
	s.R.FillBytes(out[:32])
	s.S.FillBytes(out[32:])
	return out, nil
}

// VerifyOptions say what to trust.
type VerifyOptions struct {
	Roots *x509.CertPool
}

// Verified is a receipt that checked.
type Verified struct {
	Receipt Receipt
	Signer  *x509.Certificate
	Chains  [][]*x509.Certificate
}

// Verify checks a receipt: its form, its signature, the signing
// certificate's chain to the roots at the receipt's time (a receipt made
// with a valid card stays valid after the card expires), the certificate's
// usage, and that it is the professional's the receipt names.
func Verify(data []byte, opt VerifyOptions) (*Verified, error) {
	if len(data) > maxReceipt {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, maxReceipt)
	}
	var j jws
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || dec.More() || j.Protected == "" || j.Payload == "" || j.Signature == "" {
		return nil, fmt.Errorf("%w: not a flattened JWS", ErrMalformed)
	}
	hb, err1 := b64.DecodeString(j.Protected)
	pb, err2 := b64.DecodeString(j.Payload)
	sig, err3 := b64.DecodeString(j.Signature)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var h header
	hdec := json.NewDecoder(bytes.NewReader(hb))
	hdec.DisallowUnknownFields()
	if err := hdec.Decode(&h); err != nil || h.Typ != receiptType || len(h.X5C) == 0 || len(h.X5C) > 8 {
		return nil, fmt.Errorf("%w: bad protected header", ErrMalformed)
	}
	var certs []*x509.Certificate
	for _, s := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c: %v", ErrMalformed, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c: %v", ErrMalformed, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	digest := sha256.Sum256([]byte(j.Protected + "." + j.Payload))
	switch h.Alg {
	case "RS256", "PS256":
		pub, ok := leaf.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, ErrBadSignature
		}
		if h.Alg == "RS256" {
			err1 = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		} else {
			err1 = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, nil)
		}
		if err1 != nil {
			return nil, ErrBadSignature
		}
	case "ES256":
		pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
		if !ok || len(sig) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return nil, ErrBadSignature
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, h.Alg)
	}
	var r Receipt
	pdec := json.NewDecoder(bytes.NewReader(pb))
	pdec.DisallowUnknownFields()
	if err := pdec.Decode(&r); err != nil || r.ID == "" || r.Time.IsZero() {
		return nil, fmt.Errorf("%w: bad payload", ErrMalformed)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: opt.Roots, Intermediates: inter, CurrentTime: r.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, &ChainError{Err: err}
	}
	if leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, &ChainError{Err: errors.New("the certificate is not for signatures")}
	}
	id, err := cardreader.IdentityFromCertificate(leaf)
	if err != nil || id.IDNat != r.ProfessionalIDNat {
		return nil, ErrWrongProfessional
	}
	return &Verified{Receipt: r, Signer: leaf, Chains: chains}, nil
}

// Store keeps receipts as files in a directory.
type Store struct{ dir string }

// NewStore opens (creating) a receipt directory, private to the agent.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

func validID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, idPrefix)
	return ok && len(hexPart) == 32 && !slices.ContainsFunc([]byte(hexPart), func(c byte) bool {
		return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
	})
}

// Put stores a receipt durably; an id is written once.
func (s *Store) Put(id string, data []byte) error {
	if !validID(id) {
		return fmt.Errorf("consent: bad receipt id %q", id)
	}
	path := filepath.Join(s.dir, id+".jws")
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("consent: receipt %s exists", id)
	}
	tmp, err := os.CreateTemp(s.dir, "tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Get reads a receipt.
func (s *Store) Get(id string) ([]byte, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id+".jws"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return b, err
}

// List returns the stored ids.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".jws"); ok && validID(id) {
			out = append(out, id)
		}
	}
	return out, nil
}
