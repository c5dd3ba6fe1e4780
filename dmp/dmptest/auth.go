package dmptest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/dmpagent/dmpagent/dmp"
)

// Messages of the real service, where public sources attest them.
const (
	msgNotSignatureCert = "Le certificat ayant signé le VIHF est invalide : Not a valid signature certificate"
	msgNoSpecialty      = "Aucune spécialité dans le vihf. Spécialité obligatoire pour les Médecins"
)

func invalidCert(format string, a ...any) error {
	return &dmp.Fault{Code: dmp.CodeInvalidCertificate, Message: fmt.Sprintf(format, a...)}
}

func invalidVIHF(format string, a ...any) error {
	return &dmp.Fault{Code: dmp.CodeInvalidVIHF, Message: fmt.Sprintf(format, a...)}
}

// authenticate checks the TLS client certificate and the VIHF, and that
// both name the same professional.
func (s *Server) authenticate(r *http.Request, c *call) (*dmp.VIHF, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, invalidCert("aucun certificat client TLS")
	}
	tlsCert := r.TLS.PeerCertificates[0]
	if err := s.verifyChain(tlsCert, r.TLS.PeerCertificates[1:], x509.ExtKeyUsageClientAuth); err != nil {
		return nil, invalidCert("certificat client TLS refusé : %v", err)
	}
	v, err := dmp.ParseVIHF(c.envelope)
	switch {
	case errors.Is(err, dmp.ErrNoVIHF):
		return nil, invalidVIHF("VIHF absent de l'en-tête wsse:Security")
	case errors.Is(err, dmp.ErrBadSignature):
		return nil, &dmp.Fault{Code: dmp.CodeInvalidSignature, Message: "signature du VIHF invalide : " + err.Error()}
	case err != nil:
		return nil, invalidVIHF("VIHF illisible : %v", err)
	}
	if v.Signature == nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidSignature, Message: "VIHF non signé"}
	}
	signer := v.Signature.Certificate
	if err := s.verifyChain(signer, v.Signature.Chain, x509.ExtKeyUsageAny); err != nil {
		return nil, invalidCert("certificat de signature du VIHF refusé : %v", err)
	}
	// The service wants the signature key, not the authentication key.
	if signer.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		return nil, invalidCert(msgNotSignatureCert)
	}
	if signer.Subject.String() != tlsCert.Subject.String() {
		return nil, invalidCert("le certificat de signature du VIHF et le certificat TLS ne désignent pas la même personne")
	}
	if v.Issuer != signer.Subject.String() {
		return nil, invalidVIHF("Issuer %q n'est pas le DN du certificat de signature", v.Issuer)
	}
	if v.NameID == "" || v.NameID != tlsCert.Subject.CommonName {
		return nil, invalidVIHF("NameID %q ne correspond pas au certificat TLS", v.NameID)
	}
	now := c.now
	if v.IssueInstant.After(now.Add(s.cfg.MaxSkew)) {
		return nil, invalidVIHF("IssueInstant dans le futur")
	}
	if v.IssueInstant.Before(now.Add(-s.cfg.MaxVIHFAge)) {
		return nil, invalidVIHF("VIHF expiré (émis le %s)", v.IssueInstant.Format("2006-01-02T15:04:05Z"))
	}
	if v.Version != "3.0" && v.Version != "4.0" {
		return nil, invalidVIHF("VIHF_Version %q non supportée", v.Version)
	}
	if !strings.EqualFold(v.AuthMode, "DIRECTE") {
		return nil, invalidVIHF("Authentification_Mode %q : le DMP simulé n'accepte que DIRECTE", v.AuthMode)
	}
	p := v.Professional
	switch {
	case p.StructureID == "":
		return nil, invalidVIHF("Identifiant_Structure absent")
	case p.Sector == "":
		return nil, invalidVIHF("Secteur_Activite absent")
	case p.Profession == "":
		return nil, invalidVIHF("rôle (profession) absent")
	case p.Profession == "10" && p.Specialty == "":
		return nil, invalidVIHF(msgNoSpecialty)
	case v.ResourceURN != "urn:dmp":
		return nil, invalidVIHF("Ressource_URN %q", v.ResourceURN)
	case !v.Mode.Valid():
		return nil, invalidVIHF("mode d'accès %q inconnu", v.Mode)
	case v.Mode == dmp.ModeBreakGlass && strings.TrimSpace(v.Reason) == "":
		return nil, invalidVIHF("accès en bris de glace sans raison")
	case v.Software.Name == "" || v.Software.Homologation == "":
		return nil, invalidVIHF("LPS_Nom et LPS_ID_HOMOLOGATION_DMP sont obligatoires")
	}
	return v, nil
}

// verifyChain checks that cert chains to the configured IGC-Santé roots now.
func (s *Server) verifyChain(cert *x509.Certificate, presented []*x509.Certificate, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	if s.cfg.Intermediates != nil {
		inter = s.cfg.Intermediates.Clone()
	}
	for _, c := range presented {
		inter.AddCert(c)
	}
	_, err := cert.Verify(x509.VerifyOptions{
		Roots: s.cfg.Roots, Intermediates: inter, CurrentTime: s.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{usage},
	})
	return err
}
