package dmp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// The INSi teleservice of the Assurance Maladie: the patient's INS and
// reference identity from the Vitale card's data (rechercherInsAvecCarteVitale).
// The lookup travels in a SOAP 1.2 envelope with the VIHF, like the DMP's
// services; the ContexteBAM/ContexteLPS headers of the real teleservice are
// not sent yet.

// Actions of the INSi lookup with a Vitale card.
const (
	ActionINSiVitale         = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecCarteVitale"
	ActionINSiVitaleResponse = ActionINSiVitale + "Response"
	nsINSiRecVit             = "http://www.cnamts.fr/INSiRecVit"
	nsINSiResultat           = "http://www.cnamts.fr/INSiResultat"
)

// INSi refusals: no identity, or several, for the card's data.
const (
	CodeINSiNotFound  = "INSiAucuneIdentite"     // CodeCR 01
	CodeINSiAmbiguous = "INSiPlusieursIdentites" // CodeCR 02
)

// VitaleLookup is what a Vitale card tells INSi of a beneficiary.
type VitaleLookup struct {
	BeneficiaryNIR string // 15 characters, when the card has the beneficiary's own
	InsuredNIR     string // 15 characters: the insured person's ("ouvrant droit")
	BirthName      string
	BirthDate      string // YYYYMMDD as the card stores it (possibly lunar)
	Rank           int    // birth rank among twins; 0 when unknown
}

// INSIdentity is INSi's answer: the INS and the reference identity traits.
type INSIdentity struct {
	INS        INS
	BirthName  string
	Given      []string
	Sex        string
	BirthDate  string // YYYYMMDD
	BirthPlace string // INSEE COG code
}

type insiMatricule struct {
	Num string `xml:"NumIdentifiant"`
	Key string `xml:"Cle,omitempty"`
}

type insiLookupXML struct {
	XMLName     xml.Name       `xml:"http://www.cnamts.fr/INSiRecVit RECVITALE"`
	Beneficiary *insiMatricule `xml:"MatriculeIndividu"`
	Insured     *insiMatricule `xml:"MatriculeOD"`
	BirthName   string         `xml:"NomNaissance,omitempty"`
	BirthDate   string         `xml:"DateNaissance,omitempty"`
	Rank        string         `xml:"RangNaissance,omitempty"`
}

func matricule(nir string) (*insiMatricule, error) {
	if nir == "" {
		return nil, nil
	}
	if len(nir) != 15 {
		return nil, fmt.Errorf("dmp: NIR %q is not 15 characters", nir)
	}
	return &insiMatricule{Num: nir[:13], Key: nir[13:]}, nil
}

// lunar dates keep their digits: YYYYMMDD ↔ YYYY-MM-DD.
func dashedDate(d string) string {
	if len(d) == 8 {
		return d[:4] + "-" + d[4:6] + "-" + d[6:]
	}
	return d
}

func plainDate(d string) string { return strings.ReplaceAll(d, "-", "") }

// BuildINSiLookup builds the RECVITALE body.
func BuildINSiLookup(l VitaleLookup) ([]byte, error) {
	x := insiLookupXML{BirthName: l.BirthName, BirthDate: dashedDate(l.BirthDate)}
	var err error
	if x.Beneficiary, err = matricule(l.BeneficiaryNIR); err != nil {
		return nil, err
	}
	if x.Insured, err = matricule(l.InsuredNIR); err != nil {
		return nil, err
	}
	if x.Beneficiary == nil && x.Insured == nil {
		return nil, errors.New("dmp: INSi lookup needs the beneficiary's or the insured's NIR")
	}
	if l.Rank > 0 {
		x.Rank = fmt.Sprint(l.Rank)
	}
	return xml.Marshal(x)
}

// ParseINSiLookup reads a RECVITALE request.
func ParseINSiLookup(envelope []byte) (*VitaleLookup, error) {
	x, err := DecodeBody[insiLookupXML](envelope)
	if err != nil {
		return nil, err
	}
	l := &VitaleLookup{BirthName: strings.TrimSpace(x.BirthName), BirthDate: plainDate(strings.TrimSpace(x.BirthDate))}
	if x.Beneficiary != nil {
		l.BeneficiaryNIR = x.Beneficiary.Num + x.Beneficiary.Key
	}
	if x.Insured != nil {
		l.InsuredNIR = x.Insured.Num + x.Insured.Key
	}
	if l.BeneficiaryNIR == "" && l.InsuredNIR == "" {
		return nil, fmt.Errorf("%w: RECVITALE without a NIR", ErrMalformed)
	}
	if x.Rank != "" {
		if _, err := fmt.Sscan(x.Rank, &l.Rank); err != nil {
			return nil, fmt.Errorf("%w: RangNaissance %q", ErrMalformed, x.Rank)
		}
	}
	return l, nil
}

