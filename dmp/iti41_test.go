package dmp

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// xdsSubmission is a TD2.1 submission: a document, its signature and the
// three associations of the examples.
func xdsSubmission() ProvideAndRegister {
	doc := xdsEntry("Document01")
	sig := SignatureEntry("Signature01", "1.2.250.1.999.1.1.7898.4.1622814651504", xdsTime, doc)
	return ProvideAndRegister{
		SubmissionSet: xdsSubmissionSet(),
		Documents:     []DocumentEntry{doc, sig},
		Associations: []Association{
			HasMember("assoc1", "SubmissionSet01", "Document01"),
			HasMember("assoc2", "SubmissionSet01", "Signature01"),
			SignsAssociation("assoc3", "Signature01", "SubmissionSet01"),
		},
	}
}

func inlineContent(docID string) DocumentContent {
	return DocumentContent{Inline: []byte("<ClinicalDocument>" + docID + "</ClinicalDocument>")}
}

func mtomContent(docID string) DocumentContent {
	return DocumentContent{ContentID: docID + "@dmpagent"}
}

func TestProvideAndRegisterRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content func(string) DocumentContent
	}{{"inline", inlineContent}, {"mtom", mtomContent}} {
		t.Run(tc.name, func(t *testing.T) {
			p := xdsSubmission()
			body, err := BuildProvideAndRegister(p, tc.content)
			if err != nil {
				t.Fatal(err)
			}
			var env []byte
			if tc.name == "inline" {
				env = validateXDS(t, ActionITI41, body)
			} else {
				env = envelope(ActionITI41, body)
				if !bytes.Contains(body, []byte(`<xds:Document id="Document01"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:Document01@dmpagent"/></xds:Document>`)) {
					t.Errorf("no xop:Include in\n%s", body)
				}
			}
			got, docs, err := ParseProvideAndRegister(env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, p) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, p)
			}
			for _, d := range p.Documents {
				if !reflect.DeepEqual(docs[d.ID], tc.content(d.ID)) {
					t.Errorf("document %s content %+v", d.ID, docs[d.ID])
				}
			}
		})
	}
}

// TestProvideAndRegisterShape checks the wire details the DMP examples
// show and the schema does not enforce.
func TestProvideAndRegisterShape(t *testing.T) {
	body, err := BuildProvideAndRegister(xdsSubmission(), mtomContent)
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	for _, want := range []string{
		`<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007" xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><lcm:SubmitObjectsRequest><rim:RegistryObjectList><rim:RegistryPackage id="SubmissionSet01"><rim:Slot name="submissionTime"><rim:ValueList><rim:Value>20210604135051</rim:Value></rim:ValueList></rim:Slot>`,
		`<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="SubmissionSet01" id="cl3"/>`,
		`<rim:Value>899900063480^LIBRE^Max^^^^^^&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^IDNPS</rim:Value>`,
		`<rim:LocalizedString charset="UTF8" value="commentaire &amp; &lt;remarques&gt;" xml:lang="FR"/>`,
		`<rim:ExtrinsicObject id="Signature01" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">`,
		`classifiedObject="Signature01" id="cl18" nodeRepresentation="urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"><rim:Slot name="codingScheme"><rim:ValueList><rim:Value>URN</rim:Value>`,
		`<rim:Association associationType="urn:ihe:iti:2007:AssociationType:signs" id="assoc3" objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association" sourceObject="Signature01" targetObject="SubmissionSet01"><rim:Slot name="SubmissionSetStatus">`,
		`value="207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH"><rim:Name><rim:LocalizedString charset="UTF8" value="XDSDocumentEntry.patientId" xml:lang="FR"/>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s", want)
		}
	}
	again, _ := BuildProvideAndRegister(xdsSubmission(), mtomContent)
	if !bytes.Equal(body, again) {
		t.Error("building twice gives different bytes")
	}
}

func TestProvideAndRegisterBuildErrors(t *testing.T) {
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name    string
		edit    func(*ProvideAndRegister)
		content func(string) DocumentContent
	}{
		{"no content", func(*ProvideAndRegister) {}, func(string) DocumentContent { return DocumentContent{} }},
		{"no document", func(p *ProvideAndRegister) { p.Documents = nil }, mtomContent},
		{"incomplete entry", func(p *ProvideAndRegister) { p.Documents[0].Type = Code{} }, mtomContent},
		{"incomplete submission set", func(p *ProvideAndRegister) { p.Patient = INS{} }, mtomContent},
		{"association without target", func(p *ProvideAndRegister) { p.Associations[0].Target = "" }, mtomContent},
		{"slot value too long", func(p *ProvideAndRegister) { p.Documents[0].SourcePatientInfo = []string{long} }, mtomContent},
		{"title too long", func(p *ProvideAndRegister) { p.Documents[0].Title = strings.Repeat("é", 1025) }, mtomContent},
	} {
		p := xdsSubmission()
		tc.edit(&p)
		if _, err := BuildProvideAndRegister(p, tc.content); err == nil {
			t.Errorf("%s: built", tc.name)
		}
	}
}

func TestParseProvideAndRegisterErrors(t *testing.T) {
	good, _ := BuildProvideAndRegister(xdsSubmission(), mtomContent)
	for _, tc := range []struct {
		name string
		body string
	}{
		{"wrong body", `<x:Other xmlns:x="urn:x"/>`},
		{"no submit", `<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"/>`},
		{"two submission sets", strings.Replace(string(good), `<rim:ExtrinsicObject`, `<rim:RegistryPackage id="SS2"><rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="SS2" id="x"/></rim:RegistryPackage><rim:ExtrinsicObject`, 1)},
		{"bad base64", strings.Replace(string(good), `<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:Document01@dmpagent"/>`, `!!!`, 1)},
		{"empty document", strings.Replace(string(good), `<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:Document01@dmpagent"/>`, ``, 1)},
		{"bad href", strings.Replace(string(good), `cid:Document01@dmpagent`, `http://x`, 1)},
		{"duplicate document", strings.Replace(string(good), `id="Signature01"><xop`, `id="Document01"><xop`, 1)},
		{"bad time", strings.Replace(string(good), `20210604135051`, `2021-06-04`, 1)},
		{"bad size", strings.Replace(string(good), `<rim:Slot name="languageCode">`, `<rim:Slot name="size"><rim:ValueList><rim:Value>-1</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="languageCode">`, 1)},
		{"bad patient", strings.Replace(string(good), `value="207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH"`, `value="nobody"`, 1)},
	} {
		_, _, err := ParseProvideAndRegister(envelope(ActionITI41, []byte(tc.body)))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", tc.name, err)
		}
	}
	if _, _, err := ParseProvideAndRegister([]byte(`<!DOCTYPE x><x/>`)); !errors.Is(err, ErrDTD) {
		t.Errorf("DTD: %v", err)
	}
	if _, _, err := ParseProvideAndRegister(make([]byte, MaxMessage+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
}

func FuzzParseProvideAndRegister(f *testing.F) {
	for _, c := range []func(string) DocumentContent{inlineContent, mtomContent} {
		body, err := BuildProvideAndRegister(xdsSubmission(), c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(envelope(ActionITI41, body))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		p, docs, err := ParseProvideAndRegister(env)
		if err != nil {
			if p != nil || docs != nil {
				t.Fatal("result with an error")
			}
			return
		}
		if p.SubmissionSet.ID == "" {
			t.Fatal("submission set without id")
		}
		for id, d := range docs {
			if id == "" || (d.ContentID == "" && len(d.Inline) == 0) {
				t.Fatalf("document %q without content", id)
			}
		}
	})
}
