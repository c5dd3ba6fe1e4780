package dmp

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
)

// DocumentRequest names one document to retrieve (ITI-43, TD3.2).
type DocumentRequest struct {
	RepositoryUniqueID string
	DocumentUniqueID   string
}

// BuildRetrieveRequest builds the xds:RetrieveDocumentSetRequest body.
func BuildRetrieveRequest(reqs []DocumentRequest) ([]byte, error) {
	if len(reqs) == 0 {
		return nil, fmt.Errorf("dmp: retrieve request without document")
	}
	var w ebWriter
	w.start("xds:RetrieveDocumentSetRequest", "xmlns:xds", NSXDS)
	for _, r := range reqs {
		if r.RepositoryUniqueID == "" || r.DocumentUniqueID == "" {
			return nil, fmt.Errorf("dmp: document request needs a repository and a document uniqueId")
		}
		w.limit("RepositoryUniqueId", r.RepositoryUniqueID, maxLongName)
		w.limit("DocumentUniqueId", r.DocumentUniqueID, maxLongName)
		w.start("xds:DocumentRequest")
		w.text("xds:RepositoryUniqueId", r.RepositoryUniqueID)
		w.text("xds:DocumentUniqueId", r.DocumentUniqueID)
		w.end("xds:DocumentRequest")
	}
	w.end("xds:RetrieveDocumentSetRequest")
	return w.bytes()
}

type xdsDocumentRequest struct {
	Repository string `xml:"urn:ihe:iti:xds-b:2007 RepositoryUniqueId"`
	Document   string `xml:"urn:ihe:iti:xds-b:2007 DocumentUniqueId"`
}

type xdsRetrieveRequest struct {
	XMLName  xml.Name             `xml:"urn:ihe:iti:xds-b:2007 RetrieveDocumentSetRequest"`
	Requests []xdsDocumentRequest `xml:"urn:ihe:iti:xds-b:2007 DocumentRequest"`
}

// ParseRetrieveRequest reads an ITI-43 request.
func ParseRetrieveRequest(envelope []byte) ([]DocumentRequest, error) {
	r, err := decodeXDSBody[xdsRetrieveRequest](envelope)
	if err != nil {
		return nil, err
	}
	if len(r.Requests) == 0 {
		return nil, fmt.Errorf("%w: RetrieveDocumentSetRequest without DocumentRequest", ErrMalformed)
	}
	out := make([]DocumentRequest, 0, len(r.Requests))
	for _, d := range r.Requests {
		dr := DocumentRequest{RepositoryUniqueID: strings.TrimSpace(d.Repository), DocumentUniqueID: strings.TrimSpace(d.Document)}
		if dr.RepositoryUniqueID == "" || dr.DocumentUniqueID == "" {
			return nil, fmt.Errorf("%w: DocumentRequest without RepositoryUniqueId or DocumentUniqueId", ErrMalformed)
		}
		out = append(out, dr)
	}
	return out, nil
}

// RetrievedDocument is one document of an ITI-43 answer: its ids, its MIME
// type and where its bytes are (an MTOM part, or inline).
type RetrievedDocument struct {
	RepositoryUniqueID string
	DocumentUniqueID   string
	MimeType           string
	DocumentContent
}

// BuildRetrieveResponse builds the xds:RetrieveDocumentSetResponse body:
// Success, PartialSuccess when errs come with documents, Failure when only
// errs do. Documents are xop:Include references to their ContentID, or
// inline base64 (the form the schema validates).
func BuildRetrieveResponse(docs []RetrievedDocument, errs []RegistryError) ([]byte, error) {
	var w ebWriter
	w.start("xds:RetrieveDocumentSetResponse", "xmlns:xds", NSXDS, "xmlns:rs", NSRS)
	w.start("rs:RegistryResponse", "status", responseStatus(errs, len(docs)))
	w.errorList(errs)
	w.end("rs:RegistryResponse")
	for _, d := range docs {
		if d.RepositoryUniqueID == "" || d.DocumentUniqueID == "" || d.MimeType == "" {
			return nil, fmt.Errorf("dmp: retrieved document needs a repository and document uniqueId and a MIME type")
		}
		w.limit("mimeType", d.MimeType, maxLongName)
		w.start("xds:DocumentResponse")
		w.text("xds:RepositoryUniqueId", d.RepositoryUniqueID)
		w.text("xds:DocumentUniqueId", d.DocumentUniqueID)
		w.text("xds:mimeType", d.MimeType)
		switch {
		case d.ContentID != "":
			w.start("xds:Document")
			w.empty("xop:Include", "xmlns:xop", NSXOP, "href", HrefFromCID(d.ContentID))
			w.end("xds:Document")
		case d.Inline != nil:
			w.text("xds:Document", base64.StdEncoding.EncodeToString(d.Inline))
		default:
			return nil, fmt.Errorf("dmp: no content for retrieved document %q", d.DocumentUniqueID)
		}
		w.end("xds:DocumentResponse")
	}
	w.end("xds:RetrieveDocumentSetResponse")
	return w.bytes()
}

type xdsDocumentResponse struct {
	Repository string      `xml:"urn:ihe:iti:xds-b:2007 RepositoryUniqueId"`
	Document   string      `xml:"urn:ihe:iti:xds-b:2007 DocumentUniqueId"`
	MimeType   string      `xml:"urn:ihe:iti:xds-b:2007 mimeType"`
	Content    xdsDocument `xml:"urn:ihe:iti:xds-b:2007 Document"`
}

type xdsRetrieveResponse struct {
	XMLName  xml.Name `xml:"urn:ihe:iti:xds-b:2007 RetrieveDocumentSetResponse"`
	Response struct {
		Status string       `xml:"status,attr"`
		Errors *rsErrorList `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryErrorList"`
	} `xml:"urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0 RegistryResponse"`
	Documents []xdsDocumentResponse `xml:"urn:ihe:iti:xds-b:2007 DocumentResponse"`
}

// ParseRetrieveResponse reads an ITI-43 answer: the documents, each with the
// Content-ID of its MTOM part (or its inline bytes). On Failure it returns a
// *Fault{Source: "registry"}; on PartialSuccess the documents and the
// *Fault.
func ParseRetrieveResponse(envelope []byte) ([]RetrievedDocument, error) {
	r, err := decodeXDSBody[xdsRetrieveResponse](envelope)
	if err != nil {
		return nil, err
	}
	serr := statusError(r.Response.Status, r.Response.Errors.registryErrors())
	if serr != nil && localName(r.Response.Status) != "PartialSuccess" {
		return nil, serr
	}
	out := make([]RetrievedDocument, 0, len(r.Documents))
	for i := range r.Documents {
		d := &r.Documents[i]
		rd := RetrievedDocument{RepositoryUniqueID: strings.TrimSpace(d.Repository),
			DocumentUniqueID: strings.TrimSpace(d.Document), MimeType: strings.TrimSpace(d.MimeType)}
		if rd.DocumentUniqueID == "" {
			return nil, fmt.Errorf("%w: DocumentResponse without DocumentUniqueId", ErrMalformed)
		}
		if rd.DocumentContent, err = d.Content.content(); err != nil {
			return nil, err
		}
		out = append(out, rd)
	}
	return out, serr
}
