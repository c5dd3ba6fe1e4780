package dmp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// maskUpdate is a TD3.3a masking: a new version of a registry entry with
// MASQUE_PS added.
func maskUpdate() UpdateDocumentSet {
	e := registryEntry("urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e")
	e.ID = "Document01"
	e.Confidentiality = append(e.Confidentiality, MaskedFromProfessional)
	return UpdateDocumentSet{SubmissionSet: xdsSubmissionSet(),
		Updates: []MetadataUpdate{{Entry: e, PreviousVersion: "1", AssociationID: "assoc1"}}}
}

func TestUpdateDocumentSetRoundTrip(t *testing.T) {
	archive := Archive("urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e")
	archive.ID = "association1"
	del := Delete("urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e", StatusArchived)
	del.ID = "association2"
	unarchive := Unarchive("urn:uuid:1")
	unarchive.ID = "association3"
	both := maskUpdate()
	both.StatusChanges = []StatusChange{unarchive}
	both.Associations = []Association{{ID: "x", Type: AssocReplace, Source: "Document01", Target: "urn:uuid:2"}}
	for _, tc := range []struct {
		name  string
		u     UpdateDocumentSet
		wants []string
	}{
		{"mask", maskUpdate(), []string{
			`<rim:ExtrinsicObject id="Document01" lid="urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1" status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved">`,
			`nodeRepresentation="MASQUE_PS"`,
			`<rim:Association associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" id="assoc1" objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association" sourceObject="SubmissionSet01" targetObject="Document01"><rim:Slot name="SubmissionSetStatus"><rim:ValueList><rim:Value>Original</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="PreviousVersion"><rim:ValueList><rim:Value>1</rim:Value></rim:ValueList></rim:Slot></rim:Association>`,
		}},
		{"archive", UpdateDocumentSet{SubmissionSet: xdsSubmissionSet(), StatusChanges: []StatusChange{archive}}, []string{
			`<rim:Association associationType="urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus" id="association1" objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association" sourceObject="SubmissionSet01" targetObject="urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e"><rim:Slot name="OriginalStatus"><rim:ValueList><rim:Value>urn:oasis:names:tc:ebxml-regrep:StatusType:Approved</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="NewStatus"><rim:ValueList><rim:Value>urn:asip:ci-sis:2010:StatusType:Archived</rim:Value>`,
		}},
		{"delete", UpdateDocumentSet{SubmissionSet: xdsSubmissionSet(), StatusChanges: []StatusChange{del}}, []string{
			`<rim:Value>urn:asip:ci-sis:2010:StatusType:Archived</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="NewStatus"><rim:ValueList><rim:Value>urn:asip:ci-sis:2010:StatusType:Deleted</rim:Value>`,
		}},
		{"mask, unarchive and more", both, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := BuildUpdateDocumentSet(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(body), `<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:RegistryObjectList><rim:RegistryPackage id="SubmissionSet01">`) {
				t.Errorf("body starts %.200s", body)
			}
			for _, w := range tc.wants {
				if !strings.Contains(string(body), w) {
					t.Errorf("missing %s", w)
				}
			}
			got, err := ParseUpdateDocumentSet(validateXDS(t, ActionITI57, body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.u) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tc.u)
			}
		})
	}
}

func TestBuildUpdateDocumentSetErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*UpdateDocumentSet)
	}{
		{"nothing", func(u *UpdateDocumentSet) { u.Updates = nil }},
		{"no previous version", func(u *UpdateDocumentSet) { u.Updates[0].PreviousVersion = "" }},
		{"no logical id", func(u *UpdateDocumentSet) { u.Updates[0].Entry.LogicalID = "" }},
		{"incomplete entry", func(u *UpdateDocumentSet) { u.Updates[0].Entry.Class = Code{} }},
		{"incomplete submission set", func(u *UpdateDocumentSet) { u.UniqueID = "" }},
		{"status change without target", func(u *UpdateDocumentSet) { u.StatusChanges = []StatusChange{Archive("")} }},
		{"bad association", func(u *UpdateDocumentSet) { u.Associations = []Association{{Type: AssocReplace}} }},
	} {
		u := maskUpdate()
		tc.edit(&u)
		if _, err := BuildUpdateDocumentSet(u); err == nil {
			t.Errorf("%s: built", tc.name)
		}
	}
}

