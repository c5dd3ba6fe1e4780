package cardreader

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// cpsATV is one attribute of a test subject, with its ASN.1 string type
// chosen by the test (pkix.Name would choose for us).
type cpsATV struct {
	oid asn1.ObjectIdentifier
	tag int
	val []byte
}

var (
	oidTestC  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidTestO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidTestOU = asn1.ObjectIdentifier{2, 5, 4, 11}
)

func utf8ATV(oid asn1.ObjectIdentifier, s string) cpsATV {
	return cpsATV{oid, asn1.TagUTF8String, []byte(s)}
}

func printableATV(oid asn1.ObjectIdentifier, s string) cpsATV {
	return cpsATV{oid, asn1.TagPrintableString, []byte(s)}
}

// latin1ATV encodes s as a T61String holding Latin-1 bytes, as older CAs
// did; encoding/asn1 reads T61String as Latin-1.
func latin1ATV(oid asn1.ObjectIdentifier, s string) cpsATV {
	var b []byte
	for _, r := range s {
		if r > 0xFF {
			panic("not Latin-1: " + s)
		}
		b = append(b, byte(r))
	}
	return cpsATV{oid, asn1.TagT61String, b}
}

func bmpATV(oid asn1.ObjectIdentifier, s string) cpsATV {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return cpsATV{oid, asn1.TagBMPString, b}
}

