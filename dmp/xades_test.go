package dmp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

var xadesIDAttrs = []string{
	"--id-attr:Id", "http://www.w3.org/2000/09/xmldsig#:Manifest",
	"--id-attr:Id", "http://uri.etsi.org/01903/v1.1.1#:SignedProperties",
	// The Manifest's urn:oid: references cannot be resolved; the DSG
	// profile leaves their checking to the application (the registry).
	"--ignore-manifests",
}

func xadesRequest(t *testing.T, c sigCase) XAdESRequest {
	t.Helper()
	signer, cert := c.signer(testPKI(t))
	cda := []byte("<ClinicalDocument/>")
	pdf := []byte("%PDF-1.4 ...")
	dig := func(b []byte) []byte {
		if c.hash == crypto.SHA1 {
			s := sha1.Sum(b)
			return s[:]
		}
		s := sha256.Sum256(b)
		return s[:]
	}
	return XAdESRequest{
		SubmissionSetUniqueID: "1.2.250.1.999.1.1.7898.1.1622814651504",
		Documents: []ManifestEntry{
			{UniqueID: "1.2.250.1.999.1.1.7898.3.1622814651504", Digest: dig(cda)},
			{UniqueID: "1.2.250.1.999.1.1.7898.3.1622814651505", Digest: dig(pdf)},
		},
		SigningTime: time.Date(2024, 5, 2, 14, 20, 12, 282e6, time.FixedZone("CEST", 2*3600)),
		Hash:        c.hash,
		Signer:      signer,
		Certs:       []*x509.Certificate{cert, testPKI(t).caCert},
	}
}

func TestSignSubmissionSet(t *testing.T) {
	if err := schemas.Available(); err != nil {
		t.Skip(err)
	}
	for _, c := range sigCases {
		t.Run(c.name, func(t *testing.T) {
			req := xadesRequest(t, c)
			doc, err := SignSubmissionSet(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.ValidateKind(context.Background(), "Signature", doc); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			info, err := VerifySubmissionSetSignature(doc)
			if err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if info.SubmissionSetUniqueID != req.SubmissionSetUniqueID || !info.SigningTime.Equal(req.SigningTime) || info.DigestHash != c.hash {
				t.Errorf("got %+v", info)
			}
			if len(info.Documents) != len(req.Documents) {
				t.Fatalf("documents: got %d, want %d", len(info.Documents), len(req.Documents))
			}
			for i, d := range info.Documents {
				if d.UniqueID != req.Documents[i].UniqueID || !bytes.Equal(d.Digest, req.Documents[i].Digest) {
					t.Errorf("document %d: got %+v, want %+v", i, d, req.Documents[i])
				}
			}
			if !info.Signature.Certificate.Equal(req.Certs[0]) || info.Signature.Hash != c.hash || info.Signature.Method != c.method {
				t.Errorf("signature: got %+v", info.Signature)
			}
			// The shape of the official example.
			for _, want := range []string{
				`URI="#IHEManifest"`, `Type="http://www.w3.org/2000/09/xmldsig#Manifest"`,
				`Type="http://uri.etsi.org/01903/v1.1.1#SignedProperties"`,
				`<ds:Reference URI="urn:oid:1.2.250.1.999.1.1.7898.1.1622814651504">`, `>AA==</ds:DigestValue>`,
				`<SignatureProperty Id="purposeOfSignature" Target="#sig-`, `>1.2.840.10065.1.12.1.14</SignatureProperty>`,
				`<xad:SigningTime>2024-05-02T14:20:12.282+02:00</xad:SigningTime>`,
				`<xad:SignaturePolicyImplied/>`, `<xad:SignedDataObjectProperties/>`,
				`<ds:X509IssuerName>CN=TEST AC IGC-SANTE ELEMENTAIRE PERSONNES`,
			} {
				if !strings.Contains(string(doc), want) {
					t.Errorf("no %s in\n%s", want, doc)
				}
			}
			xmlsec1Verify(t, doc, xadesIDAttrs...)
			forged := bytes.Replace(doc, []byte("2024-05-02T14:20"), []byte("2024-05-03T14:20"), 1)
			if _, err := xmlsec1Run(t, forged, xadesIDAttrs...); err == nil {
				t.Error("xmlsec1 accepted a forged signing time")
			}
		})
	}
}

func TestSignSubmissionSetRefuses(t *testing.T) {
	good := func() XAdESRequest { return xadesRequest(t, sigCases[0]) }
	tests := map[string]func(r *XAdESRequest){
		"no signer":          func(r *XAdESRequest) { r.Signer = nil },
		"no certificate":     func(r *XAdESRequest) { r.Certs = nil },
		"MD5":                func(r *XAdESRequest) { r.Hash = crypto.MD5 },
		"SHA-512":            func(r *XAdESRequest) { r.Hash = crypto.SHA512 },
		"bad set uniqueId":   func(r *XAdESRequest) { r.SubmissionSetUniqueID = "1.2.x" },
		"no document":        func(r *XAdESRequest) { r.Documents = nil },
		"bad doc uniqueId":   func(r *XAdESRequest) { r.Documents[0].UniqueID = "" },
		"short digest":       func(r *XAdESRequest) { r.Documents[1].Digest = r.Documents[1].Digest[:20] },
		"leading zero arc":   func(r *XAdESRequest) { r.Documents[0].UniqueID = "1.02.3" },
		"uniqueId too long":  func(r *XAdESRequest) { r.SubmissionSetUniqueID = "1." + strings.Repeat("2", 70) },
		"ecdsa with SHA-1":   func(r *XAdESRequest) { r.Signer, r.Hash = testPKI(t).ecKey, crypto.SHA1 },
		"empty manifest oid": func(r *XAdESRequest) { r.SubmissionSetUniqueID = "" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			r := good()
			mutate(&r)
			if _, err := SignSubmissionSet(r); err == nil {
				t.Error("signed")
			}
		})
	}
	// Defaults: SHA-256 and now.
	r := good()
	r.Hash, r.SigningTime = 0, time.Time{}
	doc, err := SignSubmissionSet(r)
	if err != nil {
		t.Fatal(err)
	}
	info, err := VerifySubmissionSetSignature(doc)
	if err != nil {
		t.Fatal(err)
	}
	if info.Signature.Hash != crypto.SHA256 || time.Since(info.SigningTime) > time.Minute {
		t.Errorf("defaults: got %v at %v", info.Signature.Hash, info.SigningTime)
	}
}

