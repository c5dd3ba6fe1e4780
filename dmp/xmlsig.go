package dmp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // RSA-SHA1 signatures are still made and received in the field.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// ErrBadSignature is wrapped by every XML signature verification failure.
var ErrBadSignature = errors.New("dmp: bad XML signature")

// Algorithm URIs of XML-DSig. Only the ones we produce or accept are listed:
// anything else in a received signature is refused.
const (
	algEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"

	algSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	algSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	algSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
)

var digestByURI = map[string]crypto.Hash{
	algSHA1:   crypto.SHA1,
	algSHA256: crypto.SHA256,
	algSHA512: crypto.SHA512,
}

var digestURI = map[crypto.Hash]string{
	crypto.SHA1:   algSHA1,
	crypto.SHA256: algSHA256,
	crypto.SHA512: algSHA512,
}

type signatureMethod struct {
	hash  crypto.Hash
	ecdsa bool
}

var signatureMethods = map[string]signatureMethod{
	dsig.RSASHA1SignatureMethod:     {crypto.SHA1, false},
	dsig.RSASHA256SignatureMethod:   {crypto.SHA256, false},
	dsig.RSASHA512SignatureMethod:   {crypto.SHA512, false},
	dsig.ECDSASHA256SignatureMethod: {crypto.SHA256, true},
}

// VerifiedSignature is what a valid signature proves.
type VerifiedSignature struct {
	Certificate *x509.Certificate   // the first X509Certificate of KeyInfo, whose key verified the signature
	Chain       []*x509.Certificate // the other certificates in KeyInfo
	// Hash is the weaker of the digest and signature hashes, so that a
	// policy refusing SHA-1 sees it wherever it was used.
	Hash   crypto.Hash
	Method string // SignatureMethod URI
}

// dsReference is one ds:Reference to build or as read from SignedInfo.
type dsReference struct {
	URI        string
	Type       string
	Transforms []string // algorithm URIs, in order
	PrefixList string   // InclusiveNamespaces of the exc-c14n transform
	Hash       crypto.Hash
	Digest     []byte
}

// signEnveloped adds an enveloped XML Signature to el, which must carry the
// attribute idAttr (e.g. "ID") with a non-empty value. Reference URI "#"+id,
// transforms enveloped-signature then exc-c14n; CanonicalizationMethod exc-c14n;
// SignatureMethod rsa-sha256 / rsa-sha1 (hash crypto.SHA256 or crypto.SHA1) for RSA
// keys, ecdsa-sha256 for ECDSA; DigestMethod sha256 / sha1;
// KeyInfo/X509Data/X509Certificate for each of certs (leaf first).
// The ds:Signature element (prefix "ds", xmlns:ds declared on it) is inserted
// as a child of el right after `after` (a child of el), or first when after is nil.
func signEnveloped(el *etree.Element, idAttr string, after *etree.Element, signer crypto.Signer, certs []*x509.Certificate, hash crypto.Hash) error {
	id := el.SelectAttrValue(idAttr, "")
	if id == "" {
		return fmt.Errorf("dmp: sign: element %s has no %s attribute", el.Tag, idAttr)
	}
	if after != nil && after.Parent() != el {
		return errors.New("dmp: sign: the element to insert after is not a child of the signed element")
	}
	for _, c := range el.ChildElements() {
		if isDS(c, "Signature") {
			return errors.New("dmp: sign: the element is already signed")
		}
	}
	method, err := signatureMethodFor(signer, hash)
	if err != nil {
		return err
	}
	canon, err := canonicalInContext(el, "", nil)
	if err != nil {
		return fmt.Errorf("dmp: sign: %w", err)
	}
	ref := dsReference{
		URI:        "#" + id,
		Transforms: []string{algEnveloped, algExcC14N},
		Hash:       hash,
		Digest:     sigDigest(hash, canon),
	}
	sig := newSignatureElement(method, []dsReference{ref})
	at := 0
	if after != nil {
		at = after.Index() + 1
	}
	el.InsertChildAt(at, sig)
	if err := finishSignature(sig, signer, hash, certs); err != nil {
		el.RemoveChild(sig)
		return err
	}
	return nil
}

