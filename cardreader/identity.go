package cardreader

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Identity is the holder of a CPS card as its authentication certificate
// states it. The certificate is public (readable without the PIN), which is
// what lets the agent show who is there as soon as the card goes in; the
// Identity proves nothing until the card has signed something with the
// matching key.
//
// Identity formats itself (String, LogValue) without the person's names, so
// that logging it does not write health professionals' names to disk.
type Identity struct {
	IDNat  string    // national identifier as in the certificate CN, e.g. "899900063480"
	Kind   IDNatKind // what IDNat's first digit says it is built from
	Number string    // IDNat without its kind digit, e.g. the RPPS number "99900063480"

	Surname    string
	GivenName  string
	Profession string // the T (title) attribute, e.g. "Médecin"; empty when absent

	IssuerCN    string
	IssuerLevel IssuerLevel
	// Test marks a card from the ANS test number ranges or from a test
	// PKI, which the agent must never present as a real professional.
	Test bool

	NotBefore, NotAfter time.Time
	SerialNumber        string // upper-case hex, as openssl prints it
	Certificate         *x509.Certificate
}

// IDNatKind is the type of a national identifier, given by its first digit
// (the "type d'identifiant national de personne" of the ANS nomenclature
// TRE_G08-TypeIdentifiantPersonne, OID 1.2.250.1.71.1.2.15). Its values are
// stable strings so that they can go into the localhost API as they are.
type IDNatKind string

// Kinds of national identifier. The codes come from TRE_G08 (version
// 20240329120000, as published in ansforge/IG-terminologie-de-sante and in
// the value set JDV_J77-TypeIdentifiantPersonne-RASS, OID
// 1.2.250.1.213.1.6.1.145), which DESIGN §5 agrees with for 8, 0, 3 and 5.
// TRE_G08 also has codes 10 (MSSanté address) and 30 (ROR situation id):
// they are two-digit codes for other directories, never a CPS idNat prefix.
const (
	// Code 0, "N° ADELI": 0 + the 9-digit ADELI number.
	KindADELI IDNatKind = "adeli"
	// Code 1, "Id Cabinet ADELI / N° de registre": staff registered by an
	// ADELI practice.
	KindCabinetADELI IDNatKind = "cabinet-adeli"
	// Code 2, "N° DRASS": interns' SIRIUS number; deprecated since
	// 2020-05-29, the last such cards expired in July 2020.
	KindDRASS IDNatKind = "drass"
	// Code 3, "FINESS / N° de registre": staff of a health establishment
	// (CPE cards), e.g. the ANS test CPE "30B0037750/CPET0001".
	KindFINESS IDNatKind = "finess"
	// Code 4, "SIREN / N° de registre".
	KindSIREN IDNatKind = "siren"
	// Code 5, "SIRET / N° de registre".
	KindSIRET IDNatKind = "siret"
	// Code 6, "Id Cabinet RPPS / N° de registre": staff registered by an
	// RPPS practice.
	KindCabinetRPPS IDNatKind = "cabinet-rpps"
	// Code 8, "N° RPPS": 8 + the 11-digit RPPS number; ANS test cards use
	// 8999… and 8997… (DESIGN §5).
	KindRPPS IDNatKind = "rpps"
	// Code 9, "N° Etudiant": pharmacy students' ordinal number; deprecated
	// since 2020-05-29, the last such cards expired in 2022.
	KindStudent IDNatKind = "student"
	// Any other first digit (7, or a code ANS adds later): the identity is
	// still shown, the kind is just not known.
	KindUnknown IDNatKind = "unknown"
)

// kindByDigit is indexed by the idNat's first digit.
var kindByDigit = [10]IDNatKind{
	KindADELI,        // 0
	KindCabinetADELI, // 1
	KindDRASS,        // 2
	KindFINESS,       // 3
	KindSIREN,        // 4
	KindSIRET,        // 5
	KindCabinetRPPS,  // 6
	KindUnknown,      // 7
	KindRPPS,         // 8
	KindStudent,      // 9
}

