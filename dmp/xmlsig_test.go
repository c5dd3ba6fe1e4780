package dmp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// sigTestPKI is a tiny CA with one RSA and one ECDSA signing certificate,
// made once: RSA key generation is slow.
type sigTestPKI struct {
	caCert       *x509.Certificate
	rsaKey       *rsa.PrivateKey
	rsaCert      *x509.Certificate
	ecKey        *ecdsa.PrivateKey
	ecCert       *x509.Certificate
	otherRSA     *rsa.PrivateKey
	otherRSACert *x509.Certificate
}

var (
	testPKIOnce sync.Once
	testPKIVal  *sigTestPKI
	testPKIErr  error
)

func testPKI(t testing.TB) *sigTestPKI {
	t.Helper()
	testPKIOnce.Do(func() { testPKIVal, testPKIErr = newSigTestPKI() })
	if testPKIErr != nil {
		t.Fatal(testPKIErr)
	}
	return testPKIVal
}

func newSigTestPKI() (*sigTestPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "TEST AC IGC-SANTE ELEMENTAIRE PERSONNES", Organization: []string{"DMPAGENT TEST"}, Country: []string{"FR"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, pub crypto.PublicKey) (*x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn, Country: []string{"FR"}},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	p := &sigTestPKI{caCert: ca}
	if p.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if p.ecCert, err = leaf(3, "899900070011", p.ecKey.Public()); err != nil {
		return nil, err
	}
	if p.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if p.rsaCert, err = leaf(2, "899900063480", p.rsaKey.Public()); err != nil {
		return nil, err
	}
	// A second RSA key for wrong-key tests; 1024 bits keeps setup quick and
	// is only ever expected to fail verification.
	if p.otherRSA, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	if p.otherRSACert, err = leaf(4, "OTHER", p.otherRSA.Public()); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *sigTestPKI) caPEM(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caCert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// A SAML-shaped assertion inside a parent that declares namespaces the
// assertion uses (xs in an attribute value, the default namespace).
const testAssertionDoc = `<?xml version="1.0" encoding="UTF-8"?>
<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:example:default">
  <saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="_a1b2c3" IssueInstant="2024-05-02T10:00:00Z" Version="2.0">
    <saml:Issuer Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName">CN=899900063480,C=FR</saml:Issuer>
    <saml:Subject><saml:NameID>899900063480</saml:NameID></saml:Subject>
    <saml:AttributeStatement>
      <saml:Attribute Name="urn:oasis:names:tc:xspa:1.0:subject:subject-id">
        <saml:AttributeValue xsi:type="xs:string">Max LIBRE &amp; fils «é»</saml:AttributeValue>
      </saml:Attribute>
      <saml:Attribute Name="urn:oasis:names:tc:xacml:2.0:subject:role">
        <saml:AttributeValue><Role xmlns="urn:hl7-org:v3" xsi:type="CE" code="10" codeSystem="1.2.250.1.71.1.2.7" displayName="Médecin"/></saml:AttributeValue>
      </saml:Attribute>
      <saml:Attribute Name="LPS_Nom"><saml:AttributeValue>dmpagent</saml:AttributeValue></saml:Attribute>
    </saml:AttributeStatement>
  </saml:Assertion>
</wsse:Security>`

type sigCase struct {
	name   string
	signer func(p *sigTestPKI) (crypto.Signer, *x509.Certificate)
	hash   crypto.Hash
	method string
}

var sigCases = []sigCase{
	{"rsa-sha256", func(p *sigTestPKI) (crypto.Signer, *x509.Certificate) { return p.rsaKey, p.rsaCert }, crypto.SHA256, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"},
	{"rsa-sha1", func(p *sigTestPKI) (crypto.Signer, *x509.Certificate) { return p.rsaKey, p.rsaCert }, crypto.SHA1, "http://www.w3.org/2000/09/xmldsig#rsa-sha1"},
	{"ecdsa-sha256", func(p *sigTestPKI) (crypto.Signer, *x509.Certificate) { return p.ecKey, p.ecCert }, crypto.SHA256, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
}

// signTestAssertion parses testAssertionDoc, signs its assertion after the
// Issuer and returns the document and the assertion.
func signTestAssertion(t *testing.T, c sigCase) (*etree.Document, *etree.Element) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(testAssertionDoc); err != nil {
		t.Fatal(err)
	}
	a := doc.FindElement("//Assertion")
	signer, cert := c.signer(testPKI(t))
	if err := signEnveloped(a, "ID", a.SelectElement("Issuer"), signer, []*x509.Certificate{cert, testPKI(t).caCert}, c.hash); err != nil {
		t.Fatal(err)
	}
	return doc, a
}

func docBytes(t *testing.T, doc *etree.Document) []byte {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reparse reads b and returns the element named tag (first match).
func reparse(t *testing.T, b []byte, path string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatal(err)
	}
	el := doc.FindElement(path)
	if el == nil {
		t.Fatalf("no %s in the document", path)
	}
	return el
}

// xmlsec1Verify runs xmlsec1 on doc, trusting the test CA.
func xmlsec1Verify(t *testing.T, doc []byte, idAttrs ...string) {
	t.Helper()
	if out, err := xmlsec1Run(t, doc, idAttrs...); err != nil {
		t.Fatalf("xmlsec1: %v\n%s\n%s", err, out, doc)
	}
}

func xmlsec1Run(t *testing.T, doc []byte, idAttrs ...string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Skip("xmlsec1 not installed:", err)
	}
	f := filepath.Join(t.TempDir(), "signed.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--verify"}
	args = append(args, idAttrs...)
	args = append(args, "--trusted-pem", testPKI(t).caPEM(t), f)
	return exec.Command("xmlsec1", args...).CombinedOutput()
}

var samlIDAttr = []string{"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"}

func TestSignEnvelopedVerifies(t *testing.T) {
	for _, c := range sigCases {
		t.Run(c.name, func(t *testing.T) {
			doc, a := signTestAssertion(t, c)
			if a.ChildElements()[1].Tag != "Signature" || a.ChildElements()[0].Tag != "Issuer" {
				t.Fatalf("signature not right after Issuer: %v", a.ChildElements())
			}
			vs, err := verifyEnveloped(a, "ID")
			if err != nil {
				t.Fatal(err)
			}
			_, cert := c.signer(testPKI(t))
			if !vs.Certificate.Equal(cert) || len(vs.Chain) != 1 || !vs.Chain[0].Equal(testPKI(t).caCert) {
				t.Errorf("certificates: got %v + %v", vs.Certificate.Subject, vs.Chain)
			}
			if vs.Hash != c.hash || vs.Method != c.method {
				t.Errorf("got %v %s, want %v %s", vs.Hash, vs.Method, c.hash, c.method)
			}

			// Serialized and parsed again, as a receiver sees it.
			b := docBytes(t, doc)
			if _, err := verifyEnveloped(reparse(t, b, "//Assertion"), "ID"); err != nil {
				t.Fatalf("after re-parse: %v", err)
			}
			xmlsec1Verify(t, b, samlIDAttr...)
			// And xmlsec1 is not a rubber stamp.
			forged := bytes.Replace(b, []byte("<saml:NameID>899900063480"), []byte("<saml:NameID>899900063481"), 1)
			if _, err := xmlsec1Run(t, forged, samlIDAttr...); err == nil {
				t.Error("xmlsec1 accepted a forged assertion")
			}
		})
	}
}

// The lead signs the assertion on its own and splices its bytes into a
// SOAP envelope that declares other namespaces, some with the prefixes the
// assertion uses.
func TestSignEnvelopedSplicedInEnvelope(t *testing.T) {
	for _, c := range sigCases {
		t.Run(c.name, func(t *testing.T) {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(testAssertionDoc); err != nil {
				t.Fatal(err)
			}
			alone := etree.NewDocument()
			a := doc.FindElement("//Assertion").Copy()
			a.CreateAttr("xmlns:xs", NSXS)
			alone.SetRoot(a)
			signer, cert := c.signer(testPKI(t))
			if err := signEnveloped(a, "ID", nil, signer, []*x509.Certificate{cert}, c.hash); err != nil {
				t.Fatal(err)
			}
			if a.ChildElements()[0].Tag != "Signature" {
				t.Fatal("signature is not first")
			}
			assertion, err := alone.WriteToString()
			if err != nil {
				t.Fatal(err)
			}
			env := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns="urn:other:default" xmlns:saml="urn:other:saml">` +
				`<soap:Header><wsa:Action>urn:x</wsa:Action><wsse:Security xmlns:wsse="` + NSWSSE + `">` +
				assertion + `</wsse:Security></soap:Header><soap:Body><x/></soap:Body></soap:Envelope>`
			if _, err := verifyEnveloped(reparse(t, []byte(env), "//Security/Assertion"), "ID"); err != nil {
				t.Fatal(err)
			}
			xmlsec1Verify(t, []byte(env), samlIDAttr...)
		})
	}
}

func TestVerifyEnvelopedRejects(t *testing.T) {
	c := sigCases[0]
	tests := []struct {
		name   string
		tamper func(t *testing.T, doc *etree.Document, a *etree.Element)
	}{
		{"changed text", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Subject/NameID").SetText("899900070011")
		}},
		{"changed attribute", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.CreateAttr("IssueInstant", "2030-01-01T00:00:00Z")
		}},
		{"added attribute", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("AttributeStatement/Attribute").CreateAttr("FriendlyName", "x")
		}},
		{"changed namespace", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			doc.Root().CreateAttr("xmlns:xs", "urn:evil")
			a.FindElement(".//AttributeValue").CreateAttr("xmlns:foo", "urn:foo")
			a.FindElement(".//AttributeValue").CreateAttr("foo:bar", "1")
		}},
		{"moved signature", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			sig := a.SelectElement("Signature")
			a.RemoveChild(sig)
			a.SelectElement("Subject").AddChild(sig)
		}},
		{"signature removed", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.RemoveChild(a.SelectElement("Signature"))
		}},
		{"two signatures", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.AddChild(a.SelectElement("Signature").Copy())
		}},
		{"duplicated ID elsewhere", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			doc.Root().CreateElement("saml:Assertion").CreateAttr("ID", "_a1b2c3")
		}},
		{"wrapped: signed copy elsewhere, forged element verified", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			// The attacker keeps the genuine signed assertion hidden in
			// an extension and changes the one the consumer reads.
			hidden := doc.Root().CreateElement("Extension")
			hidden.AddChild(a.Copy())
			a.FindElement("Subject/NameID").SetText("attacker")
		}},
		{"ID changed", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.CreateAttr("ID", "_other")
		}},
		{"reference removed", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			si := a.FindElement("Signature/SignedInfo")
			si.RemoveChild(si.SelectElement("Reference"))
		}},
		{"second reference", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			si := a.FindElement("Signature/SignedInfo")
			si.AddChild(si.SelectElement("Reference").Copy())
		}},
		{"reference URI empty", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/Reference").CreateAttr("URI", "")
		}},
		{"unknown signature method", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1")
		}},
		{"unknown digest method", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/Reference/DigestMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5")
		}},
		{"unknown transform", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/Reference/Transforms/Transform").CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
		}},
		{"inclusive c14n", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/CanonicalizationMethod").CreateAttr("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
		}},
		{"truncated signature value", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			sv := a.FindElement("Signature/SignatureValue")
			sv.SetText(sv.Text()[:len(sv.Text())-3])
		}},
		{"truncated digest value", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			dv := a.FindElement("Signature/SignedInfo/Reference/DigestValue")
			dv.SetText(dv.Text()[:8])
		}},
		{"truncated certificate", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			c := a.FindElement("Signature/KeyInfo/X509Data/X509Certificate")
			c.SetText(c.Text()[:100])
		}},
		{"no KeyInfo", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			s := a.SelectElement("Signature")
			s.RemoveChild(s.SelectElement("KeyInfo"))
		}},
		{"wrong key in KeyInfo", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			c := a.FindElement("Signature/KeyInfo/X509Data/X509Certificate")
			c.SetText(b64(testPKI(t).otherRSACert.Raw))
		}},
		{"ECDSA method with RSA key", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.FindElement("Signature/SignedInfo/SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")
		}},
		{"signature in another namespace", func(t *testing.T, doc *etree.Document, a *etree.Element) {
			a.SelectElement("Signature").CreateAttr("xmlns:ds", "urn:not-dsig")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, a := signTestAssertion(t, c)
			tt.tamper(t, doc, a)
			// Verify both in memory and as a receiver sees the bytes.
			if _, err := verifyEnveloped(a, "ID"); !errors.Is(err, ErrBadSignature) {
				t.Errorf("in memory: got %v, want ErrBadSignature", err)
			}
			el := reparse(t, docBytes(t, doc), "/Security/Assertion")
			if _, err := verifyEnveloped(el, "ID"); !errors.Is(err, ErrBadSignature) {
				t.Errorf("re-parsed: got %v, want ErrBadSignature", err)
			}
		})
	}
}

// A signature made by someone else's key over the same content, with the
// genuine certificate in KeyInfo, must fail.
func TestVerifyEnvelopedWrongSigner(t *testing.T) {
	p := testPKI(t)
	doc := etree.NewDocument()
	if err := doc.ReadFromString(testAssertionDoc); err != nil {
		t.Fatal(err)
	}
	a := doc.FindElement("//Assertion")
	if err := signEnveloped(a, "ID", nil, p.otherRSA, []*x509.Certificate{p.rsaCert}, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyEnveloped(a, "ID"); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

// Signatures made elsewhere may declare an InclusiveNamespaces PrefixList;
// ours do not, so build one by re-signing with the list on both
// CanonicalizationMethod and the exc-c14n transform.
func TestVerifyEnvelopedPrefixList(t *testing.T) {
	p := testPKI(t)
	doc := etree.NewDocument()
	if err := doc.ReadFromString(testAssertionDoc); err != nil {
		t.Fatal(err)
	}
	a := doc.FindElement("//Assertion")
	canon, err := canonicalInContext(a, "xs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(canon, []byte(`xmlns:xs="`+NSXS+`"`)) {
		t.Fatalf("PrefixList xs not honoured: %s", canon)
	}
	ref := dsReference{URI: "#_a1b2c3", Transforms: []string{algEnveloped, algExcC14N}, Hash: crypto.SHA256, Digest: sigDigest(crypto.SHA256, canon)}
	sig := newSignatureElement("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", []dsReference{ref})
	for _, m := range []*etree.Element{sig.FindElement("SignedInfo/CanonicalizationMethod"), sig.FindElement("SignedInfo/Reference/Transforms/Transform[2]")} {
		m.CreateElement("ec:InclusiveNamespaces").CreateAttr("xmlns:ec", algExcC14N)
		m.SelectElement("InclusiveNamespaces").CreateAttr("PrefixList", "xs")
	}
	a.InsertChildAt(0, sig)
	// finishSignature canonicalizes SignedInfo without a list; do it here
	// with one, as the foreign signer would.
	si := sig.SelectElement("SignedInfo")
	sc, err := canonicalInContext(si, "xs", nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.rsaKey.Sign(rand.Reader, sigDigest(crypto.SHA256, sc), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sig.CreateElement("ds:SignatureValue").SetText(b64(v))
	sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").SetText(b64(p.rsaCert.Raw))
	if _, err := verifyEnveloped(a, "ID"); err != nil {
		t.Fatal(err)
	}
	xmlsec1Verify(t, docBytes(t, doc), samlIDAttr...)
}

func TestSignEnvelopedRefuses(t *testing.T) {
	p := testPKI(t)
	parse := func() *etree.Element {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(testAssertionDoc); err != nil {
			t.Fatal(err)
		}
		return doc.FindElement("//Assertion")
	}
	certs := []*x509.Certificate{p.rsaCert}
	if err := signEnveloped(parse(), "Id", nil, p.rsaKey, certs, crypto.SHA256); err == nil {
		t.Error("signed an element without the id attribute")
	}
	a := parse()
	if err := signEnveloped(a, "ID", etree.NewElement("x"), p.rsaKey, certs, crypto.SHA256); err == nil {
		t.Error("inserted after a foreign element")
	}
	if err := signEnveloped(a, "ID", nil, p.rsaKey, certs, crypto.MD5); err == nil {
		t.Error("signed with MD5")
	}
	if err := signEnveloped(a, "ID", nil, p.ecKey, []*x509.Certificate{p.ecCert}, crypto.SHA1); err == nil {
		t.Error("signed ECDSA with SHA-1")
	}
	if err := signEnveloped(a, "ID", nil, p.rsaKey, nil, crypto.SHA256); err == nil {
		t.Error("signed without a certificate")
	}
	if a.SelectElement("Signature") != nil {
		t.Error("a failed signing left a Signature behind")
	}
	if err := signEnveloped(a, "ID", nil, p.rsaKey, certs, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := signEnveloped(a, "ID", nil, p.rsaKey, certs, crypto.SHA256); err == nil {
		t.Error("signed twice")
	}
}

func b64(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(len(b), 57)
		s.WriteString(base64.StdEncoding.EncodeToString(b[:n]))
		s.WriteByte('\n')
		b = b[n:]
	}
	return s.String()
}

func FuzzVerifyEnveloped(f *testing.F) {
	p, err := newSigTestPKI()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range sigCases {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(testAssertionDoc); err != nil {
			f.Fatal(err)
		}
		a := doc.FindElement("//Assertion")
		signer, cert := c.signer(p)
		if err := signEnveloped(a, "ID", a.SelectElement("Issuer"), signer, []*x509.Certificate{cert}, c.hash); err != nil {
			f.Fatal(err)
		}
		b, err := doc.WriteToBytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(testAssertionDoc))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil {
			return
		}
		for _, el := range doc.FindElements("//[@ID]") {
			vs, err := verifyEnveloped(el, "ID")
			switch {
			case err != nil && !errors.Is(err, ErrBadSignature):
				t.Fatalf("error does not wrap ErrBadSignature: %v", err)
			case err == nil && (vs == nil || vs.Certificate == nil || vs.Hash == 0):
				t.Fatalf("verified without a result: %+v", vs)
			}
		}
	})
}
