package dmptest

import (
	"github.com/dmpagent/dmpagent/dmp"
)

// actorOf is the professional a request's VIHF names.
func actorOf(v *dmp.VIHF) Actor {
	name := v.SubjectID
	if name == "" {
		name = v.NameID
	}
	return Actor{
		IDNat: v.NameID, Name: name, Profession: v.Professional.Profession, Specialty: v.Professional.Specialty,
		Mode: AccessMode(v.Mode), Reason: v.Reason,
	}
}

// patientOf returns the patient a request is about: the VIHF resource-id,
// which must agree with the patient the body names, if it names one.
func patientOf(c *call, body *dmp.INS) (dmp.INS, error) {
	v := c.vihf.Patient
	switch {
	case v == nil && body == nil:
		return dmp.INS{}, &dmp.Fault{Code: dmp.CodeInvalidVIHF, Message: "le VIHF ne désigne aucun patient (resource-id)"}
	case v == nil:
		return *body, nil
	case body != nil && body.Value != "" && *body != *v:
		return dmp.INS{}, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "le patient du message n'est pas celui du VIHF"}
	default:
		return *v, nil
	}
}

// decide applies the access rules to a request and traces it (rule 8):
// a refusal is written to the history here, an allowed change is traced by
// the caller in the same transaction as the change, with the entry
// returned.
func (s *Server) decide(c *call, req AccessRequest) (Decision, HistoryEntry) {
	d := s.rules.Decide(req)
	h := HistoryFor(req, d, c.now)
	if !d.Allowed {
		if err := s.store.AppendHistory(c.ctx, h); err != nil {
			s.log.Error("dmptest: writing the access history", "err", err)
		}
	}
	return d, h
}
