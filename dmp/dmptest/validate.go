package dmptest

import (
	"errors"
	"regexp"

	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/dmp/internal/schemas"
)

// xopInclude matches an xop:Include element, empty or not.
var xopInclude = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?Include\b[^>]*?(/>|>\s*</([A-Za-z_][\w.-]*:)?Include>)`)

// validate checks an incoming message against the schemas of its kind. The
// schemas know documents only as inline base64, so an MTOM message is
// checked with each xop:Include replaced by a stand-in base64 value.
func (s *Server) validate(c *call, kind string) error {
	msg := c.envelope
	if c.mtom != nil {
		msg = xopInclude.ReplaceAll(msg, []byte("AA=="))
	}
	err := schemas.ValidateKind(c.ctx, kind, msg)
	var inv *schemas.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return &dmp.Fault{Code: dmp.CodeInvalidRequest, Message: "message non conforme au schéma " + inv.Schema + " : " + inv.Output}
	default:
		return err
	}
}
