// Package persona holds the fixed identities of the simulated cards: the
// health professionals behind the emulated CPS cards and the patients behind
// the emulated Vitale cards (DESIGN §7). Scripts and tests rely on these
// values, so they change only with the design brief.
package persona

import (
	"fmt"
	"sort"

	"github.com/dmpagent/dmpagent/cardreader"
)

// Professional is the holder of a CPS card.
type Professional struct {
	Name            string // persona name used on the command line: gp, pharmacist, …
	IDNat           string // national identifier: "8" + RPPS for these personas
	Surname         string
	GivenName       string
	ProfessionCode  string // TRE_G15 profession code, e.g. "10" for Médecin
	ProfessionLabel string // label carried in the certificate's T= attribute
	Specialty       string // TRE_R38 specialty code, e.g. "SM26"; empty when none
	StructureID     string
	StructureName   string
	Sector          string // Secteur_Activite code, e.g. "SA07"
}

// Beneficiary is one person on a Vitale card.
type Beneficiary struct {
	NIR       string // 13 digits followed by the 2-digit control key
	Surname   string
	GivenName string
	Sex       string // "F" or "M"
	BirthDate string // YYYYMMDD, as the card stores it
	Rank      int    // birth rank among twins, 1 otherwise
	Quality   string // "insured" or "child"
}

// Patient is the holder of a Vitale card and the beneficiaries it carries.
type Patient struct {
	Name          string // persona name: family, single
	Beneficiaries []Beneficiary
	CardSerial    string // printed serial of the card
	ValidFrom     string // YYYYMMDD
}

var professionals = []Professional{
	{"gp", "899900063480", "LIBRE", "Max", "10", "Médecin", "SM26", "499900063480001", "CABINET DR LIBRE", "SA07"},
	{"pharmacist", "899900070011", "OFFICINE", "Anne", "21", "Pharmacien", "", "399900070011001", "PHARMACIE DU CENTRE", "SA33"},
	{"cardiologist", "899900070029", "CARDIO", "Paul", "10", "Médecin", "SM04", "499900070029001", "CABINET DE CARDIOLOGIE", "SA07"},
	{"nurse", "899900070037", "SOINS", "Julie", "60", "Infirmier", "", "499900070037001", "CABINET INFIRMIER", "SA07"},
	{"emergency", "899900070045", "REGUL", "Marc", "10", "Médecin", "SM59", "199900070045001", "SAMU CENTRE 15", "SA01"},
}

var patients = []Patient{
	{
		Name: "family",
		Beneficiaries: []Beneficiary{
			{NIR: "275126322074974", Surname: "ADRUN", GivenName: "Zoé", Sex: "F", BirthDate: "19751231", Rank: 1, Quality: "insured"},
			{NIR: "112046322012323", Surname: "ADRUN", GivenName: "Léo", Sex: "M", BirthDate: "20120410", Rank: 1, Quality: "child"},
		},
		CardSerial: "0000000000000101",
		ValidFrom:  "20200115",
	},
	{
		Name: "single",
		Beneficiaries: []Beneficiary{
			{NIR: "207058575627097", Surname: "PATB-QUATRE", GivenName: "Laurence", Sex: "F", BirthDate: "19070525", Rank: 1, Quality: "insured"},
		},
		CardSerial: "0000000000000102",
		ValidFrom:  "20190610",
	},
}

// Professionals returns every CPS persona, in a fixed order.
func Professionals() []Professional { return append([]Professional(nil), professionals...) }

// Patients returns every Vitale persona, in a fixed order.
func Patients() []Patient {
	out := make([]Patient, len(patients))
	for i, p := range patients {
		out[i] = p
		out[i].Beneficiaries = append([]Beneficiary(nil), p.Beneficiaries...)
	}
	return out
}

// LookupProfessional returns the CPS persona with the given name.
func LookupProfessional(name string) (Professional, error) {
	for _, p := range professionals {
		if p.Name == name {
			return p, nil
		}
	}
	return Professional{}, fmt.Errorf("no CPS persona %q (have %v)", name, names(professionals, func(p Professional) string { return p.Name }))
}

// LookupPatient returns the Vitale persona with the given name.
func LookupPatient(name string) (Patient, error) {
	for _, p := range Patients() {
		if p.Name == name {
			return p, nil
		}
	}
	return Patient{}, fmt.Errorf("no Vitale persona %q (have %v)", name, names(patients, func(p Patient) string { return p.Name }))
}

func names[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	sort.Strings(out)
	return out
}

// NIRKey computes the control key of a 13-character NIR, Corsica's 2A and
// 2B included; it is cardreader.NIRKey, kept here so that persona data and
// the agent check NIRs with the same rule.
func NIRKey(nir13 string) (int, error) { return cardreader.NIRKey(nir13) }

// ValidNIR reports whether a 15-character NIR carries the right control key
// (cardreader.ValidNIR).
func ValidNIR(nir string) bool { return cardreader.ValidNIR(nir) }
