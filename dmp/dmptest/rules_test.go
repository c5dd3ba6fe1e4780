package dmptest

import (
	"testing"
	"time"
)

const insSingle = "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH"

var (
	gp           = Actor{IDNat: "899900063480", Name: "Max LIBRE", Profession: "10", Specialty: "SM26"}
	pharmacist   = Actor{IDNat: "899900070011", Name: "Anne OFFICINE", Profession: "21"}
	cardiologist = Actor{IDNat: "899900070029", Name: "Paul CARDIO", Profession: "10", Specialty: "SM04"}
	nurse        = Actor{IDNat: "899900070037", Name: "Julie SOINS", Profession: "60"}
	emergency    = Actor{IDNat: "899900070045", Name: "Marc REGUL", Profession: "10", Specialty: "SM59", Mode: ModeCentre15}
	optician     = Actor{IDNat: "899900070052", Name: "Luc LUNETTES", Profession: "28"}
)

func breakGlass(a Actor, reason string) Actor {
	a.Mode, a.Reason = ModeBreakGlass, reason
	return a
}

func openDMP() *DMPRecord {
	return &DMPRecord{INS: insSingle, Status: DMPOpen, CreatedBy: gp.IDNat,
		Patient: Patient{Family: "PATB-QUATRE", Given: "Laurence", Sex: "F", Birth: "19070525"}}
}

func doc(typeCode, classCode, author string, conf ...string) *DocumentRecord {
	return &DocumentRecord{UniqueID: "1.2.3." + typeCode, INS: insSingle, TypeCode: typeCode, ClassCode: classCode,
		AuthorID: author, Status: DocApproved, Confidentiality: append([]string{ConfNormal}, conf...)}
}

func authorizedRequest(action Action, a Actor, d *DocumentRecord) AccessRequest {
	return AccessRequest{Actor: a, Action: action, INS: insSingle, DMP: openDMP(), Authorization: AuthAuthorized, Document: d}
}

// with returns a copy of req changed by fn, to write table rows as variations.
func with(req AccessRequest, fn func(*AccessRequest)) AccessRequest {
	if req.DMP != nil {
		d := *req.DMP
		req.DMP = &d
	}
	fn(&req)
	return req
}

