package dmp

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
)

// ProvideAndRegister is an ITI-41 submission (TD2.1, TD2.2): a submission
// set, its document entries (the signature entry among them) and the
// associations that bind them (HasMember, signs, RPLC).
type ProvideAndRegister struct {
	SubmissionSet
	Documents    []DocumentEntry
	Associations []Association
}

// DocumentContent is where a document's bytes travel: in an MTOM part named
// by ContentID (what the DMP expects), or inline as base64 (the only form
// the schema knows, used to validate messages before MTOM packaging).
type DocumentContent struct {
	ContentID string
	Inline    []byte
}

// BuildProvideAndRegister builds the xds:ProvideAndRegisterDocumentSetRequest
// body. content gives, for each document entry's id, where its bytes are:
// an xop:Include of ContentID, or the Inline bytes in base64. It refuses a
// submission whose metadata lacks what the DMP requires.
func BuildProvideAndRegister(p ProvideAndRegister, content func(docID string) DocumentContent) ([]byte, error) {
	if err := p.SubmissionSet.Validate(); err != nil {
		return nil, err
	}
	if len(p.Documents) == 0 {
		return nil, fmt.Errorf("dmp: submission %q has no document", p.SubmissionSet.ID)
	}
	for i := range p.Documents {
		if err := p.Documents[i].Validate(); err != nil {
			return nil, err
		}
	}
	for i := range p.Associations {
		if err := checkAssociation(&p.Associations[i]); err != nil {
			return nil, err
		}
	}
	var w ebWriter
	w.start("xds:ProvideAndRegisterDocumentSetRequest", "xmlns:xds", NSXDS, "xmlns:lcm", NSLCM, "xmlns:rim", NSRIM)
	w.start("lcm:SubmitObjectsRequest")
	w.start("rim:RegistryObjectList")
	w.registryPackage(&p.SubmissionSet)
	for i := range p.Documents {
		w.extrinsicObject(&p.Documents[i])
	}
	for i := range p.Associations {
		w.association(&p.Associations[i])
	}
	w.end("rim:RegistryObjectList")
	w.end("lcm:SubmitObjectsRequest")
	for _, d := range p.Documents {
		c := content(d.ID)
		switch {
		case c.ContentID != "":
			w.start("xds:Document", "id", d.ID)
			w.empty("xop:Include", "xmlns:xop", NSXOP, "href", HrefFromCID(c.ContentID))
			w.end("xds:Document")
		case c.Inline != nil:
			w.start("xds:Document", "id", d.ID)
			w.b.WriteString(base64.StdEncoding.EncodeToString(c.Inline))
			w.end("xds:Document")
		default:
			return nil, fmt.Errorf("dmp: no content for document %q", d.ID)
		}
	}
	w.end("xds:ProvideAndRegisterDocumentSetRequest")
	return w.bytes()
}

// xdsDocument is an xds:Document: an xop:Include or inline base64.
type xdsDocument struct {
	ID      string `xml:"id,attr"`
	Include *struct {
		Href string `xml:"href,attr"`
	} `xml:"http://www.w3.org/2004/08/xop/include Include"`
	Text string `xml:",chardata"`
}

func (d *xdsDocument) content() (DocumentContent, error) {
	if d.Include != nil {
		id, err := CIDFromHref(d.Include.Href)
		if err != nil {
			return DocumentContent{}, err
		}
		return DocumentContent{ContentID: id}, nil
	}
	text := strings.Join(strings.Fields(d.Text), "")
	if text == "" {
		return DocumentContent{}, fmt.Errorf("%w: document %q has neither xop:Include nor content", ErrMalformed, d.ID)
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return DocumentContent{}, fmt.Errorf("%w: document %q: %v", ErrMalformed, d.ID, err)
	}
	return DocumentContent{Inline: b}, nil
}

type lcmSubmitObjectsRequest struct {
	XMLName xml.Name      `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0 SubmitObjectsRequest"`
	List    rimObjectList `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0 RegistryObjectList"`
}

type xdsProvideAndRegister struct {
	XMLName   xml.Name                 `xml:"urn:ihe:iti:xds-b:2007 ProvideAndRegisterDocumentSetRequest"`
	Submit    *lcmSubmitObjectsRequest `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0 SubmitObjectsRequest"`
	Documents []xdsDocument            `xml:"urn:ihe:iti:xds-b:2007 Document"`
}

// ParseProvideAndRegister reads an ITI-41 request: the submission and, by
// document id, where each document's bytes are (the Content-ID of its MTOM
// part, or the inline bytes). It checks the message's structure, not the
// completeness of the metadata (DocumentEntry.Validate, SubmissionSet.Validate)
// nor that each entry has its document: those are the registry's refusals.
func ParseProvideAndRegister(envelope []byte) (*ProvideAndRegister, map[string]DocumentContent, error) {
	r, err := decodeXDSBody[xdsProvideAndRegister](envelope)
	if err != nil {
		return nil, nil, err
	}
	if r.Submit == nil {
		return nil, nil, fmt.Errorf("%w: no SubmitObjectsRequest", ErrMalformed)
	}
	objs, err := r.Submit.List.decode()
	if err != nil {
		return nil, nil, err
	}
	ss, err := objs.oneSubmissionSet()
	if err != nil {
		return nil, nil, err
	}
	docs := make(map[string]DocumentContent, len(r.Documents))
	for i := range r.Documents {
		d := &r.Documents[i]
		if d.ID == "" {
			return nil, nil, fmt.Errorf("%w: xds:Document without id", ErrMalformed)
		}
		if _, dup := docs[d.ID]; dup {
			return nil, nil, fmt.Errorf("%w: two xds:Document with id %q", ErrMalformed, d.ID)
		}
		if docs[d.ID], err = d.content(); err != nil {
			return nil, nil, err
		}
	}
	return &ProvideAndRegister{SubmissionSet: ss, Documents: objs.Entries, Associations: objs.Associations}, docs, nil
}
