// Package pki owns the test public-key infrastructure of the simulation: a
// copy of the shape of the French IGC-Santé (a root, a "FORT PERSONNES" CA for
// CPS cards and a "FORT SERVICES APPLICATIFS" CA for servers) whose every CA
// name says TEST, so that nothing it issues can be mistaken for a real
// certificate. It issues the three certificates of every emulated CPS card
// (persona.Professionals) and the TLS certificate of the simulated DMP.
//
// Keys are generated once and kept on disk, so that the agent, the card
// emulators, the simulated DMP and the tests of separate processes all agree
// on the same certificates. LoadOrCreate publishes a new PKI by renaming a
// fully written temporary directory into place: a directory that exists under
// the final name is complete, and when several processes race to create it
// the losers load what the winner wrote.
//
// On-disk layout of dir (directories 0700, private keys 0600, all PEM;
// certificates in X.509 "CERTIFICATE" blocks, keys in PKCS #8 "PRIVATE KEY"
// blocks, so openssl reads them as they are):
//
//	VERSION                    format marker; its presence means "complete"
//	README.txt                 what this is, for a human who finds it
//	root.pem, root.key         TEST AC RACINE IGC-SANTE FORT (self-signed)
//	personnes-ca.pem, .key     TEST AC IGC-SANTE FORT PERSONNES
//	services-ca.pem, .key      TEST AC IGC-SANTE FORT SERVICES APPLICATIFS
//	intermediates.pem          both intermediate certificates, for -untrusted
//	server.crt, server.key     the simulated DMP (localhost), leaf only
//	cards/<persona>/auth.crt, auth.key          PIV slot 9A, RSA-2048
//	cards/<persona>/sign.crt, sign.key          PIV slot 9C, RSA-2048
//	cards/<persona>/cardauth.crt, cardauth.key  PIV slot 9E, ECDSA P-256
//
// A directory that lacks a card for a current persona, or whose
// certificates have expired, is refused with an error that says to delete it:
// it is never rewritten in place, because other processes may be using it.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dmpagent/dmpagent/testcards/persona"
)

// PKI is a loaded test PKI. Its certificates and keys are shared by every
// caller and must not be modified.
type PKI struct {
	Dir       string // absolute path of the directory it lives in
	Root      *x509.Certificate
	PersonCA  *x509.Certificate
	ServiceCA *x509.Certificate

	rootKey, personKey, serviceKey crypto.Signer
	server                         KeyPair
	cards                          map[string]CardKeys
}

// KeyPair is a certificate and its private key, an *rsa.PrivateKey or an
// *ecdsa.PrivateKey.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CardKeys holds what goes on one emulated CPS card, by PIV slot.
type CardKeys struct {
	Auth     KeyPair // slot 9A, "Certificat d'Authentification CPS"
	Sign     KeyPair // slot 9C, "Certificat de Signature CPS"
	CardAuth KeyPair // slot 9E, contactless card authentication
}

// Usage selects the profile of a card certificate.
type Usage int

// Card certificate profiles, one per PIV slot.
const (
	UsageAuth     Usage = iota // 9A: TLS client authentication
	UsageSign                  // 9C: non-repudiation signature
	UsageCardAuth              // 9E: card authentication
)

