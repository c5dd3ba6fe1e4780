package dmp

import (
	"errors"
	"fmt"
	"strings"
)

// INS OIDs (the assigning authority of a patient identifier).
const (
	OIDINSNIR     = "1.2.250.1.213.1.4.8"  // INS-NIR, production
	OIDINSNIA     = "1.2.250.1.213.1.4.9"  // INS-NIA, provisional number
	OIDINSNIRTest = "1.2.250.1.213.1.4.10" // INS-NIR of the DMP test environments
	OIDINSNIRDemo = "1.2.250.1.213.1.4.11" // INS-NIR of demonstrations
	OIDINSC       = "1.2.250.1.213.1.4.2"  // legacy INS-C, still returned by the DMP
)

// Identifier OIDs of professionals and structures (RPPS/ADELI national ids).
const (
	OIDPSIDNat     = "1.2.250.1.71.4.2.1"
	OIDStructIDNat = "1.2.250.1.71.4.2.2"
	OIDProfession  = "1.2.250.1.71.1.2.7" // TRE_G15
	OIDSpecialty   = "1.2.250.1.71.4.2.5" // TRE_R01
	OIDSector      = "1.2.250.1.71.4.2.4" // TRE_R02
	OIDAuthorSpec  = "1.2.250.1.213.1.1.4.5"
	OIDDMPSystem   = "1.2.250.1.213.4.1.1.1"
)

// INS is a patient's national health identifier: 15 characters (the NIR and
// its key) and the OID of the authority that assigned it.
type INS struct {
	Value string
	OID   string
}

// CX renders the identifier as HL7 v2 CX, the form XDS and the VIHF use:
// "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH".
func (i INS) CX() string { return i.Value + "^^^&" + i.OID + "&ISO^NH" }

func (i INS) String() string { return i.CX() }

// Valid reports whether the identifier has the shape the DMP accepts: 15
// characters, digits except Corsica's 2A/2B, and a known OID.
func (i INS) Valid() error {
	switch i.OID {
	case OIDINSNIR, OIDINSNIA, OIDINSNIRTest, OIDINSNIRDemo:
	default:
		return fmt.Errorf("dmp: INS OID %q is not an INS authority", i.OID)
	}
	if len(i.Value) != 15 {
		return fmt.Errorf("dmp: INS %q is not 15 characters", i.Value)
	}
	for k, c := range i.Value {
		if c >= '0' && c <= '9' {
			continue
		}
		if k == 6 && (c == 'A' || c == 'B') && i.Value[5] == '2' {
			continue
		}
		return fmt.Errorf("dmp: INS %q has a bad character at %d", i.Value, k)
	}
	return nil
}

// ParseCX reads an INS from its CX form. It accepts the CX.7 date suffix
// some clients add ("…^NH^^20100907") and ignores it.
func ParseCX(s string) (INS, error) {
	f := strings.Split(s, "^")
	if len(f) < 5 || f[4] != "NH" {
		return INS{}, fmt.Errorf("dmp: %q is not an INS in CX form", s)
	}
	auth := strings.Split(f[3], "&")
	if len(auth) != 3 || auth[2] != "ISO" {
		return INS{}, fmt.Errorf("dmp: %q has no ISO assigning authority", s)
	}
	ins := INS{Value: f[0], OID: auth[1]}
	if err := ins.Valid(); err != nil {
		return INS{}, err
	}
	return ins, nil
}

// Professional is the health professional on whose behalf a request is
// made, as read from the CPS card.
type Professional struct {
	IDNat           string // national id, e.g. 899900063480
	Surname         string
	GivenName       string
	Profession      string // TRE_G15 code, e.g. "10" Médecin
	ProfessionLabel string
	Specialty       string // TRE_R01 code, e.g. "SM26"; mandatory for physicians and pharmacists
	StructureID     string // Struct_IdNat of the activity, e.g. 499900063480001
	StructureName   string
	Sector          string // TRE_R02 code, e.g. "SA07"
}

// AuthorSpecialty is the combined TRE_A02 code the DMP uses in XDS author
// metadata: "G15_10/SM26", or "G15_60" without a specialty.
func (p Professional) AuthorSpecialty() string {
	if p.Specialty == "" {
		return "G15_" + p.Profession
	}
	return "G15_" + p.Profession + "/" + p.Specialty
}

// DisplayName is the name the VIHF subject-id carries: "Max LIBRE".
func (p Professional) DisplayName() string {
	return strings.TrimSpace(p.GivenName + " " + p.Surname)
}

// Valid reports the first missing field the DMP would reject.
func (p Professional) Valid() error {
	for _, f := range []struct{ name, v string }{
		{"national id", p.IDNat}, {"surname", p.Surname}, {"given name", p.GivenName},
		{"profession", p.Profession}, {"structure id", p.StructureID}, {"sector", p.Sector},
	} {
		if f.v == "" {
			return fmt.Errorf("dmp: professional has no %s", f.name)
		}
	}
	// The real service refuses a physician's VIHF without a specialty
	// ("Spécialité obligatoire pour les Médecins"); the IG also names
	// pharmacists, but no refusal of one is attested, and CPS cards of
	// pharmacists often carry none.
	if p.Profession == "10" && p.Specialty == "" {
		return errors.New("dmp: a physician needs a specialty in the VIHF")
	}
	return nil
}

// AccessMode is the VIHF purpose of use (TRE_R248).
type AccessMode string

// Access modes.
const (
	ModeNormal     AccessMode = "normal"
	ModeBreakGlass AccessMode = "bris_de_glace"
	ModeCentre15   AccessMode = "centre_15"
)

// Label is the TRE_R248 display name.
func (m AccessMode) Label() string {
	switch m {
	case ModeBreakGlass:
		return "Accès en bris de glace"
	case ModeCentre15:
		return "Accès par un centre de régulation médicale"
	default:
		return "Accès normal"
	}
}

// Valid reports whether m is one of the three modes.
func (m AccessMode) Valid() bool {
	return m == ModeNormal || m == ModeBreakGlass || m == ModeCentre15
}

// Actor is who makes a request and how: the professional, the access mode,
// and for break-glass the written reason.
type Actor struct {
	Professional
	Mode   AccessMode // empty means normal
	Reason string     // required for bris_de_glace
}

func (a Actor) mode() AccessMode {
	if a.Mode == "" {
		return ModeNormal
	}
	return a.Mode
}

// Software identifies the practice software (LPS) in the VIHF.
type Software struct {
	Name         string // LPS_Nom
	Version      string // LPS_Version
	ID           string // LPS_ID, the installation
	Homologation string // LPS_ID_HOMOLOGATION_DMP, the CNDA number
}