// cpsName encodes an RDNSequence, one RDN per argument, most general first.
// encoding/asn1 sorts each SET as DER wants, so CN, SN and GN land in the
// multi-valued RDN in byte order, not in the order written here.
func cpsName(t testing.TB, rdns ...[]cpsATV) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, rdn := range rdns {
		var set pkix.RelativeDistinguishedNameSET
		for _, a := range rdn {
			set = append(set, pkix.AttributeTypeAndValue{
				Type:  a.oid,
				Value: asn1.RawValue{Class: asn1.ClassUniversal, Tag: a.tag, Bytes: a.val},
			})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// cpsSubjectDER is the DESIGN §5 subject: CN+SN+GN in one RDN, then T and C.
func cpsSubjectDER(t testing.TB, idNat, surname, given, profession string) []byte {
	return cpsName(t,
		[]cpsATV{printableATV(oidTestC, "FR")},
		[]cpsATV{utf8ATV(oidCPSTitle, profession)},
		[]cpsATV{utf8ATV(oidCPSCN, idNat), utf8ATV(oidCPSSN, surname), utf8ATV(oidCPSGN, given)},
	)
}

// igcSanteIssuer is an issuer name shaped like IGC-Santé's (DESIGN §5).
func igcSanteIssuer(t testing.TB, cn string) []byte {
	return cpsName(t,
		[]cpsATV{printableATV(oidTestC, "FR")},
		[]cpsATV{printableATV(oidTestO, "ASIP-SANTE")},
		[]cpsATV{printableATV(oidTestOU, "0002 187512751")},
		[]cpsATV{printableATV(oidTestOU, "IGC-SANTE")},
		[]cpsATV{printableATV(oidCPSCN, cn)},
	)
}

var cpsTestKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

type cpsCertOpts struct {
	subject, issuer     []byte
	notBefore, notAfter time.Time
	serial              int64
}

// issueCPSCert makes a real certificate (signed, parseable by crypto/x509)
// with the given raw subject and issuer names.
func issueCPSCert(t testing.TB, o cpsCertOpts) *x509.Certificate {
	t.Helper()
	if o.issuer == nil {
		o.issuer = igcSanteIssuer(t, "AC IGC-SANTE FORT PERSONNES")
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		o.notAfter = o.notBefore.AddDate(3, 0, 0)
	}
	if o.serial == 0 {
		o.serial = 0x1234ABCD
	}
	key := cpsTestKey()
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(o.serial),
		RawSubject:   o.subject,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	parent := &x509.Certificate{RawSubject: o.issuer, SubjectKeyId: []byte{1, 2, 3, 4}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, parent, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// cpsPersonas are DESIGN §7's CPS personas, written out here rather than
// taken from testcards/persona so that a change there cannot silently
// change what this test expects (identity_ext_test.go covers the link).
var cpsPersonas = []struct {
	name, idNat, surname, given, profession string
}{
	{"gp", "899900063480", "LIBRE", "Max", "Médecin"},
	{"pharmacist", "899900070011", "OFFICINE", "Anne", "Pharmacien"},
	{"cardiologist", "899900070029", "CARDIO", "Paul", "Médecin"},
	{"nurse", "899900070037", "SOINS", "Julie", "Infirmier"},
	{"emergency", "899900070045", "REGUL", "Marc", "Médecin"},
}

func TestIdentityFromCertificate(t *testing.T) {
	type want struct {
		idNat, number, surname, given, profession string
		kind                                      IDNatKind
		level                                     IssuerLevel
		test                                      bool
	}
	type tc struct {
		name    string
		subject []byte
		issuer  []byte // nil: AC IGC-SANTE FORT PERSONNES
		want    want
	}
	var tests []tc
	for _, p := range cpsPersonas {
		tests = append(tests, tc{
			name:    "persona " + p.name,
			subject: cpsSubjectDER(t, p.idNat, p.surname, p.given, p.profession),
			want:    want{p.idNat, p.idNat[1:], p.surname, p.given, p.profession, KindRPPS, LevelFort, true},
		})
	}
	rpps := func(idNat string) want {
		return want{idNat, idNat[1:], "LIBRE", "Max", "Médecin", KindRPPS, LevelFort, false}
	}
	withKind := func(idNat string, k IDNatKind) want {
		w := rpps(idNat)
		w.kind = k
		return w
	}
	withLevel := func(w want, l IssuerLevel, test bool) want {
		w.level, w.test = l, test
		return w
	}
	subj := func(idNat string) []byte { return cpsSubjectDER(t, idNat, "LIBRE", "Max", "Médecin") }
	tests = append(tests,
		tc{"test range 8997", subj("899700024450"), nil, withLevel(rpps("899700024450"), LevelFort, true)},
		tc{"RPPS outside test ranges", subj("810001234567"), nil, rpps("810001234567")},
		tc{"ADELI", subj("0751234567"), nil, withKind("0751234567", KindADELI)},
		tc{"FINESS with registry, ANS test CPE", subj("30B0037750/CPET0001"), nil, withKind("30B0037750/CPET0001", KindFINESS)},
		tc{"FINESS without registry", subj("3750000001"), nil, withKind("3750000001", KindFINESS)},
		tc{"FINESS of Corsica", subj("32A0000001/42"), nil, withKind("32A0000001/42", KindFINESS)},
		tc{"SIRET", subj("512345678900012/AB12"), nil, withKind("512345678900012/AB12", KindSIRET)},
		tc{"SIREN", subj("4123456789/7"), nil, withKind("4123456789/7", KindSIREN)},
		tc{"ADELI practice", subj("1751234567/12"), nil, withKind("1751234567/12", KindCabinetADELI)},
		tc{"RPPS practice", subj("6810001234567/3"), nil, withKind("6810001234567/3", KindCabinetRPPS)},
		tc{"DRASS, deprecated", subj("2750001234"), nil, withKind("2750001234", KindDRASS)},
		tc{"student, deprecated", subj("912345678"), nil, withKind("912345678", KindStudent)},
		tc{"unknown prefix 7", subj("712345678"), nil, withKind("712345678", KindUnknown)},
		tc{"shortest idNat", subj("71"), nil, withKind("71", KindUnknown)},
		tc{"issuer ELEMENTAIRE", subj("810001234567"), igcSanteIssuer(t, "AC IGC-SANTE ELEMENTAIRE PERSONNES"),
			withLevel(rpps("810001234567"), LevelElementaire, false)},
		tc{"issuer STANDARD", subj("810001234567"), igcSanteIssuer(t, "AC IGC-SANTE STANDARD PERSONNES"),
			withLevel(rpps("810001234567"), LevelStandard, false)},
		tc{"issuer of the test PKI", subj("810001234567"), igcSanteIssuer(t, "TEST AC IGC-SANTE FORT PERSONNES"),
			withLevel(rpps("810001234567"), LevelFort, true)},
		tc{"issuer TEST in an OU only", subj("810001234567"), cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{printableATV(oidTestOU, "IGC-SANTE TEST")},
			[]cpsATV{printableATV(oidCPSCN, "AC IGC-SANTE FORT PERSONNES")},
		), withLevel(rpps("810001234567"), LevelFort, true)},
		tc{"issuer services CA has no level", subj("810001234567"), igcSanteIssuer(t, "AC IGC-SANTE FORT SERVICES APPLICATIFS"),
			withLevel(rpps("810001234567"), LevelUnknown, false)},
		tc{"issuer unknown level word", subj("810001234567"), igcSanteIssuer(t, "AC IGC-SANTE EXTREME PERSONNES"),
			withLevel(rpps("810001234567"), LevelUnknown, false)},
		tc{"foreign issuer", subj("810001234567"), igcSanteIssuer(t, "Yubico PIV Attestation"),
			withLevel(rpps("810001234567"), LevelUnknown, false)},
		tc{"ATTESTATION is not TEST", subj("810001234567"), igcSanteIssuer(t, "AC ATTESTATION"),
			withLevel(rpps("810001234567"), LevelUnknown, false)},
		tc{"issuer level lower case", subj("810001234567"), igcSanteIssuer(t, "ac igc-sante fort personnes"),
			withLevel(rpps("810001234567"), LevelFort, false)},
		tc{"single-valued RDNs", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{utf8ATV(oidCPSTitle, "Médecin")},
			[]cpsATV{utf8ATV(oidCPSGN, "Max")},
			[]cpsATV{utf8ATV(oidCPSSN, "LIBRE")},
			[]cpsATV{utf8ATV(oidCPSCN, "810001234567")},
		), nil, rpps("810001234567")},
		tc{"PrintableString values", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{printableATV(oidCPSTitle, "Medecin")},
			[]cpsATV{printableATV(oidCPSCN, "810001234567"), printableATV(oidCPSSN, "LIBRE"), printableATV(oidCPSGN, "Max")},
		), nil, want{"810001234567", "10001234567", "LIBRE", "Max", "Medecin", KindRPPS, LevelFort, false}},
		tc{"T61String in Latin-1", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{latin1ATV(oidCPSTitle, "Médecin")},
			[]cpsATV{latin1ATV(oidCPSCN, "810001234567"), latin1ATV(oidCPSSN, "LÉGER"), latin1ATV(oidCPSGN, "Hélène")},
		), nil, want{"810001234567", "10001234567", "LÉGER", "Hélène", "Médecin", KindRPPS, LevelFort, false}},
		tc{"BMPString given name", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{utf8ATV(oidCPSCN, "810001234567"), utf8ATV(oidCPSSN, "ADRUN"), bmpATV(oidCPSGN, "Zoé")},
		), nil, want{"810001234567", "10001234567", "ADRUN", "Zoé", "", KindRPPS, LevelFort, false}},
		tc{"accented UTF-8 names", cpsSubjectDER(t, "810001234567", "DE L'ÉPÉE-NOËL", "Anaïs-Çéline", "Sage-Femme"),
			nil, want{"810001234567", "10001234567", "DE L'ÉPÉE-NOËL", "Anaïs-Çéline", "Sage-Femme", KindRPPS, LevelFort, false}},
		tc{"no T attribute", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{utf8ATV(oidCPSCN, "810001234567"), utf8ATV(oidCPSSN, "LIBRE"), utf8ATV(oidCPSGN, "Max")},
		), nil, want{"810001234567", "10001234567", "LIBRE", "Max", "", KindRPPS, LevelFort, false}},
		tc{"surrounding spaces trimmed", cpsSubjectDER(t, "810001234567", " LIBRE ", "Max ", " Médecin"), nil, rpps("810001234567")},
		tc{"other attributes ignored", cpsName(t,
			[]cpsATV{printableATV(oidTestC, "FR")},
			[]cpsATV{printableATV(oidTestO, "CABINET DR LIBRE")},
			[]cpsATV{printableATV(oidTestOU, "499900063480001")},
			[]cpsATV{utf8ATV(oidCPSTitle, "Médecin")},
			[]cpsATV{utf8ATV(oidCPSCN, "810001234567"), utf8ATV(oidCPSSN, "LIBRE"), utf8ATV(oidCPSGN, "Max"),
				printableATV(asn1.ObjectIdentifier{2, 5, 4, 5}, "X123")},
		), nil, rpps("810001234567")},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := issueCPSCert(t, cpsCertOpts{subject: tt.subject, issuer: tt.issuer})
			id, err := IdentityFromCertificate(cert)
			if err != nil {
				t.Fatalf("IdentityFromCertificate: %v", err)
			}
			got := want{id.IDNat, id.Number, id.Surname, id.GivenName, id.Profession, id.Kind, id.IssuerLevel, id.Test}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if id.IssuerCN != cert.Issuer.CommonName || id.Certificate != cert ||
				!id.NotBefore.Equal(cert.NotBefore) || !id.NotAfter.Equal(cert.NotAfter) || id.SerialNumber != "1234ABCD" {
				t.Errorf("certificate fields: issuer %q serial %q validity %v..%v", id.IssuerCN, id.SerialNumber, id.NotBefore, id.NotAfter)
			}
			// The DER entry point gives the same identity.
			id2, err := ParseCPSCertificate(cert.Raw)
			if err != nil {
				t.Fatalf("ParseCPSCertificate: %v", err)
			}
			if got2 := (want{id2.IDNat, id2.Number, id2.Surname, id2.GivenName, id2.Profession, id2.Kind, id2.IssuerLevel, id2.Test}); got2 != got {
				t.Errorf("ParseCPSCertificate gave %+v, IdentityFromCertificate %+v", got2, got)
			}
		})
	}
}

