package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/outbox"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
)

// dmpFaults maps the DMP's refusals to API errors. The DMP's code and text
// travel in details, so that a vendor can show both.
var dmpFaults = map[string]struct {
	status int
	code   string
}{
	dmp.CodeAccessDenied:             {403, api.CodeDMPAccessDenied},
	dmp.CodeBlocked:                  {403, api.CodeDMPBlocked},
	dmp.CodeClosed:                   {403, api.CodeDMPClosed},
	dmp.CodeOpposition:               {403, api.CodeDMPOpposition},
	dmp.CodeNotFound:                 {404, api.CodeDMPNotFound},
	dmp.CodeUnknownPatient:           {404, api.CodeDMPNotFound},
	dmp.CodeFound:                    {409, api.CodeDMPExists},
	dmp.CodeDocumentNotFound:         {404, api.CodeDocumentNotFound},
	dmp.CodeMissingDocument:          {404, api.CodeDocumentNotFound},
	dmp.CodeInvalidCertificate:       {502, api.CodeDMPCredentials},
	dmp.CodeInvalidSignature:         {502, api.CodeDMPCredentials},
	dmp.CodeInvalidVIHF:              {502, api.CodeDMPCredentials},
	"INSiAucuneIdentite":             {404, api.CodeINSUnresolved},
	"INSiPlusieursIdentites":         {409, api.CodeINSUnresolved},
	"XDSDuplicateUniqueIdInRegistry": {409, "document_exists"},
}

// apiError turns any error a handler returns into the API's error format.
func (a *Agent) apiError(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		return e
	}
	var pinErr *pkcs11.PINError
	var fault *dmp.Fault
	var transport *dmp.TransportError
	var maxBytes *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &pinErr):
		d := map[string]any{}
		if pinErr.TriesLeft >= 0 {
			d["tries_left"] = pinErr.TriesLeft
		}
		return &api.Error{Status: 401, Code: api.CodePINIncorrect, Message: "wrong PIN; the agent does not retry it", Details: d}
	case errors.Is(err, pkcs11.ErrPINBlocked):
		return &api.Error{Status: 423, Code: api.CodePINBlocked, Message: "the CPS PIN is blocked: unblock it with the PUK (CPS management tools)"}
	case errors.Is(err, pkcs11.ErrPINFormat):
		return &api.Error{Status: 400, Code: api.CodePINFormat, Message: "the PIN has the wrong length or characters (a CPS PIN is 4 digits)"}
	case errors.Is(err, pkcs11.ErrCardRemoved):
		return &api.Error{Status: 409, Code: api.CodeCardRemoved, Message: "the CPS was removed; insert it and log in again"}
	case errors.Is(err, pkcs11.ErrCardBusy):
		return &api.Error{Status: 409, Code: api.CodeCardError, Message: "another program holds the card exclusively; close it and try again"}
	case errors.Is(err, pkcs11.ErrNoToken), errors.Is(err, pkcs11.ErrNoKey):
		return &api.Error{Status: 409, Code: api.CodeCardError, Message: err.Error()}
	case errors.As(err, &maxBytes):
		return &api.Error{Status: 413, Code: api.CodeBodyTooLarge, Message: "the body is larger than the agent accepts",
			Details: map[string]any{"limit": maxBytes.Limit}}
	case errors.Is(err, outbox.ErrTooLarge):
		return &api.Error{Status: 413, Code: api.CodeBodyTooLarge, Message: "the document is larger than the agent accepts",
			Details: map[string]any{"limit": a.cfg.MaxDocumentSize}}
	case errors.As(err, &fault):
		m, ok := dmpFaults[fault.Code]
		if !ok {
			m.status, m.code = 502, api.CodeDMPFault
		}
		return &api.Error{Status: m.status, Code: m.code, Message: "the DMP refused: " + fault.Message,
			Details: map[string]any{"dmp_code": fault.Code, "dmp_message": fault.Message}}
	case errors.Is(err, context.DeadlineExceeded):
		return &api.Error{Status: 504, Code: api.CodeDMPTimeout, Message: "the DMP did not answer in time; nothing was changed on the agent's side, try again"}
	case errors.As(err, &transport):
		return &api.Error{Status: 502, Code: api.CodeDMPUnreachable, Message: "the DMP answered HTTP " + transport.Status + " without a SOAP message",
			Details: map[string]any{"http_status": transport.StatusCode}}
	case errors.As(err, &netErr), isDialError(err):
		return &api.Error{Status: 503, Code: api.CodeDMPUnreachable, Message: "the DMP cannot be reached: " + err.Error() + " (check the network, the proxy settings and dmp_endpoint)"}
	}
	a.log.Error("internal error", "err", err)
	return &api.Error{Status: 500, Code: api.CodeInternal, Message: err.Error()}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || strings.Contains(err.Error(), "connection refused")
}