func TestVerifySubmissionSetSignatureRejects(t *testing.T) {
	doc, err := SignSubmissionSet(xadesRequest(t, sigCases[0]))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(root *etree.Element)) []byte {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(doc); err != nil {
			t.Fatal(err)
		}
		f(d.Root())
		b, err := d.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	replace := func(old, new string) []byte {
		if !bytes.Contains(doc, []byte(old)) {
			t.Fatalf("no %q", old)
		}
		return bytes.Replace(doc, []byte(old), []byte(new), 1)
	}
	tests := map[string][]byte{
		"document digest changed": edit(func(r *etree.Element) {
			r.FindElement("Object/Manifest/Reference[2]/DigestValue").SetText(b64std(make([]byte, 32)))
		}),
		"document uniqueId changed": replace("7898.3.1622814651505", "7898.3.1622814651506"),
		"set uniqueId changed":      replace("7898.1.1622814651504", "7898.1.1622814651505"),
		"signing time changed":      replace("2024-05-02T14:20:12.282", "2024-05-03T14:20:12.282"),
		"document added": edit(func(r *etree.Element) {
			m := r.FindElement("Object/Manifest")
			m.AddChild(m.SelectElements("Reference")[1].Copy())
		}),
		"manifest reference removed": edit(func(r *etree.Element) {
			si := r.SelectElement("SignedInfo")
			si.RemoveChild(si.SelectElements("Reference")[0])
		}),
		"properties reference removed": edit(func(r *etree.Element) {
			si := r.SelectElement("SignedInfo")
			si.RemoveChild(si.SelectElements("Reference")[1])
		}),
		"manifest moved out of the signature": edit(func(r *etree.Element) {
			// Wrapping: the Id now designates a forged manifest.
			m := r.FindElement("Object/Manifest")
			m.RemoveAttr("Id")
			forged := m.Copy()
			forged.CreateAttr("Id", "IHEManifest")
			forged.SelectElements("Reference")[1].CreateAttr("URI", "urn:oid:1.2.3")
			r.FindElement("Object").AddChild(forged)
		}),
		"duplicate Id": edit(func(r *etree.Element) {
			r.FindElement("Object/SignatureProperties/SignatureProperty").CreateAttr("Id", "IHEManifest")
		}),
		"types swapped": edit(func(r *etree.Element) {
			refs := r.SelectElement("SignedInfo").SelectElements("Reference")
			refs[0].CreateAttr("Type", typeSignedProperties)
			refs[1].CreateAttr("Type", typeManifest)
		}),
		"SigningCertificate of another certificate": edit(func(r *etree.Element) {
			r.FindElement(".//Cert/CertDigest/DigestValue").SetText(b64std(make([]byte, 32)))
		}),
		"signature value truncated": edit(func(r *etree.Element) {
			sv := r.SelectElement("SignatureValue")
			sv.SetText(sv.Text()[:100])
		}),
		"wrong key": edit(func(r *etree.Element) {
			r.FindElement("KeyInfo/X509Data/X509Certificate").SetText(b64std(testPKI(t).otherRSACert.Raw))
		}),
		"unknown digest": replace("http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384"),
		"manifest transform": edit(func(r *etree.Element) {
			ref := r.FindElement("Object/Manifest/Reference[2]")
			ref.InsertChildAt(0, etree.NewElement("ds:Transforms"))
		}),
		"not a signature": []byte(`<x/>`),
		"not XML":         []byte(`<ds:Signature`),
		"DTD":             append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), doc[bytes.Index(doc, []byte("<ds:Signature")):]...),
		"root without Id": edit(func(r *etree.Element) { r.RemoveAttr("Id") }),
		"properties target elsewhere": edit(func(r *etree.Element) {
			r.FindElement("Object/QualifyingProperties").CreateAttr("Target", "#other")
		}),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := VerifySubmissionSetSignature(b); !errors.Is(err, ErrBadSignature) {
				t.Errorf("got %v, want ErrBadSignature", err)
			}
		})
	}
}

func FuzzVerifySubmissionSetSignature(f *testing.F) {
	p, err := newSigTestPKI()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range sigCases {
		signer, cert := c.signer(p)
		doc, err := SignSubmissionSet(XAdESRequest{
			SubmissionSetUniqueID: "1.2.3.1",
			Documents:             []ManifestEntry{{UniqueID: "1.2.3.2", Digest: make([]byte, c.hash.Size())}},
			Hash:                  c.hash,
			Signer:                signer,
			Certs:                 []*x509.Certificate{cert},
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := VerifySubmissionSetSignature(b)
		switch {
		case err != nil && !errors.Is(err, ErrBadSignature):
			t.Fatalf("error does not wrap ErrBadSignature: %v", err)
		case err == nil && (info.Signature == nil || info.Signature.Certificate == nil || info.SubmissionSetUniqueID == "" || len(info.Documents) == 0):
			t.Fatalf("verified without a complete result: %+v", info)
		}
	})
}
