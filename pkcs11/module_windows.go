package pkcs11

import (
	"os"
	"path/filepath"
)

// DefaultModulePath is the Cryptolib CPS module, which its installer puts in
// the 64-bit system directory. The path is absolute on purpose: the agent
// runs as a service, and loading a DLL by bare name would let the DLL search
// order (current directory, PATH) choose which code gets the PIN.
func DefaultModulePath() string {
	root := os.Getenv("SystemRoot")
	if root == "" {
		root = `C:\Windows`
	}
	return filepath.Join(root, "System32", "cps3_pkcs11_w64.dll")
}
