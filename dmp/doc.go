// Package dmp is the client of the DMP (Dossier Médical Partagé) web
// services: SOAP 1.2 envelopes with the four WS-Addressing headers and a
// wsse:Security header holding the VIHF, a SAML 2.0 assertion signed with the
// professional's CPS signature key; the HL7v3 patient services (TD0.2,
// TD1.1–TD1.4), the custom services (TD0.3, TD0.4, TD1.6), XDS.b (ITI-41
// feeds with MTOM and an XAdES-signed submission set, ITI-18 queries, ITI-43
// retrieval, ITI-57 updates) and the INSi lookup. Refusals come back as
// *Fault{Code, Message}; every call takes a context and gets a deadline.
//
// Files: identity.go (who acts: INS, Professional, Actor, Software),
// soap.go (envelopes), vihf.go and xmlsig.go (the assertion and XML-DSig),
// mtom.go (MTOM/XOP streams), client.go (transport, VIHF cache, wire log);
// gdp.go and patients.go (TD0.2, TD1.1, TD1.2, TD1.3a, TD1.4),
// habilitations.go (TD0.3, TD1.6, TD0.4), insi.go (INSi lookup with
// Vitale data); xds.go and ebrim.go (XDS metadata), iti41.go, iti18.go,
// iti43.go, iti57.go, registry.go (the XDS.b messages), documents.go
// (TD2.1, TD2.2, TD3.1, TD3.2, TD3.3a–d), cda.go (the CDA R2 wrapper of a
// PDF), xades.go (the submission-set signature). Each message kind has a
// Build and a Parse function in both directions, so that package dmptest,
// the simulated DMP, speaks the same codecs.
//
// The real interface specification (DMPi, SEL-MP-037) is not public. The
// messages follow the official example messages and the schemas annex; where
// public sources conflict or are silent, these are the choices made (the
// simulated DMP accepts the variants seen in the field):
//
//   - WS-Addressing: Action, MessageID, To (the service URL, as the ANS
//     DRIMbox sends; the examples leave it empty) and ReplyTo (anonymous),
//     with mustUnderstand qualified in the SOAP namespace, as the schema
//     requires.
//   - VIHF: VIHF_Version 3.0; Authentification_Mode DIRECTE (the attribute
//     name with a capital M, as the ANS kit; either casing is read); values
//     typed xs:string; Role and PurposeOfUse as HL7 CE elements; no
//     Conditions. The assertion is always signed, right after Issuer, with
//     exclusive c14n and RSA-SHA256 (SHA-1 selectable with Config.Hash, the
//     algorithm of every public example). A signed VIHF is reused for the
//     same actor, patient and mode for Config.VIHFLifetime (5 minutes by
//     default) to spare the card a signature per request. The break-glass
//     reason travels in the attribute Mode_Acces_Raison (unattested; kept in
//     one constant).
//   - XAdES: the submission set is signed with exclusive c14n and the
//     configured hash (not c14n WithComments and SHA-1 as the examples); the
//     manifest digest of a document is taken over its bytes as sent, with no
//     transform, so that a streamed document is hashed while it is read.
//   - Specialty: required in the VIHF of physicians only (the service's
//     attested refusal names physicians; the persona pharmacist has none).
//   - XAdES details: the SignatureProperties element is in no namespace, as
//     in the example (the XML-DSig schema refuses a ds:SignatureProperty
//     holding only the purpose OID); the Signature Id is "sig-" and a UUID,
//     a valid XML ID.
//   - XDS: authorPerson is written idNat^FAMILY^Given (HL7 order; the
//     examples swap them); patientId without the CX.7 date the examples add;
//     the author classification carries nodeRepresentation="" and every
//     association its objectType; a document is fed as a CDA R2 level-1
//     document wrapping the PDF, formatCode urn:ihe:iti:xds-sd:pdf:2008.
//     Document and submission-set uniqueIds are 2.25 OIDs (UUID-based),
//     fixed by the caller when a feed may be sent again: the registry then
//     answers XDSDuplicateUniqueIdInRegistry and Feed reports
//     AlreadyRegistered instead of a duplicate.
//   - HL7v3: creation and closing carry a nil providerOrganization and an
//     author whose organization has an empty contactParty, as the annex
//     schema requires; a refused change echoes the request in the reject
//     interaction. TD1.4 sends registrationRequest statusCode active (the
//     example's; the ANS kit sends completed).
//   - INSi: the RECVITALE lookup travels with the VIHF in wsse:Security;
//     the ContexteBAM and ContexteLPS headers of the real teleservice are not
//     sent yet.
//
// Hostile input: every message read whole is bounded (MaxMessage), a DTD or
// entity declaration is refused with ErrDTD before parsing, encoding/xml
// never fetches external entities nor expands undeclared ones, and MTOM
// document parts are streamed, never buffered.
package dmp
