package replicate

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestReplicateKeepsReferencesAndMakesFreshIDs(t *testing.T) {
	files, _ := filepath.Glob(mustPath(t, shareddata.Synthea, "patient-1*.json"))
	src, err := Load(context.Background(), files...)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := src.WriteNDJSON(&buf, 3*len(src.Resources), 0)
	if err != nil || n != 3*len(src.Resources) {
		t.Fatalf("%d %v", n, err)
	}
	ids := map[string]bool{}
	refs := []string{}
	err = fhir.Scan(context.Background(), &buf, "x.ndjson", fhir.Options{}, func(e *fhir.Entry) error {
		key := e.Type + "/" + e.ID
		if ids[key] {
			t.Fatalf("duplicate %s", key)
		}
		ids[key] = true
		for _, r := range e.Refs {
			if strings.HasPrefix(r.Value, "urn:") {
				t.Fatalf("unresolved %s", r.Value)
			}
			refs = append(refs, r.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, r := range refs {
		if !ids[r] && !strings.HasPrefix(r, "#") {
			missing++
		}
	}
	// Synthea patient bundles point at organizations and practitioners they also carry; every
	// reference must land inside its own copy.
	if missing != 0 {
		t.Fatalf("%d of %d references point outside their copy", missing, len(refs))
	}
}

func mustPath(t *testing.T, elem ...string) string {
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
