package dmp

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// A PDF is sent to the DMP wrapped in a CDA R2 document with a
// non-structured body (CI-SIS level 1, IHE XDS-SD), whose header carries the
// metadata the registry cross-checks with the XDS ones.

// Code systems of the CDA header.
const (
	OIDLOINC           = "2.16.840.1.113883.6.1"
	OIDHL7Gender       = "2.16.840.1.113883.5.1"
	OIDConfidentiality = "2.16.840.1.113883.5.25"
	OIDPracticeSetting = "1.2.250.1.213.1.1.4.9" // TRE_A01 cadre d'exercice
)

// The templates of the official example (TD2.1-DocumentME2.xml): HL7 France
// header, CI-SIS header, IHE XDS-SD scanned document.
var cdaTemplates = []struct{ root, authority string }{
	{"2.16.840.1.113883.2.8.2.1", "HL7 France"},
	{"1.2.250.1.213.1.1.1.1", "CI-SIS"},
	{"1.3.6.1.4.1.19376.1.2.20", "IHE XDS-SD"},
}

// cdaTime is the HL7 TS form the DMP examples use: local time and offset.
const cdaTime = "20060102150405-0700"

// CDAHeader is the header of a level-1 CDA document: what the XDS metadata
// of its DocumentEntry must agree with.
type CDAHeader struct {
	UniqueID      string // ClinicalDocument/id@root, the document's XDS uniqueId
	SetID         string // shared by the versions of a document; UniqueID when empty
	Version       int    // versionNumber; 1 when zero
	Title         string
	TypeCode      string // LOINC or TRE_A05 code, the XDS typeCode
	TypeSystem    string // LOINC when empty
	TypeDisplay   string
	EffectiveTime time.Time

	Patient       INS
	PatientFamily string // birth name
	PatientGiven  string
	PatientSex    string // M, F or U
	PatientBirth  string // YYYYMMDD

	// Author is also the legal authenticator. Its Sector, when
	// FacilityType is empty, is the healthcare facility type; a parsed
	// header has Sector = FacilityType.
	Author Professional

	ServiceStart, ServiceStop time.Time // ServiceStop may be zero
	FacilityType              string    // TRE_R02 code, e.g. SA07
	PracticeSetting           string    // TRE_A01 code, e.g. AMBULATOIRE
}

func (h *CDAHeader) defaults() {
	if h.SetID == "" {
		h.SetID = h.UniqueID
	}
	if h.Version == 0 {
		h.Version = 1
	}
	if h.TypeSystem == "" {
		h.TypeSystem = OIDLOINC
	}
	if h.FacilityType == "" {
		h.FacilityType = h.Author.Sector
	}
}

// check reports the first field the DMP would refuse.
func (h *CDAHeader) check() error {
	if !isOID(h.UniqueID) || !isOID(h.SetID) {
		return fmt.Errorf("dmp: CDA id %q or setId %q is not an OID", h.UniqueID, h.SetID)
	}
	if !isOID(h.TypeSystem) {
		return fmt.Errorf("dmp: CDA type code system %q is not an OID", h.TypeSystem)
	}
	if err := h.Patient.Valid(); err != nil {
		return err
	}
	if err := h.Author.Valid(); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"title", h.Title}, {"type code", h.TypeCode}, {"patient family name", h.PatientFamily},
		{"patient given name", h.PatientGiven}, {"healthcare facility type", h.FacilityType},
		{"practice setting", h.PracticeSetting},
	} {
		if strings.TrimSpace(f.v) == "" {
			return fmt.Errorf("dmp: CDA header has no %s", f.name)
		}
	}
	switch {
	case h.Version < 1:
		return fmt.Errorf("dmp: CDA version %d", h.Version)
	case h.PatientSex != "M" && h.PatientSex != "F" && h.PatientSex != "U":
		return fmt.Errorf("dmp: patient sex %q is not M, F or U", h.PatientSex)
	case !isDate(h.PatientBirth):
		return fmt.Errorf("dmp: patient birth date %q is not YYYYMMDD", h.PatientBirth)
	case h.EffectiveTime.IsZero() || h.ServiceStart.IsZero():
		return errors.New("dmp: CDA header has no effective time or service start")
	case !h.ServiceStop.IsZero() && h.ServiceStop.Before(h.ServiceStart):
		return errors.New("dmp: CDA service stops before it starts")
	}
	return nil
}

