package pkcs11

// DefaultModulePath is where the Cryptolib CPS installs its PKCS#11 module
// on Linux (the ANS packages use /usr/lib64 on every distribution).
func DefaultModulePath() string { return "/usr/lib64/libcps3_pkcs11_lux.so" }
