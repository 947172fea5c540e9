package ips

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func newStore(t *testing.T) *records.Store {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return records.New(d)
}

func importFiles(t *testing.T, s *records.Store, paths ...string) {
	t.Helper()
	var in []importer.Input
	for _, p := range paths {
		in = append(in, importer.Input{Name: filepath.Base(p), Path: p})
	}
	if _, err := importer.New(s, nil, importer.Limits{}).Import(context.Background(), in, importer.Options{}); err != nil {
		t.Fatal(err)
	}
}

func profiles(t *testing.T, s *records.Store) []records.Profile {
	t.Helper()
	ps, err := s.ListProfiles(context.Background(), time.Now().Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// ipsSectionTypes is, per IPS section LOINC code, the resource types its entries may be (from
// the IG's Composition-uv-ips slices).
var ipsSectionTypes = map[string][]string{
	"11450-4": {"Condition"},
	"10160-0": {"MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense"},
	"48765-2": {"AllergyIntolerance"},
	"11369-6": {"Immunization"},
	"30954-2": {"Observation", "DiagnosticReport"},
	"8716-3":  {"Observation"},
	"47519-4": {"Procedure"},
	"11348-0": {"Condition"},
	"46264-8": {"DeviceUseStatement", "Device"},
	"18776-5": {"CarePlan", "ImmunizationRecommendation"},
}

// checkIPS is a structural check written from the IPS IG (Bundle-uv-ips, Composition-uv-ips).
func checkIPS(t *testing.T, name string, bundle map[string]any) {
	t.Helper()
	errf := func(format string, args ...any) { t.Errorf(name+": "+format, args...) }
	if bundle["resourceType"] != "Bundle" || bundle["type"] != "document" {
		errf("not a document Bundle: %v %v", bundle["resourceType"], bundle["type"])
	}
	if v := str(bundle, "identifier", "value"); v == "" {
		errf("Bundle.identifier missing")
	}
	if ts, _ := bundle["timestamp"].(string); ts == "" {
		errf("Bundle.timestamp missing")
	} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
		errf("Bundle.timestamp %q: %v", ts, err)
	}
	entries, _ := bundle["entry"].([]any)
	if len(entries) == 0 {
		errf("no entries")
		return
	}
	byURL := map[string]map[string]any{}
	for i, e := range entries {
		em := e.(map[string]any)
		url, _ := em["fullUrl"].(string)
		res, _ := em["resource"].(map[string]any)
		if url == "" || res == nil {
			errf("entry %d without fullUrl or resource", i)
			continue
		}
		if byURL[url] != nil {
			errf("duplicate fullUrl %s", url)
		}
		byURL[url] = res
		if id, _ := res["id"].(string); id == "" {
			errf("entry %d (%v) has no id", i, res["resourceType"])
		} else if strings.HasPrefix(url, "urn:uuid:") && !isUUID(strings.TrimPrefix(url, "urn:uuid:")) {
			errf("fullUrl %s is not a urn:uuid", url)
		}
	}
	comp := entries[0].(map[string]any)["resource"].(map[string]any)
	if comp["resourceType"] != "Composition" {
		errf("first entry is %v, not a Composition", comp["resourceType"])
		return
	}
	if c := str(comp, "type", "coding", "code"); c != DocumentCode || str(comp, "type", "coding", "system") != LOINC {
		errf("Composition.type %s", c)
	}
	for _, f := range []string{"status", "date", "title"} {
		if s, _ := comp[f].(string); s == "" {
			errf("Composition.%s missing", f)
		}
	}
	if str(comp, "text", "div") == "" {
		errf("Composition has no narrative")
	}
	subj := str(comp, "subject", "reference")
	if p := byURL[subj]; p == nil || p["resourceType"] != "Patient" {
		errf("Composition.subject %q does not resolve to a Patient", subj)
	}
	authors, _ := comp["author"].([]any)
	if len(authors) == 0 {
		errf("Composition.author missing")
	}
	// Every reference anywhere resolves inside the Bundle.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["reference"].(string); ok && !strings.HasPrefix(ref, "#") {
				if byURL[ref] == nil {
					errf("%s: reference %q does not resolve inside the Bundle", path, ref)
				}
			}
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	for _, e := range entries {
		em := e.(map[string]any)
		walk(em["fullUrl"].(string), em["resource"])
	}
	// Sections.
	secs, _ := comp["section"].([]any)
	seen := map[string]bool{}
	for i, s := range secs {
		sm := s.(map[string]any)
		code := str(sm, "code", "coding", "code")
		if str(sm, "code", "coding", "system") != LOINC {
			errf("section %d is not coded with LOINC", i)
		}
		allowed, ok := ipsSectionTypes[code]
		if !ok {
			errf("section %d code %s is not an IPS section", i, code)
		}
		if seen[code] {
			errf("section %s twice", code)
		}
		seen[code] = true
		if t, _ := sm["title"].(string); t == "" {
			errf("section %s has no title", code)
		}
		div := str(sm, "text", "div")
		if !strings.HasPrefix(div, `<div xmlns="http://www.w3.org/1999/xhtml">`) || len(div) < 60 {
			errf("section %s narrative missing: %q", code, div)
		}
		if str(sm, "text", "status") == "" {
			errf("section %s narrative without status", code)
		}
		ents, _ := sm["entry"].([]any)
		_, hasEmpty := sm["emptyReason"]
		if len(ents) == 0 && !hasEmpty {
			errf("section %s has neither entries nor an emptyReason", code)
		}
		if len(ents) > 0 && hasEmpty {
			errf("section %s has entries and an emptyReason", code)
		}
		for _, e := range ents {
			ref := str(e.(map[string]any), "reference")
			res := byURL[ref]
			if res == nil {
				errf("section %s entry %q does not resolve", code, ref)
				continue
			}
			rt, _ := res["resourceType"].(string)
			okType := false
			for _, a := range allowed {
				okType = okType || a == rt
			}
			if !okType {
				errf("section %s holds a %s", code, rt)
			}
			if st := res["status"]; st == "entered-in-error" {
				errf("section %s holds an entered-in-error record", code)
			}
			if code == "11450-4" {
				if cs := conceptCode(res, "clinicalStatus"); cs != "active" && cs != "recurrence" && cs != "relapse" {
					errf("problem list holds a %q condition", cs)
				}
			}
		}
	}
	for _, req := range []string{"11450-4", "10160-0", "48765-2"} {
		if !seen[req] {
			errf("required section %s missing", req)
		}
	}
}

