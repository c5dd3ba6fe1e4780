package pki

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/testcards/persona"
)

// helperEnv makes the test binary act as one of several processes racing to
// create the same PKI (see TestConcurrentProcesses).
const helperEnv = "DMPAGENT_PKI_TEST_HELPER_DIR"

var shared struct {
	once       sync.Once
	dir        string
	p          *PKI
	err        error
	start, end time.Time
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		p, err := LoadOrCreate(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(fingerprint(p))
		os.Exit(0)
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedPKI generates one PKI for the whole test binary, since RSA key
// generation dominates the cost.
func sharedPKI(t testing.TB) *PKI {
	t.Helper()
	shared.once.Do(func() {
		parent, err := os.MkdirTemp("", "pki-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = parent
		shared.start = time.Now()
		shared.p, shared.err = LoadOrCreate(filepath.Join(parent, "pki"))
		shared.end = time.Now()
	})
	if shared.err != nil {
		t.Fatalf("LoadOrCreate: %v", shared.err)
	}
	return shared.p
}

// fingerprint names every certificate of a PKI by its serial, so that two
// PKIs agree exactly when they hold the same certificates.
func fingerprint(p *PKI) string {
	var b strings.Builder
	fmt.Fprintf(&b, "root=%x person=%x service=%x server=%x", p.Root.SerialNumber, p.PersonCA.SerialNumber, p.ServiceCA.SerialNumber, p.server.Cert.SerialNumber)
	for _, pro := range persona.Professionals() {
		c, err := p.Card(pro.Name)
		if err != nil {
			return "error: " + err.Error()
		}
		fmt.Fprintf(&b, " %s=%x/%x/%x", pro.Name, c.Auth.Cert.SerialNumber, c.Sign.Cert.SerialNumber, c.CardAuth.Cert.SerialNumber)
	}
	return b.String()
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestHierarchy(t *testing.T) {
	p := sharedPKI(t)
	tests := []struct {
		name   string
		cert   *x509.Certificate
		cn     string
		issuer *x509.Certificate
		years  int
	}{
		{"root", p.Root, "TEST AC RACINE IGC-SANTE FORT", p.Root, 20},
		{"personnes", p.PersonCA, "TEST AC IGC-SANTE FORT PERSONNES", p.Root, 10},
		{"services", p.ServiceCA, "TEST AC IGC-SANTE FORT SERVICES APPLICATIFS", p.Root, 10},
	}
	for _, tt := range tests {
		c := tt.cert
		// RFC 4514 "CN=<cn>,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR":
		// five single-valued RDNs, listed in reverse of ASN.1 order.
		want := []struct {
			oid   asn1.ObjectIdentifier
			value string
		}{{oidCommonName, tt.cn}, {oidOrgUnit, "IGC-SANTE TEST"}, {oidOrgUnit, "0002 187512751"}, {oidOrganization, "ASIP-SANTE"}, {oidCountry, "FR"}}
		rdns := decodeName(t, c.RawSubject)
		slices.Reverse(rdns)
		if len(rdns) != len(want) {
			t.Errorf("%s: %d RDNs in %v, want %d", tt.name, len(rdns), c.Subject, len(want))
		} else {
			for i, w := range want {
				if len(rdns[i]) != 1 || !rdns[i][0].oid.Equal(w.oid) || rdns[i][0].value != w.value {
					t.Errorf("%s: RDN %d is %v, want %v=%s", tt.name, i, rdns[i], w.oid, w.value)
				}
			}
		}
		if c.Subject.CommonName != tt.cn {
			t.Errorf("%s: x509 reads CN %q", tt.name, c.Subject.CommonName)
		}
		if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("%s: not a CA (IsCA=%v, KeyUsage=%b)", tt.name, c.IsCA, c.KeyUsage)
		}
		if err := c.CheckSignatureFrom(tt.issuer); err != nil {
			t.Errorf("%s: not signed by %s: %v", tt.name, tt.issuer.Subject.CommonName, err)
		}
		if c.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("%s: signature %v", tt.name, c.SignatureAlgorithm)
		}
		if k, ok := c.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
			t.Errorf("%s: key %T, want RSA-2048", tt.name, c.PublicKey)
		}
		if want := c.NotBefore.AddDate(tt.years, 0, 0); !c.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v, want %v", tt.name, c.NotAfter, want)
		}
	}
	for _, c := range []*x509.Certificate{p.PersonCA, p.ServiceCA} {
		if c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("%s: MaxPathLen %d (zero=%v), want 0", c.Subject.CommonName, c.MaxPathLen, c.MaxPathLenZero)
		}
	}
	if !bytes.Equal(p.Root.RawSubject, p.Root.RawIssuer) {
		t.Error("root is not self-issued")
	}
}

