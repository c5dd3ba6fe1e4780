package dmptest

import "github.com/dmpagent/dmpagent/dmp"

// routeTable maps each request action to its service, the schema kind of
// the request (checked in test mode), the answer's action and the handler.
func (s *Server) routeTable() map[string]handler {
	return map[string]handler{
		dmp.ActionITI41: {dmp.ServiceRepository, "XDS", dmp.ActionITI41Response, s.iti41},
		dmp.ActionITI43: {dmp.ServiceRepository, "XDS", dmp.ActionITI43Response, s.iti43},
		dmp.ActionITI18: {dmp.ServiceRegistry, "XDS", dmp.ActionITI18Response, s.iti18},
		dmp.ActionITI57: {dmp.ServiceRegistry, "XDS", dmp.ActionITI57Response, s.iti57},

		dmp.ActionPatientQuery:     {dmp.ServicePatients, "PRPA_IN201307UV02", dmp.ActionPatientQueryResponse, s.patientQuery},
		dmp.ActionPatientAdd:       {dmp.ServicePatients, "PRPA_IN201311UV02", dmp.ActionPatientAddResponse, s.dmpChange},
		dmp.ActionPatientRevise:    {dmp.ServicePatients, "PRPA_IN201314UV02", dmp.ActionPatientReviseResp, s.dmpChange},
		dmp.ActionSetAuthorization: {dmp.ServiceHabilitations, "Habilitations", dmp.ActionSetAuthorizationResponse, s.setAuthorization},

		dmp.ActionListAuthorizations: {dmp.ServiceHabilitations, "Habilitations", dmp.ActionListAuthorizationsResp, s.listAuthorizations},
		dmp.ActionPatientList:        {dmp.ServicePatientsSpecific, "PatientList", dmp.ActionPatientListResponse, s.patientList},

		dmp.ActionINSiVitale: {"lps", "INSiRECVITALE", dmp.ActionINSiVitaleResponse, s.insiLookup},
	}
}
