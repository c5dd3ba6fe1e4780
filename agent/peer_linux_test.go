package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// assertOtherUserRefused connects to the admin socket as user nobody and
// expects the agent to hang up without answering. The socket and its
// directories are opened up for the duration, so that what is tested is
// the peer-credential check itself, not the file permissions in front of
// it.
func assertOtherUserRefused(t *testing.T, socket string) {
	t.Helper()
	// The system's python: a per-user install (pyenv) is not
	// executable by nobody.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("/usr/bin/python3 missing: cannot connect as another user")
	}
	var restore []func()
	defer func() {
		for _, r := range restore {
			r()
		}
	}()
	for p := socket; p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		mode := fi.Mode().Perm()
		want := mode | 0o011
		if p == socket {
			want = 0o666
		}
		if mode != want {
			os.Chmod(p, want)
			path := p
			restore = append(restore, func() { os.Chmod(path, mode) })
		}
	}
	script := `import socket,sys
s=socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
data=b""
try:
    s.sendall(b"GET /v1/tokens HTTP/1.0\r\nHost: control\r\n\r\n")
    while True:
        b=s.recv(4096)
        if not b: break
        data+=b
except Exception as e:
    print("error", e)
print("answer:", data[:40])`
	cmd := exec.Command(python, "-c", script, socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "answer:") {
		t.Fatalf("could not run the probe as nobody: %v %s", err, out)
	}
	if strings.Contains(string(out), "HTTP") {
		t.Fatalf("another user got an answer from the admin socket: %s", out)
	}
	if !strings.Contains(string(out), "answer: b''") && !strings.Contains(string(out), "Broken pipe") && !strings.Contains(string(out), "reset") {
		t.Fatalf("unexpected probe output: %s", out)
	}
}
