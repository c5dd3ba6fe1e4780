package dmp

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBuildQuery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		q     StoredQuery
		wants []string
	}{
		{"TD3.1a", StoredQuery{ID: QueryFindDocuments, Patient: xdsINS, Statuses: []string{StatusApproved}}, []string{
			`<query:ResponseOption returnComposedObjects="true" returnType="LeafClass"/><rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">`,
			`<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList><rim:Value>'207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH'</rim:Value></rim:ValueList></rim:Slot>`,
			`<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList><rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value></rim:ValueList></rim:Slot>`,
		}},
		{"filters", StoredQuery{ID: QueryFindDocuments, Patient: xdsINS, Statuses: []string{StatusApproved, StatusArchived},
			TypeCodes: []Code{{"11488-4", SchemeLOINC, ""}, {"SYNTH", SchemeTypeComplement, ""}}, ConfidentialityCodes: []Code{{"MASQUE_PS", SchemeVisibility, ""}},
			CreationFrom: xdsTime, ServiceStartTo: xdsTime}, []string{
			`<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved','urn:asip:ci-sis:2010:StatusType:Archived')</rim:Value>`,
			`<rim:Slot name="$XDSDocumentEntryTypeCode"><rim:ValueList><rim:Value>('11488-4^^2.16.840.1.113883.6.1','SYNTH^^1.2.250.1.213.1.1.4.12')</rim:Value>`,
			`<rim:Slot name="$XDSDocumentEntryConfidentialityCode"><rim:ValueList><rim:Value>('MASQUE_PS^^1.2.250.1.213.1.1.4.13')</rim:Value>`,
			`<rim:Slot name="$XDSDocumentEntryCreationTimeFrom"><rim:ValueList><rim:Value>20210604135051</rim:Value>`,
			`<rim:Slot name="$XDSDocumentEntryServiceStartTimeTo"><rim:ValueList><rim:Value>20210604135051</rim:Value>`,
		}},
		{"TD3.1b", StoredQuery{ID: QueryGetDocuments, ReturnType: ReturnObjectRef, UniqueIDs: []string{"1.2.3.4"}}, []string{
			`returnType="ObjectRef"`, `<rim:Slot name="$XDSDocumentEntryUniqueId"><rim:ValueList><rim:Value>('1.2.3.4')</rim:Value>`,
		}},
		{"GetDocuments by entryUUID", StoredQuery{ID: QueryGetDocuments, UUIDs: []string{"urn:uuid:1"}}, []string{
			`<rim:Slot name="$XDSDocumentEntryEntryUUID"><rim:ValueList><rim:Value>('urn:uuid:1')</rim:Value>`,
		}},
		{"GetAssociations", StoredQuery{ID: QueryGetAssociations, UUIDs: []string{"urn:uuid:1", "urn:uuid:2"}}, []string{
			`<rim:Slot name="$uuid"><rim:ValueList><rim:Value>('urn:uuid:1','urn:uuid:2')</rim:Value>`,
		}},
		{"FindSubmissionSets", StoredQuery{ID: QueryFindSubmissionSets, Patient: xdsINS, Statuses: []string{StatusApproved},
			SubmissionTimeFrom: xdsTime, Other: []Slot{{"$XDSSubmissionSetContentType", []string{"('04^^1.2.250.1.213.2.2')"}}}}, []string{
			`<rim:Slot name="$XDSSubmissionSetPatientId">`, `<rim:Slot name="$XDSSubmissionSetStatus">`,
			`<rim:Slot name="$XDSSubmissionSetSubmissionTimeFrom"><rim:ValueList><rim:Value>20210604135051</rim:Value>`,
			`<rim:Slot name="$XDSSubmissionSetContentType"><rim:ValueList><rim:Value>('04^^1.2.250.1.213.2.2')</rim:Value>`,
		}},
		{"quote in value", StoredQuery{ID: QueryGetDocuments, UniqueIDs: []string{"it's"}}, []string{`<rim:Value>('it''s')</rim:Value>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := BuildQuery(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(string(body), w) {
					t.Errorf("missing %s in\n%s", w, body)
				}
			}
			env := validateXDS(t, ActionITI18, body)
			got, err := ParseQuery(env)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.q
			if want.ReturnType == "" {
				want.ReturnType = ReturnLeafClass
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
			}
		})
	}
	if _, err := BuildQuery(StoredQuery{}); err == nil {
		t.Error("built a query without id")
	}
	if _, err := BuildQuery(StoredQuery{ID: QueryGetDocuments, ReturnType: "All"}); err == nil {
		t.Error("built a query with a bad return type")
	}
}

// TestBuildQueryLongList checks that a list longer than a Value may hold
// is split over several Values, all read back.
func TestBuildQueryLongList(t *testing.T) {
	var ids []string
	for i := range 40 {
		ids = append(ids, "1.2.250.1.999.1.1.7898.3.16228146515"+strings.Repeat("0", i%3))
	}
	q := StoredQuery{ID: QueryGetDocuments, UniqueIDs: ids}
	body, err := BuildQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(body), "<rim:Value>"); n < 2 {
		t.Errorf("%d values", n)
	}
	got, err := ParseQuery(validateXDS(t, ActionITI18, body))
	if err != nil || !reflect.DeepEqual(got.UniqueIDs, ids) {
		t.Errorf("ParseQuery = %v, %v", got, err)
	}
}

// TestParseQueryField reads the EX TD3.1 request body and the value
// syntaxes seen in the field.
func TestParseQueryField(t *testing.T) {
	ex := `<ns3:AdhocQueryRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0" xmlns:ns2="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" xmlns:ns3="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" xmlns:ns4="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">
         <ns3:ResponseOption returnComposedObjects="true" returnType="LeafClass"/>
         <AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">
            <Slot name="$XDSDocumentEntryPatientId">
               <ValueList>
                  <Value>'207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH'</Value>
               </ValueList>
            </Slot>
            <Slot name="$XDSDocumentEntryStatus">
               <ValueList>
                  <Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</Value>
               </ValueList>
            </Slot>
            <Slot name="$XDSDocumentEntryStatus"><ValueList><Value>  ( 'urn:asip:ci-sis:2010:StatusType:Archived' , 'x' ) </Value><Value>y</Value></ValueList></Slot>
            <Slot name="$XDSDocumentEntryClassCode"><ValueList><Value>('10^^1.2.250.1.213.1.1.4.1', '11^^^&amp;1.2.250.1.213.1.1.4.1&amp;ISO', 42)</Value></ValueList></Slot>
            <Slot name="$XDSDocumentEntryCreationTimeFrom"><ValueList><Value>201003</Value></ValueList></Slot>
            <Slot name="$XDSDocumentEntryAuthorPerson"><ValueList><Value>('%LIBRE%')</Value></ValueList></Slot>
         </AdhocQuery>
      </ns3:AdhocQueryRequest>`
	q, err := ParseQuery(envelope(ActionITI18, []byte(ex)))
	if err != nil {
		t.Fatal(err)
	}
	want := StoredQuery{ID: QueryFindDocuments, ReturnType: ReturnLeafClass, Patient: xdsINS,
		Statuses:     []string{StatusApproved, StatusArchived, "x", "y"},
		ClassCodes:   []Code{{"10", SchemeClassCode, ""}, {"11", SchemeClassCode, ""}, {"42", "", ""}},
		CreationFrom: time.Date(2010, 3, 1, 0, 0, 0, 0, time.UTC),
		Other:        []Slot{{"$XDSDocumentEntryAuthorPerson", []string{"('%LIBRE%')"}}},
	}
	if !reflect.DeepEqual(*q, want) {
		t.Errorf("ParseQuery:\n got %+v\nwant %+v", *q, want)
	}
}

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`'a'`, []string{"a"}, true}, {`('a','b')`, []string{"a", "b"}, true}, {`(a, b)`, []string{"a", "b"}, true},
		{`20100319`, []string{"20100319"}, true}, {`('it''s')`, []string{"it's"}, true}, {`('it\'s')`, []string{"it's"}, true},
		{`('')`, []string{""}, true}, {`()`, nil, true}, {` ( 'a' ,'b' ) `, []string{"a", "b"}, true},
		{`('a'`, nil, false}, {`('a)`, nil, false}, {`'a'b`, nil, false},
	} {
		got, err := splitList(tc.in)
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitList(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	q := func(slots string) []byte {
		return envelope(ActionITI18, []byte(`<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><query:ResponseOption/><rim:AdhocQuery id="urn:uuid:x">`+slots+`</rim:AdhocQuery></query:AdhocQueryRequest>`))
	}
	slot := func(name, value string) string {
		return `<rim:Slot name="` + name + `"><rim:ValueList><rim:Value>` + value + `</rim:Value></rim:ValueList></rim:Slot>`
	}
	for _, tc := range []struct{ name, slots string }{
		{"bad patient", slot("$XDSDocumentEntryPatientId", "'nobody'")},
		{"two patients", slot("$XDSDocumentEntryPatientId", "('207058575627097^^^&amp;1.2&amp;ISO^NH','207058575627097^^^&amp;1.2&amp;ISO^NH')")},
		{"bad time", slot("$XDSDocumentEntryCreationTimeTo", "yesterday")},
		{"unclosed", slot("$XDSDocumentEntryStatus", "('a'")},
	} {
		if _, err := ParseQuery(q(tc.slots)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	got, err := ParseQuery(q(""))
	if err != nil || got.ReturnType != "RegistryObject" {
		t.Errorf("default return type: %+v, %v", got, err)
	}
	noQuery := envelope(ActionITI18, []byte(`<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>`))
	if _, err := ParseQuery(noQuery); !errors.Is(err, ErrMalformed) {
		t.Errorf("no AdhocQuery: %v", err)
	}
}

func TestQueryResponseRoundTrip(t *testing.T) {
	e1 := registryEntry("urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e")
	e2 := registryEntry("urn:uuid:9cded812-ba1d-11eb-816f-0050569e422e")
	e2.Confidentiality = append(e2.Confidentiality, InvisibleToPatient)
	e2.Authors = append(e2.Authors, Author{IDNat: "10B0127189/123", Surname: "SECOND"})
	ss := xdsSubmissionSet()
	ss.ID = "urn:uuid:ss"
	for _, tc := range []struct {
		name string
		r    QueryResponse
		errs []RegistryError
	}{
		{"leaf class", QueryResponse{Entries: []DocumentEntry{e1, e2}}, nil},
		{"object refs", QueryResponse{ObjectRefs: []string{e1.ID, e2.ID}}, nil},
		{"submission sets and associations", QueryResponse{SubmissionSets: []SubmissionSet{ss},
			Associations: []Association{HasMember("urn:uuid:a1", ss.ID, e1.ID)}}, nil},
		{"empty", QueryResponse{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := BuildQueryResponse(tc.r, tc.errs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQueryResponse(validateXDS(t, ActionITI18Response, body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tc.r)
			}
		})
	}
}

func TestQueryResponseErrors(t *testing.T) {
	e := registryEntry("urn:uuid:1")
	errs := []RegistryError{{Code: "XDSTooManyResults", Context: "trop de résultats"}}
	body, err := BuildQueryResponse(QueryResponse{Entries: []DocumentEntry{e}}, errs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `status="`+ResponsePartialSuccess+`"`) {
		t.Errorf("not a PartialSuccess:\n%s", body)
	}
	got, err := ParseQueryResponse(validateXDS(t, ActionITI18Response, body))
	var f *Fault
	if !errors.As(err, &f) || f.Code != "XDSTooManyResults" || got == nil || len(got.Entries) != 1 {
		t.Errorf("PartialSuccess: %+v, %v", got, err)
	}
	body, _ = BuildQueryResponse(QueryResponse{}, []RegistryError{{Code: CodeAccessDenied, Context: "non autorisé"}})
	got, err = ParseQueryResponse(validateXDS(t, ActionITI18Response, body))
	if !errors.Is(err, &Fault{Code: CodeAccessDenied}) || got != nil {
		t.Errorf("Failure: %+v, %v", got, err)
	}
	if _, err := BuildQueryResponse(QueryResponse{Associations: []Association{{ID: "a"}}}, nil); err == nil {
		t.Error("built an association without type")
	}
}

// TestParseQueryResponseEX reads an excerpt of the official TD3.1 answer.
func TestParseQueryResponseEX(t *testing.T) {
	env, err := os.ReadFile("testdata/iti18-response-ex.xml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseQueryResponse(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 3 {
		t.Fatalf("%d entries", len(r.Entries))
	}
	e := r.Entries[0]
	want := DocumentEntry{
		ID: "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e", LogicalID: "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
		UniqueID: "1.2.250.1.999.1.1.7898.1.995657292", Status: StatusApproved, Version: "1", MimeType: "text/xml",
		Title: "Titre du document de TEST KIT EDITEUR CSharp", Comments: "commentaire du document de TEST KIT EDITEUR CSharp",
		Language:     "fr-FR",
		CreationTime: time.Date(2010, 3, 19, 18, 32, 44, 0, time.UTC), ServiceStart: time.Date(2010, 3, 19, 18, 32, 44, 0, time.UTC),
		ServiceStop: time.Date(2010, 3, 19, 18, 32, 44, 0, time.UTC),
		Authors: []Author{{IDNat: "899900063480", Surname: "Kit", GivenName: "Editeur", Specialty: "G15_10/SM04",
			SpecialtyLabel: "Médecin - Cardiologie et maladies vasculaires (SM)", InstitutionName: "HOPITAL DES 3 VALLEES00771", InstitutionID: "10B0127189"}},
		LegalAuthenticator: "00B2800585^OPTOLUNE0058^SEBASTIEN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
		Class:              Code{"10", SchemeClassCode, "Compte rendu"}, Type: Code{"27899-4", SchemeLOINC, "CR d'acte diagnostique (autre)"},
		Format:          Code{"urn:ihe:iti:xds-sd:text:2008", SchemeIHEFormat, "Document à corps non structuré en texte brut"},
		FacilityType:    Code{"SA01", SchemeSector, "Etablissement public de santé"},
		PracticeSetting: Code{"ETABLISSEMENT", SchemePracticeSetting, "Etablissement de santé"},
		Confidentiality: []Code{ConfidentialityNormal, InvisibleToPatient},
		EventCodes:      []Code{{"H33", "2.16.840.1.113883.6.3", "Décollement et déchirement de la rétine"}},
		Patient:         xdsINS, SourcePatientID: "0456789999^^^&1.2.250.1.999.1.1.7898.2&ISO^PI",
		SourcePatientInfo: []string{"PID-5|MARTINQUARANTESIX^Simonquasix^^^^^L", "PID-7|19760717", "PID-8|F"},
		Hash:              "af326fb44feb720121d2c277ce10f87407818089", Size: 2768, RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2",
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("entry 1:\n got %+v\nwant %+v", e, want)
	}
	last := r.Entries[2]
	if last.Format != FormatPDFInCDA || last.Class.Code != "11" || last.Type.Code != "SYNTH" || last.Size != 169544 {
		t.Errorf("entry 3: %+v", last)
	}
	if c, _ := ClassForType(last.Type.Code); c.Code != last.Class.Code {
		t.Errorf("entry 3 class %s, table says %s", last.Class.Code, c.Code)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, q := range []StoredQuery{
		{ID: QueryFindDocuments, Patient: xdsINS, Statuses: []string{StatusApproved}, TypeCodes: []Code{{"11488-4", SchemeLOINC, ""}}, CreationFrom: xdsTime},
		{ID: QueryGetDocuments, ReturnType: ReturnObjectRef, UniqueIDs: []string{"1.2", "it's"}},
	} {
		body, err := BuildQuery(q)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(envelope(ActionITI18, body))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		q, err := ParseQuery(env)
		if err != nil {
			if q != nil {
				t.Fatal("result with an error")
			}
			return
		}
		if q.ID == "" || q.ReturnType == "" {
			t.Fatalf("query without id or return type: %+v", q)
		}
	})
}

func FuzzParseQueryResponse(f *testing.F) {
	ex, err := os.ReadFile("testdata/iti18-response-ex.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	body, err := BuildQueryResponse(QueryResponse{Entries: []DocumentEntry{registryEntry("urn:uuid:1")}, ObjectRefs: []string{"urn:uuid:2"},
		Associations: []Association{HasMember("a", "b", "c")}}, []RegistryError{{Code: "W", Severity: SeverityWarning}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(envelope(ActionITI18Response, body))
	f.Fuzz(func(t *testing.T, env []byte) {
		r, err := ParseQueryResponse(env)
		var fault *Fault
		if err != nil && !errors.As(err, &fault) && r != nil {
			t.Fatal("result with a malformed error")
		}
		if err == nil && r == nil {
			t.Fatal("no result and no error")
		}
		if r != nil {
			for _, e := range r.Entries {
				if e.ID == "" || e.Size < 0 {
					t.Fatalf("bad entry %+v", e)
				}
			}
		}
	})
}
