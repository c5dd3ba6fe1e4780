//go:build !linux && !windows && !darwin

package pkcs11

// DefaultModulePath is empty where the Cryptolib CPS does not exist: the
// module must be configured (OpenSC, SoftHSM).
func DefaultModulePath() string { return "" }
