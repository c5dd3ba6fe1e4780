package schemas

import (
	"context"
	"fmt"
)

// A Check is one schema run on a message: on the whole envelope, or on the
// Body's first child alone.
type Check struct {
	Schema string
	Body   bool
}

// Message kinds and the schemas each must satisfy. Envelopes are checked
// with the wrapper schemas, which know SOAP 1.2, WS-Addressing, WS-Security
// and SAML (so the VIHF is checked too); bodies of the DMP's own services
// with the official annex, which describes only the Body child.
var Kinds = map[string][]Check{
	// HL7v3 patient services (TD0.2, TD1.3a, TD1.1, TD1.2, TD1.3b, TD1.4).
	"PRPA_IN201307UV02": {{"wrappers/soap-hl7v3-2009.xsd", false}, {"dmp-annex/schema/HL7V3/NE2009/multicacheschemas/PRPA_IN201307UV02.xsd", true}},
	"PRPA_IN201308UV02": {{"wrappers/soap-hl7v3-2009.xsd", false}, {"dmp-annex/schema/HL7V3/NE2009/multicacheschemas/PRPA_IN201308UV02.xsd", true}},
	"PRPA_IN201311UV02": {{"wrappers/soap-xds.xsd", false}, {"dmp-annex/schema/HL7V3/NE2009/multicacheschemas/PRPA_IN201311UV02.xsd", true}},
	"PRPA_IN201314UV02": {{"wrappers/soap-xds.xsd", false}, {"dmp-annex/schema/HL7V3/NE2009/multicacheschemas/PRPA_IN201314UV02.xsd", true}},
	"GDPResponse":       {{"wrappers/soap-xds.xsd", false}, {"dmp-annex-extracted/GestionDossierPatientPartage-types.xsd", true}},
	// Custom services (TD0.3, TD1.6, TD0.4).
	"Habilitations": {{"wrappers/soap-xds.xsd", false}, {"dmp-annex-extracted/Habilitations-types.xsd", true}},
	"PatientList":   {{"wrappers/soap-xds.xsd", false}, {"dmp-annex-extracted/PatientsSpecific-types.xsd", true}},
	// XDS.b (TD2.1, TD2.2, TD3.1, TD3.2, TD3.3). ITI-41 is checked before
	// MTOM packaging, documents inline.
	"XDS": {{"wrappers/soap-xds.xsd", false}},
	// Faults.
	"Fault": {{"soap/soap-1.2-envelope.xsd", false}},
	// INSi bodies.
	"INSiRECVITALE": {{"insi/xsd/ServiceIdentiteCertifiee/INSi_RECVITALE_INS.xsd", true}},
	"INSiRECSANS":   {{"insi/xsd/ServiceIdentiteCertifiee/INSi_RECSANS_INS.xsd", true}},
	"INSiRESULTAT":  {{"insi/xsd/ServiceIdentiteCertifiee/INSi_RESULTAT_INS.xsd", true}},
	// Standalone documents.
	"CDA":       {{"cda/CDA_extended.xsd", false}},
	"Signature": {{"saml/xmldsig-core-schema.xsd", false}},
}

// ValidateKind runs every check of a message kind on msg.
func ValidateKind(ctx context.Context, kind string, msg []byte) error {
	checks, ok := Kinds[kind]
	if !ok {
		return fmt.Errorf("schemas: unknown message kind %q", kind)
	}
	for _, c := range checks {
		doc := msg
		if c.Body {
			var err error
			if doc, err = BodyChild(msg); err != nil {
				return err
			}
		}
		if err := Validate(ctx, c.Schema, doc); err != nil {
			return err
		}
	}
	return nil
}