func (u Usage) String() string {
	switch u {
	case UsageAuth:
		return "auth"
	case UsageSign:
		return "sign"
	case UsageCardAuth:
		return "cardauth"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

var usages = []Usage{UsageAuth, UsageSign, UsageCardAuth}

const (
	version         = "dmpagent test PKI v1\n"
	cardValidity    = 3 // years, like a CPS
	caValidity      = 10
	rootValidity    = 20
	backdate        = 24 * time.Hour // tolerates clocks a little behind the creator's
	keyPerm         = 0o600
	certPerm        = 0o644
	dirPerm         = 0o700
	versionFile     = "VERSION"
	rootCertFile    = "root.pem"
	rootKeyFile     = "root.key"
	personCertFile  = "personnes-ca.pem"
	personKeyFile   = "personnes-ca.key"
	serviceCertFile = "services-ca.pem"
	serviceKeyFile  = "services-ca.key"
	interFile       = "intermediates.pem"
	serverCertFile  = "server.crt"
	serverKeyFile   = "server.key"
	cardsDir        = "cards"
)

// caName returns the DER subject of an IGC-Santé CA, with its CN and OU
// marked TEST:
// "CN=<cn>,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR". It is built
// by hand because pkix.Name folds the two OUs into one multi-valued RDN,
// where IGC-Santé has two RDNs.
func caName(cn string) []byte {
	der, err := nameDER(
		[]attribute{attr(oidCountry, asn1.TagPrintableString, "FR")},
		[]attribute{attr(oidOrganization, asn1.TagPrintableString, "ASIP-SANTE")},
		[]attribute{attr(oidOrgUnit, asn1.TagPrintableString, "0002 187512751")},
		[]attribute{attr(oidOrgUnit, asn1.TagPrintableString, "IGC-SANTE TEST")},
		[]attribute{attr(oidCommonName, asn1.TagPrintableString, cn)},
	)
	if err != nil {
		panic(err) // fixed ASCII strings always encode
	}
	return der
}

var (
	rootName    = caName("TEST AC RACINE IGC-SANTE FORT")
	personName  = caName("TEST AC IGC-SANTE FORT PERSONNES")
	serviceName = caName("TEST AC IGC-SANTE FORT SERVICES APPLICATIFS")
	// One value per attribute type, so pkix.Name encodes it as written.
	serverName = pkix.Name{
		CommonName:         "localhost",
		OrganizationalUnit: []string{"TEST DMP SIMULE"},
		Organization:       []string{"ASIP-SANTE TEST"},
		Country:            []string{"FR"},
	}
)

// Creating a PKI costs half a second or more of RSA key generation; goroutines of one
// process that ask for the same directory wait for one creation instead of
// each generating a PKI that all but one would throw away.
var (
	dirLocksMu sync.Mutex
	dirLocks   = map[string]*sync.Mutex{}
)

func dirLock(dir string) *sync.Mutex {
	dirLocksMu.Lock()
	defer dirLocksMu.Unlock()
	l, ok := dirLocks[dir]
	if !ok {
		l = new(sync.Mutex)
		dirLocks[dir] = l
	}
	return l
}

// LoadOrCreate loads the test PKI kept in dir, generating and publishing it
// first if dir does not exist or is an empty directory.
func LoadOrCreate(dir string) (*PKI, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	l := dirLock(abs)
	l.Lock()
	defer l.Unlock()

	switch state, err := dirState(abs); {
	case err != nil:
		return nil, err
	case state == stateComplete:
		return load(abs)
	case state == stateForeign:
		return nil, fmt.Errorf("test PKI: %s exists and is not a test PKI (no %s); refusing to touch it", abs, versionFile)
	}
	return create(abs)
}

type state int

const (
	stateMissing  state = iota // absent, or an empty directory
	stateComplete              // holds VERSION, so it was published whole
	stateForeign               // holds something else
)

func dirState(dir string) (state, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return stateMissing, nil
	case err != nil:
		return 0, fmt.Errorf("test PKI: %w", err)
	case len(entries) == 0:
		return stateMissing, nil
	}
	if _, err := os.Stat(filepath.Join(dir, versionFile)); err == nil {
		return stateComplete, nil
	}
	return stateForeign, nil
}

// create generates a PKI beside dir and renames it into place.
func create(dir string) (*PKI, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, dirPerm); err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once the rename has succeeded

	p, err := generate(time.Now())
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	if err := p.write(tmp); err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	// Renaming a directory onto an empty one works on Unix but not on
	// Windows; removing the empty one first works on both, and os.Remove
	// refuses a directory that a concurrent creator has just filled.
	_ = os.Remove(dir)
	if err := os.Rename(tmp, dir); err != nil {
		// Most likely another process published first: use its PKI, so
		// that every process ends up with the same certificates.
		if state, serr := dirState(dir); serr == nil && state == stateComplete {
			return load(dir)
		}
		return nil, fmt.Errorf("test PKI: publishing %s: %w", dir, err)
	}
	p.Dir = dir
	return p, nil
}

