package dmp

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// VIHF attribute names, exactly as the service expects them.
const (
	attrVIHFVersion  = "VIHF_Version"
	attrAuthMode     = "Authentification_Mode"
	attrStructure    = "Identifiant_Structure"
	attrSector       = "Secteur_Activite"
	attrRole         = "urn:oasis:names:tc:xacml:2.0:subject:role"
	attrSubjectID    = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
	attrResourceID   = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
	attrResourceURN  = "Ressource_URN"
	attrPurposeOfUse = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
	// attrModeReason carries the break-glass reason. Public sources do not
	// show where the real service expects it; the name is the one Pro Santé
	// Connect uses for the same datum. Kept here only, so it can move.
	attrModeReason  = "Mode_Acces_Raison"
	attrLPSName     = "LPS_Nom"
	attrLPSVersion  = "LPS_Version"
	attrLPSID       = "LPS_ID"
	attrLPSHomolog  = "LPS_ID_HOMOLOGATION_DMP"
	vihfVersion     = "3.0"
	authModeDirect  = "DIRECTE"
	smartcardPKI    = "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
	x509SubjectName = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
	oidPurposeOfUse = "1.2.250.1.213.1.1.4.248"
	purposeCSName   = "mode acces VIHF 2.0"
	samlTimeLayout  = "2006-01-02T15:04:05.000Z"
)

// VIHF is the identity assertion ("Vecteur d'Identification et
// d'Habilitation Formelles") carried in wsse:Security of every request.
type VIHF struct {
	ID           string
	IssueInstant time.Time
	Issuer       string // DN of the signing certificate
	NameID       string // the professional's national id
	AuthnContext string
	Version      string
	AuthMode     string
	Professional Professional // IDNat, Profession, Specialty, StructureID, Sector
	SubjectID    string
	Patient      *INS
	ResourceURN  string
	Mode         AccessMode
	Reason       string
	Software     Software
	// Signature is set by ParseVIHF when the assertion is signed and the
	// signature verifies cryptographically; trust is the caller's business.
	Signature *VerifiedSignature
}

