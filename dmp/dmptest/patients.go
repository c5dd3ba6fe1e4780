package dmptest

import (
	"errors"

	"github.com/dmpagent/dmpagent/dmp"
)

// Handlers of the patient services (TD0.2, TD1.3a, TD1.1, TD1.2, TD1.4)
// and of TD0.3.

// patientQuery answers TD0.2 and TD1.3a.
func (s *Server) patientQuery(c *call) (*answer, error) {
	q, err := dmp.ParsePatientQuery(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, &q.Patient)
	if err != nil {
		return nil, err
	}
	action := ActionTestExistence
	if q.Reason == dmp.ReasonConsult {
		action = ActionConsultAdmin
	}
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), action, ins.CX())
	if err != nil {
		return nil, err
	}
	var st dmp.DMPStatus
	if req.DMP != nil {
		d, trace := s.decide(c, req)
		if !d.Allowed {
			return nil, &dmp.Fault{Code: d.Code, Message: d.Message}
		}
		if err := s.store.AppendHistory(c.ctx, trace); err != nil {
			return nil, err
		}
		st = statusOf(req, ins)
	}
	body, err := dmp.BuildPatientQueryResponse(q, st, c.now)
	return &answer{body: body}, err
}

// statusOf is what TD0.2 says of a DMP to the professional asking.
func statusOf(req AccessRequest, ins dmp.INS) dmp.DMPStatus {
	d := req.DMP
	st := dmp.DMPStatus{
		Exists: true, Closed: d.Status == DMPClosed, AttendingPhysician: req.Attending,
		OpposesBreakGlass: d.Oppositions.BreakGlass, OpposesCentre15: d.Oppositions.Centre15,
		ClosedAt: d.ClosedAt, ClosingReason: d.CloseReason,
		Patient:       dmp.PatientIdentity{INS: ins, BirthName: d.Patient.Family, Sex: d.Patient.Sex, BirthDate: d.Patient.Birth},
		Authorization: dmp.AuthorizationNone,
	}
	if d.Patient.Given != "" {
		st.Patient.Given = []string{d.Patient.Given}
	}
	switch {
	case req.Authorization == AuthBlocked:
		st.Authorization = dmp.AuthorizationForbidden
	case req.Authorization == AuthAuthorized || req.Attending:
		st.Authorization = dmp.AuthorizationValid
	}
	return st
}

// dmpChange handles TD1.1, TD1.2 and TD1.4; refusals travel in the HL7
// reject interaction.
func (s *Server) dmpChange(c *call) (*answer, error) {
	ch, err := dmp.ParseDMPChange(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, &ch.Patient.INS)
	if err != nil {
		return nil, err
	}
	action := map[string]Action{dmp.ReasonCreate: ActionCreate, dmp.ReasonReactivate: ActionReactivate,
		dmp.ReasonClose: ActionClose, dmp.ReasonModify: ActionUpdateAdmin}[ch.Reason]
	if action == "" {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "motif " + ch.Reason + " non pris en charge"}
	}
	reply := func(f *dmp.Fault) (*answer, error) {
		body, err := dmp.BuildDMPChangeResponse(ch, f, c.now)
		return &answer{body: body}, err
	}
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), action, ins.CX())
	if err != nil {
		return nil, err
	}
	req.Consent = ch.Consent
	d, trace := s.decide(c, req)
	if !d.Allowed {
		return reply(&dmp.Fault{Code: d.Code, Message: d.Message})
	}
	switch action {
	case ActionCreate:
		p := ch.Patient
		rec := DMPRecord{INS: ins.CX(), CreatedAt: c.now, CreatedBy: c.vihf.NameID,
			Patient:     Patient{Family: firstNonEmpty(p.BirthName, p.UsualName), Given: firstNonEmpty(p.Given...), Sex: p.Sex, Birth: p.BirthDate},
			Oppositions: Oppositions{BreakGlass: ch.OpposeBreakGlass, Centre15: ch.OpposeCentre15}}
		err = s.store.CreateDMP(c.ctx, rec, trace)
		if errors.Is(err, ErrDMPExists) {
			return reply(&dmp.Fault{Code: dmp.CodeFound, Message: "le DMP existe déjà"})
		}
		if err == nil {
			// Rule 10: the Assurance Maladie feeds the reimbursement
			// history like any document.
			_, err = SeedReimbursementHistory(c.ctx, s.store, ins.CX(), SeedOptions{Dir: s.docs, Now: c.now, RepositoryUniqueID: RepositoryUniqueID})
		}
	case ActionReactivate:
		err = s.store.ReactivateDMP(c.ctx, ins.CX(), trace)
		if errors.Is(err, ErrAlreadyOpen) {
			return reply(&dmp.Fault{Code: dmp.CodeFound, Message: "le DMP est déjà actif"})
		}
	case ActionUpdateAdmin:
		rec := *req.DMP
		p := ch.Patient
		rec.Patient = Patient{Family: firstNonEmpty(p.BirthName, p.UsualName), Given: firstNonEmpty(p.Given...), Sex: p.Sex, Birth: p.BirthDate}
		rec.Oppositions = Oppositions{BreakGlass: ch.OpposeBreakGlass, Centre15: ch.OpposeCentre15}
		err = s.store.UpdateDMP(c.ctx, rec, trace)
	case ActionClose:
		err = s.store.CloseDMP(c.ctx, ins.CX(), c.now, firstNonEmpty(ch.CloseReason, "FERMETURE_DEMANDE_PATIENT"), trace)
		if errors.Is(err, ErrAlreadyClosed) {
			return reply(&dmp.Fault{Code: dmp.CodeClosed, Message: "le DMP est déjà fermé"})
		}
	}
	if err != nil {
		return nil, err
	}
	return reply(nil)
}