func TestDecide(t *testing.T) {
	consult := doc("11488-4", "10", cardiologist.IDNat)
	masked := doc("11488-4", "10", cardiologist.IDNat, ConfMaskedPS)
	unauthorized := func(r *AccessRequest) { r.Authorization = AuthNone }
	tests := []struct {
		name string
		req  AccessRequest
		code string // "" means allowed
	}{
		// Rule 1.
		{"1 create with consent", AccessRequest{Actor: gp, Action: ActionCreate, INS: insSingle, Consent: true}, ""},
		{"1 create without consent", AccessRequest{Actor: gp, Action: ActionCreate, INS: insSingle}, CodeAccessDenied},
		{"1 create existing", with(authorizedRequest(ActionCreate, gp, nil), func(r *AccessRequest) { r.Consent = true }), CodeFound},
		{"1 no DMP", AccessRequest{Actor: gp, Action: ActionSearch, INS: insSingle}, CodeNotFound},
		// Rule 2.
		{"2 authorized read", authorizedRequest(ActionRead, gp, consult), ""},
		{"2 unauthorized read", with(authorizedRequest(ActionRead, gp, consult), unauthorized), CodeAccessDenied},
		{"2 unauthorized search", with(authorizedRequest(ActionSearch, nurse, nil), unauthorized), CodeAccessDenied},
		{"2 break-glass with reason", with(authorizedRequest(ActionRead, breakGlass(gp, "patient inconscient"), consult), unauthorized), ""},
		{"2 break-glass without reason", with(authorizedRequest(ActionRead, breakGlass(gp, "  "), consult), unauthorized), CodeInvalidVIHF},
		{"2 break-glass opposed", with(authorizedRequest(ActionRead, breakGlass(gp, "coma"), consult), func(r *AccessRequest) {
			r.Authorization = AuthNone
			r.DMP.Oppositions.BreakGlass = true
		}), CodeOpposition},
		{"2 centre 15", with(authorizedRequest(ActionRead, emergency, consult), unauthorized), ""},
		{"2 centre 15 opposed", with(authorizedRequest(ActionRead, emergency, consult), func(r *AccessRequest) {
			r.Authorization = AuthNone
			r.DMP.Oppositions.Centre15 = true
		}), CodeOpposition},
		{"2 centre 15 not opposed by break-glass opposition", with(authorizedRequest(ActionSearch, emergency, nil), func(r *AccessRequest) {
			r.Authorization = AuthNone
			r.DMP.Oppositions.BreakGlass = true
		}), ""},
		{"2 unknown mode", authorizedRequest(ActionRead, Actor{IDNat: "1", Profession: "10", Mode: "urgence"}, consult), CodeInvalidVIHF},
		{"2 self-authorize in normal mode", with(authorizedRequest(ActionAuthorize, nurse, nil), unauthorized), ""},
		{"2 self-authorize in break-glass", with(authorizedRequest(ActionAuthorize, breakGlass(nurse, "x"), nil), unauthorized), CodeAccessDenied},
		// Rule 3.
		{"3 blocked normal", with(authorizedRequest(ActionRead, gp, consult), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		{"3 blocked break-glass", with(authorizedRequest(ActionRead, breakGlass(gp, "coma"), consult), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		{"3 blocked centre 15", with(authorizedRequest(ActionSearch, emergency, nil), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		{"3 blocked feed", with(authorizedRequest(ActionFeed, gp, nil), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		{"3 blocked self-authorize", with(authorizedRequest(ActionAuthorize, gp, nil), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		// Rule 4.
		{"4 attending reads masked", with(authorizedRequest(ActionRead, gp, masked), func(r *AccessRequest) { r.Attending = true }), ""},
		{"4 attending unmasks", with(authorizedRequest(ActionUnmask, gp, masked), func(r *AccessRequest) { r.Attending = true }), ""},
		// Rule 5.
		{"5 masked: other physician", authorizedRequest(ActionRead, gp, masked), CodeAccessDenied},
		{"5 masked: author", authorizedRequest(ActionRead, cardiologist, masked), ""},
		{"5 masked: break-glass, default", with(authorizedRequest(ActionRead, breakGlass(gp, "coma"), masked), unauthorized), CodeAccessDenied},
		{"5 masked: centre 15, patient allowed", with(authorizedRequest(ActionRead, emergency, masked), func(r *AccessRequest) {
			r.Authorization = AuthNone
			r.DMP.MaskedInEmergency = true
		}), ""},
		{"5 masked: normal mode, patient allowed emergency only", with(authorizedRequest(ActionRead, gp, masked), func(r *AccessRequest) {
			r.DMP.MaskedInEmergency = true
		}), CodeAccessDenied},
		{"5 mask by a reader", authorizedRequest(ActionMask, gp, consult), ""},
		{"5 mask in centre 15", with(authorizedRequest(ActionMask, emergency, consult), unauthorized), CodeAccessDenied},
		{"5 unmask by another physician", authorizedRequest(ActionUnmask, gp, masked), CodeAccessDenied},
		{"5 unmask by author", authorizedRequest(ActionUnmask, cardiologist, masked), ""},
		// Rule 7.
		{"7 pharmacist reads prescription", authorizedRequest(ActionRead, pharmacist, doc("57833-6", "42", gp.IDNat)), ""},
		{"7 pharmacist reads psychiatric synthesis", authorizedRequest(ActionRead, pharmacist, doc("68599-0", "11", gp.IDNat)), CodeAccessDenied},
		{"7 pharmacist reads advance directives", authorizedRequest(ActionRead, pharmacist, doc("EXPPAT_3", "90", gp.IDNat)), CodeAccessDenied},
		{"7 nurse reads advance directives", authorizedRequest(ActionRead, nurse, doc("EXPPAT_3", "90", gp.IDNat)), ""},
		{"7 pharmacist feeds what it cannot read", authorizedRequest(ActionFeed, pharmacist, doc("EXPPAT_3", "90", pharmacist.IDNat)), ""},
		{"7 author reads own unreadable type", authorizedRequest(ActionRead, pharmacist, doc("EXPPAT_3", "90", pharmacist.IDNat)), ""},
		{"7 break-glass still bound by matrix", with(authorizedRequest(ActionRead, breakGlass(pharmacist, "malaise"), doc("68599-0", "11", gp.IDNat)), unauthorized), CodeAccessDenied},
		{"7 reveal to patient needs read right", authorizedRequest(ActionVisibility, pharmacist, doc("68599-0", "11", gp.IDNat)), CodeAccessDenied},
		{"7 reveal to patient", authorizedRequest(ActionVisibility, nurse, consult), ""},
		// Rule 9.
		{"9 closed: read", with(authorizedRequest(ActionRead, gp, consult), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), CodeClosed},
		{"9 closed: feed", with(authorizedRequest(ActionFeed, gp, nil), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), CodeClosed},
		{"9 closed: centre 15", with(authorizedRequest(ActionSearch, emergency, nil), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), CodeClosed},
		{"9 closed: close again", with(authorizedRequest(ActionClose, gp, nil), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), CodeClosed},
		{"9 closed: test existence answers", with(authorizedRequest(ActionTestExistence, nurse, nil), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), ""},
		{"9 reactivate with consent", with(authorizedRequest(ActionReactivate, gp, nil), func(r *AccessRequest) {
			r.DMP.Status, r.Consent = DMPClosed, true
		}), ""},
		{"9 reactivate without consent", with(authorizedRequest(ActionReactivate, gp, nil), func(r *AccessRequest) { r.DMP.Status = DMPClosed }), CodeAccessDenied},
		{"9 reactivate open DMP", with(authorizedRequest(ActionReactivate, gp, nil), func(r *AccessRequest) { r.Consent = true }), CodeFound},
		{"9 create on closed DMP", with(authorizedRequest(ActionCreate, gp, nil), func(r *AccessRequest) {
			r.DMP.Status, r.Consent = DMPClosed, true
		}), CodeClosed},
		// Rule 10: no special case, the matrix decides.
		{"10 pharmacist reads reimbursements", authorizedRequest(ActionRead, pharmacist, doc("REMB", "60", AssuranceMaladieID)), ""},
		{"10 optician cannot read reimbursements", authorizedRequest(ActionRead, optician, doc("REMB", "60", AssuranceMaladieID)), CodeAccessDenied},
		{"10 reimbursements hidden when blocked", with(authorizedRequest(ActionRead, gp, doc("REMB", "60", AssuranceMaladieID)), func(r *AccessRequest) { r.Authorization = AuthBlocked }), CodeBlocked},
		{"10 nurse reads advance directives fed by patient side", authorizedRequest(ActionRead, nurse, doc("EXPPAT_3", "90", "")), ""},
		// Author-only operations.
		{"delete by author", authorizedRequest(ActionDelete, cardiologist, consult), ""},
		{"delete by attending non-author", with(authorizedRequest(ActionDelete, gp, consult), func(r *AccessRequest) { r.Attending = true }), CodeAccessDenied},
		{"delete by other", authorizedRequest(ActionDelete, gp, consult), CodeAccessDenied},
		{"archive by other", authorizedRequest(ActionArchive, gp, consult), CodeAccessDenied},
		{"archive by author", authorizedRequest(ActionArchive, cardiologist, consult), ""},
		{"replace by author", authorizedRequest(ActionReplace, cardiologist, consult), ""},
		{"replace by other", authorizedRequest(ActionReplace, nurse, consult), CodeAccessDenied},
		{"feed in break-glass", with(authorizedRequest(ActionFeed, breakGlass(gp, "coma"), nil), unauthorized), ""},
		{"close in centre 15", with(authorizedRequest(ActionClose, emergency, nil), unauthorized), CodeAccessDenied},
		{"unknown action", authorizedRequest(Action("frobnicate"), gp, nil), CodeAccessDenied},
	}
	var rules Rules
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := rules.Decide(tt.req)
			if d.Allowed != (tt.code == "") || d.Code != tt.code {
				t.Fatalf("Decide = %+v, want code %q", d, tt.code)
			}
			if !d.Allowed && d.Message == "" {
				t.Error("refusal without a message")
			}
			// Rule 8: every outcome makes a history entry.
			at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
			h := HistoryFor(tt.req, d, at)
			if h.INS != insSingle || h.ActorID != tt.req.Actor.IDNat || h.Action != tt.req.Action ||
				h.Allowed != d.Allowed || h.Code != d.Code || !h.Time.Equal(at) {
				t.Errorf("HistoryFor = %+v", h)
			}
			if tt.req.Actor.Mode == "" && h.Mode != ModeNormal {
				t.Errorf("history mode = %q, want normal", h.Mode)
			}
			if tt.req.Document != nil && h.DocumentUniqueID != tt.req.Document.UniqueID {
				t.Errorf("history document = %q", h.DocumentUniqueID)
			}
		})
	}
}

func TestHistoryForBreakGlass(t *testing.T) {
	req := with(authorizedRequest(ActionRead, breakGlass(gp, "patient inconscient"), doc("11488-4", "10", gp.IDNat)),
		func(r *AccessRequest) { r.Authorization = AuthNone })
	h := HistoryFor(req, Rules{}.Decide(req), time.Now())
	if h.Mode != ModeBreakGlass || h.Reason != "patient inconscient" || !h.Allowed || h.ActorName != gp.Name || h.ActorProfession != "10" {
		t.Errorf("HistoryFor = %+v", h)
	}
}

func TestVisibleDocuments(t *testing.T) {
	docs := []DocumentRecord{
		*doc("11488-4", "10", cardiologist.IDNat),
		*doc("68599-0", "11", cardiologist.IDNat),
		*doc("57833-6", "42", gp.IDNat, ConfMaskedPS),
		*doc("EXPPAT_3", "90", pharmacist.IDNat),
	}
	tests := []struct {
		actor     Actor
		attending bool
		want      []string
	}{
		{pharmacist, false, []string{"11488-4", "EXPPAT_3"}},
		{gp, false, []string{"11488-4", "68599-0", "57833-6", "EXPPAT_3"}}, // author of the masked one
		{cardiologist, false, []string{"11488-4", "68599-0", "EXPPAT_3"}},
		{cardiologist, true, []string{"11488-4", "68599-0", "57833-6", "EXPPAT_3"}},
		{nurse, false, []string{"11488-4", "EXPPAT_3"}},
	}
	for _, tt := range tests {
		req := authorizedRequest(ActionSearch, tt.actor, nil)
		req.Attending = tt.attending
		got := Rules{}.VisibleDocuments(req, docs)
		if len(got) != len(tt.want) {
			t.Errorf("%s (MT %v): got %d documents, want %v", tt.actor.Name, tt.attending, len(got), tt.want)
			continue
		}
		for k := range got {
			if got[k].TypeCode != tt.want[k] {
				t.Errorf("%s: document %d = %s, want %s", tt.actor.Name, k, got[k].TypeCode, tt.want[k])
			}
		}
	}
}

func TestPatientView(t *testing.T) {
	docs := []DocumentRecord{
		*doc("11488-4", "10", gp.IDNat),
		*doc("68599-0", "11", gp.IDNat, ConfInvisiblePatient),
		*doc("57833-6", "42", gp.IDNat, ConfMaskedPS),
		*doc("60591-5", "11", gp.IDNat, ConfInvisibleRepresentative),
	}
	if got := PatientView(docs, false); len(got) != 3 || got[1].TypeCode != "57833-6" || got[2].TypeCode != "60591-5" {
		t.Errorf("patient view = %v", got)
	}
	if got := PatientView(docs, true); len(got) != 2 || got[0].TypeCode != "11488-4" || got[1].TypeCode != "57833-6" {
		t.Errorf("representative view = %v", got)
	}
}
