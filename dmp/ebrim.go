package dmp

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ebRIM 3.0 encoding of the XDS metadata. Messages are written by hand
// rather than with encoding/xml's encoder so that each namespace is declared
// once on the body element with a stable prefix (rim:, lcm:, query:, rs:,
// xds:), the element order is the schema's, and the output is byte-stable.

// Schema limits on ebRIM strings (rim.xsd LongName and FreeFormText).
const (
	maxLongName     = 256
	maxFreeFormText = 1024
)

// ebWriter writes one body element. Sub-object ids (Classification,
// ExternalIdentifier) are numbered in document order, as in the DMP
// examples ("cl1", "ei1"), which keeps the output deterministic; err keeps
// the first value the schema would refuse.
type ebWriter struct {
	b   bytes.Buffer
	seq int
	err error
}

// start writes an opening tag. attrs are name, value pairs; a pair whose
// value is empty is left out, unless the name starts with "!" (written
// without the "!").
func (w *ebWriter) start(name string, attrs ...string) {
	w.b.WriteString("<" + name)
	w.attrs(attrs)
	w.b.WriteByte('>')
}

// empty writes an element without content.
func (w *ebWriter) empty(name string, attrs ...string) {
	w.b.WriteString("<" + name)
	w.attrs(attrs)
	w.b.WriteString("/>")
}

func (w *ebWriter) attrs(attrs []string) {
	for i := 0; i+1 < len(attrs); i += 2 {
		k, v := attrs[i], attrs[i+1]
		keep := strings.HasPrefix(k, "!")
		if v == "" && !keep {
			continue
		}
		w.b.WriteString(" " + strings.TrimPrefix(k, "!") + `="` + ebEscape(v) + `"`)
	}
}

func (w *ebWriter) end(name string) { w.b.WriteString("</" + name + ">") }

// text writes an element holding text.
func (w *ebWriter) text(name, s string) {
	w.start(name)
	w.b.WriteString(ebEscape(s))
	w.end(name)
}

// ebEscape escapes text and attribute values. Unlike xml.EscapeText it
// leaves apostrophes alone, so that quoted query values read as in the DMP
// examples ('…' rather than &#39;…&#39;); characters XML cannot carry
// become U+FFFD, as encoding/xml does.
func ebEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			if !isXMLChar(r) {
				r = utf8.RuneError
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// limit records an error when s is longer than the schema allows.
func (w *ebWriter) limit(what, s string, max int) {
	if w.err == nil && utf8.RuneCountInString(s) > max {
		w.err = fmt.Errorf("dmp: %s is longer than %d characters", what, max)
	}
}

func (w *ebWriter) nextID(prefix string) string {
	w.seq++
	return prefix + strconv.Itoa(w.seq)
}

// bytes returns the element, or the first limit error.
func (w *ebWriter) bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b.Bytes(), nil
}

