package dmp

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stored query ids (IHE ITI TF-2a §3.18.4.1.2.3.7).
const (
	QueryFindDocuments               = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
	QueryFindSubmissionSets          = "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9"
	QueryFindDocumentsByReferenceID  = "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492"
	QueryGetDocuments                = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
	QueryGetAssociations             = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
	QueryGetDocumentsAndAssociations = "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a"
	QueryGetSubmissionSets           = "urn:uuid:51224314-5390-4169-9b91-b1980040715a"
	QueryGetSubmissionSetAndContents = "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83"
	QueryGetRelatedDocuments         = "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6"
)

// Return types of a stored query.
const (
	ReturnLeafClass = "LeafClass" // full metadata
	ReturnObjectRef = "ObjectRef" // entryUUIDs only (TD3.1b)
)

// StoredQuery is an ITI-18 request. One type serves every query the DMP
// clients use; a field maps to the parameter of its query (Patient is
// $XDSSubmissionSetPatientId in FindSubmissionSets and
// $XDSDocumentEntryPatientId elsewhere; Statuses likewise; UUIDs is $uuid
// in GetAssociations and GetSubmissionSets and $XDSDocumentEntryEntryUUID
// elsewhere). Values within a field are alternatives (OR). Parameters this
// type does not model are kept in Other, values as sent.
type StoredQuery struct {
	ID         string // Query… constant
	ReturnType string // ReturnLeafClass (default) or ReturnObjectRef

	Patient  INS
	Statuses []string

	ClassCodes, TypeCodes, FormatCodes      []Code
	PracticeSettingCodes, FacilityTypeCodes []Code
	ConfidentialityCodes, EventCodes        []Code

	CreationFrom, CreationTo             time.Time
	ServiceStartFrom, ServiceStartTo     time.Time
	ServiceStopFrom, ServiceStopTo       time.Time
	SubmissionTimeFrom, SubmissionTimeTo time.Time

	UniqueIDs []string
	UUIDs     []string

	Other []Slot
}

func (q *StoredQuery) usesSubmissionSetParams() bool { return q.ID == QueryFindSubmissionSets }

func (q *StoredQuery) usesUUIDParam() bool {
	return q.ID == QueryGetAssociations || q.ID == QueryGetSubmissionSets
}

// queryParam binds one parameter name to a StoredQuery field.
type queryParam struct {
	name  string
	codes func(q *StoredQuery) *[]Code
	time  func(q *StoredQuery) *time.Time
	strs  func(q *StoredQuery) *[]string
}

// queryParams lists the parameters in the order they are written.
var queryParams = []queryParam{
	{name: "$XDSDocumentEntryClassCode", codes: func(q *StoredQuery) *[]Code { return &q.ClassCodes }},
	{name: "$XDSDocumentEntryTypeCode", codes: func(q *StoredQuery) *[]Code { return &q.TypeCodes }},
	{name: "$XDSDocumentEntryFormatCode", codes: func(q *StoredQuery) *[]Code { return &q.FormatCodes }},
	{name: "$XDSDocumentEntryPracticeSettingCode", codes: func(q *StoredQuery) *[]Code { return &q.PracticeSettingCodes }},
	{name: "$XDSDocumentEntryHealthcareFacilityTypeCode", codes: func(q *StoredQuery) *[]Code { return &q.FacilityTypeCodes }},
	{name: "$XDSDocumentEntryConfidentialityCode", codes: func(q *StoredQuery) *[]Code { return &q.ConfidentialityCodes }},
	{name: "$XDSDocumentEntryEventCodeList", codes: func(q *StoredQuery) *[]Code { return &q.EventCodes }},
	{name: "$XDSDocumentEntryCreationTimeFrom", time: func(q *StoredQuery) *time.Time { return &q.CreationFrom }},
	{name: "$XDSDocumentEntryCreationTimeTo", time: func(q *StoredQuery) *time.Time { return &q.CreationTo }},
	{name: "$XDSDocumentEntryServiceStartTimeFrom", time: func(q *StoredQuery) *time.Time { return &q.ServiceStartFrom }},
	{name: "$XDSDocumentEntryServiceStartTimeTo", time: func(q *StoredQuery) *time.Time { return &q.ServiceStartTo }},
	{name: "$XDSDocumentEntryServiceStopTimeFrom", time: func(q *StoredQuery) *time.Time { return &q.ServiceStopFrom }},
	{name: "$XDSDocumentEntryServiceStopTimeTo", time: func(q *StoredQuery) *time.Time { return &q.ServiceStopTo }},
	{name: "$XDSSubmissionSetSubmissionTimeFrom", time: func(q *StoredQuery) *time.Time { return &q.SubmissionTimeFrom }},
	{name: "$XDSSubmissionSetSubmissionTimeTo", time: func(q *StoredQuery) *time.Time { return &q.SubmissionTimeTo }},
	{name: "$XDSDocumentEntryUniqueId", strs: func(q *StoredQuery) *[]string { return &q.UniqueIDs }},
}

