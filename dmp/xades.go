package dmp

import (
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// The XAdES signature of a submission set (IHE DSG as the DMP uses it,
// XDS-FACTS §2.1): an enveloping ds:Signature whose SignedInfo covers a
// Manifest of the submission set and document uniqueIds and the XAdES 1.1.1
// SignedProperties.
const (
	NSXAdES111 = "http://uri.etsi.org/01903/v1.1.1#"

	typeManifest         = "http://www.w3.org/2000/09/xmldsig#Manifest"
	typeSignedProperties = NSXAdES111 + "SignedProperties"

	manifestID         = "IHEManifest"
	signedPropertiesID = "S0-SignedProperties"

	// PurposeSource is the ASTM E1762 signature purpose "Source" the DMP
	// expects, also the eventCode of the signature's DocumentEntry.
	PurposeSource = "1.2.840.10065.1.12.1.14"

	// xadesTime is ISO 8601 with milliseconds and offset, as in the
	// official example.
	xadesTime = "2006-01-02T15:04:05.000-07:00"
)

// ManifestEntry is one document of a signed submission set: its uniqueId
// and the digest of its bytes, as sent (no transform).
type ManifestEntry struct {
	UniqueID string
	Digest   []byte
}

// XAdESRequest is what SignSubmissionSet signs and with what.
type XAdESRequest struct {
	SubmissionSetUniqueID string
	Documents             []ManifestEntry
	SigningTime           time.Time   // zero means now
	Hash                  crypto.Hash // SHA256 (the default when zero) or SHA1
	Signer                crypto.Signer
	Certs                 []*x509.Certificate // signing cert first, then its chain
}

// XAdESInfo is what a verified submission-set signature states. The
// manifest digests are not checked against the documents: the caller has
// the documents and compares.
type XAdESInfo struct {
	SubmissionSetUniqueID string
	Documents             []ManifestEntry
	DigestHash            crypto.Hash // the algorithm of the Documents digests
	SigningTime           time.Time
	Signature             *VerifiedSignature
}

// SignSubmissionSet returns the standalone XAdES signature document of a
// submission set, to be sent as the signature DocumentEntry.
func SignSubmissionSet(r XAdESRequest) ([]byte, error) {
	if r.Hash == 0 {
		r.Hash = crypto.SHA256
	}
	if r.SigningTime.IsZero() {
		r.SigningTime = time.Now()
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	method, err := signatureMethodFor(r.Signer, r.Hash)
	if err != nil {
		return nil, err
	}
	sigID, err := newSignatureID()
	if err != nil {
		return nil, err
	}
	refs := []dsReference{
		{URI: "#" + manifestID, Type: typeManifest, Transforms: []string{algExcC14N}, Hash: r.Hash},
		{URI: "#" + signedPropertiesID, Type: typeSignedProperties, Transforms: []string{algExcC14N}, Hash: r.Hash},
	}
	sig := newSignatureElement(method, refs)
	sig.CreateAttr("Id", sigID)
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.SetRoot(sig)

	manifest := sig.CreateElement("ds:Object").CreateElement("ds:Manifest")
	manifest.CreateAttr("Id", manifestID)
	// The submission set is referenced by uniqueId only: its metadata has
	// no byte form to digest, and every known client puts a single zero
	// byte there.
	addManifestReference(manifest, r.SubmissionSetUniqueID, r.Hash, []byte{0})
	for _, d := range r.Documents {
		addManifestReference(manifest, d.UniqueID, r.Hash, d.Digest)
	}
	// SignatureProperties is in no namespace, as in the official example:
	// the XML-DSig schema wants an element child in a ds:SignatureProperty,
	// not the bare purpose OID the DMP reads.
	prop := sig.CreateElement("ds:Object").CreateElement("SignatureProperties").CreateElement("SignatureProperty")
	prop.CreateAttr("Id", "purposeOfSignature")
	prop.CreateAttr("Target", "#"+sigID)
	prop.SetText(PurposeSource)
	sp := addQualifyingProperties(sig.CreateElement("ds:Object"), sigID, r)

	si := sig.SelectElement("SignedInfo")
	for i, target := range []*etree.Element{manifest, sp} {
		canon, err := canonicalInContext(target, "", nil)
		if err != nil {
			return nil, fmt.Errorf("dmp: sign submission set: %w", err)
		}
		si.SelectElements("Reference")[i].SelectElement("DigestValue").SetText(b64std(sigDigest(r.Hash, canon)))
	}
	if err := finishSignature(sig, r.Signer, r.Hash, r.Certs); err != nil {
		return nil, err
	}
	return doc.WriteToBytes()
}

func (r XAdESRequest) check() error {
	if r.Hash != crypto.SHA256 && r.Hash != crypto.SHA1 {
		return fmt.Errorf("dmp: sign submission set: hash %v is not SHA-256 or SHA-1", r.Hash)
	}
	if r.Signer == nil || len(r.Certs) == 0 {
		return errors.New("dmp: sign submission set: no signer or no certificate")
	}
	if !isOID(r.SubmissionSetUniqueID) {
		return fmt.Errorf("dmp: sign submission set: submission set uniqueId %q is not an OID", r.SubmissionSetUniqueID)
	}
	if len(r.Documents) == 0 {
		return errors.New("dmp: sign submission set: no document")
	}
	for _, d := range r.Documents {
		if !isOID(d.UniqueID) {
			return fmt.Errorf("dmp: sign submission set: document uniqueId %q is not an OID", d.UniqueID)
		}
		if len(d.Digest) != r.Hash.Size() {
			return fmt.Errorf("dmp: sign submission set: digest of %s has %d bytes, want %d", d.UniqueID, len(d.Digest), r.Hash.Size())
		}
	}
	return nil
}

// newSignatureID makes the Signature Id. The official example uses a bare
// UUID, which is not an XML ID when it starts with a digit; a letter prefix
// keeps the document schema-valid.
func newSignatureID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	h := hex.EncodeToString(b)
	return "sig-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func addManifestReference(m *etree.Element, oid string, h crypto.Hash, d []byte) {
	ref := m.CreateElement("ds:Reference")
	ref.CreateAttr("URI", "urn:oid:"+oid)
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestURI[h])
	ref.CreateElement("ds:DigestValue").SetText(b64std(d))
}