func syntheaFiles(t *testing.T) []string {
	t.Helper()
	dir, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		t.Skip(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "patient-*.json"))
	if len(files) == 0 {
		t.Skip("no Synthea patients in the shared data")
	}
	return files
}

func roundJSON(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIPSOfEverySyntheaPatient(t *testing.T) {
	files := syntheaFiles(t)
	s := newStore(t)
	importFiles(t, s, files...)
	b := NewBuilder(s, nil)
	ps := profiles(t, s)
	if len(ps) != len(files) {
		t.Fatalf("%d people from %d patient files", len(ps), len(files))
	}
	counts := map[string]int{}
	for _, p := range ps {
		doc, err := b.Build(context.Background(), p.ID, Options{})
		if err != nil {
			t.Fatal(err)
		}
		doc = roundJSON(t, doc)
		checkIPS(t, p.Name, doc)
		comp := doc["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		for _, sec := range comp["section"].([]any) {
			sm := sec.(map[string]any)
			if ents, ok := sm["entry"].([]any); ok {
				counts[sm["title"].(string)] += len(ents)
			}
		}
	}
	t.Logf("entries over %d people: %v", len(ps), counts)
	for _, k := range []string{"Active problems", "Medications", "Immunizations", "Results", "Vital signs"} {
		if counts[k] == 0 {
			t.Errorf("no %s in any summary: the selection is wrong", k)
		}
	}
}

// sectionKeys is, per required section, the entries as Type/id and the narrative.
func sectionKeys(t *testing.T, doc map[string]any) map[string][]string {
	t.Helper()
	byURL := map[string]map[string]any{}
	for _, e := range doc["entry"].([]any) {
		em := e.(map[string]any)
		byURL[em["fullUrl"].(string)] = em["resource"].(map[string]any)
	}
	out := map[string][]string{}
	comp := doc["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	for _, sec := range comp["section"].([]any) {
		sm := sec.(map[string]any)
		code := str(sm, "code", "coding", "code")
		if code != "11450-4" && code != "10160-0" && code != "48765-2" {
			continue
		}
		var keys []string
		if ents, ok := sm["entry"].([]any); ok {
			for _, e := range ents {
				r := byURL[str(e.(map[string]any), "reference")]
				keys = append(keys, fmt.Sprintf("%v/%v", r["resourceType"], r["id"]))
			}
		}
		sort.Strings(keys)
		out[code] = append(keys, str(sm, "text", "div"))
	}
	return out
}

func TestIPSRoundTrip(t *testing.T) {
	files := syntheaFiles(t)
	if len(files) > 5 {
		files = files[:5]
	}
	a := newStore(t)
	importFiles(t, a, files...)
	tmp := t.TempDir()
	nonEmpty := 0
	for _, p := range profiles(t, a) {
		first, err := NewBuilder(a, nil).Build(context.Background(), p.ID, Options{})
		if err != nil {
			t.Fatal(err)
		}
		first = roundJSON(t, first)
		path := filepath.Join(tmp, fmt.Sprintf("ips-%d.json", p.ID))
		data, _ := json.Marshal(first)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Into an empty folder, then out again.
		bs := newStore(t)
		importFiles(t, bs, path)
		ps := profiles(t, bs)
		if len(ps) != 1 {
			t.Fatalf("%s: the summary became %d people", p.Name, len(ps))
		}
		second, err := NewBuilder(bs, nil).Build(context.Background(), ps[0].ID, Options{})
		if err != nil {
			t.Fatal(err)
		}
		second = roundJSON(t, second)
		checkIPS(t, p.Name+" (again)", second)
		k1, k2 := sectionKeys(t, first), sectionKeys(t, second)
		for code, v1 := range k1 {
			v2 := k2[code]
			if strings.Join(v1, "\n") != strings.Join(v2, "\n") {
				t.Errorf("%s section %s changed:\nfirst  %q\nsecond %q", p.Name, code, v1, v2)
			}
			if len(v1) > 1 {
				nonEmpty++
			}
		}
		// The document itself is one Composition record in the new folder.
		counts, err := bs.Counts(context.Background(), records.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if counts["Composition"] != 1 {
			t.Errorf("%s: %d Compositions after import", p.Name, counts["Composition"])
		}
	}
	if nonEmpty == 0 {
		t.Fatal("no required section had entries: the round trip compared nothing")
	}
}

func TestEmptyPersonAndChoices(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var id int64
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.CreateProfile(ctx, tx, records.NewProfile{Name: "Ada <Lovelace>", BirthDate: "1815-12-10"}, "2026-01-01T00:00:00Z")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := NewBuilder(s, nil).Build(ctx, id, Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc = roundJSON(t, doc)
	checkIPS(t, "empty", doc)
	comp := doc["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	secs := comp["section"].([]any)
	if len(secs) != 3 {
		t.Fatalf("%d sections for a person with no records, want the 3 required", len(secs))
	}
	for _, sec := range secs {
		if _, ok := sec.(map[string]any)["emptyReason"]; !ok {
			t.Errorf("section %v without emptyReason", sec.(map[string]any)["title"])
		}
	}
	if !strings.Contains(str(comp, "text", "div"), "Ada &lt;Lovelace&gt;") {
		t.Errorf("name not escaped in the narrative: %s", str(comp, "text", "div"))
	}

	srv := httptest.NewServer(routesMux(NewBuilder(s, nil)))
	defer srv.Close()
	for _, tc := range []struct {
		q    string
		want int
	}{
		{"", 400},
		{"?profile=x", 400},
		{fmt.Sprintf("?profile=%d&sections=bogus", id), 400},
		{fmt.Sprintf("?profile=%d&since=2020-13-01", id), 400},
		{fmt.Sprintf("?profile=%d&since=2021-01-01&until=2020-01-01", id), 400},
		{"?profile=999", 404},
		{fmt.Sprintf("?profile=%d&sections=results,vitals&since=2020-01-01", id), 200},
	} {
		resp, err := http.Get(srv.URL + "/api/v1/export/ips" + tc.q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.q, resp.StatusCode, tc.want)
		}
	}
}

func TestSectionChoiceAndRange(t *testing.T) {
	files := syntheaFiles(t)
	s := newStore(t)
	importFiles(t, s, files[0])
	p := profiles(t, s)[0]
	b := NewBuilder(s, nil)
	all, err := b.Build(context.Background(), p.ID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	only, err := b.Build(context.Background(), p.ID, Options{Sections: map[string]bool{Results: true}})
	if err != nil {
		t.Fatal(err)
	}
	titles := func(doc map[string]any) []string {
		var out []string
		for _, sec := range doc["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["section"].([]any) {
			out = append(out, sec.(map[string]any)["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string))
		}
		return out
	}
	got := strings.Join(titles(only), ",")
	if got != "11450-4,10160-0,48765-2,30954-2" {
		t.Errorf("sections with only results chosen: %s (all: %v)", got, titles(all))
	}
	// A range that ends before the record began leaves the dated sections out.
	early, err := b.Build(context.Background(), p.ID, Options{Since: "1800-01-01", Until: "1800-12-31"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(titles(early), ","); got != "11450-4,10160-0,48765-2" && !strings.HasPrefix(got, "11450-4,10160-0,48765-2,46264-8") && !strings.HasPrefix(got, "11450-4,10160-0,48765-2,18776-5") {
		t.Errorf("sections for 1800: %s", got)
	}
}

func routesMux(b *Builder) http.Handler {
	mux := http.NewServeMux()
	for _, r := range b.Routes(nil) {
		mux.HandleFunc(r.Method+" /api/v1"+r.Path, r.Handler)
	}
	return mux
}

func TestNarrativeValues(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want string
	}{
		{`{"value":9.237250751330942,"unit":"mg/dL","code":"mg/dL"}`, "9.24 mg/dL"},
		{`{"value":425.64708742015074,"unit":"10*3/uL","code":"10*3/uL"}`, "425.6 ×10³/µL"},
		{`{"value":112.93100040001922,"unit":"mm[Hg]","code":"mm[Hg]"}`, "113 mmHg"},
		{`{"value":37.54672548307594,"unit":"Cel","code":"Cel"}`, "37.55 °C"},
		{`{"value":1234.5,"unit":"mL","code":"mL"}`, "1235 mL"},
		{`{"value":0.00049,"unit":"g"}`, "0 g"},
		{`{"value":3.27,"unit":"{score}","code":"{score}"}`, "3.27"},
	} {
		var q map[string]any
		json.Unmarshal([]byte(tc.q), &q)
		if got := quantity(q); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.q, got, tc.want)
		}
	}
	bp := map[string]any{}
	json.Unmarshal([]byte(`{"component":[{"code":{"coding":[{"code":"8480-6"}]},"valueQuantity":{"value":128.4,"code":"mm[Hg]","unit":"mm[Hg]"}},
		{"code":{"coding":[{"code":"8462-4"}]},"valueQuantity":{"value":81.6,"code":"mm[Hg]","unit":"mm[Hg]"}}]}`), &bp)
	if got := value(bp); got != "128/82 mmHg" {
		t.Errorf("blood pressure %q", got)
	}
	high := map[string]any{}
	json.Unmarshal([]byte(`{"valueQuantity":{"value":7.1},"referenceRange":[{"low":{"value":4},"high":{"value":6}}]}`), &high)
	if Flag(high) != "H" {
		t.Errorf("flag %q, want H", Flag(high))
	}
}
