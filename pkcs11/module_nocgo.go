//go:build !cgo

package pkcs11

// Without cgo there is no miekg/pkcs11 (it compiles to constants only):
// this stub keeps the package's API, and says why at run time. Windows
// builds are cgo-free so far (INSTALLER-NOTES): such a build has the PIV
// backend only.

import (
	"context"
	"errors"
	"fmt"
)

// Module is a PKCS#11 module; a build without cgo cannot load one.
type Module struct{ path string }

var errModuleNoCgo = errors.New("pkcs11: this build has no PKCS#11 support (built without cgo)")

// LoadModule always fails in a build without cgo.
func LoadModule(path string) (*Module, error) {
	return nil, fmt.Errorf("%w: cannot load %s", errModuleNoCgo, path)
}

// Path is the module's file.
func (m *Module) Path() string { return m.path }

// Slots always fails in a build without cgo.
func (m *Module) Slots(ctx context.Context) ([]Slot, error) { return nil, errModuleNoCgo }

// Open always fails in a build without cgo.
func (m *Module) Open(ctx context.Context, reader string) (Token, error) { return nil, errModuleNoCgo }

// OpenLabel always fails in a build without cgo.
func (m *Module) OpenLabel(ctx context.Context, label string) (Token, error) {
	return nil, errModuleNoCgo
}