func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// NewPDFDocument wraps a PDF in a level-1 CDA document. The header is
// checked first; the PDF is then streamed base64-encoded as it is read, so
// a large file is never held in memory. Only the first bytes are read
// here, to refuse what is not a PDF.
func NewPDFDocument(h CDAHeader, pdf io.Reader) (io.Reader, error) {
	h.defaults()
	if err := h.check(); err != nil {
		return nil, err
	}
	magic := make([]byte, 5)
	if _, err := io.ReadFull(pdf, magic); err != nil || string(magic) != "%PDF-" {
		return nil, fmt.Errorf("dmp: the document is not a PDF (%v)", err)
	}
	body := &base64Lines{src: io.MultiReader(bytes.NewReader(magic), pdf)}
	return io.MultiReader(strings.NewReader(cdaHead(&h)), body, strings.NewReader(cdaTail)), nil
}

const cdaTail = "</text>\n</nonXMLBody>\n</component>\n</ClinicalDocument>\n"

// cdaHead writes everything up to the opening tag of the body text.
func cdaHead(h *CDAHeader) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	a := h.Author
	eff := h.EffectiveTime.Format(cdaTime)
	w(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w(`<ClinicalDocument xmlns="urn:hl7-org:v3">` + "\n")
	w(`<realmCode code="FR"/>` + "\n")
	w(`<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>` + "\n")
	for _, t := range cdaTemplates {
		w(`<templateId root="%s" assigningAuthorityName="%s"/>`+"\n", t.root, t.authority)
	}
	w(`<id root="%s"/>`+"\n", escape(h.UniqueID))
	w(`<code code="%s" codeSystem="%s"%s/>`+"\n", escape(h.TypeCode), escape(h.TypeSystem), displayAttr(h.TypeDisplay))
	w("<title>%s</title>\n", escape(h.Title))
	w(`<effectiveTime value="%s"/>`+"\n", eff)
	w(`<confidentialityCode code="N" displayName="Normal" codeSystem="%s"/>`+"\n", OIDConfidentiality)
	w(`<languageCode code="fr-FR"/>` + "\n")
	w(`<setId root="%s"/>`+"\n", escape(h.SetID))
	w(`<versionNumber value="%d"/>`+"\n", h.Version)
	w("<recordTarget><patientRole>\n")
	w(`<id root="%s" extension="%s"/>`+"\n", escape(h.Patient.OID), escape(h.Patient.Value))
	w("<patient><name><given>%s</given><family qualifier=\"BR\">%s</family></name>\n", escape(h.PatientGiven), escape(h.PatientFamily))
	w(`<administrativeGenderCode code="%s" codeSystem="%s"/>`+"\n", h.PatientSex, OIDHL7Gender)
	w(`<birthTime value="%s"/>`+"\n", h.PatientBirth)
	w("</patient></patientRole></recordTarget>\n")
	w(`<author><time value="%s"/><assignedAuthor>`+"\n", eff)
	w("%s\n", psID(a))
	w(`<code code="%s" codeSystem="%s"%s/>`+"\n", escape(a.AuthorSpecialty()), OIDAuthorSpec, displayAttr(a.ProfessionLabel))
	w("%s\n", personName(a))
	w(`<representedOrganization><id root="%s" extension="%s"/><name>%s</name>`, OIDStructIDNat, escape(a.StructureID), escape(a.StructureName))
	w(`<standardIndustryClassCode code="%s" codeSystem="%s"/></representedOrganization>`+"\n", escape(h.PracticeSetting), OIDPracticeSetting)
	w("</assignedAuthor></author>\n")
	w(`<custodian><assignedCustodian><representedCustodianOrganization><id root="%s" extension="%s"/><name>%s</name>`, OIDStructIDNat, escape(a.StructureID), escape(a.StructureName))
	w("</representedCustodianOrganization></assignedCustodian></custodian>\n")
	w(`<legalAuthenticator><time value="%s"/><signatureCode code="S"/><assignedEntity>`+"\n", eff)
	w("%s\n%s\n</assignedEntity></legalAuthenticator>\n", psID(a), personName(a))
	interval := ivl(h.ServiceStart, h.ServiceStop)
	w("<documentationOf><serviceEvent>%s</serviceEvent></documentationOf>\n", interval)
	w("<componentOf><encompassingEncounter>%s<location><healthCareFacility>", interval)
	w(`<code code="%s" codeSystem="%s"/>`, escape(h.FacilityType), OIDSector)
	w("</healthCareFacility></location></encompassingEncounter></componentOf>\n")
	w("<component>\n<nonXMLBody>\n")
	w(`<text mediaType="application/pdf" representation="B64">` + "\n")
	return b.String()
}

func displayAttr(d string) string {
	if d == "" {
		return ""
	}
	return ` displayName="` + escape(d) + `"`
}

func psID(a Professional) string {
	return fmt.Sprintf(`<id root="%s" extension="%s"/>`, OIDPSIDNat, escape(a.IDNat))
}

