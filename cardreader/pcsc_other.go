//go:build !linux && !windows && !darwin

package cardreader

// The BSDs run pcsc-lite, which has the PnP pseudo-reader.
const hasPnP = true
