package dmptest

import (
	"context"

	"github.com/dmpagent/dmpagent/dmp"
)

// CreateDMPForTest opens a DMP without TD1.1, for tests of other
// transactions.
func (s *Server) CreateDMPForTest(ctx context.Context, ins dmp.INS, creator string) error {
	return s.store.CreateDMP(ctx, DMPRecord{INS: ins.CX(), CreatedBy: creator, Patient: Patient{Family: "PATB-QUATRE", Given: "Laurence", Sex: "F", Birth: "19070525"}})
}