const (
	paramDEPatient = "$XDSDocumentEntryPatientId"
	paramSSPatient = "$XDSSubmissionSetPatientId"
	paramDEStatus  = "$XDSDocumentEntryStatus"
	paramSSStatus  = "$XDSSubmissionSetStatus"
	paramDEUUID    = "$XDSDocumentEntryEntryUUID"
	paramUUID      = "$uuid"
)

// quote renders a query string value: 'v', a quote doubled.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// listValues renders items as ('a','b') lists, split over several Value
// elements (also alternatives) so that none exceeds the schema's 256
// characters.
func listValues(items []string) []string {
	var out []string
	var cur strings.Builder
	for _, it := range items {
		q := quote(it)
		if cur.Len() > 0 && cur.Len()+len(q)+2 > maxLongName {
			out = append(out, "("+cur.String()+")")
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(',')
		}
		cur.WriteString(q)
	}
	if cur.Len() > 0 {
		out = append(out, "("+cur.String()+")")
	}
	return out
}

// codeItem renders a coded parameter value: code^^scheme.
func codeItem(c Code) string {
	if c.Scheme == "" {
		return c.Code
	}
	return c.Code + "^^" + c.Scheme
}

// BuildQuery builds the query:AdhocQueryRequest body of an ITI-18 request,
// with returnComposedObjects="true" as the DMP examples.
func BuildQuery(q StoredQuery) ([]byte, error) {
	if q.ID == "" {
		return nil, fmt.Errorf("dmp: stored query without id")
	}
	rt := q.ReturnType
	if rt == "" {
		rt = ReturnLeafClass
	}
	if rt != ReturnLeafClass && rt != ReturnObjectRef {
		return nil, fmt.Errorf("dmp: stored query return type %q", rt)
	}
	var w ebWriter
	w.start("query:AdhocQueryRequest", "xmlns:query", NSQuery, "xmlns:rim", NSRIM)
	w.empty("query:ResponseOption", "returnComposedObjects", "true", "returnType", rt)
	w.start("rim:AdhocQuery", "id", q.ID)
	if q.Patient.Value != "" {
		name := paramDEPatient
		if q.usesSubmissionSetParams() {
			name = paramSSPatient
		}
		w.slot(name, quote(q.Patient.CX()))
	}
	if len(q.Statuses) > 0 {
		name := paramDEStatus
		if q.usesSubmissionSetParams() {
			name = paramSSStatus
		}
		w.slot(name, listValues(q.Statuses)...)
	}
	for _, p := range queryParams {
		switch {
		case p.codes != nil:
			cs := *p.codes(&q)
			items := make([]string, 0, len(cs))
			for _, c := range cs {
				items = append(items, codeItem(c))
			}
			w.slot(p.name, listValues(items)...)
		case p.time != nil:
			w.slot(p.name, formatDTM(*p.time(&q)))
		default:
			w.slot(p.name, listValues(*p.strs(&q))...)
		}
	}
	if len(q.UUIDs) > 0 {
		name := paramDEUUID
		if q.usesUUIDParam() {
			name = paramUUID
		}
		w.slot(name, listValues(q.UUIDs)...)
	}
	for _, s := range q.Other {
		w.slot(s.Name, s.Values...)
	}
	w.end("rim:AdhocQuery")
	w.end("query:AdhocQueryRequest")
	return w.bytes()
}

