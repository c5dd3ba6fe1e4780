package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/outbox"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/pkcs11"
)

func TestAPIError(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler), cfg: DefaultConfig()}
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("login: %w", &pkcs11.PINError{TriesLeft: 2}), 401, api.CodePINIncorrect},
		{fmt.Errorf("login: %w", pkcs11.ErrPINBlocked), 423, api.CodePINBlocked},
		{pkcs11.ErrPINFormat, 400, api.CodePINFormat},
		{fmt.Errorf("sign: %w", pkcs11.ErrCardRemoved), 409, api.CodeCardRemoved},
		{&dmp.Fault{Code: dmp.CodeAccessDenied, Message: "no"}, 403, api.CodeDMPAccessDenied},
		{&dmp.Fault{Code: dmp.CodeBlocked}, 403, api.CodeDMPBlocked},
		{&dmp.Fault{Code: dmp.CodeClosed}, 403, api.CodeDMPClosed},
		{&dmp.Fault{Code: dmp.CodeFound}, 409, api.CodeDMPExists},
		{&dmp.Fault{Code: dmp.CodeUnknownPatient}, 404, api.CodeDMPNotFound},
		{&dmp.Fault{Code: "SomethingNew"}, 502, api.CodeDMPFault},
		{&dmp.TransportError{StatusCode: 503, Status: "503 Service Unavailable"}, 502, api.CodeDMPUnreachable},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), 504, api.CodeDMPTimeout},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 503, api.CodeDMPUnreachable},
		{outbox.ErrTooLarge, 413, api.CodeBodyTooLarge},
		{errors.New("surprise"), 500, api.CodeInternal},
	}
	for _, c := range cases {
		e := a.apiError(c.err)
		if e.Status != c.status || e.Code != c.code {
			t.Errorf("%v: got %d %s, want %d %s", c.err, e.Status, e.Code, c.status, c.code)
		}
	}
	if e := a.apiError(&pkcs11.PINError{TriesLeft: 2}); e.Details["tries_left"] != 2 {
		t.Errorf("tries_left: %v", e.Details)
	}
	if e := a.apiError(&pkcs11.PINError{TriesLeft: -1}); e.Details["tries_left"] != nil {
		t.Errorf("unknown tries reported as %v", e.Details["tries_left"])
	}
	if e := a.apiError(&dmp.Fault{Code: dmp.CodeAccessDenied, Message: "refus"}); e.Details["dmp_code"] != dmp.CodeAccessDenied || e.Details["dmp_message"] != "refus" {
		t.Errorf("fault details: %v", e.Details)
	}
}

func TestDeliveryError(t *testing.T) {
	var perm *outbox.PermanentError
	for _, c := range []struct {
		err                 error
		permanent, notReady bool
	}{
		{&dmp.Fault{Code: dmp.CodeAccessDenied}, true, false},
		{&dmp.Fault{Code: dmp.CodeInternal}, false, false},
		{&dmp.TransportError{StatusCode: 500}, false, false},
		{&dmp.TransportError{StatusCode: 429}, false, false},
		{&dmp.TransportError{StatusCode: 404}, true, false},
		{fmt.Errorf("x: %w", pkcs11.ErrCardRemoved), false, true},
		{context.DeadlineExceeded, false, false},
		{&api.Error{Status: 404, Code: api.CodeDocumentNotFound}, true, false},
		{&api.Error{Status: 503, Code: api.CodeDMPUnreachable}, false, false},
	} {
		got := deliveryError(c.err)
		if errors.As(got, &perm) != c.permanent || errors.Is(got, outbox.ErrNotReady) != c.notReady {
			t.Errorf("%v → %v (permanent %v, not ready %v)", c.err, got, c.permanent, c.notReady)
		}
	}
}