// addQualifyingProperties writes the XAdES 1.1.1 properties into obj and
// returns SignedProperties. In 1.1.1 CertDigest's children are in the XAdES
// namespace and IssuerSerial's in the XML-DSig one, as the example has them.
func addQualifyingProperties(obj *etree.Element, sigID string, r XAdESRequest) *etree.Element {
	qp := obj.CreateElement("xad:QualifyingProperties")
	qp.CreateAttr("xmlns:xad", NSXAdES111)
	qp.CreateAttr("Target", "#"+sigID)
	sp := qp.CreateElement("xad:SignedProperties")
	sp.CreateAttr("Id", signedPropertiesID)
	ssp := sp.CreateElement("xad:SignedSignatureProperties")
	ssp.CreateElement("xad:SigningTime").SetText(r.SigningTime.Format(xadesTime))
	sc := ssp.CreateElement("xad:SigningCertificate")
	for _, c := range r.Certs {
		cert := sc.CreateElement("xad:Cert")
		cd := cert.CreateElement("xad:CertDigest")
		cd.CreateElement("xad:DigestMethod").CreateAttr("Algorithm", digestURI[r.Hash])
		cd.CreateElement("xad:DigestValue").SetText(b64std(sigDigest(r.Hash, c.Raw)))
		is := cert.CreateElement("xad:IssuerSerial")
		is.CreateElement("ds:X509IssuerName").SetText(c.Issuer.String())
		is.CreateElement("ds:X509SerialNumber").SetText(c.SerialNumber.String())
	}
	ssp.CreateElement("xad:SignaturePolicyIdentifier").CreateElement("xad:SignaturePolicyImplied")
	sp.CreateElement("xad:SignedDataObjectProperties")
	return sp
}

