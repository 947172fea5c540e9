package records

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// recordSQL matches SQL that names a record table (the tables this package owns).
var recordSQL = regexp.MustCompile(`(?is)\b(FROM|INTO|UPDATE|JOIN|TABLE)\s+(sources|resources|resource_codes|resource_counts|resources_fts|profiles|source_patients|profile_merges|profile_merge_items)\b`)

// TestOnlyRecordsNamesRecordTables keeps ARCHITECTURE rule 2: no non-test Go code outside
// internal/records (and the migrations) names the record tables in SQL.
func TestOnlyRecordsNamesRecordTables(t *testing.T) {
	root := filepath.Join("..", "..")
	var offenders []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "frontend", "build":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasPrefix(filepath.ToSlash(rel), "internal/records/") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && recordSQL.MatchString(v) {
					offenders = append(offenders, rel+": "+strings.Join(strings.Fields(v), " ")[:min(80, len(strings.Join(strings.Fields(v), " ")))])
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offenders {
		t.Errorf("SQL on a record table outside internal/records: %s", o)
	}
}