// signatureMethodFor picks the SignatureMethod URI for the signer's key.
func signatureMethodFor(signer crypto.Signer, hash crypto.Hash) (string, error) {
	if hash != crypto.SHA1 && hash != crypto.SHA256 {
		return "", fmt.Errorf("dmp: sign: hash %v is not SHA-1 or SHA-256", hash)
	}
	switch signer.Public().(type) {
	case *rsa.PublicKey:
		if hash == crypto.SHA1 {
			return dsig.RSASHA1SignatureMethod, nil
		}
		return dsig.RSASHA256SignatureMethod, nil
	case *ecdsa.PublicKey:
		if hash != crypto.SHA256 {
			return "", errors.New("dmp: sign: ECDSA keys sign with SHA-256 only")
		}
		return dsig.ECDSASHA256SignatureMethod, nil
	default:
		return "", fmt.Errorf("dmp: sign: unsupported key type %T", signer.Public())
	}
}

// newSignatureElement builds ds:Signature with its SignedInfo; the
// signature value and key info are added by finishSignature once the
// element sits in its final place, since SignedInfo is canonicalized in
// context.
func newSignatureElement(method string, refs []dsReference) *etree.Element {
	sig := etree.NewElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDSig)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", algExcC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", method)
	for _, r := range refs {
		re := si.CreateElement("ds:Reference")
		if r.Type != "" {
			re.CreateAttr("Type", r.Type)
		}
		re.CreateAttr("URI", r.URI)
		if len(r.Transforms) > 0 {
			ts := re.CreateElement("ds:Transforms")
			for _, t := range r.Transforms {
				ts.CreateElement("ds:Transform").CreateAttr("Algorithm", t)
			}
		}
		re.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestURI[r.Hash])
		re.CreateElement("ds:DigestValue").SetText(b64std(r.Digest))
	}
	return sig
}

// finishSignature signs the canonical SignedInfo of sig and appends
// SignatureValue and KeyInfo after it.
func finishSignature(sig *etree.Element, signer crypto.Signer, hash crypto.Hash, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("dmp: sign: no certificate")
	}
	si := sig.ChildElements()[0]
	canon, err := canonicalInContext(si, "", nil)
	if err != nil {
		return fmt.Errorf("dmp: sign: %w", err)
	}
	value, err := signer.Sign(rand.Reader, sigDigest(hash, canon), hash)
	if err != nil {
		return fmt.Errorf("dmp: sign: %w", err)
	}
	if pub, ok := signer.Public().(*ecdsa.PublicKey); ok {
		if value, err = ecdsaDERToRaw(value, pub); err != nil {
			return fmt.Errorf("dmp: sign: %w", err)
		}
	}
	sv := etree.NewElement("ds:SignatureValue")
	sv.SetText(b64std(value))
	sig.InsertChildAt(si.Index()+1, sv)
	x509Data := etree.NewElement("ds:X509Data")
	for _, c := range certs {
		x509Data.CreateElement("ds:X509Certificate").SetText(b64std(c.Raw))
	}
	ki := etree.NewElement("ds:KeyInfo")
	ki.AddChild(x509Data)
	sig.InsertChildAt(sv.Index()+1, ki)
	return nil
}

// verifyEnveloped checks the ds:Signature child of el: exactly one
// Signature child and exactly one Reference whose URI is "#"+el's idAttr value;
// transforms limited to enveloped-signature and exc-c14n (with or without an
// InclusiveNamespaces PrefixList); digest of the canonical element (signature
// removed) equals DigestValue; SignatureValue verifies over the canonical
// SignedInfo with the public key of the first KeyInfo certificate. Accepts
// rsa-sha1, rsa-sha256, rsa-sha512, ecdsa-sha256 and the sha1/sha256/sha512 digests.
// It does NOT check trust (chain, dates, key usage): the caller does.
// Every failure wraps ErrBadSignature.
func verifyEnveloped(el *etree.Element, idAttr string) (*VerifiedSignature, error) {
	id, err := uniqueID(el, idAttr)
	if err != nil {
		return nil, err
	}
	var sig *etree.Element
	for _, c := range el.ChildElements() {
		if isDS(c, "Signature") {
			if sig != nil {
				return nil, badSig("more than one Signature in %s", el.Tag)
			}
			sig = c
		}
	}
	if sig == nil {
		return nil, badSig("%s is not signed", el.Tag)
	}
	vs, refs, err := verifySignatureElement(sig)
	if err != nil {
		return nil, err
	}
	if len(refs) != 1 {
		return nil, badSig("%d references, want 1", len(refs))
	}
	ref := refs[0]
	if ref.URI != "#"+id {
		return nil, badSig("reference %q does not point to the signed element %q", ref.URI, id)
	}
	if len(ref.Transforms) != 2 || ref.Transforms[0] != algEnveloped || ref.Transforms[1] != algExcC14N {
		return nil, badSig("transforms %v are not enveloped-signature then exc-c14n", ref.Transforms)
	}
	canon, err := canonicalInContext(el, ref.PrefixList, sig)
	if err != nil {
		return nil, badSig("canonicalizing %s: %v", el.Tag, err)
	}
	if !bytes.Equal(sigDigest(ref.Hash, canon), ref.Digest) {
		return nil, badSig("digest of %s does not match", el.Tag)
	}
	// crypto.Hash values of the SHA family grow with their strength.
	vs.Hash = min(vs.Hash, ref.Hash)
	return vs, nil
}

