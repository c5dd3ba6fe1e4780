// Command genmatrix rebuilds dmptest's habilitations.json from the
// normalised Cnam matrix kept in the project notes
// (dmp-notes/habilitation-matrix-2024.json, see MATRIX-FACTS.md). The notes
// file indexes professions by position and keeps the PDF's footnote marks in
// type codes ("REMB (d)", "PRESC- ORTHOPTIE"); this command gives columns
// stable ids, maps TRE_G15 profession codes to them and writes the codes as
// the DMP sends them in XDS metadata.
//
//	go run ./internal/genmatrix -in ../../../shared/dmp-notes/habilitation-matrix-2024.json -out habilitations.json
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// source is the part of the notes file this command reads.
type source struct {
	Profs []string `json:"profs"`
	Codes []string `json:"codes"`
	Types []struct {
		Class   string `json:"cls"`
		Code    string `json:"code"`
		Name    string `json:"name"`
		Allowed []int  `json:"allowed"`
	} `json:"types"`
}

// The output mirrors dmptest's matrixFile; it is declared again here so that
// the generator does not depend on the package it feeds.
type column struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	SourceCodes string `json:"source_codes"`
}

type docType struct {
	TypeCode  string   `json:"typeCode"`
	ClassCode string   `json:"classCode"`
	Label     string   `json:"label"`
	Readers   []string `json:"readers"`
}

type output struct {
	Version            string            `json:"version"`
	Source             string            `json:"source"`
	Note               []string          `json:"note"`
	Columns            []column          `json:"columns"`
	Professions        map[string]string `json:"professions"`
	UnknownTypeReaders []string          `json:"unknown_type_readers"`
	Types              []docType         `json:"types"`
}

// columns gives the 19 Cnam columns, in source order, their ids and labels.
var columns = []column{
	{ID: "medecin", Label: "Médecins généralistes et spécialistes (dont radiologues, biologistes), libéraux, salariés (hors médecine du travail), SAMU-Urgences-Centre 15, internes"},
	{ID: "pharmacien_biologiste", Label: "Pharmaciens biologistes et internes"},
	{ID: "pharmacien_officine", Label: "Pharmaciens d'officine et de pharmacie hospitalière, internes et préparateurs"},
	{ID: "chirurgien_dentiste", Label: "Chirurgiens-dentistes, internes et spécialistes"},
	{ID: "sage_femme", Label: "Sages-femmes"},
	{ID: "infirmier", Label: "Infirmiers"},
	{ID: "masseur_kinesitherapeute", Label: "Masseurs-kinésithérapeutes"},
	{ID: "pedicure_podologue", Label: "Pédicures-podologues"},
	{ID: "orthophoniste", Label: "Orthophonistes"},
	{ID: "ergotherapeute_psychomotricien_orthoptiste_dieteticien", Label: "Ergothérapeutes, psychomotriciens, orthoptistes, diététiciens"},
	{ID: "audioprothesiste_appareillage", Label: "Audioprothésistes, métiers de l'appareillage"},
	{ID: "opticien_lunetier", Label: "Opticiens-lunetiers"},
	{ID: "manipulateur_erm", Label: "Manipulateurs d'électroradiologie médicale"},
	{ID: "coordination_orientation", Label: "Professionnels sanitaires, sociaux et médico-sociaux exerçant des fonctions de coordination et d'orientation (GENR08)"},
	{ID: "assistant_service_social", Label: "Assistants de service social"},
	{ID: "social_administratif", Label: "Professionnels du social et du médico-social : fonctions administratives ou d'appui à l'organisation de l'accompagnement (GENR09)"},
	{ID: "social_accompagnement_vie", Label: "Professionnels du social et du médico-social : accompagnement à la vie sociale, professionnelle et éducative (GENR10)"},
	{ID: "social_accompagnement_soin", Label: "Professionnels du social et du médico-social : accompagnement au soin (GENR11)"},
	{ID: "social_encadrement", Label: "Professionnels du social et du médico-social : encadrement et organisation de l'accompagnement (GENR12)"},
}

// professions maps TRE_G15 codes (and code 99 with a TRE_R22 activity kind)
// to columns. Code 21 goes to the officine column: the biologist column has
// the same cells, and a pharmacist's card does not say which one applies.
// 38 and 39 (préparateurs) are our inference from the officine column's
// label; the Cnam header lists them under "99 (e)".
var professions = map[string]string{
	"10": "medecin",
	"21": "pharmacien_officine", "38": "pharmacien_officine", "39": "pharmacien_officine",
	"40": "chirurgien_dentiste",
	"50": "sage_femme",
	"60": "infirmier", "69": "infirmier",
	"70": "masseur_kinesitherapeute",
	"80": "pedicure_podologue",
	"91": "orthophoniste",
	"92": "ergotherapeute_psychomotricien_orthoptiste_dieteticien",
	"94": "ergotherapeute_psychomotricien_orthoptiste_dieteticien",
	"95": "ergotherapeute_psychomotricien_orthoptiste_dieteticien",
	"96": "ergotherapeute_psychomotricien_orthoptiste_dieteticien",
	"26": "audioprothesiste_appareillage", "81": "audioprothesiste_appareillage",
	"82": "audioprothesiste_appareillage", "83": "audioprothesiste_appareillage",
	"84": "audioprothesiste_appareillage", "85": "audioprothesiste_appareillage",
	"28":        "opticien_lunetier",
	"98":        "manipulateur_erm",
	"41":        "assistant_service_social",
	"99/GENR08": "coordination_orientation",
	"99/GENR09": "social_administratif",
	"99/GENR10": "social_accompagnement_vie",
	"99/GENR11": "social_accompagnement_soin",
	"99/GENR12": "social_encadrement",
}