func TestCardChains(t *testing.T) {
	p := sharedPKI(t)
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	for _, pro := range persona.Professionals() {
		c, err := p.Card(pro.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			slot string
			kp   KeyPair
			eku  []x509.ExtKeyUsage
		}{
			{"auth", c.Auth, client},
			{"sign", c.Sign, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}},
			{"cardauth", c.CardAuth, client},
		} {
			name := pro.Name + "/" + tt.slot
			chains, err := tt.kp.Cert.Verify(x509.VerifyOptions{
				Roots: p.RootPool(), Intermediates: pool(p.PersonCA, p.ServiceCA), KeyUsages: tt.eku,
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if ch := chains[0]; len(ch) != 3 || !ch[1].Equal(p.PersonCA) || !ch[2].Equal(p.Root) {
				t.Errorf("%s: chain does not run through PERSONNES to the root", name)
			}
			// Issued by the PERSONNES CA only: the SERVICES CA must not do.
			if _, err := tt.kp.Cert.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool(p.ServiceCA), KeyUsages: tt.eku}); err == nil {
				t.Errorf("%s: verifies through the SERVICES CA", name)
			}
			// A card certificate must never pass for a server.
			if _, err := tt.kp.Cert.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool(p.PersonCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil && tt.slot != "sign" {
				t.Errorf("%s: verifies for serverAuth", name)
			}
		}
	}
}

func TestCardProfiles(t *testing.T) {
	p := sharedPKI(t)
	for _, pro := range persona.Professionals() {
		c, _ := p.Card(pro.Name)
		for _, tt := range []struct {
			slot   string
			kp     KeyPair
			want   x509.KeyUsage
			eku    []x509.ExtKeyUsage
			rsaKey bool
		}{
			{"auth", c.Auth, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, true},
			{"sign", c.Sign, x509.KeyUsageContentCommitment | x509.KeyUsageDigitalSignature, nil, true},
			{"cardauth", c.CardAuth, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false},
		} {
			name := pro.Name + "/" + tt.slot
			cert := tt.kp.Cert
			if cert.KeyUsage != tt.want {
				t.Errorf("%s: KeyUsage %b, want %b", name, cert.KeyUsage, tt.want)
			}
			if !slices.Equal(cert.ExtKeyUsage, tt.eku) || len(cert.UnknownExtKeyUsage) != 0 {
				t.Errorf("%s: ExtKeyUsage %v, want %v", name, cert.ExtKeyUsage, tt.eku)
			}
			if cert.IsCA || !cert.BasicConstraintsValid {
				t.Errorf("%s: IsCA=%v BasicConstraintsValid=%v", name, cert.IsCA, cert.BasicConstraintsValid)
			}
			if cert.SignatureAlgorithm != x509.SHA256WithRSA {
				t.Errorf("%s: signed with %v", name, cert.SignatureAlgorithm)
			}
			if !bytes.Equal(cert.AuthorityKeyId, p.PersonCA.SubjectKeyId) || len(cert.SubjectKeyId) == 0 {
				t.Errorf("%s: key identifiers do not link to the PERSONNES CA", name)
			}
			if got := cert.NotAfter.Sub(cert.NotBefore); got < 3*365*24*time.Hour || cert.NotAfter != cert.NotBefore.AddDate(3, 0, 0) {
				t.Errorf("%s: valid for %v, want 3 years", name, got)
			}
			if lo, hi := shared.start.Add(-24*time.Hour-time.Second), shared.end.Add(-24*time.Hour); cert.NotBefore.Before(lo) || cert.NotBefore.After(hi) {
				t.Errorf("%s: NotBefore %v, want a day before creation (%v..%v)", name, cert.NotBefore, lo, hi)
			}
			switch k := tt.kp.Key.(type) {
			case *rsa.PrivateKey:
				if !tt.rsaKey || k.N.BitLen() != 2048 {
					t.Errorf("%s: RSA-%d key", name, k.N.BitLen())
				}
			case *ecdsa.PrivateKey:
				if tt.rsaKey || k.Curve != elliptic.P256() {
					t.Errorf("%s: ECDSA %s key", name, k.Curve.Params().Name)
				}
			default:
				t.Errorf("%s: key %T", name, k)
			}
			checkKeySigns(t, name, tt.kp)
		}
	}
}