// hasRegistry reports whether idNats of this kind are "<kind><structure
// id>/<registry number>": TRE_G08 names these kinds "… / N° de registre",
// and the ANS test CPE card carries "30B0037750/CPET0001". They are the only
// idNats with letters (FINESS numbers have them: 2A/2B in Corsica, 0B… for
// test establishments) or a slash.
func (k IDNatKind) hasRegistry() bool {
	switch k {
	case KindCabinetADELI, KindFINESS, KindSIREN, KindSIRET, KindCabinetRPPS:
		return true
	}
	return false
}

// IssuerLevel is the assurance level of the IGC-Santé CA that issued a card
// certificate, read from its name "AC IGC-SANTE <level> PERSONNES".
type IssuerLevel string

const (
	LevelElementaire IssuerLevel = "ELEMENTAIRE"
	LevelStandard    IssuerLevel = "STANDARD"
	LevelFort        IssuerLevel = "FORT"
	// LevelUnknown is any issuer not named like an IGC-Santé PERSONNES CA,
	// such as another PKI's CA on a YubiKey.
	LevelUnknown IssuerLevel = ""
)

// Bounds on what a certificate may make the agent display. CPS names are a
// few dozen characters; the bound only stops a hostile certificate from
// filling the screen or the logs.
const (
	minIDNatLen   = 2
	maxIDNatLen   = 30
	maxCPSTextLen = 256 // bytes of UTF-8
)

// ErrNotCPSCertificate is wrapped by every error saying that a well-formed
// certificate does not carry a CPS identity.
var ErrNotCPSCertificate = errors.New("cardreader: not a CPS certificate")

// IdentityError says which subject attribute made a certificate unusable as
// a CPS identity. Field is "CN", "SN", "GN", "T" or "subject". Reason never
// quotes the attribute's value: error messages get logged, and a subject
// holds a person's name (even a CN that fails to be an idNat may be one).
type IdentityError struct {
	Field  string
	Reason string
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrNotCPSCertificate, e.Field, e.Reason)
}

func (e *IdentityError) Unwrap() error { return ErrNotCPSCertificate }

// Validity errors, wrapped in a *ValidityError.
var (
	ErrCertificateNotYetValid = errors.New("cardreader: CPS certificate not yet valid")
	ErrCertificateExpired     = errors.New("cardreader: CPS certificate expired")
)

// ValidityError reports a certificate used outside its validity period; Err
// is ErrCertificateNotYetValid or ErrCertificateExpired.
type ValidityError struct {
	Err                      error
	Now, NotBefore, NotAfter time.Time
}

func (e *ValidityError) Error() string {
	return fmt.Sprintf("%v (valid from %s to %s, now %s)", e.Err,
		e.NotBefore.UTC().Format(time.RFC3339), e.NotAfter.UTC().Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
}

func (e *ValidityError) Unwrap() error { return e.Err }

// Valid reports whether the certificate is within its validity period at
// now (both bounds inclusive, as RFC 5280 says). It checks dates only: trust
// in the issuer is the TLS handshake's business.
func (id Identity) Valid(now time.Time) error {
	switch {
	case now.Before(id.NotBefore):
		return &ValidityError{ErrCertificateNotYetValid, now, id.NotBefore, id.NotAfter}
	case now.After(id.NotAfter):
		return &ValidityError{ErrCertificateExpired, now, id.NotBefore, id.NotAfter}
	}
	return nil
}

// String gives the identity without the person's names.
func (id Identity) String() string {
	s := fmt.Sprintf("idNat %s (%s", id.IDNat, id.Kind)
	if id.Test {
		s += ", test"
	}
	return s + ")"
}

// LogValue keeps the names out of structured logs too.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("idnat", id.IDNat),
		slog.String("kind", string(id.Kind)),
		slog.Bool("test", id.Test),
		slog.String("issuer_level", string(id.IssuerLevel)),
		slog.String("serial", id.SerialNumber),
		slog.Time("not_after", id.NotAfter),
	)
}

// ParseCPSCertificate parses a DER certificate (as read from a card) and
// returns the identity it carries.
func ParseCPSCertificate(der []byte) (Identity, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, fmt.Errorf("cardreader: CPS certificate: %w", err)
	}
	return IdentityFromCertificate(cert)
}

