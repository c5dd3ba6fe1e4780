package dmptest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultMatrixLoads(t *testing.T) {
	m, err := LoadMatrix("")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Columns()); got != 19 {
		t.Errorf("columns = %d, want 19", got)
	}
	types := m.Types()
	if len(types) != 108 {
		t.Fatalf("types = %d, want 108", len(types))
	}
	for _, ty := range types {
		if ty.TypeCode == WildcardType {
			continue
		}
		if !m.MayRead("10", ty.TypeCode) {
			t.Errorf("physician may not read %s", ty.TypeCode)
		}
	}
	if !m.MayReadDocument("10", "SM26", "1.2.3.4-dicom-procedure", "31") {
		t.Error("physician may not read a DICOM procedure code of class 31")
	}
}

func TestMatrixDecisions(t *testing.T) {
	m := DefaultMatrix()
	tests := []struct {
		profession, qualifier, typeCode, classCode string
		want                                       bool
	}{
		{"21", "", "68599-0", "11", false}, // psychiatric synthesis
		{"21", "", "EXPPAT_3", "90", false},
		{"21", "", "57833-6", "42", true},
		{"21", "", "11488-4", "10", true},
		{"21", "", "REMB", "60", true},
		{"21", "", "PRESC-AAT", "42", false},
		{"60", "", "EXPPAT_3", "90", true}, // nurses read advance directives
		{"69", "", "EXPPAT_3", "90", true},
		{"60", "", "68599-0", "11", false},
		{"50", "", "89233-1", "10", true}, // midwife, CR de grossesse
		{"60", "", "89233-1", "10", false},
		{"40", "", "28617-9", "10", true}, // dentist, bilan bucco-dentaire
		{"28", "", "REMB", "60", false},   // optician
		{"99", "GENR11", "68599-0", "11", true},
		{"99", "GENR08", "68599-0", "11", false},
		{"99", "", "11488-4", "10", false}, // 99 without an activity kind: no column
		{"93", "", "11488-4", "10", false}, // psychologue: no column
		{"10", "SM26", "11526-1", "10", true},
		{"21", "", "11526-1", "10", false}, // not in the matrix: physicians only
		{"98", "", "1.2.3-procedure", "31", true},
		{"28", "", "1.2.3-procedure", "31", false},
		{"28", "", "PRESC-ORTHOPTIE", "42", true}, // normalised from "PRESC- ORTHOPTIE"
	}
	for _, tt := range tests {
		if got := m.MayReadDocument(tt.profession, tt.qualifier, tt.typeCode, tt.classCode); got != tt.want {
			t.Errorf("MayReadDocument(%s, %s, %s, %s) = %v, want %v", tt.profession, tt.qualifier, tt.typeCode, tt.classCode, got, tt.want)
		}
	}
	if c, ok := m.Column("21", ""); !ok || c != "pharmacien_officine" {
		t.Errorf("Column(21) = %q, %v", c, ok)
	}
}

// editable returns the embedded file as a generic JSON tree to edit.
func editable(t *testing.T) map[string]any {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(defaultMatrixJSON, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEditedMatrixChangesDecision(t *testing.T) {
	f := editable(t)
	for _, row := range f["types"].([]any) {
		r := row.(map[string]any)
		if r["typeCode"] == "68599-0" {
			r["readers"] = append(r["readers"].([]any), "pharmacien_officine")
		}
	}
	m, err := LoadMatrix(writeJSON(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if !m.MayRead("21", "68599-0") {
		t.Error("edited matrix: pharmacist still may not read 68599-0")
	}
	if DefaultMatrix().MayRead("21", "68599-0") {
		t.Error("default matrix changed")
	}
	rules := Rules{Matrix: m}
	req := authorizedRequest(ActionRead, pharmacist, doc("68599-0", "11", gp.IDNat))
	if d := rules.Decide(req); !d.Allowed {
		t.Errorf("Decide with edited matrix = %+v", d)
	}
}

func TestMatrixErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(f map[string]any)
		want string
	}{
		{"unknown column", func(f map[string]any) {
			row := f["types"].([]any)[0].(map[string]any)
			row["readers"] = []any{"medecn"}
		}, `unknown column "medecn"`},
		{"duplicate type", func(f map[string]any) {
			f["types"] = append(f["types"].([]any), f["types"].([]any)[3])
		}, "duplicate typeCode"},
		{"duplicate column", func(f map[string]any) {
			f["columns"] = append(f["columns"].([]any), f["columns"].([]any)[0])
		}, `duplicate id "medecin"`},
		{"profession to unknown column", func(f map[string]any) {
			f["professions"].(map[string]any)["93"] = "psychologue"
		}, `professions["93"]: unknown column "psychologue"`},
		{"misspelt field", func(f map[string]any) {
			f["unknown_type_reader"] = []any{"medecin"}
		}, "unknown field"},
		{"reader twice", func(f map[string]any) {
			row := f["types"].([]any)[0].(map[string]any)
			row["readers"] = []any{"medecin", "medecin"}
		}, "listed twice"},
		{"no class", func(f map[string]any) {
			delete(f["types"].([]any)[0].(map[string]any), "classCode")
		}, "no classCode"},
		{"spaced type code", func(f map[string]any) {
			f["types"].([]any)[0].(map[string]any)["typeCode"] = " REMB"
		}, "spaces"},
		{"no types", func(f map[string]any) { f["types"] = []any{} }, "no types"},
		{"bad column id", func(f map[string]any) {
			f["columns"].([]any)[0].(map[string]any)["id"] = "Médecin"
		}, "is not [a-z0-9_]+"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := editable(t)
			tt.edit(f)
			_, err := LoadMatrix(writeJSON(t, f))
			if !errors.Is(err, ErrInvalidMatrix) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalidMatrix containing %q", err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "{", "[]", `{"columns": 3}`, string(defaultMatrixJSON) + "{}"} {
		if _, err := ParseMatrix([]byte(bad)); !errors.Is(err, ErrInvalidMatrix) {
			t.Errorf("ParseMatrix(%.20q) err = %v", bad, err)
		}
	}
	if _, err := LoadMatrix(filepath.Join(t.TempDir(), "missing.json")); err == nil || errors.Is(err, ErrInvalidMatrix) {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzLoadMatrix(f *testing.F) {
	f.Add(defaultMatrixJSON)
	f.Add([]byte(`{"columns":[{"id":"a"}],"professions":{"10":"a"},"unknown_type_readers":["a"],"types":[{"typeCode":"*","classCode":"31","readers":["a"]}]}`))
	f.Add([]byte(`{"columns":[{"id":"a"}],"types":[{"typeCode":"X","classCode":"1","readers":["b"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMatrix(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMatrix) {
				t.Fatalf("error does not wrap ErrInvalidMatrix: %v", err)
			}
			return
		}
		// A valid matrix answers every question, and only with its columns.
		known := map[string]bool{}
		for _, c := range m.Columns() {
			known[c.ID] = true
		}
		for _, p := range m.Professions() {
			code, qual, _ := strings.Cut(p, "/")
			col, ok := m.Column(code, qual)
			if !ok || !known[col] {
				t.Fatalf("profession %q maps to %q", p, col)
			}
		}
		for _, ty := range m.Types() {
			m.MayReadDocument("10", "", ty.TypeCode, ty.ClassCode)
			if ty.TypeCode == "" || strings.TrimSpace(ty.TypeCode) != ty.TypeCode {
				t.Fatalf("accepted type code %q", ty.TypeCode)
			}
		}
	})
}