// VerifySubmissionSetSignature checks a submission-set signature document:
// its shape, that SignedInfo covers exactly the Manifest and the
// SignedProperties of this document, their digests, the signature value
// and that the SigningCertificate names the certificate that signed.
// Trust in that certificate is not checked: the caller does. Every failure
// wraps ErrBadSignature.
func VerifySubmissionSetSignature(doc []byte) (*XAdESInfo, error) {
	if len(doc) > MaxMessage {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, ErrTooLarge)
	}
	if err := checkProlog(doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrBadSignature, ErrMalformed, err)
	}
	sig := d.Root()
	if sig == nil || !isDS(sig, "Signature") {
		return nil, badSig("the document is not a ds:Signature")
	}
	sigID := sig.SelectAttrValue("Id", "")
	if sigID == "" {
		return nil, badSig("the Signature has no Id")
	}
	vs, refs, err := verifySignatureElement(sig)
	if err != nil {
		return nil, err
	}
	if len(refs) != 2 {
		return nil, badSig("%d references, want the Manifest and the SignedProperties", len(refs))
	}
	var manifest, sp *etree.Element
	for _, ref := range refs {
		target, err := checkEnvelopingReference(sig, ref)
		if err != nil {
			return nil, err
		}
		switch {
		case ref.Type == typeManifest && isDS(target, "Manifest") && manifest == nil:
			manifest = target
		case ref.Type == typeSignedProperties && isXAdES(target, "SignedProperties") && sp == nil:
			sp = target
		default:
			return nil, badSig("reference %q of type %q points to %s", ref.URI, ref.Type, target.Tag)
		}
		vs.Hash = min(vs.Hash, ref.Hash)
	}
	info := &XAdESInfo{Signature: vs}
	if err := readManifest(manifest, info); err != nil {
		return nil, err
	}
	if err := readSignedProperties(sp, sigID, vs.Certificate, info); err != nil {
		return nil, err
	}
	return info, nil
}