var note = []string{
	"Habilitation matrix of the simulated DMP: which profession column may READ which document type (DESIGN §6 rule 7). Feeding is never restricted by it.",
	"columns: id (used in professions, readers and unknown_type_readers), label, source_codes (the Cnam header's 'Code profession CPS', verbatim, for reference only).",
	"professions: TRE_G15 profession code -> column id. A key 'CODE/QUALIFIER' (e.g. '99/GENR08', or '21/<specialty>') is tried first with the actor's specialty or activity kind, then the bare code. A profession with no entry (e.g. 93 psychologue, 35 aide-soignant) reads nothing but its own documents.",
	"types: one row per document typeCode, with its classCode, label and the column ids allowed to read it. typeCode '*' is the row for any typeCode of that classCode not listed (the Cnam 'code procédure variable' imaging row).",
	"unknown_type_readers: the columns that may read a typeCode not listed and with no '*' row for its class.",
	"Source: Cnam 'Matrice d'habilitations des PS pour le DMP' (PDF dated 2024-09-25, 19 columns x 108 types), normalised in dmp-notes/habilitation-matrix-2024.json; the Synthèse block was re-aligned there. Not the JORF 2023 annex word for word; footnotes (a)-(e) were lost; surprising cells (e.g. 83836-7 Schéma dentaire for opticians) are kept as published.",
	"Regenerate with internal/genmatrix; edit by hand freely: LoadMatrix validates the file and names the faulty entry.",
}

// footnote matches the PDF's footnote marks, e.g. " (d)".
var footnote = regexp.MustCompile(`\s*\([a-e]\)\s*$`)

func main() {
	in := flag.String("in", "../../../shared/dmp-notes/habilitation-matrix-2024.json", "normalised matrix from the notes")
	out := flag.String("out", "habilitations.json", "file to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "genmatrix:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var src source
	if err := json.Unmarshal(raw, &src); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(src.Profs) != len(columns) || len(src.Codes) != len(columns) {
		return fmt.Errorf("%s: %d columns, want %d", in, len(src.Profs), len(columns))
	}
	o := output{
		Version:            "cnam-2024-09-25",
		Source:             "Cnam, Matrice d'habilitations des PS pour le DMP (2024-09-25), via dmp-notes/habilitation-matrix-2024.json",
		Note:               note,
		Professions:        professions,
		UnknownTypeReaders: []string{"medecin"},
	}
	for k, c := range columns {
		c.SourceCodes = strings.Join(strings.Fields(src.Codes[k]), " ")
		o.Columns = append(o.Columns, c)
	}
	for _, t := range src.Types {
		dt := docType{TypeCode: typeCode(t.Code), ClassCode: t.Class, Label: t.Name}
		if dt.TypeCode == "*" {
			dt.Label += " (code procédure variable)"
		}
		for _, k := range t.Allowed {
			if k < 0 || k >= len(columns) {
				return fmt.Errorf("%s: type %s: column index %d out of range", in, t.Code, k)
			}
			dt.Readers = append(dt.Readers, columns[k].ID)
		}
		o.Types = append(o.Types, dt)
	}
	if len(o.Types) == 0 {
		return errors.New("no document types")
	}
	b, err := render(o)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

// render writes the file indented, except that each type row stays on one
// line: a tester edits a row's readers in place and diffs stay one line per
// type.
func render(o output) ([]byte, error) {
	types := o.Types
	o.Types = nil
	head, err := marshal(o, "  ")
	if err != nil {
		return nil, err
	}
	// head ends with `"types": null` and the closing brace.
	head = bytes.TrimSuffix(bytes.TrimSpace(head), []byte("}"))
	head = bytes.TrimSuffix(bytes.TrimSpace(head), []byte("null"))
	var buf bytes.Buffer
	buf.Write(head)
	buf.WriteString("[\n")
	for k, t := range types {
		row, err := marshal(t, "")
		if err != nil {
			return nil, err
		}
		buf.WriteString("    ")
		buf.Write(bytes.TrimSpace(row))
		if k < len(types)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("  ]\n}\n")
	return buf.Bytes(), nil
}

func marshal(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	err := enc.Encode(v)
	return buf.Bytes(), err
}

// typeCode turns a cell of the PDF's code column into the code the DMP
// sends: footnote marks dropped, line-break spaces removed ("PRESC-
// ORTHOPTIE"), and the variable DICOM procedure row made the class wildcard.
func typeCode(cell string) string {
	if strings.HasPrefix(cell, "Code procédure variable") {
		return "*"
	}
	return strings.Join(strings.Fields(footnote.ReplaceAllString(cell, "")), "")
}
