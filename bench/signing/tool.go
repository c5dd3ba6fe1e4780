package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dmpagent/dmpagent/testcards"
)

// toolRun runs pkcs11-tool, signing or not.
//
// pkcs11-tool signs once per process, and nearly all of a run is not the
// signature: process start, loading the module, OpenSC's reader and card
// detection (about 40 APDUs), login, C_Finalize. pkcs11-tool's time per
// signature is the difference between the median of --sign runs and the
// median of baseline runs that do all of that but sign, timed the same way
// and interleaved with them. The baseline is
//
//	--slot ID --login --pin PIN --list-token-slots
//
// or the same with --list-slots: whichever of the two makes the same calls
// as --sign to what is outside the process (C_GetSlotList, C_GetSlotInfo,
// C_GetTokenInfo, C_OpenSession, C_Login, C_CloseSession, C_Finalize, each
// of which may talk to pcscd or the card). newToolRun checks that in
// OpenSC's debug log; the APDU counts printed with the results check the
// card's side: the same sequence less the signature's 4 (OpenSC's PIV
// applet check, GENERAL AUTHENTICATE in two chained parts, GET RESPONSE).
//
// Both checks caught something. --sign calls C_GetTokenInfo before its
// session (2 APDUs: PIV applet check, PIN status), and listing the slots
// is the one other action that does: a --list-objects baseline would charge
// those to the signature. And each C_GetSlotInfo makes OpenSC 0.23 detect
// the card again, 2 to 3 ms here, as much as a signature. --sign finds its
// slot by description, with one C_GetSlotInfo per slot up to its own;
// listing costs one per slot listed: the token slots (ours alone) when our
// reader comes first in OpenSC's list, every slot when it comes last.
//
// What remains is what signing is in any PKCS#11 program, and what our
// Signer does at each Sign too: finding the key (C_FindObjects), reading
// CKA_ALWAYS_AUTHENTICATE, C_SignInit, C_Sign; plus, for pkcs11-tool,
// writing the 256-byte signature to a file.
type toolRun struct {
	tool       string
	sign, base []string
	out        string
	pub        *rsa.PublicKey
}

func newToolRun(tool, module, reader, dir string, pub *rsa.PublicKey, reset func() error) (*toolRun, error) {
	// What our module Signer hands C_Sign for PKCS#1 v1.5 (CKM_RSA_PKCS):
	// the SHA-256 DigestInfo.
	input := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest[:]...)
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(in, input, 0o600); err != nil {
		return nil, err
	}
	t := &toolRun{tool: tool, out: out, pub: pub}
	login := []string{"--login", "--pin", testcards.PIN}
	t.sign = slices.Concat([]string{"--module", module, "--slot-description", reader}, login,
		[]string{"--sign", "--mechanism", "RSA-PKCS", "--id", "01", "-i", in, "-o", out})
	id, err := t.slotID(module, reader)
	if err != nil {
		return nil, err
	}
	want, err := t.calls(reset, t.sign)
	if err != nil {
		return nil, err
	}
	var tried []map[string]int
	for _, list := range []string{"--list-token-slots", "--list-slots"} {
		t.base = slices.Concat([]string{"--module", module, "--slot", id}, login, []string{list})
		got, err := t.calls(reset, t.base)
		if err != nil {
			return nil, err
		}
		if maps.Equal(got, want) {
			return t, nil
		}
		tried = append(tried, got)
	}
	return nil, fmt.Errorf("no baseline makes the calls --sign makes (%v): %v", want, tried)
}

// slotID is the PKCS#11 slot of reader, as pkcs11-tool lists it.
func (t *toolRun) slotID(module, reader string) (string, error) {
	out, err := exec.Command(t.tool, "--module", module, "--list-slots").Output()
	if err != nil {
		return "", fmt.Errorf("pkcs11-tool --list-slots: %w", err)
	}
	for _, m := range regexp.MustCompile(`(?m)^Slot \d+ \((0x[0-9a-f]+)\): (.*)$`).FindAllStringSubmatch(string(out), -1) {
		if strings.TrimSpace(m[2]) == reader {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("pkcs11-tool lists no slot for %q", reader)
}

// outsideCalls are the PKCS#11 calls that may reach pcscd or the card,
// as OpenSC logs them on entry.
var outsideCalls = regexp.MustCompile(`:(C_GetSlotList|C_GetSlotInfo|C_GetTokenInfo|C_OpenSession|C_Login|C_CloseSession|C_Finalize): C_\w+\([^)]*\)$`)

// calls counts a run's outsideCalls in OpenSC's debug log.
func (t *toolRun) calls(reset func() error, args []string) (map[string]int, error) {
	if err := reset(); err != nil {
		return nil, err
	}
	var log bytes.Buffer
	cmd := exec.Command(t.tool, args...)
	cmd.Env = append(os.Environ(), "OPENSC_DEBUG=3")
	cmd.Stderr = &log
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(log.String()), "\n")
		return nil, fmt.Errorf("pkcs11-tool %v: %w: %s", args, err, lines[max(0, len(lines)-3):])
	}
	n := map[string]int{}
	for l := range strings.Lines(log.String()) {
		if m := outsideCalls.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
			n[m[1]]++
		}
	}
	if len(n) == 0 {
		return nil, fmt.Errorf("pkcs11-tool %v: no OpenSC debug log with OPENSC_DEBUG=3", args)
	}
	return n, nil
}

// run times one pkcs11-tool process, from start to exit, and checks the
// signature it wrote.
func (t *toolRun) run(ctx context.Context, reset func() error, card *countingCard, baseline bool) (time.Duration, int64, error) {
	args := t.sign
	if baseline {
		args = t.base
	}
	_ = os.Remove(t.out)
	if err := reset(); err != nil {
		return 0, 0, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, t.tool, args...)
	cmd.Stderr = &stderr // stdout: /dev/null
	before := card.apdus.Load()
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	apdus := card.apdus.Load() - before
	if err != nil {
		return 0, 0, fmt.Errorf("pkcs11-tool %v: %w: %s", args, err, stderr.Bytes())
	}
	if !baseline {
		sig, err := os.ReadFile(t.out)
		if err != nil {
			return 0, 0, err
		}
		if err := verify(t.pub, sig); err != nil {
			return 0, 0, fmt.Errorf("pkcs11-tool's signature: %w", err)
		}
	}
	return d, apdus, nil
}