// IdentityFromCertificate returns the identity a CPS certificate carries in
// its subject, "CN=<idNat>+SN=<surname>+GN=<given name>,T=<profession>,C=FR",
// whether CN, SN and GN share one multi-valued RDN (as DESIGN §5 and the
// test PKI have it) or sit in separate RDNs (as some CPS generations have
// it). It does not check validity dates (see Identity.Valid) or the chain.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("cardreader: no certificate")
	}
	sub, err := parseSubject(cert.RawSubject)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{
		IDNat:       sub.idNat,
		Kind:        sub.kind,
		Number:      sub.idNat[1:],
		Surname:     sub.surname,
		GivenName:   sub.givenName,
		Profession:  sub.profession,
		IssuerCN:    cert.Issuer.CommonName,
		IssuerLevel: parseIssuerLevel(cert.Issuer.CommonName),
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		Certificate: cert,
	}
	id.Test = isTestIDNat(id.IDNat) || isTestIssuer(cert.Issuer)
	if cert.SerialNumber != nil {
		id.SerialNumber = strings.ToUpper(cert.SerialNumber.Text(16))
	}
	return id, nil
}

// cpsSubject is what parseSubject extracts from a subject name.
type cpsSubject struct {
	idNat      string
	kind       IDNatKind
	surname    string
	givenName  string
	profession string
}

var (
	oidCPSCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidCPSSN    = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidCPSTitle = asn1.ObjectIdentifier{2, 5, 4, 12}
	oidCPSGN    = asn1.ObjectIdentifier{2, 5, 4, 42}
)

// parseSubject reads a DER RDNSequence itself rather than through
// pkix.Name, which keeps only the last of repeated attributes and so could
// not refuse a subject with two CNs (two idNats: which one is the holder?).
func parseSubject(raw []byte) (cpsSubject, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return cpsSubject{}, &IdentityError{"subject", "not a DER-encoded name"}
	}
	if len(rest) != 0 {
		return cpsSubject{}, &IdentityError{"subject", "trailing data after the name"}
	}
	var sub cpsSubject
	attrs := [...]struct {
		name     string
		oid      asn1.ObjectIdentifier
		required bool
		dst      *string
		seen     bool
	}{
		{"CN", oidCPSCN, true, &sub.idNat, false},
		{"SN", oidCPSSN, true, &sub.surname, false},
		{"GN", oidCPSGN, true, &sub.givenName, false},
		{"T", oidCPSTitle, false, &sub.profession, false},
	}
	for _, rdn := range seq {
		for _, atv := range rdn {
			for i := range attrs {
				a := &attrs[i]
				if !atv.Type.Equal(a.oid) {
					continue
				}
				if a.seen {
					return cpsSubject{}, &IdentityError{a.name, "appears more than once"}
				}
				a.seen = true
				// encoding/asn1 decodes every DirectoryString choice to
				// UTF-8 (T61String as Latin-1, as BoringSSL does); any other
				// type arrives as something else than a string.
				s, ok := atv.Value.(string)
				if !ok {
					return cpsSubject{}, &IdentityError{a.name, "not a character string"}
				}
				*a.dst = s
			}
		}
	}
	for _, a := range attrs {
		if a.required && !a.seen {
			return cpsSubject{}, &IdentityError{a.name, "missing"}
		}
	}
	var reason string
	if sub.kind, reason = checkIDNat(sub.idNat); reason != "" {
		return cpsSubject{}, &IdentityError{"CN", reason}
	}
	for _, a := range attrs[1:] {
		if !a.seen {
			continue
		}
		if *a.dst, reason = checkCPSText(*a.dst); reason != "" {
			return cpsSubject{}, &IdentityError{a.name, reason}
		}
	}
	return sub, nil
}

