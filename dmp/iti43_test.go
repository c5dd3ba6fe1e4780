package dmp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRetrieveRequestRoundTrip(t *testing.T) {
	reqs := []DocumentRequest{
		{RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2", DocumentUniqueID: "1.2.250.1.999.1.1.7898.1.995657292"},
		{RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2", DocumentUniqueID: "1.2.3"},
	}
	body, err := BuildRetrieveRequest(reqs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRetrieveRequest(validateXDS(t, ActionITI43, body))
	if err != nil || !reflect.DeepEqual(got, reqs) {
		t.Errorf("round trip: %v, %v", got, err)
	}
	for _, bad := range [][]DocumentRequest{nil, {{RepositoryUniqueID: "1.2"}}} {
		if _, err := BuildRetrieveRequest(bad); err == nil {
			t.Errorf("built %v", bad)
		}
	}
	// The EX TD3.2 request declares the xds namespace as the default one.
	ex := `<RetrieveDocumentSetRequest xmlns="urn:ihe:iti:xds-b:2007" xmlns:ns2="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
         <DocumentRequest>
            <RepositoryUniqueId>1.2.250.1.213.4.1.1.1.2</RepositoryUniqueId>
            <DocumentUniqueId>1.2.250.1.999.1.1.7898.1.995657292</DocumentUniqueId>
         </DocumentRequest>
      </RetrieveDocumentSetRequest>`
	got, err = ParseRetrieveRequest(envelope(ActionITI43, []byte(ex)))
	if err != nil || !reflect.DeepEqual(got, reqs[:1]) {
		t.Errorf("EX request: %v, %v", got, err)
	}
	for _, bad := range []string{
		`<xds:RetrieveDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"/>`,
		`<xds:RetrieveDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"><xds:DocumentRequest><xds:DocumentUniqueId>1</xds:DocumentUniqueId></xds:DocumentRequest></xds:RetrieveDocumentSetRequest>`,
	} {
		if _, err := ParseRetrieveRequest(envelope(ActionITI43, []byte(bad))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestRetrieveResponse(t *testing.T) {
	inline := []RetrievedDocument{{RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2", DocumentUniqueID: "1.2.3", MimeType: "text/xml",
		DocumentContent: DocumentContent{Inline: []byte("<ClinicalDocument/>")}}}
	body, err := BuildRetrieveResponse(inline, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRetrieveResponse(validateXDS(t, ActionITI43Response, body))
	if err != nil || !reflect.DeepEqual(got, inline) {
		t.Errorf("inline round trip: %+v, %v", got, err)
	}

	mtom := []RetrievedDocument{{RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2", DocumentUniqueID: "1.2.3", MimeType: "text/xml",
		DocumentContent: DocumentContent{ContentID: "b857abb7-2@urn:ihe:iti:xds-b:2007"}}}
	body, err = BuildRetrieveResponse(mtom, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `<xds:Document><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:b857abb7-2@urn:ihe:iti:xds-b:2007"/></xds:Document>`) {
		t.Errorf("no xop:Include:\n%s", body)
	}
	got, err = ParseRetrieveResponse(envelope(ActionITI43Response, body))
	if err != nil || !reflect.DeepEqual(got, mtom) {
		t.Errorf("mtom round trip: %+v, %v", got, err)
	}

	// PartialSuccess: documents and a fault; Failure: a fault only.
	body, _ = BuildRetrieveResponse(inline, []RegistryError{{Code: CodeDocumentNotFound, Context: "1.2.4"}})
	got, err = ParseRetrieveResponse(validateXDS(t, ActionITI43Response, body))
	if !errors.Is(err, &Fault{Code: CodeDocumentNotFound}) || len(got) != 1 {
		t.Errorf("partial: %+v, %v", got, err)
	}
	body, _ = BuildRetrieveResponse(nil, []RegistryError{{Code: CodeAccessDenied, Context: "masqué"}})
	got, err = ParseRetrieveResponse(validateXDS(t, ActionITI43Response, body))
	if !errors.Is(err, &Fault{Code: CodeAccessDenied, Message: "masqué"}) || got != nil {
		t.Errorf("failure: %+v, %v", got, err)
	}
	if _, err := BuildRetrieveResponse([]RetrievedDocument{{DocumentUniqueID: "1"}}, nil); err == nil {
		t.Error("built a document without repository, MIME type and content")
	}
}

// TestParseRetrieveResponseEX reads the body of the EX TD3.2 answer.
func TestParseRetrieveResponseEX(t *testing.T) {
	ex := `<ns4:RetrieveDocumentSetResponse xmlns:ns2="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" xmlns:ns3="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:ns4="urn:ihe:iti:xds-b:2007" xmlns:ns5="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0" xmlns:ns6="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0">
         <ns2:RegistryResponse status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/>
         <ns4:DocumentResponse>
            <ns4:RepositoryUniqueId>1.2.250.1.213.4.1.1.1.2</ns4:RepositoryUniqueId>
            <ns4:DocumentUniqueId>1.2.250.1.999.1.1.7898.1.995657292</ns4:DocumentUniqueId>
            <ns4:mimeType>text/xml</ns4:mimeType>
            <ns4:Document>
               <xop:Include href="cid:b857abb7-a2c3-4db8-bd69-d5ff76826e72-2@urn%3Aihe%3Aiti%3Axds-b%3A2007" xmlns:xop="http://www.w3.org/2004/08/xop/include"/>
            </ns4:Document>
         </ns4:DocumentResponse>
      </ns4:RetrieveDocumentSetResponse>`
	got, err := ParseRetrieveResponse(envelope(ActionITI43Response, []byte(ex)))
	want := []RetrievedDocument{{RepositoryUniqueID: "1.2.250.1.213.4.1.1.1.2", DocumentUniqueID: "1.2.250.1.999.1.1.7898.1.995657292",
		MimeType: "text/xml", DocumentContent: DocumentContent{ContentID: "b857abb7-a2c3-4db8-bd69-d5ff76826e72-2@urn:ihe:iti:xds-b:2007"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("EX response: %+v, %v", got, err)
	}
}

func FuzzParseRetrieveResponse(f *testing.F) {
	for _, d := range []DocumentContent{{ContentID: "a@b"}, {Inline: []byte("doc")}} {
		body, err := BuildRetrieveResponse([]RetrievedDocument{{RepositoryUniqueID: "1.2", DocumentUniqueID: "1.3", MimeType: "text/xml", DocumentContent: d}},
			[]RegistryError{{Code: "W", Severity: SeverityWarning}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(envelope(ActionITI43Response, body))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		docs, err := ParseRetrieveResponse(env)
		var fault *Fault
		if err != nil && !errors.As(err, &fault) && docs != nil {
			t.Fatal("documents with a malformed error")
		}
		for _, d := range docs {
			if d.DocumentUniqueID == "" || (d.ContentID == "" && len(d.Inline) == 0) {
				t.Fatalf("bad document %+v", d)
			}
		}
	})
}