// generate makes a whole PKI in memory.
func generate(now time.Time) (*PKI, error) {
	pros := persona.Professionals()
	// RSA key generation is nearly all of the cost; run it on every core.
	nRSA := 3 + 2*len(pros)
	rsaKeys := make([]*rsa.PrivateKey, nRSA)
	errs := make([]error, nRSA)
	var wg sync.WaitGroup
	for i := range rsaKeys {
		wg.Go(func() { rsaKeys[i], errs[i] = rsa.GenerateKey(rand.Reader, 2048) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	p := &PKI{
		rootKey:    rsaKeys[0],
		personKey:  rsaKeys[1],
		serviceKey: rsaKeys[2],
		cards:      make(map[string]CardKeys, len(pros)),
	}
	var err error
	if p.Root, err = sign(caTemplate(rootName, notBefore, rootValidity, -1), nil, p.rootKey.Public(), p.rootKey); err != nil {
		return nil, err
	}
	if p.PersonCA, err = sign(caTemplate(personName, notBefore, caValidity, 0), p.Root, p.personKey.Public(), p.rootKey); err != nil {
		return nil, err
	}
	if p.ServiceCA, err = sign(caTemplate(serviceName, notBefore, caValidity, 0), p.Root, p.serviceKey.Public(), p.rootKey); err != nil {
		return nil, err
	}

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	st := leafTemplate(notBefore, cardValidity)
	st.Subject = serverName
	st.DNSNames = []string{"localhost"}
	st.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	st.KeyUsage = x509.KeyUsageDigitalSignature
	st.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverCert, err := sign(st, p.ServiceCA, serverKey.Public(), p.serviceKey)
	if err != nil {
		return nil, err
	}
	p.server = KeyPair{serverCert, serverKey}

	for i, pro := range pros {
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		keys := map[Usage]crypto.Signer{
			UsageAuth:     rsaKeys[3+2*i],
			UsageSign:     rsaKeys[4+2*i],
			UsageCardAuth: ecKey,
		}
		certs := map[Usage]*x509.Certificate{}
		for _, u := range usages {
			if certs[u], err = p.issue(pro, u, keys[u].Public(), notBefore); err != nil {
				return nil, fmt.Errorf("card %s %s: %w", pro.Name, u, err)
			}
		}
		p.cards[pro.Name] = CardKeys{
			Auth:     KeyPair{certs[UsageAuth], keys[UsageAuth]},
			Sign:     KeyPair{certs[UsageSign], keys[UsageSign]},
			CardAuth: KeyPair{certs[UsageCardAuth], keys[UsageCardAuth]},
		}
	}
	return p, nil
}

func caTemplate(name []byte, notBefore time.Time, years, maxPathLen int) *x509.Certificate {
	t := leafTemplate(notBefore, years)
	t.RawSubject = name
	t.IsCA = true
	t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	t.MaxPathLen = maxPathLen
	t.MaxPathLenZero = maxPathLen == 0
	return t
}

func leafTemplate(notBefore time.Time, years int) *x509.Certificate {
	return &x509.Certificate{
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(years, 0, 0),
		BasicConstraintsValid: true,
	}
}

// sign completes a template with a serial and key identifier and signs it
// with SHA-256; a nil parent makes it self-signed.
func sign(t, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	// 127 random bits: unique enough and, positive, within RFC 5280's 20 octets.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	t.SerialNumber = serial.Add(serial, big.NewInt(1))
	if t.SubjectKeyId, err = keyID(pub); err != nil {
		return nil, err
	}
	if parent == nil {
		parent = t
	}
	switch key.(type) {
	case *rsa.PrivateKey:
		t.SignatureAlgorithm = x509.SHA256WithRSA
	case *ecdsa.PrivateKey:
		t.SignatureAlgorithm = x509.ECDSAWithSHA256
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// keyID follows RFC 7093 method 1 (leftmost 160 bits of the SHA-256 of the
// subjectPublicKey bits), so that chains can be matched by key identifier.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// Issue signs, with the PERSONNES CA, a card certificate of the given profile
// for a key that lives elsewhere, such as on a hardware PIV token being
// provisioned. The certificate is valid from a day ago for three years.
func (p *PKI) Issue(pro persona.Professional, usage Usage, pub crypto.PublicKey) (*x509.Certificate, error) {
	return p.issue(pro, usage, pub, time.Now().Add(-backdate).UTC().Truncate(time.Second))
}

func (p *PKI) issue(pro persona.Professional, usage Usage, pub crypto.PublicKey, notBefore time.Time) (*x509.Certificate, error) {
	if pub == nil {
		return nil, errors.New("issue: no public key")
	}
	subject, err := CardSubject(pro)
	if err != nil {
		return nil, err
	}
	t := leafTemplate(notBefore, cardValidity)
	t.RawSubject = subject
	switch usage {
	case UsageAuth:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		// Key encipherment only means something for RSA (TLS 1.2 RSA key
		// exchange); on an EC key openssl and others call it an error.
		if _, ok := pub.(*rsa.PublicKey); ok {
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case UsageSign:
		t.KeyUsage = x509.KeyUsageContentCommitment | x509.KeyUsageDigitalSignature
	case UsageCardAuth:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("issue: unknown %v", usage)
	}
	return sign(t, p.PersonCA, pub, p.personKey)
}

var (
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit      = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidTitle        = asn1.ObjectIdentifier{2, 5, 4, 12}
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
)

// CardSubject returns the DER RDNSequence of a CPS certificate subject,
// "CN=<IDNat>+SN=<Surname>+GN=<GivenName>,T=<ProfessionLabel>,C=FR" in
// RFC 4514 form. It is built by hand because pkix.Name cannot express the
// multi-valued RDN. C is a PrintableString as RFC 5280 requires; the others
// are UTF8Strings, the DirectoryString choice RFC 5280 asks of new
// certificates, which also carries accents such as Médecin's.
func CardSubject(pro persona.Professional) ([]byte, error) {
	for _, f := range []struct{ name, v string }{
		{"IDNat", pro.IDNat}, {"Surname", pro.Surname}, {"GivenName", pro.GivenName}, {"ProfessionLabel", pro.ProfessionLabel},
	} {
		if f.v == "" || !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("card subject of %q: %s %q is empty or not UTF-8", pro.Name, f.name, f.v)
		}
	}
	// ASN.1 order runs from the most general RDN; RFC 4514 prints it reversed.
	return nameDER(
		[]attribute{attr(oidCountry, asn1.TagPrintableString, "FR")},
		[]attribute{attr(oidTitle, asn1.TagUTF8String, pro.ProfessionLabel)},
		[]attribute{
			attr(oidCommonName, asn1.TagUTF8String, pro.IDNat),
			attr(oidSurname, asn1.TagUTF8String, pro.Surname),
			attr(oidGivenName, asn1.TagUTF8String, pro.GivenName),
		},
	)
}

// nameDER encodes an RDNSequence, one RDN per argument, in ASN.1 order.
func nameDER(rdns ...[]attribute) ([]byte, error) {
	enc := make([][]byte, len(rdns))
	for i, attrs := range rdns {
		var err error
		if enc[i], err = rdn(attrs...); err != nil {
			return nil, err
		}
	}
	return asn1.Marshal(asn1.RawValue{
		Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: bytes.Join(enc, nil),
	})
}

type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

func attr(oid asn1.ObjectIdentifier, tag int, v string) attribute {
	return attribute{oid, asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(v)}}
}

// rdn encodes a RelativeDistinguishedName, a SET OF whose DER form
// (X.690 §11.6) lists the encoded elements in ascending byte order.
func rdn(attrs ...attribute) ([]byte, error) {
	enc := make([][]byte, len(attrs))
	for i, a := range attrs {
		var err error
		if enc[i], err = asn1.Marshal(a); err != nil {
			return nil, err
		}
	}
	sort.Slice(enc, func(i, j int) bool { return bytes.Compare(enc[i], enc[j]) < 0 })
	return asn1.Marshal(asn1.RawValue{
		Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true,
		Bytes: bytes.Join(enc, nil),
	})
}

// Card returns the keys and certificates of the named CPS persona's card.
func (p *PKI) Card(name string) (CardKeys, error) {
	c, ok := p.cards[name]
	if !ok {
		if _, err := persona.LookupProfessional(name); err != nil {
			return CardKeys{}, fmt.Errorf("test PKI: %w", err)
		}
		return CardKeys{}, fmt.Errorf("test PKI in %s has no card for %q", p.Dir, name)
	}
	return c, nil
}

// Server returns the TLS certificate of the simulated DMP (ECDSA P-256, for
// localhost, 127.0.0.1 and ::1), with the SERVICES CA in its chain so that a
// client needs only the root.
func (p *PKI) Server() (tls.Certificate, error) {
	if p.server.Cert == nil {
		return tls.Certificate{}, errors.New("test PKI: no server certificate")
	}
	return tls.Certificate{
		Certificate: [][]byte{p.server.Cert.Raw, p.ServiceCA.Raw},
		PrivateKey:  p.server.Key,
		Leaf:        p.server.Cert,
	}, nil
}

// RootPool returns a new pool holding only the test root, for the caller to
// keep or extend.
func (p *PKI) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root)
	return pool
}

// RootFile returns the path of the root certificate (PEM).
func (p *PKI) RootFile() string { return filepath.Join(p.Dir, rootCertFile) }

// IntermediatesFile returns the path of a PEM bundle holding both
// intermediate CAs.
func (p *PKI) IntermediatesFile() string { return filepath.Join(p.Dir, interFile) }

const readme = `TEST PKI — NOT IGC-SANTE

This directory holds a test public-key infrastructure generated by dmpagent
(package testcards/pki) for the simulation. It imitates the shape of the
IGC-Santé, but every CA name carries TEST and nothing it issues is trusted
anywhere else. The keys are deliberately kept unencrypted on disk.

Delete the whole directory to have a new one generated. Do not edit it: the
presence of VERSION tells dmpagent the directory is complete.

Check a card certificate with:
  openssl verify -CAfile root.pem -untrusted intermediates.pem cards/gp/auth.crt
`

// write stores the PKI under dir, VERSION last.
func (p *PKI) write(dir string) error {
	type file struct {
		name string
		data []byte
		perm os.FileMode
	}
	files := []file{
		{"README.txt", []byte(readme), certPerm},
		{rootCertFile, certPEM(p.Root), certPerm},
		{personCertFile, certPEM(p.PersonCA), certPerm},
		{serviceCertFile, certPEM(p.ServiceCA), certPerm},
		{interFile, append(certPEM(p.PersonCA), certPEM(p.ServiceCA)...), certPerm},
		{serverCertFile, certPEM(p.server.Cert), certPerm},
	}
	keys := map[string]crypto.Signer{
		rootKeyFile: p.rootKey, personKeyFile: p.personKey, serviceKeyFile: p.serviceKey, serverKeyFile: p.server.Key,
	}
	for name, c := range p.cards {
		if err := os.MkdirAll(filepath.Join(dir, cardsDir, name), dirPerm); err != nil {
			return err
		}
		for u, kp := range c.byUsage() {
			base := filepath.Join(cardsDir, name, u.String())
			files = append(files, file{base + ".crt", certPEM(kp.Cert), certPerm})
			keys[base+".key"] = kp.Key
		}
	}
	for name, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files = append(files, file{name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), keyPerm})
	}
	files = append(files, file{versionFile, []byte(version), certPerm})
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

func (c CardKeys) byUsage() map[Usage]KeyPair {
	return map[Usage]KeyPair{UsageAuth: c.Auth, UsageSign: c.Sign, UsageCardAuth: c.CardAuth}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// load reads a published PKI and checks that it is whole, current and
// consistent, so that a damaged directory fails here rather than as a
// puzzling handshake error later.
func load(dir string) (*PKI, error) {
	v, err := os.ReadFile(filepath.Join(dir, versionFile))
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	if string(v) != version {
		return nil, fmt.Errorf("test PKI in %s has format %q, want %q: delete the directory to regenerate it", dir, bytes.TrimSpace(v), version[:len(version)-1])
	}
	p := &PKI{Dir: dir, cards: map[string]CardKeys{}}
	var root, person, service, server KeyPair
	for _, x := range []struct {
		kp        *KeyPair
		cert, key string
	}{
		{&root, rootCertFile, rootKeyFile},
		{&person, personCertFile, personKeyFile},
		{&service, serviceCertFile, serviceKeyFile},
		{&server, serverCertFile, serverKeyFile},
	} {
		if *x.kp, err = readPair(dir, x.cert, x.key); err != nil {
			return nil, err
		}
	}
	p.Root, p.rootKey = root.Cert, root.Key
	p.PersonCA, p.personKey = person.Cert, person.Key
	p.ServiceCA, p.serviceKey = service.Cert, service.Key
	p.server = server
	for _, pro := range persona.Professionals() {
		var c CardKeys
		for _, x := range []struct {
			kp *KeyPair
			u  Usage
		}{{&c.Auth, UsageAuth}, {&c.Sign, UsageSign}, {&c.CardAuth, UsageCardAuth}} {
			base := filepath.Join(cardsDir, pro.Name, x.u.String())
			if *x.kp, err = readPair(dir, base+".crt", base+".key"); err != nil {
				return nil, fmt.Errorf("%w (a persona added since the PKI was made? delete %s to regenerate it)", err, dir)
			}
		}
		p.cards[pro.Name] = c
	}

	now := time.Now()
	check := []*x509.Certificate{p.Root, p.PersonCA, p.ServiceCA, p.server.Cert}
	for _, c := range p.cards {
		check = append(check, c.Auth.Cert, c.Sign.Cert, c.CardAuth.Cert)
	}
	for _, c := range check {
		if now.After(c.NotAfter) {
			return nil, fmt.Errorf("test PKI in %s: certificate %q expired on %s: delete the directory to regenerate it", dir, c.Subject, c.NotAfter.Format(time.DateOnly))
		}
	}
	return p, nil
}

// readPair reads a certificate and its key and checks that they match.
func readPair(dir, certName, keyName string) (KeyPair, error) {
	cb, err := readPEM(filepath.Join(dir, certName), "CERTIFICATE")
	if err != nil {
		return KeyPair{}, err
	}
	cert, err := x509.ParseCertificate(cb)
	if err != nil {
		return KeyPair{}, fmt.Errorf("test PKI: %s: %w", certName, err)
	}
	kb, err := readPEM(filepath.Join(dir, keyName), "PRIVATE KEY")
	if err != nil {
		return KeyPair{}, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb)
	if err != nil {
		return KeyPair{}, fmt.Errorf("test PKI: %s: %w", keyName, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return KeyPair{}, fmt.Errorf("test PKI: %s: %T is not a signing key", keyName, k)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return KeyPair{}, fmt.Errorf("test PKI: %s does not match %s", keyName, certName)
	}
	return KeyPair{cert, key}, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("test PKI: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("test PKI: %s: no %s PEM block", path, typ)
	}
	return b.Bytes, nil
}