// checkIDNat returns the kind of a CN that is a well-formed idNat, or why it
// is not one (without quoting it).
func checkIDNat(s string) (IDNatKind, string) {
	if len(s) < minIDNatLen || len(s) > maxIDNatLen {
		return "", fmt.Sprintf("not an idNat: length %d outside %d..%d", len(s), minIDNatLen, maxIDNatLen)
	}
	if !idNatIsDigit(s[0]) {
		return "", "not an idNat: does not start with a type digit"
	}
	kind := kindByDigit[s[0]-'0']
	rest := s[1:]
	switch {
	case kind == KindRPPS:
		// The RPPS number is 11 digits, checked exactly because RPPS is what
		// nearly every CPS carries and a wrong one must not pass as another.
		if len(rest) != 11 || !idNatAllDigits(rest) {
			return "", "not an RPPS idNat: want 8 followed by 11 digits"
		}
	case kind == KindADELI:
		if len(rest) != 9 || !idNatAllDigits(rest) {
			return "", "not an ADELI idNat: want 0 followed by 9 digits"
		}
	case kind.hasRegistry():
		structure, registry, slash := strings.Cut(rest, "/")
		if structure == "" || !idNatAllAlnum(structure) || (slash && (registry == "" || !idNatAllAlnum(registry))) {
			return "", "not an idNat: want a type digit, letters and digits, and at most one inner slash"
		}
	default:
		// Deprecated kinds and kinds unknown to us: no format to check
		// beyond the one every idNat shares.
		if !idNatAllDigits(rest) {
			return "", "not an idNat: want digits only"
		}
	}
	return kind, ""
}

// checkCPSText returns a name or title with surrounding spaces removed, or why
// it cannot be shown to the user.
func checkCPSText(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "empty"
	case len(s) > maxCPSTextLen:
		return "", fmt.Sprintf("longer than %d bytes", maxCPSTextLen)
	case !utf8.ValidString(s):
		return "", "not valid UTF-8"
	}
	for _, r := range s {
		// Control characters could forge log lines; format characters
		// (bidirectional overrides, zero-width joiners) could make the
		// screen show another name than the certificate holds.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", "holds control or formatting characters"
		}
	}
	return s, ""
}

func idNatIsDigit(c byte) bool { return '0' <= c && c <= '9' }

func idNatAllDigits(s string) bool {
	for i := range len(s) {
		if !idNatIsDigit(s[i]) {
			return false
		}
	}
	return true
}

func idNatAllAlnum(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !idNatIsDigit(c) && !('A' <= c && c <= 'Z') && !('a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// isTestIDNat reports the RPPS ranges ANS reserves for test cards
// (DESIGN §5): 8999… and 8997….
func isTestIDNat(idNat string) bool {
	return strings.HasPrefix(idNat, "8999") || strings.HasPrefix(idNat, "8997")
}

// isTestIssuer reports an issuer with the word TEST in any attribute: the
// test PKI (testcards/pki) marks both its CN ("TEST AC IGC-SANTE FORT
// PERSONNES") and an OU ("IGC-SANTE TEST"), so that a card from it is a
// test card whatever idNat it carries.
func isTestIssuer(issuer pkix.Name) bool {
	for _, atv := range issuer.Names {
		s, ok := atv.Value.(string)
		if ok && issuerHasWord(s, "TEST") {
			return true
		}
	}
	return false
}

// issuerHasWord reports whether s holds word between non-letters, ignoring case,
// so that TEST is found in "IGC-SANTE TEST" but not in "ATTESTATION".
func issuerHasWord(s, word string) bool {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

// parseIssuerLevel reads the level out of "AC IGC-SANTE <level> PERSONNES", with
// a TEST word anywhere allowed (the test PKI puts it in front).
func parseIssuerLevel(cn string) IssuerLevel {
	var words []string
	for _, w := range strings.Fields(strings.ToUpper(cn)) {
		if w != "TEST" {
			words = append(words, w)
		}
	}
	if len(words) != 4 || words[0] != "AC" || words[1] != "IGC-SANTE" || words[3] != "PERSONNES" {
		return LevelUnknown
	}
	switch l := IssuerLevel(words[2]); l {
	case LevelElementaire, LevelStandard, LevelFort:
		return l
	}
	return LevelUnknown
}