// slot writes a Slot with its non-empty values, or nothing when none is.
func (w *ebWriter) slot(name string, values ...string) {
	var vs []string
	for _, v := range values {
		if v != "" {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return
	}
	w.start("rim:Slot", "name", name)
	w.start("rim:ValueList")
	for _, v := range vs {
		w.limit("slot "+name+" value", v, maxLongName)
		w.text("rim:Value", v)
	}
	w.end("rim:ValueList")
	w.end("rim:Slot")
}

// localized writes a Name or Description, with the charset and language
// attributes of the DMP examples.
func (w *ebWriter) localized(elem, s string) {
	if s == "" {
		return
	}
	w.limit(elem, s, maxFreeFormText)
	w.start(elem)
	w.empty("rim:LocalizedString", "charset", "UTF8", "value", s, "xml:lang", "FR")
	w.end(elem)
}

// coded writes a coded Classification (nodeRepresentation, codingScheme
// slot, display name).
func (w *ebWriter) coded(scheme, object string, c Code) {
	if c.Code == "" {
		return
	}
	w.limit("code", c.Code, maxLongName)
	w.start("rim:Classification", "classificationScheme", scheme, "classifiedObject", object,
		"id", w.nextID("cl"), "nodeRepresentation", c.Code)
	w.slot("codingScheme", c.Scheme)
	w.localized("rim:Name", c.Display)
	w.end("rim:Classification")
}

// author writes an author Classification. nodeRepresentation is present
// and empty, as IHE requires for this external classification.
func (w *ebWriter) author(scheme, object string, a Author) {
	w.start("rim:Classification", "classificationScheme", scheme, "classifiedObject", object,
		"id", w.nextID("cl"), "!nodeRepresentation", "")
	w.slot("authorPerson", a.Person())
	w.slot("authorInstitution", a.Institution())
	w.slot("authorSpecialty", a.SpecialtyCE())
	w.end("rim:Classification")
}

func (w *ebWriter) externalID(scheme, object, value, name string) {
	if value == "" {
		return
	}
	w.limit(name, value, maxLongName)
	w.start("rim:ExternalIdentifier", "id", w.nextID("ei"), "identificationScheme", scheme,
		"registryObject", object, "value", value)
	w.localized("rim:Name", name)
	w.end("rim:ExternalIdentifier")
}

func patientCX(p INS) string {
	if p.Value == "" {
		return ""
	}
	return p.CX()
}

// extrinsicObject writes a DocumentEntry.
func (w *ebWriter) extrinsicObject(e *DocumentEntry) {
	size := ""
	if e.Size > 0 {
		size = strconv.FormatInt(e.Size, 10)
	}
	w.start("rim:ExtrinsicObject", "id", e.ID, "lid", e.LogicalID, "mimeType", e.MimeType,
		"objectType", ObjectTypeStableEntry, "status", e.Status)
	w.slot("creationTime", formatDTM(e.CreationTime))
	w.slot("hash", e.Hash)
	w.slot("languageCode", e.Language)
	w.slot("legalAuthenticator", e.LegalAuthenticator)
	w.slot("repositoryUniqueId", e.RepositoryUniqueID)
	w.slot("serviceStartTime", formatDTM(e.ServiceStart))
	w.slot("serviceStopTime", formatDTM(e.ServiceStop))
	w.slot("size", size)
	w.slot("sourcePatientId", e.SourcePatientID)
	w.slot("sourcePatientInfo", e.SourcePatientInfo...)
	w.localized("rim:Name", e.Title)
	w.localized("rim:Description", e.Comments)
	if e.Version != "" {
		w.limit("versionName", e.Version, 16)
		w.empty("rim:VersionInfo", "versionName", e.Version)
	}
	for _, a := range e.Authors {
		w.author(uuidDEAuthor, e.ID, a)
	}
	w.coded(uuidDEClassCode, e.ID, e.Class)
	for _, c := range e.Confidentiality {
		w.coded(uuidDEConfidentiality, e.ID, c)
	}
	for _, c := range e.EventCodes {
		w.coded(uuidDEEventCode, e.ID, c)
	}
	w.coded(uuidDEFormatCode, e.ID, e.Format)
	w.coded(uuidDEFacilityType, e.ID, e.FacilityType)
	w.coded(uuidDEPracticeSetting, e.ID, e.PracticeSetting)
	w.coded(uuidDETypeCode, e.ID, e.Type)
	w.externalID(uuidDEPatientID, e.ID, patientCX(e.Patient), "XDSDocumentEntry.patientId")
	w.externalID(uuidDEUniqueID, e.ID, e.UniqueID, "XDSDocumentEntry.uniqueId")
	w.end("rim:ExtrinsicObject")
}

// registryPackage writes a SubmissionSet.
func (w *ebWriter) registryPackage(s *SubmissionSet) {
	w.start("rim:RegistryPackage", "id", s.ID)
	w.slot("submissionTime", formatDTM(s.SubmissionTime))
	w.localized("rim:Name", s.Title)
	w.localized("rim:Description", s.Comments)
	if s.Author != (Author{}) {
		w.author(uuidSSAuthor, s.ID, s.Author)
	}
	w.coded(uuidSSContentType, s.ID, s.ContentType)
	w.empty("rim:Classification", "classificationNode", uuidSSNode, "classifiedObject", s.ID, "id", w.nextID("cl"))
	w.externalID(uuidSSPatientID, s.ID, patientCX(s.Patient), "XDSSubmissionSet.patientId")
	w.externalID(uuidSSSourceID, s.ID, s.SourceID, "XDSSubmissionSet.sourceId")
	w.externalID(uuidSSUniqueID, s.ID, s.UniqueID, "XDSSubmissionSet.uniqueId")
	w.end("rim:RegistryPackage")
}

// association writes an Association; a missing id is numbered.
func (w *ebWriter) association(a *Association) {
	id := a.ID
	if id == "" {
		id = w.nextID("assoc")
	}
	w.start("rim:Association", "associationType", a.Type, "id", id,
		"objectType", objectTypeAssociation, "sourceObject", a.Source, "targetObject", a.Target)
	for _, s := range a.Slots {
		w.slot(s.Name, s.Values...)
	}
	w.end("rim:Association")
}

// checkAssociation reports an association the schema would refuse.
func checkAssociation(a *Association) error {
	if a.Type == "" || a.Source == "" || a.Target == "" {
		return fmt.Errorf("dmp: association %q needs a type, a source and a target", a.ID)
	}
	return nil
}

// --- decoding ---

// rimSlot and the types below mirror the ebRIM elements a reader needs.
// Element names are namespace-qualified: a DMP answer uses the rim
// namespace throughout, and whatever prefix it picks does not matter.
type rimSlot struct {
	Name   string   `xml:"name,attr"`
	Values []string `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 ValueList>Value"`
}

type rimString struct {
	Strings []struct {
		Value string `xml:"value,attr"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 LocalizedString"`
}

func (s *rimString) text() string {
	if s == nil || len(s.Strings) == 0 {
		return ""
	}
	return s.Strings[0].Value
}

type rimClassification struct {
	Scheme  string     `xml:"classificationScheme,attr"`
	Object  string     `xml:"classifiedObject,attr"`
	Node    string     `xml:"classificationNode,attr"`
	NodeRep string     `xml:"nodeRepresentation,attr"`
	Slots   []rimSlot  `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Slot"`
	Name    *rimString `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Name"`
}

type rimExternalID struct {
	Scheme string `xml:"identificationScheme,attr"`
	Value  string `xml:"value,attr"`
}

type rimObject struct {
	ID              string     `xml:"id,attr"`
	LID             string     `xml:"lid,attr"`
	Status          string     `xml:"status,attr"`
	MimeType        string     `xml:"mimeType,attr"`
	AssociationType string     `xml:"associationType,attr"`
	Source          string     `xml:"sourceObject,attr"`
	Target          string     `xml:"targetObject,attr"`
	Slots           []rimSlot  `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Slot"`
	Name            *rimString `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Name"`
	Description     *rimString `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Description"`
	VersionInfo     *struct {
		Name string `xml:"versionName,attr"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 VersionInfo"`
	Classifications []rimClassification `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Classification"`
	ExternalIDs     []rimExternalID     `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 ExternalIdentifier"`
}

type rimObjectList struct {
	Extrinsic       []rimObject         `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 ExtrinsicObject"`
	Packages        []rimObject         `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 RegistryPackage"`
	Associations    []rimObject         `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Association"`
	Classifications []rimClassification `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Classification"`
	ObjectRefs      []struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 ObjectRef"`
}

// slotValues returns the trimmed values of the first slot with that name.
func slotValues(slots []rimSlot, name string) []string {
	for _, s := range slots {
		if s.Name == name {
			out := make([]string, 0, len(s.Values))
			for _, v := range s.Values {
				out = append(out, strings.TrimSpace(v))
			}
			return out
		}
	}
	return nil
}

func slotValue(slots []rimSlot, name string) string {
	if v := slotValues(slots, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c *rimClassification) code() Code {
	return Code{Code: c.NodeRep, Scheme: slotValue(c.Slots, "codingScheme"), Display: c.Name.text()}
}

func (c *rimClassification) author() Author {
	var a Author
	a.setPerson(slotValue(c.Slots, "authorPerson"))
	a.setInstitution(slotValue(c.Slots, "authorInstitution"))
	a.setSpecialty(slotValue(c.Slots, "authorSpecialty"))
	return a
}

func (o *rimObject) externalID(scheme string) string {
	for _, e := range o.ExternalIDs {
		if e.Scheme == scheme {
			return strings.TrimSpace(e.Value)
		}
	}
	return ""
}

// optionalDTM reads a time slot; an absent slot is the zero time.
func optionalDTM(slots []rimSlot, name string) (time.Time, error) {
	s := slotValue(slots, name)
	if s == "" {
		return time.Time{}, nil
	}
	return parseDTM(s)
}

// entryFromRIM reads a DocumentEntry from an ExtrinsicObject.
func entryFromRIM(o *rimObject) (DocumentEntry, error) {
	e := DocumentEntry{
		ID: o.ID, LogicalID: o.LID, Status: o.Status, MimeType: o.MimeType,
		Title: o.Name.text(), Comments: o.Description.text(),
		Language:           slotValue(o.Slots, "languageCode"),
		LegalAuthenticator: slotValue(o.Slots, "legalAuthenticator"),
		SourcePatientID:    slotValue(o.Slots, "sourcePatientId"),
		SourcePatientInfo:  slotValues(o.Slots, "sourcePatientInfo"),
		Hash:               slotValue(o.Slots, "hash"),
		RepositoryUniqueID: slotValue(o.Slots, "repositoryUniqueId"),
		UniqueID:           o.externalID(uuidDEUniqueID),
	}
	if e.ID == "" {
		return e, fmt.Errorf("%w: ExtrinsicObject without id", ErrMalformed)
	}
	if o.VersionInfo != nil {
		e.Version = o.VersionInfo.Name
	}
	var err error
	for _, t := range []struct {
		slot string
		dst  *time.Time
	}{{"creationTime", &e.CreationTime}, {"serviceStartTime", &e.ServiceStart}, {"serviceStopTime", &e.ServiceStop}} {
		if *t.dst, err = optionalDTM(o.Slots, t.slot); err != nil {
			return e, fmt.Errorf("entry %s %s: %w", e.ID, t.slot, err)
		}
	}
	if s := slotValue(o.Slots, "size"); s != "" {
		if e.Size, err = strconv.ParseInt(s, 10, 64); err != nil || e.Size < 0 {
			return e, fmt.Errorf("%w: entry %s size %q", ErrMalformed, e.ID, s)
		}
	}
	if cx := o.externalID(uuidDEPatientID); cx != "" {
		if e.Patient, err = parsePatientCX(cx); err != nil {
			return e, fmt.Errorf("entry %s: %w", e.ID, err)
		}
	}
	for i := range o.Classifications {
		c := &o.Classifications[i]
		switch c.Scheme {
		case uuidDEAuthor:
			e.Authors = append(e.Authors, c.author())
		case uuidDEClassCode:
			e.Class = c.code()
		case uuidDETypeCode:
			e.Type = c.code()
		case uuidDEFormatCode:
			e.Format = c.code()
		case uuidDEFacilityType:
			e.FacilityType = c.code()
		case uuidDEPracticeSetting:
			e.PracticeSetting = c.code()
		case uuidDEConfidentiality:
			e.Confidentiality = append(e.Confidentiality, c.code())
		case uuidDEEventCode:
			e.EventCodes = append(e.EventCodes, c.code())
		}
	}
	return e, nil
}

// submissionSetFromRIM reads a SubmissionSet from a RegistryPackage.
func submissionSetFromRIM(o *rimObject) (SubmissionSet, error) {
	s := SubmissionSet{
		ID: o.ID, Title: o.Name.text(), Comments: o.Description.text(),
		UniqueID: o.externalID(uuidSSUniqueID), SourceID: o.externalID(uuidSSSourceID),
	}
	if s.ID == "" {
		return s, fmt.Errorf("%w: RegistryPackage without id", ErrMalformed)
	}
	var err error
	if s.SubmissionTime, err = optionalDTM(o.Slots, "submissionTime"); err != nil {
		return s, fmt.Errorf("submission set %s: %w", s.ID, err)
	}
	if cx := o.externalID(uuidSSPatientID); cx != "" {
		if s.Patient, err = parsePatientCX(cx); err != nil {
			return s, fmt.Errorf("submission set %s: %w", s.ID, err)
		}
	}
	for i := range o.Classifications {
		c := &o.Classifications[i]
		switch c.Scheme {
		case uuidSSAuthor:
			if s.Author == (Author{}) {
				s.Author = c.author()
			}
		case uuidSSContentType:
			s.ContentType = c.code()
		}
	}
	return s, nil
}

func associationFromRIM(o *rimObject) (Association, error) {
	a := Association{ID: o.ID, Type: o.AssociationType, Source: o.Source, Target: o.Target}
	if err := checkAssociation(&a); err != nil {
		return a, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for _, s := range o.Slots {
		vs := make([]string, 0, len(s.Values))
		for _, v := range s.Values {
			vs = append(vs, strings.TrimSpace(v))
		}
		a.Slots = append(a.Slots, Slot{Name: s.Name, Values: vs})
	}
	return a, nil
}

// isSubmissionSet reports whether a RegistryPackage is classified as a
// submission set, inside it or by a Classification at the list's top level
// (both placements are allowed by IHE).
func (l *rimObjectList) isSubmissionSet(o *rimObject) bool {
	for _, c := range o.Classifications {
		if c.Node == uuidSSNode {
			return true
		}
	}
	for _, c := range l.Classifications {
		if c.Node == uuidSSNode && c.Object == o.ID {
			return true
		}
	}
	return false
}

// decode reads every object of the list. Packages that are not submission
// sets (folders, unused by the DMP) are skipped, except that a lone
// unclassified package is taken as the submission set, as lenient
// registries do.
func (l *rimObjectList) decode() (QueryResponse, error) {
	var r QueryResponse
	for i := range l.Extrinsic {
		e, err := entryFromRIM(&l.Extrinsic[i])
		if err != nil {
			return r, err
		}
		r.Entries = append(r.Entries, e)
	}
	for i := range l.Packages {
		p := &l.Packages[i]
		if !l.isSubmissionSet(p) && len(l.Packages) > 1 {
			continue
		}
		s, err := submissionSetFromRIM(p)
		if err != nil {
			return r, err
		}
		r.SubmissionSets = append(r.SubmissionSets, s)
	}
	for i := range l.Associations {
		a, err := associationFromRIM(&l.Associations[i])
		if err != nil {
			return r, err
		}
		r.Associations = append(r.Associations, a)
	}
	for _, ref := range l.ObjectRefs {
		if ref.ID == "" {
			return r, fmt.Errorf("%w: ObjectRef without id", ErrMalformed)
		}
		r.ObjectRefs = append(r.ObjectRefs, ref.ID)
	}
	return r, nil
}

// oneSubmissionSet returns the single submission set a submission carries.
func (r *QueryResponse) oneSubmissionSet() (SubmissionSet, error) {
	if len(r.SubmissionSets) != 1 {
		return SubmissionSet{}, fmt.Errorf("%w: %d submission sets, want 1", ErrMalformed, len(r.SubmissionSets))
	}
	return r.SubmissionSets[0], nil
}
