// Package dmptest is a simulated DMP central service for tests, testers and
// vendors, in the spirit of net/http/httptest: the wire protocol of the real
// service (SOAP 1.2, WS-Addressing, signed VIHF, HL7v3, XDS.b with MTOM and
// XAdES) over real mutual TLS, with the DMP's access rules enforced on a
// state kept in embedded SQLite (modernc.org/sqlite, pure Go).
//
// Files: server.go (listener, mutual TLS, dispatch, faults), auth.go (the
// client certificate and the VIHF), validate.go (schema checks in test
// mode), routes.go (the action table), xds.go and the other transaction
// files (handlers), store.go (state), rules.go (the ten access rules of
// DESIGN §6), matrix.go and habilitations.json (the habilitation matrix,
// an editable file), seed.go (the 24-month reimbursement history),
// patient.go (the patient's side, behind `dmpagent sim patient`).
//
// Authentication. The client certificate must chain to the configured
// IGC-Santé roots and be valid now; an expired or foreign one gets the
// fault DMPInvalidCertificate (the handshake accepts any certificate so
// that the refusal is a readable SOAP fault). The VIHF must be signed (an
// unsigned one is refused, though the ANS kit sends one in direct mode),
// by a certificate with the non-repudiation usage (the real service's
// "Not a valid signature certificate" otherwise) of the same person as the
// TLS certificate, its NameID the certificate's national id, its Issuer the
// signing certificate's DN, issued within MaxVIHFAge and not after now +
// MaxSkew. RSA-SHA1 and RSA-SHA256 are both accepted, and either casing of
// Authentification_Mode.
//
// Choices where public sources are silent (the rules file says more):
//
//   - Refusal codes: DMPNotFound, DMPAccessDenied, DMPAccessBlocked,
//     DMPPatientOpposition, DMPInvalidVIHF, DMPInvalidSignature and
//     DMPInvalidRequest are ours; DMPFound, DMPClosed,
//     DMPInvalidCertificate and CXF's MessageAddressingHeaderRequired are
//     the real service's. HL7v3 and custom services refuse with their own
//     reject messages; XDS transactions with a RegistryErrorList; a bad
//     envelope, certificate or VIHF with a SOAP fault.
//   - Feeding needs an authorization in normal mode (or an emergency mode
//     the patient did not oppose); the matrix does not restrict feeding.
//     Masking is open to whoever may read the document, in normal mode;
//     unmasking, archiving and replacing to its author or an attending
//     physician; deleting to its author only (FI-526).
//   - A feed must carry the XAdES signature of its submission set, by the
//     professional of the VIHF, whose manifest digests match the documents
//     received. The signature is kept beside the documents, not registered
//     as a searchable document entry.
//   - TD0.2 on a patient without a DMP answers queryResponseCode NF, not a
//     refusal; a refused TD0.2 or TD1.3a gets a SOAP fault (the query
//     interaction has no reject form the annex shows); a refused creation,
//     reactivation or closing the HL7 reject interaction; TD0.3, TD1.6 and
//     TD0.4 their output/status. TD0.4 does not apply its start date yet.
//   - Creating a DMP seeds its 24-month reimbursement history (rule 10).
//   - The simulated INSi (INSiURL) knows the Vitale personas and the public
//     CNDA test identities; AddIdentity teaches it more.
//   - A document uniqueId already registered answers
//     XDSDuplicateUniqueIdInRegistry, so that a resent feed never makes a
//     duplicate.
package dmptest
