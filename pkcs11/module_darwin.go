package pkcs11

// DefaultModulePath is where the Cryptolib CPS installs its PKCS#11 module
// on macOS.
func DefaultModulePath() string { return "/usr/local/lib/libcps3_pkcs11_osx.dylib" }