// splitList reads a parameter value leniently: 'a', ('a','b'), (a, b) or a
// bare a; quotes doubled or backslashed inside a quoted item are unescaped.
func splitList(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "(") {
		if !strings.HasSuffix(v, ")") {
			return nil, fmt.Errorf("%w: query value %q: unclosed list", ErrMalformed, v)
		}
		v = v[1 : len(v)-1]
	}
	var items []string
	var cur strings.Builder
	inQuote, quoted := false, false
	flush := func() {
		s := cur.String()
		if !quoted {
			s = strings.TrimSpace(s)
		}
		if s != "" || quoted {
			items = append(items, s)
		}
		cur.Reset()
		quoted = false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote && (c == '\'' || c == '\\') && i+1 < len(v) && v[i+1] == '\'':
			cur.WriteByte('\'')
			i++
		case c == '\'':
			if !inQuote {
				cur.Reset() // drop blanks before the opening quote
			}
			inQuote = !inQuote
			quoted = true
		case c == ',' && !inQuote:
			flush()
		case !inQuote && quoted && c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return nil, fmt.Errorf("%w: query value %q: text after a quoted item", ErrMalformed, v)
		case !inQuote && quoted:
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("%w: query value %q: unclosed quote", ErrMalformed, v)
	}
	flush()
	return items, nil
}

// parseCodeItem reads code^^scheme (CE), also code^^^scheme and a bare code.
func parseCodeItem(s string) Code {
	f := strings.Split(s, "^")
	c := Code{Code: f[0]}
	for i := len(f) - 1; i >= 2; i-- {
		if f[i] != "" {
			c.Scheme = strings.Trim(f[i], "&")
			if j := strings.IndexByte(c.Scheme, '&'); j >= 0 {
				c.Scheme = c.Scheme[:j]
			}
			break
		}
	}
	return c
}