// checkKeySigns proves that the private key belongs to the certificate by
// signing with one and verifying with the other.
func checkKeySigns(t *testing.T, name string, kp KeyPair) {
	t.Helper()
	msg := []byte("TEST " + name)
	digest := sha256.Sum256(msg)
	sig, err := kp.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Errorf("%s: sign: %v", name, err)
		return
	}
	alg := x509.SHA256WithRSA
	if _, ok := kp.Key.(*ecdsa.PrivateKey); ok {
		alg = x509.ECDSAWithSHA256
	}
	if err := kp.Cert.CheckSignature(alg, msg, sig); err != nil {
		t.Errorf("%s: key does not match certificate: %v", name, err)
	}
}

type decodedAttr struct {
	oid   asn1.ObjectIdentifier
	tag   int
	value string
	der   []byte
}

// decodeName reads an RDNSequence attribute by attribute, keeping the
// string tags and encodings that pkix.Name throws away.
func decodeName(t *testing.T, der []byte) [][]decodedAttr {
	rdns, _ := decodeNameSets(t, der)
	return rdns
}

// decodeNameSets also returns the encoding of each RDN's SET.
func decodeNameSets(t *testing.T, der []byte) (rdns [][]decodedAttr, sets [][]byte) {
	t.Helper()
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 || seq.Tag != asn1.TagSequence {
		t.Fatalf("not a SEQUENCE: %v (rest %d)", err, len(rest))
	}
	for b := seq.Bytes; len(b) > 0; {
		var set asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &set); err != nil || set.Tag != asn1.TagSet {
			t.Fatalf("RDN is not a SET: %v", err)
		}
		var rdn []decodedAttr
		for s := set.Bytes; len(s) > 0; {
			var el asn1.RawValue
			if s, err = asn1.Unmarshal(s, &el); err != nil {
				t.Fatal(err)
			}
			var a attribute
			if rest, err := asn1.Unmarshal(el.FullBytes, &a); err != nil || len(rest) != 0 {
				t.Fatalf("attribute: %v", err)
			}
			rdn = append(rdn, decodedAttr{a.Type, a.Value.Tag, string(a.Value.Bytes), el.FullBytes})
		}
		rdns, sets = append(rdns, rdn), append(sets, set.FullBytes)
	}
	return rdns, sets
}