// BuildVIHF returns the SAML 2.0 assertion for actor acting on patient
// (nil for calls that are not about one patient), signed with signer,
// whose certificate chain is certs (leaf first). The bytes must be sent
// unchanged: they are what the signature covers.
func BuildVIHF(actor Actor, patient *INS, sw Software, now time.Time, signer crypto.Signer, certs []*x509.Certificate, hash crypto.Hash) ([]byte, error) {
	if len(certs) == 0 || signer == nil {
		return nil, errors.New("dmp: VIHF: no signing key")
	}
	if err := actor.Professional.Valid(); err != nil {
		return nil, err
	}
	mode := actor.mode()
	if !mode.Valid() {
		return nil, fmt.Errorf("dmp: VIHF: unknown access mode %q", actor.Mode)
	}
	if mode == ModeBreakGlass && strings.TrimSpace(actor.Reason) == "" {
		return nil, errors.New("dmp: VIHF: break-glass access needs a written reason")
	}
	p := actor.Professional
	now = now.UTC()
	a := etree.NewElement("saml2:Assertion")
	a.CreateAttr("xmlns:saml2", NSSAML)
	a.CreateAttr("xmlns:xsi", NSXSI)
	a.CreateAttr("xmlns:xs", NSXS)
	a.CreateAttr("ID", "_"+NewUUID())
	a.CreateAttr("IssueInstant", now.Format(samlTimeLayout))
	a.CreateAttr("Version", "2.0")
	issuer := a.CreateElement("saml2:Issuer")
	issuer.CreateAttr("Format", x509SubjectName)
	issuer.SetText(certs[0].Subject.String())
	a.CreateElement("saml2:Subject").CreateElement("saml2:NameID").SetText(p.IDNat)
	authn := a.CreateElement("saml2:AuthnStatement")
	authn.CreateAttr("AuthnInstant", now.Format(samlTimeLayout))
	authn.CreateElement("saml2:AuthnContext").CreateElement("saml2:AuthnContextClassRef").SetText(smartcardPKI)

	st := a.CreateElement("saml2:AttributeStatement")
	str := func(name, value string) {
		if value == "" {
			return
		}
		v := st.CreateElement("saml2:Attribute")
		v.CreateAttr("Name", name)
		av := v.CreateElement("saml2:AttributeValue")
		av.CreateAttr("xsi:type", "xs:string")
		av.SetText(value)
	}
	ce := func(name, elem string, codes ...[4]string) {
		v := st.CreateElement("saml2:Attribute")
		v.CreateAttr("Name", name)
		for _, c := range codes {
			r := v.CreateElement("saml2:AttributeValue").CreateElement(elem)
			r.CreateAttr("xmlns", NSHL7)
			r.CreateAttr("code", c[0])
			r.CreateAttr("codeSystem", c[1])
			if c[3] != "" {
				r.CreateAttr("codeSystemName", c[3])
			}
			r.CreateAttr("displayName", c[2])
			r.CreateAttr("xsi:type", "CE")
		}
	}
	str(attrVIHFVersion, vihfVersion)
	str(attrAuthMode, authModeDirect)
	str(attrStructure, p.StructureID)
	str(attrSector, p.Sector+"^"+OIDSector)
	roles := [][4]string{{p.Profession, OIDProfession, labelOr(p.ProfessionLabel, p.Profession), ""}}
	if p.Specialty != "" {
		roles = append(roles, [4]string{p.Specialty, OIDSpecialty, p.Specialty, ""})
	}
	ce(attrRole, "Role", roles...)
	str(attrSubjectID, p.DisplayName())
	if patient != nil {
		str(attrResourceID, patient.CX())
	}
	str(attrResourceURN, "urn:dmp")
	ce(attrPurposeOfUse, "PurposeOfUse", [4]string{string(mode), oidPurposeOfUse, mode.Label(), purposeCSName})
	if mode == ModeBreakGlass {
		str(attrModeReason, actor.Reason)
	}
	str(attrLPSName, sw.Name)
	str(attrLPSVersion, sw.Version)
	str(attrLPSID, sw.ID)
	str(attrLPSHomolog, sw.Homologation)

	if err := signEnveloped(a, "ID", issuer, signer, certs, hash); err != nil {
		return nil, fmt.Errorf("dmp: VIHF: %w", err)
	}
	doc := etree.NewDocument()
	doc.SetRoot(a)
	doc.WriteSettings.CanonicalEndTags = true
	return doc.WriteToBytes()
}

func labelOr(label, code string) string {
	if label != "" {
		return label
	}
	return code
}

// ParseVIHF finds the VIHF assertion in a request envelope, reads its
// attributes and, when it is signed, verifies the signature. It returns
// ErrNoVIHF when there is none; trust in the signing certificate is left to
// the caller (the simulated DMP checks it chains to IGC-Santé).
func ParseVIHF(envelope []byte) (*VIHF, error) {
	if err := checkProlog(envelope); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	doc.ReadSettings.Permissive = false
	if err := doc.ReadFromBytes(envelope); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" || root.NamespaceURI() != NSSOAP {
		return nil, fmt.Errorf("%w: not a SOAP 1.2 envelope", ErrMalformed)
	}
	var assertions []*etree.Element
	for _, h := range root.ChildElements() {
		if h.Tag != "Header" || h.NamespaceURI() != NSSOAP {
			continue
		}
		for _, sec := range h.ChildElements() {
			if sec.Tag != "Security" || sec.NamespaceURI() != NSWSSE {
				continue
			}
			for _, as := range sec.ChildElements() {
				if as.Tag == "Assertion" && as.NamespaceURI() == NSSAML {
					assertions = append(assertions, as)
				}
			}
		}
	}
	switch len(assertions) {
	case 0:
		return nil, ErrNoVIHF
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d VIHF assertions", ErrMalformed, len(assertions))
	}
	return readVIHF(assertions[0])
}

