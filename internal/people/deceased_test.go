package people_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// Acceptance (issue 15): people whose Patient record says they died carry the date of death;
// the others carry null.
func TestDeceasedPeopleInTheSharedData(t *testing.T) {
	e := newEnv(t)
	files, _ := filepath.Glob(dataPath(t, shareddata.Synthea, "patient-*.json"))
	files = files[:12]
	want := map[string]any{} // name -> deceasedDateTime or nil
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var bundle struct {
			Entry []struct {
				Resource struct {
					ResourceType     string          `json:"resourceType"`
					DeceasedDateTime string          `json:"deceasedDateTime"`
					Name             json.RawMessage `json:"name"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			t.Fatal(err)
		}
		for _, en := range bundle.Entry {
			if r := en.Resource; r.ResourceType == "Patient" {
				var v any
				if r.DeceasedDateTime != "" {
					v = r.DeceasedDateTime
				}
				var names []struct {
					Family string `json:"family"`
				}
				if err := json.Unmarshal(r.Name, &names); err != nil || len(names) == 0 {
					t.Fatalf("patient name %s: %v", r.Name, err)
				}
				want[names[0].Family] = v
			}
		}
	}
	e.importFiles(files...)
	dead := 0
	list := e.list()
	if len(list) != len(want) {
		t.Fatalf("%d people for %d patients", len(list), len(want))
	}
	for _, p := range list {
		var w any
		found := false
		for fam, v := range want {
			if strings.Contains(p.Name, fam) {
				w, found = v, true
			}
		}
		if !found {
			t.Fatalf("no patient for %q", p.Name)
		}
		if p.Deceased != w {
			t.Errorf("%s: deceased %v, want %v", p.Name, p.Deceased, w)
		}
		if w != nil {
			dead++
		}
		one, err := e.people.Get(e.ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if one.Deceased != w {
			t.Errorf("%s (detail): deceased %v, want %v", p.Name, one.Deceased, w)
		}
	}
	if dead == 0 {
		t.Fatal("the chosen files hold no deceased patient; pick others")
	}
	t.Logf("%d of %d people deceased", dead, len(list))
}