// checkEnvelopingReference finds the element a same-document reference
// points to, which must sit in an Object of sig and be the only element of
// the document with that Id, and checks its digest.
func checkEnvelopingReference(sig *etree.Element, ref dsReference) (*etree.Element, error) {
	id, ok := strings.CutPrefix(ref.URI, "#")
	if !ok || id == "" {
		return nil, badSig("reference %q is not to an element of this document", ref.URI)
	}
	if len(ref.Transforms) != 1 || ref.Transforms[0] != algExcC14N {
		return nil, badSig("reference %q: transforms %v are not exc-c14n", ref.URI, ref.Transforms)
	}
	var found []*etree.Element
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		for _, a := range e.Attr {
			if a.Value == id && strings.EqualFold(a.Key, "id") {
				found = append(found, e)
				break
			}
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(sig)
	if len(found) != 1 {
		return nil, badSig("id %q occurs %d times", id, len(found))
	}
	target := found[0]
	if target.SelectAttrValue("Id", "") != id || !inObjectOf(target, sig) {
		return nil, badSig("reference %q does not point to an Id in an Object of the signature", ref.URI)
	}
	canon, err := canonicalInContext(target, ref.PrefixList, nil)
	if err != nil {
		return nil, badSig("canonicalizing %s: %v", target.Tag, err)
	}
	if subtle.ConstantTimeCompare(sigDigest(ref.Hash, canon), ref.Digest) != 1 {
		return nil, badSig("digest of %s does not match", target.Tag)
	}
	return target, nil
}

// inObjectOf reports whether e is below a ds:Object child of sig.
func inObjectOf(e, sig *etree.Element) bool {
	for p := e.Parent(); p != nil; p = p.Parent() {
		if p.Parent() == sig {
			return isDS(p, "Object")
		}
	}
	return false
}

func readManifest(m *etree.Element, info *XAdESInfo) error {
	for i, r := range m.ChildElements() {
		ref, err := parseManifestReference(r)
		if err != nil {
			return err
		}
		if i == 0 {
			info.SubmissionSetUniqueID = ref.UniqueID
			continue
		}
		info.Documents = append(info.Documents, ref.ManifestEntry)
		if info.DigestHash != 0 && info.DigestHash != ref.hash {
			return badSig("manifest mixes digest algorithms")
		}
		info.DigestHash = ref.hash
	}
	if info.SubmissionSetUniqueID == "" || len(info.Documents) == 0 {
		return badSig("manifest does not name a submission set and its documents")
	}
	return nil
}

type manifestRef struct {
	ManifestEntry
	hash crypto.Hash
}

// parseManifestReference reads a Manifest reference. Transforms are
// refused: the caller compares the digest with one of the raw document
// bytes, which a transform would make meaningless.
func parseManifestReference(r *etree.Element) (manifestRef, error) {
	kids := r.ChildElements()
	if !isDS(r, "Reference") || len(kids) != 2 || !isDS(kids[0], "DigestMethod") || !isDS(kids[1], "DigestValue") {
		return manifestRef{}, badSig("manifest entry is not a Reference with DigestMethod and DigestValue only")
	}
	oid, ok := strings.CutPrefix(r.SelectAttrValue("URI", ""), "urn:oid:")
	if !ok || !isOID(oid) {
		return manifestRef{}, badSig("manifest reference %q is not urn:oid:<OID>", r.SelectAttrValue("URI", ""))
	}
	h, ok := digestByURI[kids[0].SelectAttrValue("Algorithm", "")]
	if !ok {
		return manifestRef{}, badSig("manifest digest method %q is not accepted", kids[0].SelectAttrValue("Algorithm", ""))
	}
	d, err := decodeXMLBase64(kids[1].Text())
	if err != nil {
		return manifestRef{}, badSig("manifest DigestValue: %v", err)
	}
	return manifestRef{ManifestEntry{UniqueID: oid, Digest: d}, h}, nil
}

// readSignedProperties reads the signing time and checks that the first
// SigningCertificate entry is the certificate whose key signed: XAdES binds
// the certificate into the signed data so that it cannot be swapped for
// another one with the same key.
func readSignedProperties(sp *etree.Element, sigID string, signer *x509.Certificate, info *XAdESInfo) error {
	if qp := sp.Parent(); !isXAdES(qp, "QualifyingProperties") || qp.SelectAttrValue("Target", "") != "#"+sigID {
		return badSig("QualifyingProperties does not target the signature")
	}
	ssp := xadesChild(sp, "SignedSignatureProperties")
	st := xadesChild(ssp, "SigningTime")
	if st == nil {
		return badSig("no SigningTime")
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(st.Text()))
	if err != nil {
		return badSig("SigningTime: %v", err)
	}
	info.SigningTime = t
	cert := xadesChild(xadesChild(ssp, "SigningCertificate"), "Cert")
	cd := xadesChild(cert, "CertDigest")
	dm, dv := xadesChild(cd, "DigestMethod"), xadesChild(cd, "DigestValue")
	if dm == nil || dv == nil {
		return badSig("no SigningCertificate digest")
	}
	h, ok := digestByURI[dm.SelectAttrValue("Algorithm", "")]
	if !ok {
		return badSig("CertDigest method %q is not accepted", dm.SelectAttrValue("Algorithm", ""))
	}
	d, err := decodeXMLBase64(dv.Text())
	if err != nil {
		return badSig("CertDigest: %v", err)
	}
	if subtle.ConstantTimeCompare(d, sigDigest(h, signer.Raw)) != 1 {
		return badSig("SigningCertificate is not the certificate that signed")
	}
	info.Signature.Hash = min(info.Signature.Hash, h)
	return nil
}

// xadesChild returns the first XAdES child named tag, or nil; it accepts a
// nil parent so that lookups chain.
func xadesChild(e *etree.Element, tag string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if isXAdES(c, tag) {
			return c
		}
	}
	return nil
}

func isXAdES(e *etree.Element, tag string) bool {
	return e != nil && e.Tag == tag && e.NamespaceURI() == NSXAdES111
}

// isOID reports whether s looks like an OID: dot-separated decimal arcs.
func isOID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for arc := range strings.SplitSeq(s, ".") {
		if arc == "" || (len(arc) > 1 && arc[0] == '0') {
			return false
		}
		for _, c := range arc {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}
