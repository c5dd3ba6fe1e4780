package dmptest

// The habilitation matrix: which profession may read which document type
// (DESIGN §6 rule 7). The default is habilitations.json, embedded below and
// rebuilt by internal/genmatrix from the project's notes
// (dmp-notes/habilitation-matrix-2024.json, see MATRIX-FACTS.md). A tester
// may pass an edited copy to LoadMatrix.
//
// The file format (JSON has no comments, so it is described here and,
// shorter, in the file's own "note" field):
//
//	{
//	  "version": "cnam-2024-09-25",       // free text, shown in logs
//	  "source":  "…",                      // free text: where the cells come from
//	  "note":    ["…", …],                 // free text, ignored
//	  "columns": [                         // the profession columns, in any order
//	    {"id": "medecin", "label": "…", "source_codes": "10"}, …
//	  ],                                   // id: [a-z0-9_]+, unique; label and
//	                                       // source_codes are for people only
//	  "professions": {                     // who falls in which column
//	    "10": "medecin",                   // TRE_G15 profession code → column id
//	    "99/GENR08": "coordination_orientation", …
//	  },                                   // "CODE/QUALIFIER" is tried first with
//	                                       // the actor's specialty (or TRE_R22
//	                                       // activity kind), then "CODE"
//	  "unknown_type_readers": ["medecin"], // columns that read a typeCode
//	                                       // not listed in "types"
//	  "types": [                           // one row per document type
//	    {"typeCode": "11488-4", "classCode": "10", "label": "…",
//	     "readers": ["medecin", "pharmacien_officine", …]},
//	    {"typeCode": "*", "classCode": "31", …}  // any other typeCode of class 31
//	  ]
//	}
//
// Unknown fields are refused, so that a misspelt key ("reader") is an error
// rather than a silently empty list.
//
// Decisions:
//   - A profession with no entry in "professions" (93 psychologue, 35
//     aide-soignant, 86 technicien de laboratoire…: no column in the Cnam
//     matrix) reads no document type; the rules still let anyone read the
//     documents they wrote.
//   - A typeCode with no row reads as its class's "*" row when there is one
//     (the Cnam matrix has one for class 31, DICOM procedure codes), else as
//     "unknown_type_readers" (default: physicians only, since physicians read
//     every listed type).
//   - Code 21 (pharmacien) maps to the officine column; the biologist column
//     has identical cells and stays in the file, reachable by adding a
//     "21/<specialty>" key.
//   - The matrix governs reading only; feeding is not checked against it.

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

//go:generate go run ./internal/genmatrix -in ../../../shared/dmp-notes/habilitation-matrix-2024.json -out habilitations.json

//go:embed habilitations.json
var defaultMatrixJSON []byte

// ErrInvalidMatrix is wrapped by every LoadMatrix and ParseMatrix error
// about the file's content.
var ErrInvalidMatrix = errors.New("dmptest: invalid habilitation matrix")

// WildcardType is the typeCode of a row that stands for every unlisted
// typeCode of its class.
const WildcardType = "*"

// MatrixColumn is one profession column of the matrix.
type MatrixColumn struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	SourceCodes string `json:"source_codes,omitempty"`
}

// MatrixType is one document type row: who may read documents of that type.
type MatrixType struct {
	TypeCode  string   `json:"typeCode"`
	ClassCode string   `json:"classCode"`
	Label     string   `json:"label"`
	Readers   []string `json:"readers"`
}

// matrixFile is the JSON layout described at the top of this file.
type matrixFile struct {
	Version            string            `json:"version"`
	Source             string            `json:"source"`
	Note               []string          `json:"note"`
	Columns            []MatrixColumn    `json:"columns"`
	Professions        map[string]string `json:"professions"`
	UnknownTypeReaders []string          `json:"unknown_type_readers"`
	Types              []MatrixType      `json:"types"`
}

// Matrix answers "may this profession read this document type". It is
// immutable once loaded and safe for concurrent use.
type Matrix struct {
	version     string
	columns     []MatrixColumn
	types       []MatrixType
	professions map[string]string
	byType      map[string]map[string]bool // typeCode → readers
	byClass     map[string]map[string]bool // classCode → readers of its "*" row
	unknown     map[string]bool
}

var defaultMatrix = sync.OnceValues(func() (*Matrix, error) {
	return ParseMatrix(defaultMatrixJSON)
})

// DefaultMatrix is the embedded Cnam matrix. The embedded file is checked by
// the package tests, so an error here is a build defect.
func DefaultMatrix() *Matrix {
	m, err := defaultMatrix()
	if err != nil {
		panic(err)
	}
	return m
}