// ErrNoVIHF means a request carries no VIHF assertion.
var ErrNoVIHF = errors.New("dmp: no VIHF assertion in wsse:Security")

func readVIHF(a *etree.Element) (*VIHF, error) {
	v := &VIHF{ID: a.SelectAttrValue("ID", "")}
	if t, err := time.Parse(time.RFC3339Nano, a.SelectAttrValue("IssueInstant", "")); err == nil {
		v.IssueInstant = t
	} else {
		return nil, fmt.Errorf("%w: VIHF IssueInstant: %v", ErrMalformed, err)
	}
	child := func(parent *etree.Element, tag string) *etree.Element {
		if parent == nil {
			return nil
		}
		for _, c := range parent.ChildElements() {
			if c.Tag == tag && c.NamespaceURI() == NSSAML {
				return c
			}
		}
		return nil
	}
	text := func(e *etree.Element) string {
		if e == nil {
			return ""
		}
		return strings.TrimSpace(e.Text())
	}
	v.Issuer = text(child(a, "Issuer"))
	v.NameID = text(child(child(a, "Subject"), "NameID"))
	v.AuthnContext = text(child(child(child(a, "AuthnStatement"), "AuthnContext"), "AuthnContextClassRef"))
	for _, at := range childrenNS(child(a, "AttributeStatement"), NSSAML, "Attribute") {
		values := childrenNS(at, NSSAML, "AttributeValue")
		first := ""
		if len(values) > 0 {
			first = strings.TrimSpace(values[0].Text())
		}
		switch name := at.SelectAttrValue("Name", ""); {
		case name == attrVIHFVersion:
			v.Version = first
		case strings.EqualFold(name, attrAuthMode):
			// Sources disagree on the casing of "Mode"; accept both.
			v.AuthMode = first
		case name == attrStructure:
			v.Professional.StructureID = first
		case name == attrSector:
			v.Professional.Sector, _, _ = strings.Cut(first, "^")
		case name == attrRole:
			for _, val := range values {
				for _, r := range val.ChildElements() {
					switch r.SelectAttrValue("codeSystem", "") {
					case OIDProfession:
						v.Professional.Profession = r.SelectAttrValue("code", "")
						v.Professional.ProfessionLabel = r.SelectAttrValue("displayName", "")
					case OIDSpecialty:
						v.Professional.Specialty = r.SelectAttrValue("code", "")
					}
				}
			}
		case name == attrSubjectID:
			v.SubjectID = first
		case name == attrResourceID:
			ins, err := ParseCX(first)
			if err != nil {
				return nil, fmt.Errorf("%w: VIHF resource-id: %v", ErrMalformed, err)
			}
			v.Patient = &ins
		case name == attrResourceURN:
			v.ResourceURN = first
		case name == attrPurposeOfUse:
			for _, val := range values {
				for _, r := range val.ChildElements() {
					v.Mode = AccessMode(r.SelectAttrValue("code", ""))
				}
			}
		case name == attrModeReason:
			v.Reason = first
		case name == attrLPSName:
			v.Software.Name = first
		case name == attrLPSVersion:
			v.Software.Version = first
		case name == attrLPSID:
			v.Software.ID = first
		case name == attrLPSHomolog:
			v.Software.Homologation = first
		}
	}
	v.Professional.IDNat = v.NameID
	if len(childrenNS(a, NSDSig, "Signature")) > 0 {
		sig, err := verifyEnveloped(a, "ID")
		if err != nil {
			return nil, err
		}
		v.Signature = sig
	}
	return v, nil
}

func childrenNS(parent *etree.Element, ns, tag string) []*etree.Element {
	if parent == nil {
		return nil
	}
	var out []*etree.Element
	for _, c := range parent.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			out = append(out, c)
		}
	}
	return out
}
