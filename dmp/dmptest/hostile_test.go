package dmptest_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
)

// rawPost sends msg to a service as the gp's TLS session and returns the
// decoded answer's fault, if any.
func rawPost(t *testing.T, s *dmptest.Server, tlsCert tls.Certificate, service string, msg []byte) error {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{tlsCert}, RootCAs: testPKI(t).RootPool()}}}
	resp, err := hc.Post(s.URL+"/"+service, dmp.SOAPContentType(dmp.ActionITI18), bytes.NewReader(msg))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	_, err = dmp.DecodeEnvelope[struct {
		Inner []byte `xml:",innerxml"`
	}](b)
	if err == nil && resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %s without a fault", resp.Status)
	}
	return err
}

func gpTLS(t *testing.T) tls.Certificate {
	p := testPKI(t)
	card, _ := p.Card("gp")
	return tls.Certificate{Certificate: [][]byte{card.Auth.Cert.Raw, p.PersonCA.Raw}, PrivateKey: card.Auth.Key}
}

const queryBody = `<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><query:ResponseOption returnComposedObjects="true" returnType="LeafClass"/><rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"><rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList><rim:Value>'207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH'</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList><rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value></rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>`

func TestHostileRequests(t *testing.T) {
	p := testPKI(t)
	s := newServer(t)
	gp := professional(t, "gp")
	card, _ := p.Card("gp")
	chain := []*x509.Certificate{card.Sign.Cert, p.PersonCA}
	vihf := func(signer crypto.Signer, certs []*x509.Certificate, now time.Time) []byte {
		v, err := dmp.BuildVIHF(gp, &insSingle, software, now, signer, certs, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	good := vihf(card.Sign.Key, chain, time.Now())
	addr := func() dmp.Addressing {
		return dmp.Addressing{MessageID: dmp.NewMessageID(), To: s.URL + "/registry", Action: dmp.ActionITI18, ReplyTo: dmp.AnonymousAddress}
	}
	envelope := func(a dmp.Addressing, sec []byte, body string) []byte { return dmp.BuildEnvelope(a, sec, []byte(body)) }
	noReplyTo := addr()
	noReplyTo.ReplyTo = ""
	tampered := bytes.Replace(good, []byte(gp.StructureID), []byte("499900000000001"), 1)
	ph, _ := p.Card("pharmacist")

	for _, tc := range []struct {
		name string
		msg  []byte
		code string
	}{
		{"valid", envelope(addr(), good, queryBody), ""},
		{"missing ReplyTo", envelope(noReplyTo, good, queryBody), dmptest.CodeAddressingRequired},
		{"no VIHF", envelope(addr(), nil, queryBody), dmp.CodeInvalidVIHF},
		{"VIHF signed with the authentication key", envelope(addr(), vihf(card.Auth.Key, []*x509.Certificate{card.Auth.Cert, p.PersonCA}, time.Now()), queryBody), dmp.CodeInvalidCertificate},
		{"VIHF of another professional", envelope(addr(), vihf(ph.Sign.Key, []*x509.Certificate{ph.Sign.Cert, p.PersonCA}, time.Now()), queryBody), dmp.CodeInvalidCertificate},
		{"tampered VIHF", envelope(addr(), tampered, queryBody), dmp.CodeInvalidSignature},
		{"unsigned VIHF", envelope(addr(), unsign(t, good), queryBody), dmp.CodeInvalidSignature},
		{"VIHF from tomorrow", envelope(addr(), vihf(card.Sign.Key, chain, time.Now().Add(24*time.Hour)), queryBody), dmp.CodeInvalidVIHF},
		{"stale VIHF", envelope(addr(), vihf(card.Sign.Key, chain, time.Now().Add(-48*time.Hour)), queryBody), dmp.CodeInvalidVIHF},
		{"schema-invalid body", envelope(addr(), good, strings.Replace(queryBody, "<query:ResponseOption", "<query:Bogus/><query:ResponseOption", 1)), dmp.CodeInvalidRequest},
		{"malformed XML", []byte(`<soap:Envelope xmlns:soap="` + dmp.NSSOAP + `"><soap:Body>`), dmp.CodeInvalidRequest},
		{"external entity", []byte(`<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + string(envelope(addr(), good, queryBody))), dmp.CodeInvalidRequest},
		{"entity expansion", []byte(`<!DOCTYPE e [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>` + string(envelope(addr(), good, queryBody))), dmp.CodeInvalidRequest},
		{"oversized", envelope(addr(), good, queryBody[:len(queryBody)-len("</query:AdhocQueryRequest>")]+"<!--"+strings.Repeat("x", dmp.MaxMessage)+"--></query:AdhocQueryRequest>"), dmp.CodeInvalidRequest},
		{"SOAP 1.1", []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`), dmp.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rawPost(t, s, gpTLS(t), "registry", tc.msg)
			var f *dmp.Fault
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("valid request refused: %v", err)
			case tc.code == "":
			case !errors.As(err, &f) || f.Code != tc.code:
				t.Fatalf("got %v, want fault %s", err, tc.code)
			}
		})
	}
}

// unsign removes the signature of a VIHF.
func unsign(t *testing.T, v []byte) []byte {
	i := bytes.Index(v, []byte("<ds:Signature"))
	j := bytes.Index(v, []byte("</ds:Signature>"))
	if i < 0 || j < 0 {
		t.Fatal("no signature to remove")
	}
	return append(append([]byte(nil), v[:i]...), v[j+len("</ds:Signature>"):]...)
}

func TestForeignAndExpiredCertificates(t *testing.T) {
	s := newServer(t)
	gp := professional(t, "gp")
	// A foreign certificate: same subject, self-signed.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: gp.IDNat},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	foreign := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	c := clientFor(t, s, "gp", func(cfg *dmp.Config) { cfg.TLS.Certificates = []tls.Certificate{foreign} })
	_, err := c.Search(t.Context(), gp, dmp.StoredQuery{Patient: insSingle})
	var f *dmp.Fault
	if !errors.As(err, &f) || f.Code != dmp.CodeInvalidCertificate {
		t.Fatalf("foreign certificate: %v", err)
	}
	// Expired: the server's clock is past the card certificates' end.
	late := newServer(t, func(cfg *dmptest.Config) { cfg.Now = func() time.Time { return time.Now().AddDate(10, 0, 0) } })
	_, err = clientFor(t, late, "gp").Search(t.Context(), gp, dmp.StoredQuery{Patient: insSingle})
	if !errors.As(err, &f) || f.Code != dmp.CodeInvalidCertificate || !strings.Contains(f.Message, "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
}