func TestCardSubject(t *testing.T) {
	p := sharedPKI(t)
	for _, pro := range persona.Professionals() {
		der, err := CardSubject(pro)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := p.Card(pro.Name)
		for _, kp := range []KeyPair{c.Auth, c.Sign, c.CardAuth} {
			if !bytes.Equal(kp.Cert.RawSubject, der) {
				t.Errorf("%s: certificate subject differs from CardSubject", pro.Name)
			}
		}
		rdns, sets := decodeNameSets(t, der)
		if len(rdns) != 3 || len(rdns[0]) != 1 || len(rdns[1]) != 1 || len(rdns[2]) != 3 {
			t.Fatalf("%s: RDN shape %v, want [C] [T] [CN+SN+GN]", pro.Name, rdns)
		}
		check := func(a decodedAttr, oid asn1.ObjectIdentifier, value string) {
			if !a.oid.Equal(oid) || a.value != value {
				t.Errorf("%s: attribute %v=%q, want %v=%q", pro.Name, a.oid, a.value, oid, value)
			}
			if a.tag != asn1.TagUTF8String && (a.tag != asn1.TagPrintableString || !isPrintable(value)) {
				t.Errorf("%s: %v=%q has string tag %d", pro.Name, oid, value, a.tag)
			}
		}
		check(rdns[0][0], oidCountry, "FR")
		check(rdns[1][0], oidTitle, pro.ProfessionLabel)
		want := map[string]string{oidCommonName.String(): pro.IDNat, oidSurname.String(): pro.Surname, oidGivenName.String(): pro.GivenName}
		for i, a := range rdns[2] {
			v, ok := want[a.oid.String()]
			if !ok {
				t.Errorf("%s: unexpected %v in the multi-valued RDN", pro.Name, a.oid)
				continue
			}
			delete(want, a.oid.String())
			check(a, a.oid, v)
			// DER: a SET OF lists its encoded elements in ascending order.
			if i > 0 && bytes.Compare(rdns[2][i-1].der, a.der) > 0 {
				t.Errorf("%s: multi-valued RDN is not in DER order", pro.Name)
			}
		}
		if len(want) != 0 {
			t.Errorf("%s: multi-valued RDN lacks %v", pro.Name, want)
		}
		// encoding/asn1 sorts a SET OF itself: handing it the elements in
		// reverse must give back exactly the certificate's encoding.
		var elems []asn1.RawValue
		for _, a := range slices.Backward(rdns[2]) {
			elems = append(elems, asn1.RawValue{FullBytes: a.der})
		}
		if set, err := asn1.MarshalWithParams(elems, "set"); err != nil || !bytes.Equal(set, sets[2]) {
			t.Errorf("%s: multi-valued RDN is not the DER SET OF encoding/asn1 makes (%v)", pro.Name, err)
		}
		// crypto/x509 reads the same identity back from the certificate.
		s := c.Auth.Cert.Subject
		if s.CommonName != pro.IDNat || !slices.Equal(s.Country, []string{"FR"}) {
			t.Errorf("%s: x509 reads subject %v", pro.Name, s)
		}
	}
	if _, err := CardSubject(persona.Professional{Name: "x", IDNat: "899900000000", Surname: "A", GivenName: "B"}); err == nil {
		t.Error("CardSubject accepted a professional without a profession label")
	}
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '()+,-./:=?", r) {
			return false
		}
	}
	return true
}

func TestCardUnknownPersona(t *testing.T) {
	p := sharedPKI(t)
	if _, err := p.Card("nobody"); err == nil {
		t.Error(`Card("nobody") succeeded`)
	}
}

func TestFilesOnDisk(t *testing.T) {
	p := sharedPKI(t)
	readCerts := func(name string) []*x509.Certificate {
		data, err := os.ReadFile(filepath.Join(p.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var out []*x509.Certificate
		for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, c)
		}
		return out
	}
	if got := readCerts(filepath.Base(p.RootFile())); len(got) != 1 || !got[0].Equal(p.Root) || p.RootFile() != filepath.Join(p.Dir, "root.pem") {
		t.Errorf("%s does not hold the root", p.RootFile())
	}
	if got := readCerts(filepath.Base(p.IntermediatesFile())); len(got) != 2 || !got[0].Equal(p.PersonCA) || !got[1].Equal(p.ServiceCA) {
		t.Errorf("%s does not hold both intermediates", p.IntermediatesFile())
	}
	for _, pro := range persona.Professionals() {
		c, _ := p.Card(pro.Name)
		for slot, kp := range map[string]KeyPair{"auth": c.Auth, "sign": c.Sign, "cardauth": c.CardAuth} {
			base := filepath.Join("cards", pro.Name, slot)
			if got := readCerts(base + ".crt"); len(got) != 1 || !got[0].Equal(kp.Cert) {
				t.Errorf("%s.crt does not hold the card certificate", base)
			}
			k, err := readPEM(filepath.Join(p.Dir, base+".key"), "PRIVATE KEY")
			if err != nil {
				t.Fatal(err)
			}
			key, err := x509.ParsePKCS8PrivateKey(k)
			if err != nil || !key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(kp.Cert.PublicKey) {
				t.Errorf("%s.key does not hold the card key: %v", base, err)
			}
		}
	}
	err := filepath.WalkDir(p.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		switch {
		case d.IsDir() && perm != 0o700:
			t.Errorf("%s: directory mode %o, want 700", path, perm)
		case strings.HasSuffix(path, ".key") && perm != 0o600:
			t.Errorf("%s: key mode %o, want 600", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leftovers lists what sits beside a PKI directory, where a failed or losing
// creator could leave its temporary directory.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestReloadLoads(t *testing.T) {
	p := sharedPKI(t)
	before, err := os.Stat(filepath.Join(p.Dir, versionFile))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	q, err := LoadOrCreate(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generate %v, load %v", shared.end.Sub(shared.start), time.Since(start))
	if fingerprint(q) != fingerprint(p) {
		t.Errorf("reload gave other certificates:\n%s\n%s", fingerprint(q), fingerprint(p))
	}
	after, _ := os.Stat(filepath.Join(p.Dir, versionFile))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("reload rewrote the directory")
	}
	if l := leftovers(t, p.Dir); len(l) != 0 {
		t.Errorf("left beside the PKI: %v", l)
	}
	// The loaded keys still issue certificates that chain.
	c, _ := q.Card("gp")
	cert, err := q.Issue(persona.Professionals()[0], UsageCardAuth, c.CardAuth.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool(p.PersonCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
}

// An existing empty directory, like t.TempDir(), is filled; goroutines of one
// process all get the same PKI.
func TestConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	const n = 4
	fps := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := LoadOrCreate(dir)
			if errs[i] = err; err == nil {
				fps[i] = fingerprint(p)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if fps[i] != fps[0] {
			t.Errorf("goroutine %d disagrees:\n%s\n%s", i, fps[i], fps[0])
		}
	}
	if p, err := LoadOrCreate(dir); err != nil || fingerprint(p) != fps[0] {
		t.Errorf("disk disagrees with the goroutines: %v", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left beside the PKI: %v", l)
	}
}

// Separate processes cannot share a lock, so they race on the rename; the
// losers must end up with the winner's PKI.
func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("generates one PKI per process")
	}
	dir := filepath.Join(t.TempDir(), "pki")
	const n = 3
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), helperEnv+"="+dir)
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = os.Stderr
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}
	p, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fingerprint(p)
	for i := range outs {
		if got := strings.TrimSpace(outs[i].String()); got != want {
			t.Errorf("process %d has other certificates than the disk:\n%s\n%s", i, got, want)
		}
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left beside the PKI: %v", l)
	}
}

func TestRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Error("LoadOrCreate took over a directory holding other files")
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "mine" {
		t.Error("LoadOrCreate touched a foreign file")
	}
}

// A damaged copy must fail to load rather than hand out a key that does not
// belong to its certificate.
func TestRefusesMismatchedKey(t *testing.T) {
	p := sharedPKI(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.CopyFS(dir, os.DirFS(p.Dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatalf("a faithful copy does not load: %v", err)
	}
	gp := filepath.Join(dir, "cards", "gp")
	sign, err := os.ReadFile(filepath.Join(gp, "sign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gp, "auth.key"), sign, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Error("loaded a card whose auth key is the sign key")
	}
}

func TestServerTLS(t *testing.T) {
	p := sharedPKI(t)
	cert, err := p.Server()
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[1], p.ServiceCA.Raw) {
		t.Fatal("server chain does not carry the SERVICES CA")
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != "localhost" || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{"TEST DMP SIMULE"}) ||
		!slices.Equal(leaf.Subject.Organization, []string{"ASIP-SANTE TEST"}) || !slices.Equal(leaf.Subject.Country, []string{"FR"}) {
		t.Errorf("server subject %v", leaf.Subject)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool(p.ServiceCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies for clientAuth")
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					io.WriteString(c, "echo "+line)
				}
			}()
		}
	}()
	for _, name := range []string{"localhost", "127.0.0.1"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.RootPool(), ServerName: name})
		if err != nil {
			t.Errorf("handshake as %s: %v", name, err)
			continue
		}
		io.WriteString(conn, "ping\n")
		got, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || got != "echo ping\n" {
			t.Errorf("as %s: read %q, %v", name, got, err)
		}
		if ch := conn.ConnectionState().VerifiedChains; len(ch) == 0 || !ch[0][len(ch[0])-1].Equal(p.Root) {
			t.Errorf("as %s: not verified up to the test root", name)
		}
		conn.Close()
	}
	// Without the test root the server must not be trusted.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"})
	var unknown x509.UnknownAuthorityError
	if err == nil {
		conn.Close()
		t.Error("handshake succeeded without the test root")
	} else if !errors.As(err, &unknown) {
		t.Errorf("without the test root: %v, want an unknown authority", err)
	}
}

