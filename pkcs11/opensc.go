package pkcs11

import "os"

// openSCPaths are where OpenSC's PKCS#11 module is installed: by Linux
// distributions, the macOS installer and Homebrew, and the Windows MSI.
var openSCPaths = []string{
	"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",  // Debian, Ubuntu
	"/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so", // Debian arm64
	"/usr/lib/opensc-pkcs11.so",                   // Arch, older Debian
	"/usr/lib64/opensc-pkcs11.so",                 // Fedora
	"/usr/lib64/pkcs11/opensc-pkcs11.so",
	"/Library/OpenSC/lib/opensc-pkcs11.so", // macOS installer
	"/opt/homebrew/lib/opensc-pkcs11.so",
	`C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll`,
}

// OpenSCModulePath returns the installed OpenSC module, the one that drives
// PIV test cards (the simulation's emulated CPS), or "" when none is.
func OpenSCModulePath() string {
	for _, p := range openSCPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