// insiPerson is RESULTAT's INDIVIDU.
type insiPerson struct {
	Active struct {
		ID  insiMatricule `xml:"IdIndividu"`
		OID string        `xml:"OID"`
	} `xml:"INSACTIF"`
	Traits struct {
		BirthName  string `xml:"NomNaissance,omitempty"`
		Given      string `xml:"Prenom,omitempty"`
		GivenList  string `xml:"ListePrenom,omitempty"`
		Sex        string `xml:"Sexe,omitempty"`
		BirthDate  string `xml:"DateNaissance,omitempty"`
		BirthPlace string `xml:"LieuNaissance,omitempty"`
	} `xml:"TIQ"`
}

type insiResultXML struct {
	XMLName xml.Name `xml:"http://www.cnamts.fr/INSiResultat RESULTAT"`
	CR      struct {
		Code  string `xml:"CodeCR"`
		Label string `xml:"LibelleCR"`
	} `xml:"CR"`
	Person *insiPerson `xml:"INDIVIDU"`
}

// BuildINSiResult builds the RESULTAT body for the identities found:
// CodeCR 00 with the identity, 01 for none, 02 for several.
func BuildINSiResult(found []INSIdentity) ([]byte, error) {
	var x insiResultXML
	switch len(found) {
	case 0:
		x.CR.Code, x.CR.Label = "01", "Aucune identite trouvee"
	case 1:
		x.CR.Code, x.CR.Label = "00", "OK"
		id := found[0]
		if len(id.INS.Value) != 15 {
			return nil, fmt.Errorf("dmp: INS %q is not 15 characters", id.INS.Value)
		}
		x.Person = &insiPerson{}
		x.Person.Active.ID = insiMatricule{Num: id.INS.Value[:13], Key: id.INS.Value[13:]}
		x.Person.Active.OID = id.INS.OID
		t := &x.Person.Traits
		t.BirthName, t.Sex, t.BirthDate, t.BirthPlace = id.BirthName, id.Sex, dashedDate(id.BirthDate), id.BirthPlace
		if len(id.Given) > 0 {
			t.Given, t.GivenList = id.Given[0], strings.Join(id.Given, " ")
		}
	default:
		x.CR.Code, x.CR.Label = "02", "Plusieurs identites trouvees"
	}
	return xml.Marshal(x)
}

// ParseINSiResult reads RESULTAT: the identity for CodeCR 00, a *Fault
// for 01 (CodeINSiNotFound), 02 (CodeINSiAmbiguous) or another code.
func ParseINSiResult(envelope []byte) (*INSIdentity, error) {
	x, err := DecodeBody[insiResultXML](envelope)
	if err != nil {
		return nil, err
	}
	switch x.CR.Code {
	case "00":
	case "01":
		return nil, &Fault{Code: CodeINSiNotFound, Message: x.CR.Label, Source: "insi"}
	case "02":
		return nil, &Fault{Code: CodeINSiAmbiguous, Message: x.CR.Label, Source: "insi"}
	default:
		return nil, &Fault{Code: "INSi" + x.CR.Code, Message: x.CR.Label, Source: "insi"}
	}
	if x.Person == nil {
		return nil, fmt.Errorf("%w: CodeCR 00 without an identity", ErrMalformed)
	}
	p := x.Person
	id := &INSIdentity{INS: INS{Value: p.Active.ID.Num + p.Active.ID.Key, OID: strings.TrimSpace(p.Active.OID)},
		BirthName: p.Traits.BirthName, Sex: p.Traits.Sex, BirthDate: plainDate(p.Traits.BirthDate), BirthPlace: p.Traits.BirthPlace,
		Given: strings.Fields(p.Traits.GivenList)}
	if len(id.Given) == 0 && p.Traits.Given != "" {
		id.Given = []string{p.Traits.Given}
	}
	if err := id.INS.Valid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, nil
}

// LookupINS asks INSi for the INS of a Vitale card's beneficiary.
func (c *Client) LookupINS(ctx context.Context, actor Actor, l VitaleLookup) (*INSIdentity, error) {
	if c.cfg.INSiURL == "" {
		return nil, errors.New("dmp: no INSi endpoint configured")
	}
	body, err := BuildINSiLookup(l)
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, request{url: c.cfg.INSiURL, action: ActionINSiVitale, actor: actor, body: body})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	return ParseINSiResult(rep.envelope)
}