// setAuthorization handles TD0.3; refusals travel in output/status.
func (s *Server) setAuthorization(c *call) (*answer, error) {
	sa, err := dmp.ParseSetAuthorization(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, nil)
	if err != nil {
		return nil, err
	}
	action := ActionUnauthorize
	if sa.Add {
		action = ActionAuthorize
	}
	reply := func(f *dmp.Fault, context string) (*answer, error) {
		body, err := dmp.BuildSetAuthorizationResponse(f, context)
		return &answer{body: body}, err
	}
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), action, ins.CX())
	if err != nil {
		return nil, err
	}
	d, trace := s.decide(c, req)
	if !d.Allowed {
		return reply(&dmp.Fault{Code: d.Code, Message: d.Message}, "")
	}
	ps := c.vihf.NameID
	switch {
	case sa.Add && req.Authorization == AuthAuthorized && sa.Attending == req.Attending:
		// The real service's answer to a repeated declaration.
		if err := s.store.AppendHistory(c.ctx, trace); err != nil {
			return nil, err
		}
		return reply(nil, "Autorisation déjà présente aucune action effectuée")
	case sa.Add:
		err = s.store.Authorize(c.ctx, ins.CX(), ps, c.now, trace)
		if err == nil && sa.Attending {
			err = s.store.SetAttending(c.ctx, ins.CX(), ps, true)
		}
	case sa.Attending:
		err = s.store.SetAttending(c.ctx, ins.CX(), ps, false, trace)
	default:
		err = s.store.RemoveAuthorization(c.ctx, ins.CX(), ps, trace)
	}
	if errors.Is(err, ErrBlocked) {
		return reply(&dmp.Fault{Code: dmp.CodeBlocked, Message: "le patient a bloqué ce professionnel"}, "")
	}
	if err != nil {
		return nil, err
	}
	return reply(nil, "")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// listAuthorizations handles TD1.6.
func (s *Server) listAuthorizations(c *call) (*answer, error) {
	mode, err := dmp.ParseListAuthorizations(c.envelope)
	if err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ins, err := patientOf(c, nil)
	if err != nil {
		return nil, err
	}
	req, err := s.store.AccessRequest(c.ctx, actorOf(c.vihf), ActionConsultAdmin, ins.CX())
	if err != nil {
		return nil, err
	}
	d, trace := s.decide(c, req)
	if !d.Allowed {
		body, err := dmp.BuildListAuthorizationsResponse(nil, &dmp.Fault{Code: d.Code, Message: d.Message})
		return &answer{body: body}, err
	}
	recs, err := s.store.Authorizations(c.ctx, ins.CX())
	if err != nil {
		return nil, err
	}
	var list []dmp.Authorization
	for _, r := range recs {
		m := dmp.ListActive
		if r.State == AuthBlocked {
			m = dmp.ListForbidden
		}
		if mode != dmp.ListAll && mode != m {
			continue
		}
		list = append(list, dmp.Authorization{IDNat: r.IDNat, Since: r.Since, Mode: m, Attending: r.Attending})
	}
	if err := s.store.AppendHistory(c.ctx, trace); err != nil {
		return nil, err
	}
	body, err := dmp.BuildListAuthorizationsResponse(list, nil)
	return &answer{body: body}, err
}

// patientList handles TD0.4: the open DMPs the professional is authorized
// on (the start date is not applied: the simulation keeps no per-DMP
// activity dates yet).
func (s *Server) patientList(c *call) (*answer, error) {
	if _, _, err := dmp.ParsePatientList(c.envelope); err != nil {
		return nil, &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: err.Error()}
	}
	ps := c.vihf.NameID
	dmps, err := s.store.AuthorizedDMPs(c.ctx, ps)
	if err != nil {
		return nil, err
	}
	var list []dmp.PatientEntry
	for _, cx := range dmps {
		rec, err := s.store.DMP(c.ctx, cx)
		if err != nil || rec.Status != DMPOpen {
			continue
		}
		ins, err := dmp.ParseCX(cx)
		if err != nil {
			continue
		}
		auth, err := s.store.Authorization(c.ctx, cx, ps)
		if err != nil {
			return nil, err
		}
		list = append(list, dmp.PatientEntry{INS: ins, LastName: rec.Patient.Family, FirstName: rec.Patient.Given,
			BirthDate: rec.Patient.Birth, AttendingPhysician: auth.Attending})
	}
	body, err := dmp.BuildPatientListResponse(list, nil)
	return &answer{body: body}, err
}
