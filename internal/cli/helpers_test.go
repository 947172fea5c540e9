package cli

import (
	"path/filepath"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func noEnv(string) string { return "" }

func syntheaFile(t *testing.T, i int) string {
	t.Helper()
	p, err := shareddata.Path(shareddata.Synthea, "patient-*.json")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(p)
	if len(m) <= i {
		t.Fatalf("too few Synthea files: %d", len(m))
	}
	return m[i]
}
