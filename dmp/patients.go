package dmp

import (
	"context"
	"time"
)

// Client side of the patient services (TD0.2, TD1.1, TD1.2, TD1.3a, TD1.4)
// and of TD0.3.

// CreateRequest is what opening (TD1.1) or reactivating (TD1.2) a DMP
// needs: the patient, as read from the Vitale card, and the consent and
// oppositions the professional captured with the patient.
type CreateRequest struct {
	Patient          PatientIdentity
	Consent          bool
	ConsentTime      time.Time // zero: now
	OpposeBreakGlass bool
	OpposeCentre15   bool
}

func (c *Client) hl7Header() hl7Header {
	src := c.sourceID()
	return hl7Header{Root: src + ".1", ID: NewUUID(), Created: c.cfg.Now().UTC().Truncate(time.Second),
		ProcessingCode: c.cfg.ProcessingCode, Sender: src, SenderName: c.cfg.Software.Name,
		Receiver: OIDDMPSystem, ReceiverName: dmpSoftwareName}
}

func (c *Client) patientQuery(ctx context.Context, actor Actor, ins INS, reason string) (*DMPStatus, error) {
	body, err := BuildPatientQuery(PatientQuery{Header: c.hl7Header(), QueryID: NewUUID(), Reason: reason, Patient: ins})
	if err != nil {
		return nil, err
	}
	rep, err := c.do(ctx, request{service: ServicePatients, action: ActionPatientQuery, actor: actor, patient: &ins, body: body})
	if err != nil {
		return nil, err
	}
	defer rep.close()
	return ParsePatientQueryResponse(rep.envelope)
}

// TestExistence asks whether the patient has a DMP, whether it is closed,
// and where the professional stands on it (TD0.2).
func (c *Client) TestExistence(ctx context.Context, actor Actor, ins INS) (*DMPStatus, error) {
	return c.patientQuery(ctx, actor, ins, ReasonExistence)
}

// AdminData reads the DMP's administrative data (TD1.3a).
func (c *Client) AdminData(ctx context.Context, actor Actor, ins INS) (*DMPStatus, error) {
	return c.patientQuery(ctx, actor, ins, ReasonConsult)
}

func (c *Client) change(ctx context.Context, actor Actor, ch DMPChange) error {
	ch.Header, ch.Author = c.hl7Header(), actor.Professional
	if ch.ConsentTime.IsZero() && ch.Consent {
		ch.ConsentTime = ch.Header.Created
	}
	body, err := BuildDMPChange(ch)
	if err != nil {
		return err
	}
	action := ActionPatientRevise
	if ch.Reason == ReasonCreate {
		action = ActionPatientAdd
	}
	rep, err := c.do(ctx, request{service: ServicePatients, action: action, actor: actor, patient: &ch.Patient.INS, body: body})
	if err != nil {
		return err
	}
	defer rep.close()
	return ParseDMPChangeResponse(rep.envelope)
}

// CreateDMP opens the patient's DMP (TD1.1). The DMP refuses it without
// the patient's consent (Fault DMPAccessDenied) and when it exists
// (DMPFound).
func (c *Client) CreateDMP(ctx context.Context, actor Actor, r CreateRequest) error {
	return c.change(ctx, actor, DMPChange{Reason: ReasonCreate, Patient: r.Patient, Consent: r.Consent, ConsentTime: r.ConsentTime,
		OpposeBreakGlass: r.OpposeBreakGlass, OpposeCentre15: r.OpposeCentre15})
}

// ReactivateDMP reopens a closed DMP with the patient's consent (TD1.2).
func (c *Client) ReactivateDMP(ctx context.Context, actor Actor, r CreateRequest) error {
	return c.change(ctx, actor, DMPChange{Reason: ReasonReactivate, Patient: r.Patient, Consent: r.Consent, ConsentTime: r.ConsentTime})
}

// UpdateAdminData changes the patient's identity and emergency-access
// oppositions on the DMP (TD1.3b).
func (c *Client) UpdateAdminData(ctx context.Context, actor Actor, r CreateRequest) error {
	return c.change(ctx, actor, DMPChange{Reason: ReasonModify, Patient: r.Patient, OpposeBreakGlass: r.OpposeBreakGlass, OpposeCentre15: r.OpposeCentre15})
}

// CloseDMP closes the DMP at the patient's request (TD1.4).
func (c *Client) CloseDMP(ctx context.Context, actor Actor, patient PatientIdentity, reason string) error {
	return c.change(ctx, actor, DMPChange{Reason: ReasonClose, Patient: patient, CloseReason: reason})
}

// SetAuthorization declares the professional authorized on the patient's
// DMP (add), as attending physician when attending is set, or withdraws
// (TD0.3).
func (c *Client) SetAuthorization(ctx context.Context, actor Actor, ins INS, add, attending bool) error {
	body, err := BuildSetAuthorization(SetAuthorization{Add: add, Attending: attending})
	if err != nil {
		return err
	}
	rep, err := c.do(ctx, request{service: ServiceHabilitations, action: ActionSetAuthorization, actor: actor, patient: &ins, body: body})
	if err != nil {
		return err
	}
	defer rep.close()
	return ParseSetAuthorizationResponse(rep.envelope)
}