func personName(a Professional) string {
	return fmt.Sprintf("<assignedPerson><name><given>%s</given><family>%s</family></name></assignedPerson>", escape(a.GivenName), escape(a.Surname))
}

func ivl(start, stop time.Time) string {
	s := fmt.Sprintf(`<effectiveTime><low value="%s"/>`, start.Format(cdaTime))
	if !stop.IsZero() {
		s += fmt.Sprintf(`<high value="%s"/>`, stop.Format(cdaTime))
	}
	return s + "</effectiveTime>"
}

// base64Lines encodes its source in 76-column lines (MIME style, which
// the CDA examples use) as it is read.
type base64Lines struct {
	src io.Reader
	in  [57 * 64]byte // 64 lines of 57 bytes, each 76 characters encoded
	out []byte
	buf []byte
	err error
}

func (b *base64Lines) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		n, err := io.ReadFull(b.src, b.in[:])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			b.err = io.EOF
		case err != nil:
			b.err = err
		}
		b.buf = b.buf[:0]
		for chunk := b.in[:n]; len(chunk) > 0; {
			k := min(len(chunk), 57)
			b.buf = base64.StdEncoding.AppendEncode(b.buf, chunk[:k])
			b.buf = append(b.buf, '\n')
			chunk = chunk[k:]
		}
		b.out = b.buf
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// maxCDAHeader bounds what ParseCDAHeader reads before the body starts.
const maxCDAHeader = 1 << 20

// ParseCDAHeader reads the header of a CDA document and stops at its body,
// so that a large document is not read whole. The header must be complete
// (the checks NewPDFDocument makes); any other input gives an error
// wrapping ErrMalformed, or ErrDTD.
func ParseCDAHeader(r io.Reader) (*CDAHeader, error) {
	d := xml.NewDecoder(io.LimitReader(r, maxCDAHeader))
	root, err := firstStart(d)
	if err != nil {
		return nil, err
	}
	if root.Name.Space != NSHL7 || root.Name.Local != "ClinicalDocument" {
		return nil, fmt.Errorf("%w: root %s is not a CDA ClinicalDocument", ErrMalformed, root.Name.Local)
	}
	var c cdaXML
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: CDA header: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil, fmt.Errorf("%w: CDA document without a body", ErrMalformed)
		case xml.Directive:
			return nil, ErrDTD
		case xml.StartElement:
			if t.Name.Space != NSHL7 {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
				}
				continue
			}
			if t.Name.Local == "component" {
				return c.header()
			}
			if err := c.decode(d, t); err != nil {
				return nil, fmt.Errorf("%w: CDA %s: %v", ErrMalformed, t.Name.Local, err)
			}
		}
	}
}

func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return xml.StartElement{}, ErrDTD
		case xml.StartElement:
			return t, nil
		}
	}
}

type hl7II struct {
	Root      string `xml:"root,attr"`
	Extension string `xml:"extension,attr"`
}

type hl7Code struct {
	Code        string `xml:"code,attr"`
	CodeSystem  string `xml:"codeSystem,attr"`
	DisplayName string `xml:"displayName,attr"`
}

type hl7Value struct {
	Value string `xml:"value,attr"`
}

type hl7IVL struct {
	Low  hl7Value `xml:"effectiveTime>low"`
	High hl7Value `xml:"effectiveTime>high"`
}

type hl7Name struct {
	Given  string `xml:"given"`
	Family string `xml:"family"`
}

// cdaXML collects the header elements ParseCDAHeader understands.
type cdaXML struct {
	id, setID     hl7II
	code          hl7Code
	title         string
	effectiveTime string
	version       string
	patientIDs    []hl7II
	patientName   hl7Name
	sex, birth    string
	authorIDs     []hl7II
	authorCode    hl7Code
	authorName    hl7Name
	org           hl7II
	orgName       string
	practice      hl7Code
	service       hl7IVL
	facilityCode  hl7Code
	seenRecord    bool
	seenAuthor    bool
	seenService   bool
}

