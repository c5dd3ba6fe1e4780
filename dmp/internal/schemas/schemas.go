// Package schemas checks DMP messages against the official XML Schemas
// with xmllint, for the dmp tests and for dmptest's test mode. The schemas
// are not copied into the project: they are found in $DMPAGENT_SCHEMAS or in
// a shared/schemas folder beside the repository (DESIGN §8).
package schemas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/beevik/etree"
)

// ErrNoSchemas means neither $DMPAGENT_SCHEMAS nor ../shared/schemas exists.
var ErrNoSchemas = errors.New("schemas: no schema folder ($DMPAGENT_SCHEMAS or shared/schemas beside the repository)")

// ErrNoXmllint means xmllint (Debian package libxml2-utils) is not installed.
var ErrNoXmllint = errors.New("schemas: xmllint not found (install libxml2-utils)")

// InvalidError is a document the schema rejects; Output is xmllint's report.
type InvalidError struct {
	Schema string
	Output string
}

func (e *InvalidError) Error() string {
	out := e.Output
	if len(out) > 2000 {
		out = out[:2000] + "…"
	}
	return fmt.Sprintf("schemas: invalid against %s: %s", e.Schema, out)
}

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Dir returns the schema folder.
func Dir() (string, error) {
	dirOnce.Do(func() { dir, dirErr = findDir() })
	return dir, dirErr
}

func findDir() (string, error) {
	if d := os.Getenv("DMPAGENT_SCHEMAS"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "README.md")); err != nil {
			return "", fmt.Errorf("schemas: $DMPAGENT_SCHEMAS=%s: %w", d, err)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	// Walk up from the working directory (a package folder under go test)
	// to the repository, whose sibling shared/ holds the schemas.
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "schemas")
		if _, err := os.Stat(filepath.Join(cand, "README.md")); err == nil {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", ErrNoSchemas
		}
	}
}

// Available reports why validation cannot run here, or nil.
func Available() error {
	if _, err := Dir(); err != nil {
		return err
	}
	if _, err := exec.LookPath("xmllint"); err != nil {
		return ErrNoXmllint
	}
	return nil
}

// Validate checks doc against the schema at rel (a path inside the schema
// folder, such as "wrappers/soap-xds.xsd"), relying on xmllint's exit code:
// 0 valid, 3 invalid, anything else an error of the tool or the schema.
func Validate(ctx context.Context, rel string, doc []byte) error {
	d, err := Dir()
	if err != nil {
		return err
	}
	schema := filepath.Join(d, filepath.FromSlash(rel))
	if _, err := os.Stat(schema); err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	cmd := exec.CommandContext(ctx, "xmllint", "--nonet", "--noout", "--schema", schema, "-")
	cmd.Stdin = bytes.NewReader(doc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return &InvalidError{Schema: rel, Output: filterWarnings(out.String())}
	case errors.Is(err, exec.ErrNotFound):
		return ErrNoXmllint
	default:
		return fmt.Errorf("schemas: xmllint on %s: %v: %s", rel, err, out.String())
	}
}

// filterWarnings drops libxml2's harmless "Skipping import" lines.
func filterWarnings(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "Skipping import of schema") || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// BodyChild cuts the first child of a SOAP Body out of an envelope as a
// standalone document, redeclaring on it every namespace in scope, so that
// QNames inside values (xsi:type="hl7:CE") keep their prefix. The DMP annex
// schemas describe only that element.
func BodyChild(envelope []byte) ([]byte, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(envelope); err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" {
		return nil, errors.New("schemas: not a SOAP envelope")
	}
	var body *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Body" {
			body = c
		}
	}
	if body == nil || len(body.ChildElements()) == 0 {
		return nil, errors.New("schemas: empty SOAP body")
	}
	child := body.ChildElements()[0]
	// Namespaces in scope, innermost first wins.
	inScope := map[string]string{}
	var chain []*etree.Element
	for e := child.Parent(); e != nil; e = e.Parent() {
		chain = append(chain, e)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, a := range chain[i].Attr {
			if a.Space == "xmlns" {
				inScope[a.Key] = a.Value
			} else if a.Space == "" && a.Key == "xmlns" {
				inScope[""] = a.Value
			}
		}
	}
	out := child.Copy()
	for prefix, uri := range inScope {
		key, space := prefix, "xmlns"
		if prefix == "" {
			key, space = "xmlns", ""
		}
		if out.SelectAttr(attrName(space, key)) == nil {
			out.CreateAttr(attrName(space, key), uri)
		}
	}
	nd := etree.NewDocument()
	nd.SetRoot(out)
	return nd.WriteToBytes()
}

func attrName(space, key string) string {
	if space == "" {
		return key
	}
	return space + ":" + key
}
