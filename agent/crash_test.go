package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmpagent/dmpagent/agent/api"
	"github.com/dmpagent/dmpagent/agent/client"
	"github.com/dmpagent/dmpagent/dmp"
	"github.com/dmpagent/dmpagent/testcards"
)

// TestCrashMidFeed feeds 200 documents to a real `dmpagent run` process,
// kills it with SIGKILL while the outbox is delivering, restarts it on the
// same data directory and logs in again: the DMP must end up with exactly
// 200 documents, none twice.
func TestCrashMidFeed(t *testing.T) {
	if testing.Short() {
		t.Skip("long: -short")
	}
	const total = 200
	s := newStack(t)
	ctx := context.Background()
	// The in-process agent only set the stack up; the crash is a real
	// process's.
	s.stopAgent()
	bin := filepath.Join(t.TempDir(), "dmpagent")
	build := exec.Command("go", "build", "-o", bin, "github.com/dmpagent/dmpagent/cmd/dmpagent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "agent.conf")
	var b strings.Builder
	fmt.Fprintf(&b, "listen = %s\ndata_dir = %s\ndmp_endpoint = %s\ninsi_endpoint = %s\nins_oid = %s\nroots = %s\nintermediates = %s\npkcs11_module = %s\ntest_mode = true\nsoftware_id = dmpagent-test\nhomologation = SIMULATION\n",
		s.cfg.Listen, s.cfg.DataDir, s.cfg.DMPEndpoint, s.cfg.INSiEndpoint, s.cfg.INSOID, s.cfg.Roots, s.cfg.Intermediates, s.cfg.PKCS11Module)
	for id, sit := range s.cfg.Professionals {
		fmt.Fprintf(&b, "[professional %s]\nprofession = %s\nspecialty = %s\nstructure_id = %s\nstructure_name = %q\nsector = %s\n",
			id, sit.Profession, sit.Specialty, sit.StructureID, sit.StructureName, sit.Sector)
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", conf)
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		app := client.New(s.cfg.Listen, s.token)
		s.eventually("the agent answers", func() bool { _, err := app.Health(ctx); return err == nil })
		s.app = app
		return cmd
	}
	agentProc := run()
	defer func() { agentProc.Process.Kill(); agentProc.Wait() }()

	s.insert(0, "cps", "gp")
	s.insert(1, "vitale", "single")
	s.eventually("the agent sees both cards", func() bool {
		rs, err := s.app.Readers(ctx)
		return err == nil && len(rs) >= 2 && rs[0].Card != nil && rs[1].Card != nil
	})
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.CreateDMP(ctx, insSingle, fullConsent); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, total)
	for i := range total {
		sub, err := s.app.Feed(ctx, insSingle, api.DocumentMetadata{Title: fmt.Sprintf("Compte rendu %03d", i), TypeCode: "11488-4", Format: "pdf"},
			bytes.NewReader(pdf(fmt.Sprint(i))))
		if err != nil {
			t.Fatalf("feed %d: %v", i, err)
		}
		ids = append(ids, sub.ID)
	}
	ins := dmp.INS{Value: insSingle, OID: dmp.OIDINSNIRTest}
	count := func() int {
		docs, err := s.dmp.Documents(ctx, ins)
		if err != nil {
			return -1
		}
		return len(docs)
	}
	s.eventually("some documents delivered", func() bool { return count() >= 20 })
	if err := agentProc.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	agentProc.Wait()
	atKill := count()
	t.Logf("killed the agent with %d of %d documents in the DMP", atKill, total)
	if atKill >= total {
		t.Fatal("the outbox finished before the kill: nothing was tested")
	}

	agentProc = run()
	st, err := s.app.Status(ctx)
	if err != nil || st.Session != nil || st.OutboxDepth == 0 {
		t.Fatalf("after restart: %+v, %v (the session must be gone, the outbox still full)", st, err)
	}
	if _, err := s.app.Login(ctx, testcards.PIN); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for _, id := range ids {
		for {
			sub, err := s.app.Submission(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sub.Status == api.SubmissionFailed {
				t.Fatalf("submission %s failed: %s", id, sub.Reason)
			}
			if sub.Status == api.SubmissionSubmitted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("submission %s still %s", id, sub.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	docs, err := s.dmp.Documents(ctx, ins)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	pdfs := 0
	for _, d := range docs {
		seen[d.Title]++
		if strings.HasPrefix(d.Title, "Compte rendu ") {
			pdfs++
		}
	}
	for title, n := range seen {
		if n > 1 {
			t.Errorf("%q is in the DMP %d times", title, n)
		}
	}
	if pdfs != total {
		t.Fatalf("the DMP holds %d documents, want %d", pdfs, total)
	}
	if strings.Contains(logs.String(), testcards.PIN+"\"") {
		t.Error("the agent's log holds the PIN")
	}
}
