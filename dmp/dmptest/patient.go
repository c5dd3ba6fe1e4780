package dmptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/dmpagent/dmpagent/dmp"
)

// The patient's side of the DMP (Mon espace santé in real life): blocking a
// professional, masking a document, reading the access history, closing
// the DMP. Go methods for tests, and PatientHandler for `dmpagent sim
// patient …`. Every patient action is traced like a professional's.

func (s *Server) patientTrace(ins string, action Action, doc string) HistoryEntry {
	return HistoryEntry{Time: s.cfg.Now(), INS: ins, ActorID: "PATIENT", ActorName: "le patient", Mode: ModeNormal,
		Action: action, DocumentUniqueID: doc, Allowed: true}
}

// Block forbids a professional every access to the patient's DMP, in every
// mode (rule 3).
func (s *Server) Block(ctx context.Context, ins dmp.INS, idNat string) error {
	if _, err := s.store.DMP(ctx, ins.CX()); err != nil {
		return err
	}
	return s.store.Block(ctx, ins.CX(), idNat, s.cfg.Now(), s.patientTrace(ins.CX(), ActionPatientBlock, ""))
}

// Unblock lifts a block; the professional must be authorized again.
func (s *Server) Unblock(ctx context.Context, ins dmp.INS, idNat string) error {
	return s.store.Unblock(ctx, ins.CX(), idNat, s.patientTrace(ins.CX(), ActionPatientUnblock, ""))
}

// MaskDocument hides a document from professionals other than its author
// and the attending physicians (rule 5): a new metadata version with
// MASQUE_PS, as a professional's masking makes.
func (s *Server) MaskDocument(ctx context.Context, ins dmp.INS, uniqueID string) error {
	return s.patientVisibility(ctx, ins, uniqueID, true)
}

// UnmaskDocument shows a masked document again.
func (s *Server) UnmaskDocument(ctx context.Context, ins dmp.INS, uniqueID string) error {
	return s.patientVisibility(ctx, ins, uniqueID, false)
}

func (s *Server) patientVisibility(ctx context.Context, ins dmp.INS, uniqueID string, mask bool) error {
	cur, err := s.store.DocumentByUniqueID(ctx, uniqueID)
	if err != nil || cur.INS != ins.CX() {
		return fmt.Errorf("%w: document %s of %s", ErrNotFound, uniqueID, ins)
	}
	if !PatientMayRead(cur, false) {
		return fmt.Errorf("%w: document %s is not visible to the patient", ErrNotFound, uniqueID)
	}
	next := slices.DeleteFunc(slices.Clone(cur.Confidentiality), func(c string) bool { return c == ConfMaskedPS })
	action := ActionUnmask
	if mask {
		next, action = append(next, ConfMaskedPS), ActionMask
	}
	e, err := entryOf(*cur)
	if err != nil {
		return err
	}
	e.Confidentiality = nil
	for _, c := range next {
		e.Confidentiality = append(e.Confidentiality, confidentialityCode(c))
	}
	meta, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.store.NewVersion(ctx, cur.LogicalID, cur.Version, MetadataUpdate{Confidentiality: next, Metadata: meta},
		s.patientTrace(ins.CX(), action, uniqueID))
	return err
}

// History lists the accesses to the patient's DMP, newest first (rule 8).
func (s *Server) History(ctx context.Context, ins dmp.INS, limit int) ([]HistoryEntry, error) {
	if _, err := s.store.DMP(ctx, ins.CX()); err != nil {
		return nil, err
	}
	if err := s.store.AppendHistory(ctx, s.patientTrace(ins.CX(), ActionPatientHistory, "")); err != nil {
		return nil, err
	}
	return s.store.History(ctx, ins.CX(), limit)
}

// CloseDMP closes the DMP at the patient's request (rule 9).
func (s *Server) CloseDMP(ctx context.Context, ins dmp.INS, reason string) error {
	if reason == "" {
		reason = "FERMETURE_DEMANDE_PATIENT"
	}
	h := s.patientTrace(ins.CX(), ActionClose, "")
	return s.store.CloseDMP(ctx, ins.CX(), s.cfg.Now(), reason, h)
}

// Documents lists what the patient sees of their DMP (rule 6: documents
// invisible to the patient are left out).
func (s *Server) Documents(ctx context.Context, ins dmp.INS) ([]DocumentRecord, error) {
	docs, err := s.store.FindDocuments(ctx, DocumentQuery{INS: ins.CX(), Statuses: []DocumentStatus{DocApproved, DocArchived}})
	if err != nil {
		return nil, err
	}
	return PatientView(docs, false), nil
}

