package dmptest_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/dmptest"
	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
	"github.com/dmpagent/dmpagent/testcards/cardtest"
	"github.com/dmpagent/dmpagent/testcards/persona"
	"github.com/dmpagent/dmpagent/testcards/pki"
)

// testPKI is the test IGC-Santé shared by the test processes.
func testPKI(t testing.TB) *pki.PKI { return cardtest.PKI(t) }

// newServer starts a simulated DMP on the test PKI, validating every
// message against the schemas when they are available.
func newServer(t testing.TB, opts ...func(*dmptest.Config)) *dmptest.Server {
	t.Helper()
	p := testPKI(t)
	cert, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(p.PersonCA)
	cfg := dmptest.Config{Dir: t.TempDir(), Certificate: cert, Roots: p.RootPool(), Intermediates: inter, Validate: schemas.Available() == nil}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := dmptest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var software = dmp.Software{Name: "dmpagent", Version: "test", ID: "1.2.250.1.999.1.1", Homologation: "TEST-0001"}

// professional is a CPS persona as the dmp package sees it.
func professional(t testing.TB, name string) dmp.Actor {
	t.Helper()
	p, err := persona.LookupProfessional(name)
	if err != nil {
		t.Fatal(err)
	}
	return dmp.Actor{Professional: dmp.Professional{
		IDNat: p.IDNat, Surname: p.Surname, GivenName: p.GivenName, Profession: p.ProfessionCode,
		ProfessionLabel: p.ProfessionLabel, Specialty: p.Specialty, StructureID: p.StructureID,
		StructureName: p.StructureName, Sector: p.Sector,
	}}
}

// clientFor is a DMP client with the persona's card keys (software keys of
// the test PKI: the card stack is not the point here).
func clientFor(t testing.TB, s *dmptest.Server, name string, opts ...func(*dmp.Config)) *dmp.Client {
	t.Helper()
	p := testPKI(t)
	card, err := p.Card(name)
	if err != nil {
		t.Fatal(err)
	}
	tlsCert := tls.Certificate{Certificate: [][]byte{card.Auth.Cert.Raw, p.PersonCA.Raw}, PrivateKey: card.Auth.Key, Leaf: card.Auth.Cert}
	cfg := dmp.Config{
		BaseURL: s.URL,
		TLS:     &tls.Config{Certificates: []tls.Certificate{tlsCert}, RootCAs: p.RootPool(), MinVersion: tls.VersionTLS12},
		Signer:  card.Sign.Key, Certificates: []*x509.Certificate{card.Sign.Cert, p.PersonCA},
		Software: software, ProcessingCode: "D",
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := dmp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The patients of the Vitale personas.
var (
	insSingle = dmp.INS{Value: "207058575627097", OID: dmp.OIDINSNIRTest}
	insFamily = dmp.INS{Value: "275126322074974", OID: dmp.OIDINSNIRTest}
)