// Names that the error tests put into subjects: no error message may show
// them.
const (
	secretSurname = "SECRETSURNAME"
	secretGiven   = "SECRETGIVEN"
	secretTitle   = "SECRETTITLE"
)

func TestParseSubjectErrors(t *testing.T) {
	cn := func(v string) cpsATV { return utf8ATV(oidCPSCN, v) }
	sn := utf8ATV(oidCPSSN, secretSurname)
	gn := utf8ATV(oidCPSGN, secretGiven)
	title := utf8ATV(oidCPSTitle, secretTitle)
	c := []cpsATV{printableATV(oidTestC, "FR")}
	multi := func(idNat string) []byte { return cpsName(t, c, []cpsATV{title}, []cpsATV{cn(idNat), sn, gn}) }
	withSN := func(v string) []byte {
		return cpsName(t, c, []cpsATV{cn("810001234567"), utf8ATV(oidCPSSN, v), gn})
	}
	withGN := func(v string) []byte {
		return cpsName(t, c, []cpsATV{cn("810001234567"), sn, utf8ATV(oidCPSGN, v)})
	}
	withT := func(v string) []byte {
		return cpsName(t, c, []cpsATV{utf8ATV(oidCPSTitle, v)}, []cpsATV{cn("810001234567"), sn, gn})
	}
	good := multi("810001234567")

	tests := []struct {
		name  string
		raw   []byte
		field string
		// hidden is what a message about this subject must not show, on top
		// of the names (an invalid CN may be a name too).
		hidden string
	}{
		{"missing CN", cpsName(t, c, []cpsATV{title}, []cpsATV{sn, gn}), "CN", ""},
		{"missing SN", cpsName(t, c, []cpsATV{title}, []cpsATV{cn("810001234567"), gn}), "SN", ""},
		{"missing GN", cpsName(t, c, []cpsATV{title}, []cpsATV{cn("810001234567"), sn}), "GN", ""},
		{"only C", cpsName(t, c), "CN", ""},
		{"empty name", cpsName(t), "CN", ""},
		{"CN twice in one RDN", cpsName(t, c, []cpsATV{cn("810001234567"), cn("899900063480"), sn, gn}), "CN", ""},
		{"CN twice in two RDNs", cpsName(t, c, []cpsATV{cn("899900063480")}, []cpsATV{cn("810001234567"), sn, gn}), "CN", ""},
		{"SN twice", cpsName(t, c, []cpsATV{sn}, []cpsATV{cn("810001234567"), sn, gn}), "SN", ""},
		{"GN twice", cpsName(t, c, []cpsATV{gn}, []cpsATV{cn("810001234567"), sn, gn}), "GN", ""},
		{"T twice", cpsName(t, c, []cpsATV{title}, []cpsATV{title}, []cpsATV{cn("810001234567"), sn, gn}), "T", ""},
		{"CN is a name", multi("LIBRE Max"), "CN", "LIBRE"},
		{"CN of letters", multi("ABCDEFGHIJKL"), "CN", "ABCDEFGHIJKL"},
		{"CN empty", multi(""), "CN", ""},
		{"CN of one digit", multi("8"), "CN", ""},
		{"CN too long", multi("7" + strings.Repeat("1", 30)), "CN", ""},
		{"RPPS with a letter", multi("8999000634X0"), "CN", ""},
		{"RPPS too short", multi("89990006348"), "CN", ""},
		{"RPPS too long", multi("8999000634801"), "CN", ""},
		{"RPPS with a slash", multi("8999/0006348"), "CN", ""},
		{"ADELI too short", multi("012345678"), "CN", ""},
		{"ADELI with a letter", multi("01234567A9"), "CN", ""},
		{"unknown kind with letters", multi("7ABC"), "CN", ""},
		{"DRASS with a slash", multi("2123/4"), "CN", ""},
		{"FINESS with two slashes", multi("3123/45/6"), "CN", ""},
		{"FINESS ending in a slash", multi("3123456789/"), "CN", ""},
		{"FINESS starting with a slash", multi("3/123456789"), "CN", ""},
		{"FINESS with a space", multi("3123 456789"), "CN", ""},
		{"CN with a non-ASCII digit", multi("8٩99000634801"), "CN", ""},
		{"SN empty", withSN(""), "SN", ""},
		{"SN only spaces", withSN("   "), "SN", ""},
		{"SN with a control character", withSN(secretSurname + "\x07"), "SN", ""},
		{"SN with a newline", withSN(secretSurname + "\nlevel=ERROR"), "SN", "level=ERROR"},
		{"SN with a bidi override", withSN(secretSurname + "\u202E"), "SN", ""},
		{"GN too long", withGN(strings.Repeat("A", maxCPSTextLen+1)), "GN", strings.Repeat("A", 20)},
		{"GN with a zero-width joiner", withGN("Ma\u200Dx"), "GN", ""},
		{"T empty", withT(""), "T", ""},
		{"T with a control character", withT("Médecin\x00"), "T", "Médecin"},
		{"SN not a string", cpsName(t, c, []cpsATV{cn("810001234567"), {oidCPSSN, asn1.TagInteger, []byte{1}}, gn}), "SN", ""},
		{"CN not a string", cpsName(t, c, []cpsATV{{oidCPSCN, asn1.TagOctetString, []byte("810001234567")}, sn, gn}), "CN", ""},
		{"trailing data", append(bytes.Clone(good), 0x00), "subject", ""},
		{"truncated", good[:len(good)-3], "subject", ""},
		{"empty input", nil, "subject", ""},
		{"not a sequence", []byte{0x04, 0x02, 'h', 'i'}, "subject", ""},
		{"sequence of non-sets", []byte{0x30, 0x03, 0x02, 0x01, 0x05}, "subject", ""},
		{"invalid UTF8String", cpsName(t, c, []cpsATV{cn("810001234567"), {oidCPSSN, asn1.TagUTF8String, []byte{0xFF, 0xFE}}, gn}), "subject", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSubject(tt.raw)
			if err == nil {
				t.Fatal("parseSubject accepted it")
			}
			var ie *IdentityError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not an *IdentityError", err, err)
			}
			if ie.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", ie.Field, tt.field, err)
			}
			if !errors.Is(err, ErrNotCPSCertificate) {
				t.Errorf("error %v does not wrap ErrNotCPSCertificate", err)
			}
			for _, s := range []string{secretSurname, secretGiven, secretTitle, tt.hidden} {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}

	// The same errors reach callers of the certificate functions, wrapped.
	cert := issueCPSCert(t, cpsCertOpts{subject: multi("LIBRE Max")})
	for name, f := range map[string]func() (Identity, error){
		"IdentityFromCertificate": func() (Identity, error) { return IdentityFromCertificate(cert) },
		"ParseCPSCertificate":     func() (Identity, error) { return ParseCPSCertificate(cert.Raw) },
	} {
		var ie *IdentityError
		if _, err := f(); !errors.As(err, &ie) || ie.Field != "CN" {
			t.Errorf("%s: error %v, want an *IdentityError on CN", name, err)
		}
	}
}