type queryAdhocQueryRequest struct {
	XMLName        xml.Name `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0 AdhocQueryRequest"`
	ResponseOption struct {
		ReturnType string `xml:"returnType,attr"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0 ResponseOption"`
	Query *struct {
		ID    string    `xml:"id,attr"`
		Slots []rimSlot `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 Slot"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 AdhocQuery"`
}

// ParseQuery reads an ITI-18 request. Values of a parameter repeated over
// several Slot elements are merged as alternatives: the AND that IHE gives
// repeated slots matters only for event and confidentiality codes, which
// the DMP clients never send repeated.
func ParseQuery(envelope []byte) (*StoredQuery, error) {
	r, err := decodeXDSBody[queryAdhocQueryRequest](envelope)
	if err != nil {
		return nil, err
	}
	if r.Query == nil || r.Query.ID == "" {
		return nil, fmt.Errorf("%w: AdhocQueryRequest without AdhocQuery id", ErrMalformed)
	}
	q := &StoredQuery{ID: r.Query.ID, ReturnType: r.ResponseOption.ReturnType}
	if q.ReturnType == "" {
		q.ReturnType = "RegistryObject" // the schema's default
	}
	byName := make(map[string]*queryParam, len(queryParams))
	for i := range queryParams {
		byName[queryParams[i].name] = &queryParams[i]
	}
	for _, s := range r.Query.Slots {
		var items []string
		for _, v := range s.Values {
			its, err := splitList(v)
			if err != nil {
				return nil, fmt.Errorf("parameter %s: %w", s.Name, err)
			}
			items = append(items, its...)
		}
		if err := q.set(s, items, byName); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// set stores one parameter's items in the field it maps to.
func (q *StoredQuery) set(s rimSlot, items []string, byName map[string]*queryParam) error {
	switch s.Name {
	case paramDEPatient, paramSSPatient:
		if len(items) != 1 {
			return fmt.Errorf("%w: parameter %s has %d values, want 1", ErrMalformed, s.Name, len(items))
		}
		p, err := parsePatientCX(items[0])
		if err != nil {
			return fmt.Errorf("parameter %s: %w", s.Name, err)
		}
		q.Patient = p
	case paramDEStatus, paramSSStatus:
		q.Statuses = append(q.Statuses, items...)
	case paramDEUUID, paramUUID:
		q.UUIDs = append(q.UUIDs, items...)
	default:
		p := byName[s.Name]
		if p == nil {
			q.Other = append(q.Other, Slot(s))
			return nil
		}
		switch {
		case p.codes != nil:
			dst := p.codes(q)
			for _, it := range items {
				*dst = append(*dst, parseCodeItem(it))
			}
		case p.time != nil:
			if len(items) != 1 {
				return fmt.Errorf("%w: parameter %s has %d values, want 1", ErrMalformed, s.Name, len(items))
			}
			t, err := parseDTM(items[0])
			if err != nil {
				return fmt.Errorf("parameter %s: %w", s.Name, err)
			}
			*p.time(q) = t
		default:
			dst := p.strs(q)
			*dst = append(*dst, items...)
		}
	}
	return nil
}

// QueryResponse is the result of an ITI-18 query: full metadata for
// LeafClass queries, entryUUIDs (ObjectRefs) for ObjectRef ones.
type QueryResponse struct {
	Entries        []DocumentEntry
	SubmissionSets []SubmissionSet
	Associations   []Association
	ObjectRefs     []string
}

// BuildQueryResponse builds the query:AdhocQueryResponse body: Success
// without errors, Failure with errors and no result, PartialSuccess with
// both.
func BuildQueryResponse(r QueryResponse, errs []RegistryError) ([]byte, error) {
	results := len(r.Entries) + len(r.SubmissionSets) + len(r.Associations) + len(r.ObjectRefs)
	for i := range r.Associations {
		if err := checkAssociation(&r.Associations[i]); err != nil {
			return nil, err
		}
	}
	var w ebWriter
	w.start("query:AdhocQueryResponse", "xmlns:query", NSQuery, "xmlns:rim", NSRIM, "xmlns:rs", NSRS,
		"status", responseStatus(errs, results), "startIndex", "0", "totalResultCount", strconv.Itoa(results))
	w.errorList(errs)
	w.start("rim:RegistryObjectList")
	for _, id := range r.ObjectRefs {
		w.empty("rim:ObjectRef", "!id", id)
	}
	for i := range r.Entries {
		w.extrinsicObject(&r.Entries[i])
	}
	for i := range r.SubmissionSets {
		w.registryPackage(&r.SubmissionSets[i])
	}
	for i := range r.Associations {
		w.association(&r.Associations[i])
	}
	w.end("rim:RegistryObjectList")
	w.end("query:AdhocQueryResponse")
	return w.bytes()
}

type queryAdhocQueryResponse struct {
	XMLName xml.Name      `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0 AdhocQueryResponse"`
	Status  string        `xml:"status,attr"`
	Errors  *rsErrorList  `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryErrorList"`
	List    rimObjectList `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 RegistryObjectList"`
}

// ParseQueryResponse reads an ITI-18 answer. On Success it returns the
// result; on Failure a *Fault{Source: "registry"}; on PartialSuccess both
// the partial result and the *Fault.
func ParseQueryResponse(envelope []byte) (*QueryResponse, error) {
	r, err := decodeXDSBody[queryAdhocQueryResponse](envelope)
	if err != nil {
		return nil, err
	}
	serr := statusError(r.Status, r.Errors.registryErrors())
	if serr != nil && localName(r.Status) != "PartialSuccess" {
		return nil, serr
	}
	objs, err := r.List.decode()
	if err != nil {
		return nil, err
	}
	return &objs, serr
}