func TestIssue(t *testing.T) {
	p := sharedPKI(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pro, _ := persona.LookupProfessional("nurse")
	subject, _ := CardSubject(pro)
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	for _, tt := range []struct {
		usage Usage
		key   crypto.Signer
		eku   []x509.ExtKeyUsage
		ku    x509.KeyUsage
	}{
		{UsageAuth, rsaKey, client, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{UsageSign, rsaKey, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
		{UsageCardAuth, ecKey, client, x509.KeyUsageDigitalSignature},
		// An EC key on the auth slot gets no key encipherment, which EC cannot do.
		{UsageAuth, ecKey, client, x509.KeyUsageDigitalSignature},
	} {
		name := fmt.Sprintf("%v/%T", tt.usage, tt.key)
		cert, err := p.Issue(pro, tt.usage, tt.key.Public())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool(p.PersonCA), KeyUsages: tt.eku}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(cert.RawSubject, subject) || cert.KeyUsage != tt.ku {
			t.Errorf("%s: subject or key usage %b wrong", name, cert.KeyUsage)
		}
		checkKeySigns(t, name, KeyPair{cert, tt.key})
		if c, _ := p.Card(pro.Name); cert.SerialNumber.Cmp(c.Auth.Cert.SerialNumber) == 0 {
			t.Errorf("%s: reused a serial", name)
		}
	}
	if _, err := p.Issue(pro, Usage(42), ecKey.Public()); err == nil {
		t.Error("Issue accepted an unknown usage")
	}
	if _, err := p.Issue(pro, UsageAuth, nil); err == nil {
		t.Error("Issue accepted no key")
	}
}

func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("openssl %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("openssl %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	p := sharedPKI(t)
	root, inter := filepath.Base(p.RootFile()), filepath.Base(p.IntermediatesFile())
	for _, pro := range persona.Professionals() {
		for _, slot := range []string{"auth", "sign", "cardauth"} {
			crt := filepath.Join("cards", pro.Name, slot+".crt")
			out := openssl(t, p.Dir, "verify", "-CAfile", root, "-untrusted", inter, crt)
			if strings.TrimSpace(out) != crt+": OK" {
				t.Errorf("openssl verify %s: %q", crt, out)
			}
		}
		crt := filepath.Join("cards", pro.Name, "auth.crt")
		out := openssl(t, p.Dir, "x509", "-noout", "-subject", "-nameopt", "RFC2253,-esc_msb", "-in", crt)
		subject, ok := strings.CutPrefix(strings.TrimSpace(out), "subject=")
		if !ok {
			t.Fatalf("openssl printed %q", out)
		}
		rdns := strings.Split(subject, ",")
		if len(rdns) != 3 {
			t.Fatalf("%s: %d RDNs in %q", pro.Name, len(rdns), subject)
		}
		multi := strings.Split(rdns[0], "+")
		sort.Strings(multi)
		want := []string{"CN=" + pro.IDNat, "GN=" + pro.GivenName, "SN=" + pro.Surname}
		if !slices.Equal(multi, want) {
			t.Errorf("%s: multi-valued RDN %q, want %q in any order", pro.Name, rdns[0], want)
		}
		if rdns[1] != "title="+pro.ProfessionLabel && rdns[1] != "T="+pro.ProfessionLabel {
			t.Errorf("%s: second RDN %q, want the title %q", pro.Name, rdns[1], pro.ProfessionLabel)
		}
		if rdns[2] != "C=FR" {
			t.Errorf("%s: last RDN %q", pro.Name, rdns[2])
		}
	}
	for _, c := range []*x509.Certificate{p.Root, p.PersonCA, p.ServiceCA} {
		f := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(f, certPEM(c), 0o600); err != nil {
			t.Fatal(err)
		}
		out := openssl(t, p.Dir, "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", f)
		want := "subject=CN=" + c.Subject.CommonName + ",OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR"
		if strings.TrimSpace(out) != want {
			t.Errorf("openssl reads CA subject %q, want %q", out, want)
		}
	}
	out := openssl(t, p.Dir, "verify", "-CAfile", root, "-untrusted", inter, "-purpose", "sslserver", "server.crt")
	if strings.TrimSpace(out) != "server.crt: OK" {
		t.Errorf("openssl verify server.crt: %q", out)
	}
}

func BenchmarkLoadOrCreate(b *testing.B) {
	b.Run("generate", func(b *testing.B) {
		for b.Loop() {
			dir := filepath.Join(b.TempDir(), "pki")
			if _, err := LoadOrCreate(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		p := sharedPKI(b)
		for b.Loop() {
			if _, err := LoadOrCreate(p.Dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
