package dmptest

import (
	"strings"
	"sync"

	"github.com/dmpagent/dmpagent/dmp"
)

// Identity is a person the simulated INSi teleservice knows: what a lookup
// with Vitale card data returns.
type Identity struct {
	NIR        string   // 13 characters and the 2-digit key: the INS
	OID        string   // 1.2.250.1.213.1.4.8 (NIR) or .9 (NIA), as INSi answers even in qualification
	BirthName  string   // capitals, as INSi spells them
	Given      []string // first names, the first one first
	Sex        string   // M or F
	BirthDate  string   // YYYY-MM-DD
	BirthPlace string   // INSEE COG code
	// InsuredNIR is the NIR of the insured person whose card carries this
	// beneficiary ("ouvrant droit"); Rank the birth rank among twins.
	InsuredNIR string
	Rank       int
}

// defaultIdentities are the Vitale personas of the simulation, whose INS
// carry the test OID (DESIGN §7), and public CNDA test identities, which
// carry the OID INSi gives them even in qualification.
var defaultIdentities = []Identity{
	{NIR: "275126322074974", OID: dmp.OIDINSNIRTest, BirthName: "ADRUN", Given: []string{"ZOE"}, Sex: "F", BirthDate: "1975-12-31", BirthPlace: "63220", InsuredNIR: "275126322074974", Rank: 1},
	{NIR: "112046322012323", OID: dmp.OIDINSNIRTest, BirthName: "ADRUN", Given: []string{"LEO"}, Sex: "M", BirthDate: "2012-04-10", BirthPlace: "63220", InsuredNIR: "275126322074974", Rank: 1},
	{NIR: "207058575627097", OID: dmp.OIDINSNIRTest, BirthName: "PATB-QUATRE", Given: []string{"LAURENCE"}, Sex: "F", BirthDate: "1907-05-25", BirthPlace: "85756", InsuredNIR: "207058575627097", Rank: 1},
	{NIR: "236066322083656", OID: oidNIR, BirthName: "TCHITCHI", Given: []string{"CATARINA", "BELLA"}, Sex: "F", BirthDate: "1936-06-21", BirthPlace: "63220", InsuredNIR: "236066322083656", Rank: 1},
	{NIR: "110086322083060", OID: oidNIR, BirthName: "NESSI", Given: []string{"MICHELANGELO", "ANTHONY"}, Sex: "M", BirthDate: "2010-08-07", BirthPlace: "63220", InsuredNIR: "110086322083060", Rank: 1},
	{NIR: "180032B02040123", OID: oidNIR, BirthName: "CORSE", Given: []string{"ANTHONY"}, Sex: "M", BirthDate: "1980-03-02", BirthPlace: "2B020", InsuredNIR: "180032B02040123", Rank: 1},
	{NIR: "109076322088835", OID: "1.2.250.1.213.1.4.9", BirthName: "PROVISOIRE", Given: []string{"MATRICULE"}, Sex: "M", BirthDate: "2009-07-01", BirthPlace: "63220", InsuredNIR: "109076322088835", Rank: 1},
}

const oidNIR = "1.2.250.1.213.1.4.8"

// identities is the simulated INSi's directory.
type identities struct {
	mu  sync.Mutex
	all []Identity
}

func newIdentities() *identities {
	return &identities{all: append([]Identity(nil), defaultIdentities...)}
}

func (d *identities) add(id Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, id)
}

// lookup finds the people a Vitale card's data designates: by the
// beneficiary's own NIR when the card has it, else by the insured's NIR,
// the birth date and the birth rank; the birth name must match too.
func (d *identities) lookup(beneficiaryNIR, insuredNIR, birthName, birthDate string, rank int) []Identity {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Identity
	for _, id := range d.all {
		switch {
		case beneficiaryNIR != "" && !sameNIR(id.NIR, beneficiaryNIR):
			continue
		case beneficiaryNIR == "" && (!sameNIR(id.InsuredNIR, insuredNIR) || id.BirthDate != birthDate || (rank > 0 && id.Rank != rank)):
			continue
		case birthName != "" && !strings.EqualFold(id.BirthName, birthName):
			continue
		}
		out = append(out, id)
	}
	return out
}

// sameNIR compares NIRs with or without their key.
func sameNIR(a, b string) bool {
	if len(a) == 15 && len(b) == 13 {
		a = a[:13]
	}
	if len(b) == 15 && len(a) == 13 {
		b = b[:13]
	}
	return a == b
}

// AddIdentity teaches the simulated INSi one more person.
func (s *Server) AddIdentity(id Identity) { s.insi.add(id) }

// insiLookup answers rechercherInsAvecCarteVitale.
func (s *Server) insiLookup(c *call) (*answer, error) {
	l, err := dmp.ParseINSiLookup(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	var found []dmp.INSIdentity
	for _, id := range s.insi.lookup(l.BeneficiaryNIR, l.InsuredNIR, l.BirthName, dashed(l.BirthDate), l.Rank) {
		found = append(found, dmp.INSIdentity{INS: dmp.INS{Value: id.NIR, OID: id.OID}, BirthName: id.BirthName, Given: id.Given,
			Sex: id.Sex, BirthDate: strings.ReplaceAll(id.BirthDate, "-", ""), BirthPlace: id.BirthPlace})
	}
	body, err := dmp.BuildINSiResult(found)
	return &answer{body: body}, err
}

func dashed(d string) string {
	if len(d) == 8 {
		return d[:4] + "-" + d[4:6] + "-" + d[6:]
	}
	return d
}
