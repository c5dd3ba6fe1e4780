package dmp

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestEbEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a&b<c>d"e'f`, `a&amp;b&lt;c&gt;d&quot;e'f`},
		{"l1\nl2\tx\r", "l1&#xA;l2&#x9;x&#xD;"},
		{"bell\x07 nul\x00 bad\xff", "bell\uFFFD nul\uFFFD bad\uFFFD"},
		{"Médecin ☤ 𝄞", "Médecin ☤ 𝄞"},
	} {
		if got := ebEscape(tc.in); got != tc.want {
			t.Errorf("ebEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Whatever the input, a slot stays well-formed and reads back.
	var w ebWriter
	in := "x\x00\"'<&\n"
	w.slot("s", in)
	var s rimSlot
	doc := strings.Replace(w.b.String(), "<rim:Slot ", `<rim:Slot xmlns:rim="`+NSRIM+`" `, 1)
	if err := xml.Unmarshal([]byte(doc), &s); err != nil || len(s.Values) != 1 || s.Values[0] != "x\uFFFD\"'<&\n" {
		t.Errorf("slot %s read back %q, %v", w.b.Bytes(), s.Values, err)
	}
}

func TestEbWriter(t *testing.T) {
	var w ebWriter
	w.author(uuidDEAuthor, "Doc", Author{IDNat: "1"})
	w.coded(uuidDEClassCode, "Doc", Code{})
	w.slot("empty", "", "")
	w.localized("rim:Name", "")
	want := `<rim:Classification classificationScheme="` + uuidDEAuthor + `" classifiedObject="Doc" id="cl1" nodeRepresentation=""><rim:Slot name="authorPerson"><rim:ValueList><rim:Value>1^^^^^^^^&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^IDNPS</rim:Value></rim:ValueList></rim:Slot></rim:Classification>`
	if got := w.b.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	w.localized("rim:Name", strings.Repeat("a", maxFreeFormText))
	if _, err := w.bytes(); err != nil {
		t.Errorf("1024 characters refused: %v", err)
	}
	w.slot("long", strings.Repeat("a", maxLongName+1))
	if _, err := w.bytes(); err == nil {
		t.Error("257-character slot value accepted")
	}
}

// TestDecodeObjectList covers the placements of the submission-set
// classification and the packages that are not submission sets.
func TestDecodeObjectList(t *testing.T) {
	const rim = `xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"`
	node := `<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="SS" id="c"/>`
	for _, tc := range []struct {
		name, list string
		sets       []string
	}{
		{"inside", `<rim:RegistryPackage id="SS">` + node + `</rim:RegistryPackage><rim:RegistryPackage id="Folder"/>`, []string{"SS"}},
		{"top level", `<rim:RegistryPackage id="Folder"/><rim:RegistryPackage id="SS"/>` + node, []string{"SS"}},
		{"lone unclassified", `<rim:RegistryPackage id="SS"/>`, []string{"SS"}},
		{"two unclassified", `<rim:RegistryPackage id="A"/><rim:RegistryPackage id="B"/>`, nil},
	} {
		var l rimObjectList
		if err := xml.Unmarshal([]byte(`<rim:RegistryObjectList `+rim+`>`+tc.list+`</rim:RegistryObjectList>`), &l); err != nil {
			t.Fatal(err)
		}
		r, err := l.decode()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, s := range r.SubmissionSets {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.sets, ",") {
			t.Errorf("%s: submission sets %v, want %v", tc.name, ids, tc.sets)
		}
	}
}