func TestIdentityCertificateErrors(t *testing.T) {
	if _, err := IdentityFromCertificate(nil); err == nil {
		t.Error("IdentityFromCertificate(nil) succeeded")
	}
	// A broken certificate is not "not a CPS certificate": callers tell a
	// card that answers garbage from a card of another kind.
	for _, der := range [][]byte{nil, {0x30, 0x00}, []byte("not a certificate")} {
		_, err := ParseCPSCertificate(der)
		if err == nil || errors.Is(err, ErrNotCPSCertificate) {
			t.Errorf("ParseCPSCertificate(%x) = %v, want a parse error", der, err)
		}
	}
}

func TestIdentityValid(t *testing.T) {
	nb := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	na := nb.AddDate(3, 0, 0)
	cert := issueCPSCert(t, cpsCertOpts{subject: cpsSubjectDER(t, "899900063480", "LIBRE", "Max", "Médecin"), notBefore: nb, notAfter: na})
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now  time.Time
		want error
	}{
		{nb.Add(-time.Second), ErrCertificateNotYetValid},
		{nb, nil},
		{nb.AddDate(1, 0, 0), nil},
		{na, nil},
		{na.Add(time.Second), ErrCertificateExpired},
	}
	for _, tt := range tests {
		err := id.Valid(tt.now)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Valid(%v) = %v, want %v", tt.now, err, tt.want)
			continue
		}
		if err == nil {
			continue
		}
		var ve *ValidityError
		if !errors.As(err, &ve) || !ve.Now.Equal(tt.now) || !ve.NotBefore.Equal(nb) || !ve.NotAfter.Equal(na) {
			t.Errorf("Valid(%v): %#v", tt.now, err)
		}
		if strings.Contains(err.Error(), "LIBRE") {
			t.Errorf("validity error %q shows the name", err)
		}
	}
}