func (c *cdaXML) decode(d *xml.Decoder, t xml.StartElement) error {
	switch t.Name.Local {
	case "id":
		return d.DecodeElement(&c.id, &t)
	case "setId":
		return d.DecodeElement(&c.setID, &t)
	case "code":
		return d.DecodeElement(&c.code, &t)
	case "title":
		return d.DecodeElement(&c.title, &t)
	case "effectiveTime":
		var v hl7Value
		err := d.DecodeElement(&v, &t)
		c.effectiveTime = v.Value
		return err
	case "versionNumber":
		var v hl7Value
		err := d.DecodeElement(&v, &t)
		c.version = v.Value
		return err
	case "recordTarget":
		if c.seenRecord {
			return errors.New("more than one patient")
		}
		c.seenRecord = true
		var v struct {
			IDs     []hl7II `xml:"patientRole>id"`
			Patient struct {
				Name  hl7Name  `xml:"name"`
				Sex   hl7Code  `xml:"administrativeGenderCode"`
				Birth hl7Value `xml:"birthTime"`
			} `xml:"patientRole>patient"`
		}
		err := d.DecodeElement(&v, &t)
		c.patientIDs, c.patientName, c.sex, c.birth = v.IDs, v.Patient.Name, v.Patient.Sex.Code, v.Patient.Birth.Value
		return err
	case "author":
		if c.seenAuthor {
			return d.Skip() // the first author is the one XDS reports
		}
		c.seenAuthor = true
		var v struct {
			IDs     []hl7II `xml:"assignedAuthor>id"`
			Code    hl7Code `xml:"assignedAuthor>code"`
			Name    hl7Name `xml:"assignedAuthor>assignedPerson>name"`
			OrgID   hl7II   `xml:"assignedAuthor>representedOrganization>id"`
			OrgName string  `xml:"assignedAuthor>representedOrganization>name"`
			Sector  hl7Code `xml:"assignedAuthor>representedOrganization>standardIndustryClassCode"`
		}
		err := d.DecodeElement(&v, &t)
		c.authorIDs, c.authorCode, c.authorName, c.org, c.orgName, c.practice = v.IDs, v.Code, v.Name, v.OrgID, v.OrgName, v.Sector
		return err
	case "documentationOf":
		if c.seenService {
			return d.Skip()
		}
		c.seenService = true
		var v struct {
			Event hl7IVL `xml:"serviceEvent"`
		}
		err := d.DecodeElement(&v, &t)
		c.service = v.Event
		return err
	case "componentOf":
		var v struct {
			Code hl7Code `xml:"encompassingEncounter>location>healthCareFacility>code"`
		}
		err := d.DecodeElement(&v, &t)
		c.facilityCode = v.Code
		return err
	default:
		return d.Skip()
	}
}

// header turns the collected elements into a checked CDAHeader.
func (c *cdaXML) header() (*CDAHeader, error) {
	h := &CDAHeader{
		UniqueID:        c.id.Root,
		SetID:           c.setID.Root,
		Title:           strings.TrimSpace(c.title),
		TypeCode:        c.code.Code,
		TypeSystem:      c.code.CodeSystem,
		TypeDisplay:     c.code.DisplayName,
		PatientFamily:   strings.TrimSpace(c.patientName.Family),
		PatientGiven:    strings.TrimSpace(c.patientName.Given),
		PatientSex:      c.sex,
		PatientBirth:    c.birth,
		FacilityType:    c.facilityCode.Code,
		PracticeSetting: c.practice.Code,
	}
	var err error
	if h.Version, err = strconv.Atoi(c.version); err != nil && c.version != "" {
		return nil, fmt.Errorf("%w: CDA versionNumber %q", ErrMalformed, c.version)
	}
	for _, id := range c.patientIDs {
		if (INS{Value: id.Extension, OID: id.Root}).Valid() == nil {
			h.Patient = INS{Value: id.Extension, OID: id.Root}
			break
		}
	}
	for _, id := range c.authorIDs {
		if id.Root == OIDPSIDNat {
			h.Author.IDNat = id.Extension
		}
	}
	h.Author.Surname = strings.TrimSpace(c.authorName.Family)
	h.Author.GivenName = strings.TrimSpace(c.authorName.Given)
	h.Author.ProfessionLabel = c.authorCode.DisplayName
	spec, _ := strings.CutPrefix(c.authorCode.Code, "G15_")
	h.Author.Profession, h.Author.Specialty, _ = strings.Cut(spec, "/")
	if c.org.Root == OIDStructIDNat {
		h.Author.StructureID = c.org.Extension
	}
	h.Author.StructureName = strings.TrimSpace(c.orgName)
	h.Author.Sector = h.FacilityType
	for _, t := range []struct {
		dst *time.Time
		v   string
	}{{&h.EffectiveTime, c.effectiveTime}, {&h.ServiceStart, c.service.Low.Value}, {&h.ServiceStop, c.service.High.Value}} {
		if t.v == "" {
			continue
		}
		if *t.dst, err = parseHL7Time(t.v); err != nil {
			return nil, fmt.Errorf("%w: CDA time %q", ErrMalformed, t.v)
		}
	}
	h.defaults()
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h, nil
}

// parseHL7Time reads the TS precisions the DMP examples use: a date, or a
// date and time with or without offset (UTC assumed without).
func parseHL7Time(s string) (time.Time, error) {
	for _, layout := range []string{cdaTime, "20060102150405", "200601021504-0700", "20060102"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an HL7 TS")
}