// LoadMatrix reads a matrix file; an empty path gives the embedded default.
func LoadMatrix(path string) (*Matrix, error) {
	if path == "" {
		return defaultMatrix()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dmptest: habilitation matrix: %w", err)
	}
	m, err := ParseMatrix(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

var columnID = regexp.MustCompile(`^[a-z0-9_]+$`)

// ParseMatrix reads and validates a matrix from its JSON bytes.
func ParseMatrix(b []byte) (*Matrix, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f matrixFile
	if err := dec.Decode(&f); err != nil {
		return nil, invalid("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("data after the JSON object")
	}
	m := &Matrix{
		version:     f.Version,
		professions: map[string]string{},
		byType:      map[string]map[string]bool{},
		byClass:     map[string]map[string]bool{},
	}
	if err := m.setColumns(f.Columns); err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range m.columns {
		known[c.ID] = true
	}
	for key, col := range f.Professions {
		if strings.TrimSpace(key) == "" || strings.Count(key, "/") > 1 {
			return nil, invalid("professions: bad key %q (want CODE or CODE/QUALIFIER)", key)
		}
		if !known[col] {
			return nil, invalid("professions[%q]: unknown column %q", key, col)
		}
		m.professions[key] = col
	}
	var err error
	if m.unknown, err = readerSet(f.UnknownTypeReaders, known, "unknown_type_readers"); err != nil {
		return nil, err
	}
	if err := m.setTypes(f.Types, known); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Matrix) setColumns(cols []MatrixColumn) error {
	if len(cols) == 0 {
		return invalid("no columns")
	}
	seen := map[string]bool{}
	for k, c := range cols {
		if !columnID.MatchString(c.ID) {
			return invalid("columns[%d]: id %q is not [a-z0-9_]+", k, c.ID)
		}
		if seen[c.ID] {
			return invalid("columns[%d]: duplicate id %q", k, c.ID)
		}
		seen[c.ID] = true
	}
	m.columns = slices.Clone(cols)
	return nil
}

func (m *Matrix) setTypes(types []MatrixType, known map[string]bool) error {
	if len(types) == 0 {
		return invalid("no types")
	}
	for k, t := range types {
		where := fmt.Sprintf("types[%d] (%s)", k, t.TypeCode)
		if strings.TrimSpace(t.TypeCode) != t.TypeCode || t.TypeCode == "" {
			return invalid("types[%d]: typeCode %q is empty or has spaces around it", k, t.TypeCode)
		}
		if strings.TrimSpace(t.ClassCode) == "" {
			return invalid("%s: no classCode", where)
		}
		readers, err := readerSet(t.Readers, known, where+": readers")
		if err != nil {
			return err
		}
		if t.TypeCode == WildcardType {
			if m.byClass[t.ClassCode] != nil {
				return invalid("%s: duplicate %q row for class %s", where, WildcardType, t.ClassCode)
			}
			m.byClass[t.ClassCode] = readers
			continue
		}
		if m.byType[t.TypeCode] != nil {
			return invalid("%s: duplicate typeCode", where)
		}
		m.byType[t.TypeCode] = readers
	}
	m.types = make([]MatrixType, len(types))
	for k, t := range types {
		t.Readers = slices.Clone(t.Readers)
		m.types[k] = t
	}
	return nil
}

// readerSet checks a list of column ids. An empty list is allowed: a type
// nobody but its author may read is a legitimate edit.
func readerSet(ids []string, known map[string]bool, where string) (map[string]bool, error) {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !known[id] {
			return nil, invalid("%s: unknown column %q", where, id)
		}
		if set[id] {
			return nil, invalid("%s: column %q listed twice", where, id)
		}
		set[id] = true
	}
	return set, nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMatrix, fmt.Sprintf(format, a...))
}

// Version is the file's free-text version.
func (m *Matrix) Version() string { return m.version }

// Columns lists the profession columns in file order.
func (m *Matrix) Columns() []MatrixColumn { return slices.Clone(m.columns) }

// Types lists the document type rows in file order, "*" rows included.
func (m *Matrix) Types() []MatrixType {
	out := make([]MatrixType, len(m.types))
	for k, t := range m.types {
		t.Readers = slices.Clone(t.Readers)
		out[k] = t
	}
	return out
}

// Professions lists the profession keys the file maps, sorted.
func (m *Matrix) Professions() []string {
	keys := make([]string, 0, len(m.professions))
	for k := range m.professions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Column finds the column of a profession (TRE_G15 code). The qualifier
// (specialty or activity kind) selects a "CODE/QUALIFIER" entry when the
// file has one.
func (m *Matrix) Column(profession, qualifier string) (string, bool) {
	if qualifier != "" {
		if c, ok := m.professions[profession+"/"+qualifier]; ok {
			return c, true
		}
	}
	c, ok := m.professions[profession]
	return c, ok
}

// MayRead reports whether a profession (TRE_G15 code, no qualifier) may
// read documents of typeCode.
func (m *Matrix) MayRead(profession, typeCode string) bool {
	return m.MayReadDocument(profession, "", typeCode, "")
}

// MayReadDocument is MayRead with the actor's qualifier and the document's
// classCode, which selects the class's "*" row for an unlisted typeCode.
func (m *Matrix) MayReadDocument(profession, qualifier, typeCode, classCode string) bool {
	col, ok := m.Column(profession, qualifier)
	if !ok {
		return false
	}
	if readers, ok := m.byType[typeCode]; ok {
		return readers[col]
	}
	if readers, ok := m.byClass[classCode]; ok && classCode != "" {
		return readers[col]
	}
	return m.unknown[col]
}