func TestIdentitySerialNumber(t *testing.T) {
	cert := issueCPSCert(t, cpsCertOpts{subject: cpsSubjectDER(t, "899900063480", "LIBRE", "Max", "Médecin"), serial: 0x0ABCDEF012})
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if id.SerialNumber != "ABCDEF012" {
		t.Errorf("SerialNumber = %q, want ABCDEF012", id.SerialNumber)
	}
}

// Identity is logged by value in the agent: neither its String nor its
// slog form may carry the names.
func TestIdentityFormattingHidesNames(t *testing.T) {
	cert := issueCPSCert(t, cpsCertOpts{subject: cpsSubjectDER(t, "899900063480", secretSurname, secretGiven, secretTitle)})
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("card", "identity", id)
	for _, out := range []string{id.String(), buf.String()} {
		if !strings.Contains(out, "899900063480") {
			t.Errorf("%q lacks the idNat", out)
		}
		for _, s := range []string{secretSurname, secretGiven, secretTitle} {
			if strings.Contains(out, s) {
				t.Errorf("%q shows %q", out, s)
			}
		}
	}
	if !strings.Contains(id.String(), "test") {
		t.Errorf("String() = %q does not say test card", id.String())
	}
}

// checkIDNatShape restates the idNat rules independently of checkIDNat, for
// the fuzz target.
func checkIDNatShape(t *testing.T, s string, kind IDNatKind) {
	t.Helper()
	if len(s) < 2 || len(s) > 30 || s[0] < '0' || s[0] > '9' {
		t.Fatalf("idNat %q: bad length or first character", s)
	}
	slashes := 0
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
		case c == '/' && kind.hasRegistry() && i > 1 && i < len(s)-1:
			slashes++
		case ('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') && kind.hasRegistry():
		default:
			t.Fatalf("idNat %q (%s): character %q", s, kind, c)
		}
	}
	if slashes > 1 || (kind == KindRPPS && len(s) != 12) || (kind == KindADELI && len(s) != 10) {
		t.Fatalf("idNat %q (%s): bad shape", s, kind)
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, p := range cpsPersonas {
		f.Add(cpsSubjectDER(f, p.idNat, p.surname, p.given, p.profession))
	}
	c := []cpsATV{printableATV(oidTestC, "FR")}
	f.Add(cpsName(f, c, []cpsATV{utf8ATV(oidCPSTitle, "Médecin")}, []cpsATV{utf8ATV(oidCPSGN, "Max")},
		[]cpsATV{utf8ATV(oidCPSSN, "LIBRE")}, []cpsATV{utf8ATV(oidCPSCN, "810001234567")}))
	f.Add(cpsName(f, c, []cpsATV{latin1ATV(oidCPSCN, "30B0037750/CPET0001"), latin1ATV(oidCPSSN, "LÉGER"), bmpATV(oidCPSGN, "Zoé")}))
	f.Add(cpsName(f, c, []cpsATV{utf8ATV(oidCPSCN, "0751234567"), utf8ATV(oidCPSSN, "A"), utf8ATV(oidCPSGN, "B")}))
	f.Add(cpsName(f, c, []cpsATV{utf8ATV(oidCPSCN, "810001234567"), utf8ATV(oidCPSCN, "899900063480"), utf8ATV(oidCPSSN, "A"), utf8ATV(oidCPSGN, "B")}))
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		sub, err := parseSubject(raw)
		if err != nil {
			var ie *IdentityError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *IdentityError", err)
			}
			return
		}
		checkIDNatShape(t, sub.idNat, sub.kind)
		if sub.kind != kindByDigit[sub.idNat[0]-'0'] {
			t.Fatalf("idNat %q has kind %s", sub.idNat, sub.kind)
		}
		for _, s := range []string{sub.surname, sub.givenName} {
			if s == "" || strings.TrimSpace(s) != s || len(s) > maxCPSTextLen || !utf8.ValidString(s) {
				t.Fatalf("name %q", s)
			}
		}
		if !utf8.ValidString(sub.profession) || strings.TrimSpace(sub.profession) != sub.profession {
			t.Fatalf("profession %q", sub.profession)
		}
	})
}
