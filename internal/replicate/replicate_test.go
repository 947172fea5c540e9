package replicate

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestOwnNamesMakeOtherPeople: with OwnNames every copy's patients carry a family name of their
// own (so they match as other people), their references still land in their copy, and the first
// copy keeps the original names.
func TestOwnNamesMakeOtherPeople(t *testing.T) {
	files, _ := filepath.Glob(mustPath(t, shareddata.Synthea, "patient-1*.json"))
	src, err := Load(context.Background(), files...)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	const copies = 3
	if _, err := src.Write(&buf, Options{N: copies * len(src.Resources), OwnNames: true}); err != nil {
		t.Fatal(err)
	}
	families := map[string]int{}
	patients := 0
	err = fhir.Scan(context.Background(), &buf, "x.ndjson", fhir.Options{}, func(e *fhir.Entry) error {
		if e.Type != "Patient" {
			return nil
		}
		patients++
		var p struct {
			Name []struct {
				Family string `json:"family"`
			} `json:"name"`
		}
		if err := json.Unmarshal(e.Raw, &p); err != nil || len(p.Name) == 0 {
			t.Fatalf("patient %s: %v", e.ID, err)
		}
		families[p.Name[0].Family]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if patients == 0 || patients%copies != 0 {
		t.Fatalf("%d patients in %d copies", patients, copies)
	}
	if len(families) != patients {
		t.Fatalf("%d patients share %d family names: %v", patients, len(families), families)
	}
}