// TestParseUpdateDocumentSetEX reads the body of the EX TD3.3d request
// (archive), whose author Classification lacks classifiedObject.
func TestParseUpdateDocumentSetEX(t *testing.T) {
	ex := `<ns4:SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0" xmlns:ns4="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">
         <RegistryObjectList>
            <RegistryPackage id="SubmissionSet01">
               <Slot name="submissionTime"><ValueList><Value>20210604092415</Value></ValueList></Slot>
               <Name><LocalizedString charset="UTF8" value="Compte rendu" xml:lang="FR"/></Name>
               <Classification classificationScheme="urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d" id="cla25" nodeRepresentation="">
                  <Slot name="authorPerson"><ValueList><Value>899900063480^MAX^LIBRE^^^^^^&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^IDNPS</Value></ValueList></Slot>
                  <Slot name="authorSpecialty"><ValueList><Value>G15_10/SM26^Médecin - Qualifié en Médecine Générale (SM)^1.2.250.1.213.1.1.4.5</Value></ValueList></Slot>
                  <Slot name="authorInstitution"><ValueList><Value>CABINET DR LIBRE^^^^^&amp;1.2.250.1.71.4.2.2&amp;ISO^IDNST^^^499900063480001</Value></ValueList></Slot>
               </Classification>
               <Classification classificationScheme="urn:uuid:aa543740-bdda-424e-8c96-df4873be8500" classifiedObject="SubmissionSet01" id="cla26" nodeRepresentation="04">
                  <Slot name="codingScheme"><ValueList><Value>1.2.250.1.213.2.2</Value></ValueList></Slot>
                  <Name><LocalizedString charset="UTF8" value="Hospitalisation de jour" xml:lang="FR"/></Name>
               </Classification>
               <Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="SubmissionSet01" id="cla27"/>
               <ExternalIdentifier id="ei11" identificationScheme="urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446" value="207058575627097^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH^^20210604092415"/>
               <ExternalIdentifier id="ei12" identificationScheme="urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832" value="1.2.250.1.999.1.1.7898"/>
               <ExternalIdentifier id="ei13" identificationScheme="urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8" value="1.2.250.1.999.1.1.7898.1.11086546546895"/>
            </RegistryPackage>
            <Association associationType="urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus" id="association1" objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association" sourceObject="SubmissionSet01" targetObject="urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e">
               <Slot name="OriginalStatus"><ValueList><Value>urn:oasis:names:tc:ebxml-regrep:StatusType:Approved</Value></ValueList></Slot>
               <Slot name="NewStatus"><ValueList>
                     <Value>urn:asip:ci-sis:2010:StatusType:Archived</Value>
                  </ValueList></Slot>
            </Association>
         </RegistryObjectList>
      </ns4:SubmitObjectsRequest>`
	u, err := ParseUpdateDocumentSet(envelope(ActionITI57, []byte(ex)))
	if err != nil {
		t.Fatal(err)
	}
	want := Archive("urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e")
	want.ID = "association1"
	if !reflect.DeepEqual(u.StatusChanges, []StatusChange{want}) || len(u.Updates) != 0 || len(u.Associations) != 0 {
		t.Errorf("parsed %+v", u)
	}
	if u.Patient != xdsINS || u.UniqueID != "1.2.250.1.999.1.1.7898.1.11086546546895" || u.Author.IDNat != "899900063480" ||
		u.ContentType.Code != "04" || u.SubmissionTime.Year() != 2021 {
		t.Errorf("submission set %+v", u.SubmissionSet)
	}
	noSet := strings.Replace(ex, `<RegistryPackage id="SubmissionSet01">`, `<RegistryPackage id="">`, 1)
	if _, err := ParseUpdateDocumentSet(envelope(ActionITI57, []byte(noSet))); !errors.Is(err, ErrMalformed) {
		t.Errorf("package without id: %v", err)
	}
}

func FuzzParseUpdateDocumentSet(f *testing.F) {
	u := maskUpdate()
	u.StatusChanges = []StatusChange{Archive("urn:uuid:1")}
	body, err := BuildUpdateDocumentSet(u)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(envelope(ActionITI57, body))
	f.Fuzz(func(t *testing.T, env []byte) {
		u, err := ParseUpdateDocumentSet(env)
		if err != nil {
			if u != nil {
				t.Fatal("result with an error")
			}
			return
		}
		if u.SubmissionSet.ID == "" {
			t.Fatal("submission set without id")
		}
		for _, c := range u.StatusChanges {
			if c.Target == "" {
				t.Fatal("status change without target")
			}
		}
	})
}