// DMP returns the state of a patient's DMP.
func (s *Server) DMP(ctx context.Context, ins dmp.INS) (*DMPRecord, error) {
	return s.store.DMP(ctx, ins.CX())
}

// PatientHandler serves the patient side as JSON for `dmpagent sim patient`:
//
//	GET  /patient/{ins}                     the DMP
//	GET  /patient/{ins}/documents           what the patient sees
//	GET  /patient/{ins}/history?limit=N     the access history
//	POST /patient/{ins}/block    {"idnat"}  block a professional
//	POST /patient/{ins}/unblock  {"idnat"}
//	POST /patient/{ins}/mask     {"unique_id"}
//	POST /patient/{ins}/unmask   {"unique_id"}
//	POST /patient/{ins}/close    {"reason"}
//
// {ins} is the 15-character INS; ?oid= names its authority (default the
// test NIR of the DMP test environments).
func (s *Server) PatientHandler() http.Handler {
	mux := http.NewServeMux()
	type body struct {
		IDNat    string `json:"idnat"`
		UniqueID string `json:"unique_id"`
		Reason   string `json:"reason"`
	}
	with := func(fn func(r *http.Request, ins dmp.INS, b body) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ins := dmp.INS{Value: r.PathValue("ins"), OID: r.URL.Query().Get("oid")}
			if ins.OID == "" {
				ins.OID = dmp.OIDINSNIRTest
			}
			var b body
			if r.Method == http.MethodPost {
				if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&b); err != nil {
					replyJSON(w, http.StatusBadRequest, map[string]string{"error": "corps JSON illisible : " + err.Error()})
					return
				}
			}
			if err := ins.Valid(); err != nil {
				replyJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			out, err := fn(r, ins, b)
			switch {
			case errors.Is(err, ErrNotFound):
				replyJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				replyJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			default:
				replyJSON(w, http.StatusOK, out)
			}
		}
	}
	need := func(v, name string) error {
		if v == "" {
			return fmt.Errorf("%s manquant", name)
		}
		return nil
	}
	mux.HandleFunc("GET /patient/{ins}", with(func(r *http.Request, ins dmp.INS, _ body) (any, error) { return s.DMP(r.Context(), ins) }))
	mux.HandleFunc("GET /patient/{ins}/documents", with(func(r *http.Request, ins dmp.INS, _ body) (any, error) {
		return s.Documents(r.Context(), ins)
	}))
	mux.HandleFunc("GET /patient/{ins}/history", with(func(r *http.Request, ins dmp.INS, _ body) (any, error) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		return s.History(r.Context(), ins, limit)
	}))
	mux.HandleFunc("POST /patient/{ins}/block", with(func(r *http.Request, ins dmp.INS, b body) (any, error) {
		if err := need(b.IDNat, "idnat"); err != nil {
			return nil, err
		}
		return map[string]string{"blocked": b.IDNat}, s.Block(r.Context(), ins, b.IDNat)
	}))
	mux.HandleFunc("POST /patient/{ins}/unblock", with(func(r *http.Request, ins dmp.INS, b body) (any, error) {
		if err := need(b.IDNat, "idnat"); err != nil {
			return nil, err
		}
		return map[string]string{"unblocked": b.IDNat}, s.Unblock(r.Context(), ins, b.IDNat)
	}))
	mux.HandleFunc("POST /patient/{ins}/mask", with(func(r *http.Request, ins dmp.INS, b body) (any, error) {
		if err := need(b.UniqueID, "unique_id"); err != nil {
			return nil, err
		}
		return map[string]string{"masked": b.UniqueID}, s.MaskDocument(r.Context(), ins, b.UniqueID)
	}))
	mux.HandleFunc("POST /patient/{ins}/unmask", with(func(r *http.Request, ins dmp.INS, b body) (any, error) {
		if err := need(b.UniqueID, "unique_id"); err != nil {
			return nil, err
		}
		return map[string]string{"unmasked": b.UniqueID}, s.UnmaskDocument(r.Context(), ins, b.UniqueID)
	}))
	mux.HandleFunc("POST /patient/{ins}/close", with(func(r *http.Request, ins dmp.INS, b body) (any, error) {
		return map[string]string{"closed": ins.Value}, s.CloseDMP(r.Context(), ins, b.Reason)
	}))
	return mux
}

func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