// uniqueID returns el's idAttr value after checking that no other element
// of the document carries it in any id-like attribute: a duplicate is how
// signature-wrapping attacks make a verifier and a consumer look at
// different elements.
func uniqueID(el *etree.Element, idAttr string) (string, error) {
	id := el.SelectAttrValue(idAttr, "")
	if id == "" {
		return "", badSig("%s has no %s", el.Tag, idAttr)
	}
	root := el
	for root.Parent() != nil {
		root = root.Parent()
	}
	n := 0
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		for _, a := range e.Attr {
			if a.Value == id && strings.EqualFold(a.Key, "id") {
				n++
			}
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	if n != 1 {
		return "", badSig("id %q occurs %d times in the document", id, n)
	}
	return id, nil
}

// verifySignatureElement checks the shape of ds:Signature, reads its
// SignedInfo and verifies SignatureValue with the first KeyInfo
// certificate. The references are returned for the caller to check: what
// they must point to depends on the kind of signature.
func verifySignatureElement(sig *etree.Element) (*VerifiedSignature, []dsReference, error) {
	kids := sig.ChildElements()
	if len(kids) < 3 || !isDS(kids[0], "SignedInfo") || !isDS(kids[1], "SignatureValue") || !isDS(kids[2], "KeyInfo") {
		return nil, nil, badSig("Signature is not SignedInfo, SignatureValue, KeyInfo")
	}
	for _, k := range kids[3:] {
		if !isDS(k, "Object") {
			return nil, nil, badSig("unexpected %s in Signature", k.Tag)
		}
	}
	si := kids[0]
	sk := si.ChildElements()
	if len(sk) < 3 || !isDS(sk[0], "CanonicalizationMethod") || !isDS(sk[1], "SignatureMethod") {
		return nil, nil, badSig("SignedInfo is not CanonicalizationMethod, SignatureMethod, Reference+")
	}
	if a := sk[0].SelectAttrValue("Algorithm", ""); a != algExcC14N {
		return nil, nil, badSig("canonicalization %q is not exc-c14n", a)
	}
	prefixes, err := inclusivePrefixes(sk[0])
	if err != nil {
		return nil, nil, err
	}
	methodURI := sk[1].SelectAttrValue("Algorithm", "")
	method, ok := signatureMethods[methodURI]
	if !ok {
		return nil, nil, badSig("signature method %q is not accepted", methodURI)
	}
	var refs []dsReference
	for _, r := range sk[2:] {
		ref, err := parseReference(r)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, ref)
	}
	certs, err := keyInfoCerts(kids[2])
	if err != nil {
		return nil, nil, err
	}
	value, err := decodeXMLBase64(kids[1].Text())
	if err != nil {
		return nil, nil, badSig("SignatureValue: %v", err)
	}
	canon, err := canonicalInContext(si, prefixes, nil)
	if err != nil {
		return nil, nil, badSig("canonicalizing SignedInfo: %v", err)
	}
	if err := checkSignatureValue(certs[0].PublicKey, method, sigDigest(method.hash, canon), value); err != nil {
		return nil, nil, err
	}
	return &VerifiedSignature{Certificate: certs[0], Chain: certs[1:], Hash: method.hash, Method: methodURI}, refs, nil
}

func parseReference(r *etree.Element) (dsReference, error) {
	if !isDS(r, "Reference") {
		return dsReference{}, badSig("unexpected %s in SignedInfo", r.Tag)
	}
	ref := dsReference{URI: r.SelectAttrValue("URI", ""), Type: r.SelectAttrValue("Type", "")}
	kids := r.ChildElements()
	if len(kids) > 0 && isDS(kids[0], "Transforms") {
		for _, t := range kids[0].ChildElements() {
			if !isDS(t, "Transform") {
				return dsReference{}, badSig("unexpected %s in Transforms", t.Tag)
			}
			alg := t.SelectAttrValue("Algorithm", "")
			switch alg {
			case algEnveloped:
				if len(t.ChildElements()) != 0 {
					return dsReference{}, badSig("enveloped-signature transform has parameters")
				}
			case algExcC14N:
				p, err := inclusivePrefixes(t)
				if err != nil {
					return dsReference{}, err
				}
				ref.PrefixList = p
			default:
				return dsReference{}, badSig("transform %q is not accepted", alg)
			}
			ref.Transforms = append(ref.Transforms, alg)
		}
		kids = kids[1:]
	}
	if len(kids) != 2 || !isDS(kids[0], "DigestMethod") || !isDS(kids[1], "DigestValue") {
		return dsReference{}, badSig("Reference %q is not Transforms?, DigestMethod, DigestValue", ref.URI)
	}
	alg := kids[0].SelectAttrValue("Algorithm", "")
	h, ok := digestByURI[alg]
	if !ok {
		return dsReference{}, badSig("digest method %q is not accepted", alg)
	}
	d, err := decodeXMLBase64(kids[1].Text())
	if err != nil {
		return dsReference{}, badSig("DigestValue: %v", err)
	}
	if len(d) != h.Size() {
		return dsReference{}, badSig("DigestValue has %d bytes, want %d", len(d), h.Size())
	}
	ref.Hash, ref.Digest = h, d
	return ref, nil
}

// inclusivePrefixes reads the optional InclusiveNamespaces child of an
// exc-c14n method or transform.
func inclusivePrefixes(m *etree.Element) (string, error) {
	kids := m.ChildElements()
	switch {
	case len(kids) == 0:
		return "", nil
	case len(kids) == 1 && kids[0].Tag == "InclusiveNamespaces" && kids[0].NamespaceURI() == algExcC14N:
		return kids[0].SelectAttrValue("PrefixList", ""), nil
	default:
		return "", badSig("unexpected parameters of %s", m.Tag)
	}
}

func keyInfoCerts(ki *etree.Element) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, d := range ki.ChildElements() {
		if !isDS(d, "X509Data") {
			continue
		}
		for _, c := range d.ChildElements() {
			if !isDS(c, "X509Certificate") {
				continue
			}
			der, err := decodeXMLBase64(c.Text())
			if err != nil {
				return nil, badSig("X509Certificate: %v", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, badSig("X509Certificate: %v", err)
			}
			certs = append(certs, cert)
		}
	}
	if len(certs) == 0 {
		return nil, badSig("KeyInfo has no X509Certificate")
	}
	return certs, nil
}

// checkSignatureValue verifies value over the SignedInfo digest. The RSA
// path calls rsa.VerifyPKCS1v15 directly rather than x509's checks, which
// refuse SHA-1: SHA-1 acceptance is the caller's policy, told by Hash.
func checkSignatureValue(pub any, m signatureMethod, sum, value []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if m.ecdsa {
			return badSig("ECDSA signature method with an RSA key")
		}
		if err := rsa.VerifyPKCS1v15(k, m.hash, sum, value); err != nil {
			return badSig("SignatureValue does not verify: %v", err)
		}
		return nil
	case *ecdsa.PublicKey:
		if !m.ecdsa {
			return badSig("RSA signature method with an ECDSA key")
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(value) != 2*size {
			return badSig("ECDSA SignatureValue has %d bytes, want %d", len(value), 2*size)
		}
		r := new(big.Int).SetBytes(value[:size])
		s := new(big.Int).SetBytes(value[size:])
		if !ecdsa.Verify(k, sum, r, s) {
			return badSig("SignatureValue does not verify")
		}
		return nil
	default:
		return badSig("unsupported public key %T", pub)
	}
}

// ecdsaDERToRaw turns the ASN.1 signature crypto.Signer returns into the
// fixed-width r||s form XML-DSig uses (RFC 4050 / xmldsig-more).
func ecdsaDERToRaw(der []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
		return nil, errors.New("malformed ECDSA signature from the signer")
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*size || rs.S.BitLen() > 8*size {
		return nil, errors.New("ECDSA signature out of range")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// canonicalInContext serializes el in exclusive c14n as it is within its
// document: the namespace declarations of its ancestors are in scope. drop,
// a child of el, is left out (the enveloped-signature transform).
func canonicalInContext(el *etree.Element, prefixList string, drop *etree.Element) ([]byte, error) {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, err
	}
	det, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return nil, err
	}
	if drop != nil {
		// The copy keeps el's child order, so drop sits at the same index.
		det.RemoveChildAt(drop.Index())
	}
	return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList).Canonicalize(det)
}

func sigDigest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// decodeXMLBase64 decodes XML base64 content, which may be wrapped in lines.
func decodeXMLBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func isDS(e *etree.Element, tag string) bool {
	return e.Tag == tag && e.NamespaceURI() == NSDSig
}

func badSig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSignature, fmt.Sprintf(format, args...))
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
