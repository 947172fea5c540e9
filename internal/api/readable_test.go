package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

type detailBody struct {
	records.Item
	References map[string]records.RefTarget `json:"references"`
	Unresolved []records.Unresolvable       `json:"unresolved"`
	Related    []records.Related            `json:"related"`
}

// storedRecord is one record as exported, with its source.
type storedRecord struct {
	typ, id string
	raw     map[string]any
}

// allRecords reads every stored record through the export (independent of the detail code).
func allRecords(t *testing.T, e *env) []storedRecord {
	t.Helper()
	var buf bytes.Buffer
	if err := e.store.Export(context.Background(), &buf, records.Filter{}, "now"); err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(buf.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	out := make([]storedRecord, 0, len(b.Entry))
	for _, en := range b.Entry {
		out = append(out, storedRecord{typ: en.Resource["resourceType"].(string), id: en.Resource["id"].(string), raw: en.Resource})
	}
	return out
}

// encounterRefs collects the references held by `encounter` elements anywhere in v.
func encounterRefs(v any, under bool, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if under {
			if ref, ok := x["reference"].(string); ok {
				out[ref] = true
			}
		}
		for k, c := range x {
			encounterRefs(c, k == "encounter", out)
		}
	case []any:
		for _, c := range x {
			encounterRefs(c, under, out)
		}
	}
}

// allRefs collects every reference in v.
func allRefs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"].(string); ok {
			*out = append(*out, ref)
		}
		for k, c := range x {
			if k != "contained" {
				allRefs(c, out)
			}
		}
	case []any:
		for _, c := range x {
			allRefs(c, out)
		}
	}
}

func importShared(t *testing.T, e *env, files []string) {
	t.Helper()
	code, body := e.upload(t, files, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("import: %d %s", code, body)
	}
}

// Acceptance (issue 15): every reference in the detail response of 200 random records resolves
// with a non-empty title or is reported unresolvable in words; a visit's related records are
// exactly those whose `encounter` points at it.
func TestDetailReferencesAndRelatedOnSyntheaData(t *testing.T) {
	if testing.Short() {
		t.Skip("imports the shared Synthea set")
	}
	e := newEnv(t)
	importShared(t, e, glob(t, data(t, shareddata.Synthea, "*.json")))
	all := allRecords(t, e)
	rng := rand.New(rand.NewPCG(15, 15))
	picked := map[int]bool{}
	for len(picked) < 200 {
		picked[rng.IntN(len(all))] = true
	}
	idx := make([]int, 0, len(picked))
	for i := range picked {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	resolved, unresolved := 0, 0
	for _, i := range idx {
		r := all[i]
		var d detailBody
		if code := e.get(t, "/resources/"+r.typ+"/"+r.id, &d); code != 200 {
			t.Fatalf("%s/%s: %d", r.typ, r.id, code)
		}
		var refs []string
		allRefs(r.raw, &refs)
		un := map[string]records.Unresolvable{}
		for _, u := range d.Unresolved {
			un[u.Reference] = u
		}
		for _, ref := range refs {
			if ref == r.typ+"/"+r.id || strings.HasPrefix(ref, "#") {
				continue
			}
			if tgt, ok := d.References[ref]; ok {
				resolved++
				if strings.TrimSpace(tgt.Title) == "" || tgt.Title == tgt.Type {
					t.Errorf("%s/%s: reference %s resolves with title %q", r.typ, r.id, ref, tgt.Title)
				}
				if tgt.Type+"/"+tgt.ID != ref {
					t.Errorf("%s/%s: reference %s resolves to %s/%s", r.typ, r.id, ref, tgt.Type, tgt.ID)
				}
				continue
			}
			u, ok := un[ref]
			if !ok {
				t.Errorf("%s/%s: reference %s is neither resolved nor reported unresolvable", r.typ, r.id, ref)
				continue
			}
			unresolved++
			if !strings.Contains(u.Text, "not in your records") {
				t.Errorf("%s/%s: unresolvable %s says %q", r.typ, r.id, ref, u.Text)
			}
		}
	}
	t.Logf("200 records: %d references resolved, %d unresolvable", resolved, unresolved)
	if resolved == 0 {
		t.Fatal("no reference resolved")
	}

	// Visits: related == the records whose encounter element points at the visit.
	want := map[string]map[string]bool{}
	var encounters []string
	for _, r := range all {
		if r.typ == "Encounter" {
			encounters = append(encounters, r.id)
		}
		found := map[string]bool{}
		encounterRefs(r.raw, false, found)
		for ref := range found {
			if want[ref] == nil {
				want[ref] = map[string]bool{}
			}
			want[ref][r.typ+"/"+r.id] = true
		}
	}
	rng.Shuffle(len(encounters), func(i, j int) { encounters[i], encounters[j] = encounters[j], encounters[i] })
	nonEmpty := 0
	for _, id := range encounters[:40] {
		var d detailBody
		if code := e.get(t, "/resources/Encounter/"+id, &d); code != 200 {
			t.Fatalf("Encounter/%s: %d", id, code)
		}
		got := map[string]bool{}
		for _, rel := range d.Related {
			got[rel.Type+"/"+rel.ID] = true
			if rel.Title == "" {
				t.Errorf("Encounter/%s: related %s/%s has no title", id, rel.Type, rel.ID)
			}
		}
		exp := want["Encounter/"+id]
		for k := range exp {
			if !got[k] {
				t.Errorf("Encounter/%s: related misses %s", id, k)
			}
		}
		for k := range got {
			if !exp[k] {
				t.Errorf("Encounter/%s: related has %s, whose encounter is not this visit", id, k)
			}
		}
		if len(got) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 30 {
		t.Errorf("only %d of 40 visits have related records", nonEmpty)
	}
}

// Medication by reference: a prescription is titled by its Medication, in lists, the detail
// and the references of other records; a reference display is the fallback.
func TestMedicationTitledByReference(t *testing.T) {
	e := newEnv(t)
	bundle := `{"resourceType":"Bundle","type":"collection","entry":[
	{"resource":{"resourceType":"Patient","id":"p","name":[{"given":["Ann"],"family":"Lee"}]}},
	{"resource":{"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1","display":"NDA020800 Amoxicillin 250 MG"}]}}},
	{"resource":{"resourceType":"MedicationRequest","id":"rx1","status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Medication/m1"},"authoredOn":"2020-01-01"}},
	{"resource":{"resourceType":"MedicationStatement","id":"ms1","status":"active","subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Medication/gone","display":"Ibuprofen 200 MG"},"effectiveDateTime":"2020-01-02"}},
	{"resource":{"resourceType":"MedicationStatement","id":"ms2","status":"active","subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Medication/gone"},"effectiveDateTime":"2020-01-03","basedOn":[{"reference":"MedicationRequest/rx1"}]}}
	]}`
	f := t.TempDir() + "/meds.json"
	writeFile(t, f, bundle)
	importShared(t, e, []string{f})

	var d detailBody
	e.get(t, "/resources/MedicationRequest/rx1", &d)
	if d.Title != "Amoxicillin 250 MG" {
		t.Errorf("MedicationRequest title %q, want the Medication's name without the vendor prefix", d.Title)
	}
	if d.References["Medication/m1"].Title != "Amoxicillin 250 MG" {
		t.Errorf("references: %+v", d.References)
	}
	var page records.Page
	e.get(t, "/resources?type=MedicationStatement&sort=date", &page)
	if len(page.Items) != 2 || page.Items[0].Title != "Ibuprofen 200 MG" {
		t.Fatalf("statement titles: %+v", page.Items)
	}
	if page.Items[1].Title != "" {
		t.Errorf("a statement with nothing to name it by has title %q", page.Items[1].Title)
	}
	e.get(t, "/resources/MedicationStatement/ms2", &d)
	if d.References["MedicationRequest/rx1"].Title != "Amoxicillin 250 MG" {
		t.Errorf("a referenced prescription is titled %q", d.References["MedicationRequest/rx1"].Title)
	}
	if len(d.Unresolved) != 1 || d.Unresolved[0].Text != "a medication not in your records" {
		t.Errorf("unresolved: %+v", d.Unresolved)
	}
	var sum records.Summary
	e.get(t, "/summary", &sum)
	titles := map[string]bool{}
	for _, m := range sum.Medications {
		titles[m.Title] = true
	}
	if !titles["Amoxicillin 250 MG"] || !titles["Ibuprofen 200 MG"] {
		t.Errorf("summary medications: %v", titles)
	}
	// The Medication itself is not a timeline event; the prescription is.
	e.get(t, "/timeline", &page)
	for _, it := range page.Items {
		if fhir.IsDirectory(it.Type) || it.Type == "Medication" {
			t.Errorf("timeline holds %s/%s", it.Type, it.ID)
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A person's view includes the doctors, clinics and places their visits reference (which sit in
// other files and name no patient).
func TestPersonViewIncludesTheirDoctorsAndClinics(t *testing.T) {
	e := newEnv(t)
	importShared(t, e, []string{
		data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json"),
		data(t, shareddata.Synthea, "practitioners.json"),
		data(t, shareddata.Synthea, "organizations.json"),
	})
	// The api package has no people service: give the patient's records a person by hand.
	ctx := context.Background()
	d := e.db
	if _, err := d.Write.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (7, 'Misty', 'x', 'x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write.ExecContext(ctx, `UPDATE resources SET profile_id = 7 WHERE patient_ref IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	var all records.Page
	e.get(t, "/resources?type=Encounter&profile=7&limit=500", &all)
	want := map[string]map[string]bool{"Practitioner": {}, "Organization": {}}
	for _, it := range all.Items {
		var enc struct {
			Participant []struct {
				Individual struct{ Reference string } `json:"individual"`
			} `json:"participant"`
			ServiceProvider struct{ Reference string } `json:"serviceProvider"`
		}
		json.Unmarshal(it.Resource, &enc)
		for _, p := range enc.Participant {
			want["Practitioner"][strings.TrimPrefix(p.Individual.Reference, "Practitioner/")] = true
		}
		want["Organization"][strings.TrimPrefix(enc.ServiceProvider.Reference, "Organization/")] = true
	}
	var counts map[string]int
	e.get(t, "/resources/counts?profile=7", &counts)
	for typ, ids := range want {
		if len(ids) == 0 {
			t.Fatalf("no %s referenced by the visits", typ)
		}
		if counts[typ] != len(ids) {
			t.Errorf("%s: count %d, the visits reference %d", typ, counts[typ], len(ids))
		}
		var page records.Page
		e.get(t, "/resources?type="+typ+"&profile=7&limit=500", &page)
		got := map[string]bool{}
		for _, it := range page.Items {
			got[it.ID] = true
			if it.Title == "" {
				t.Errorf("%s/%s has no title", typ, it.ID)
			}
		}
		for id := range ids {
			if !got[id] {
				t.Errorf("%s/%s referenced by a visit is not in the person's list", typ, id)
			}
		}
		if len(got) != len(ids) {
			t.Errorf("%s: %d listed, %d referenced", typ, len(got), len(ids))
		}
	}
	// Everyone's counts are unchanged by it.
	var everyone map[string]int
	e.get(t, "/resources/counts", &everyone)
	if everyone["Practitioner"] < counts["Practitioner"] {
		t.Errorf("everyone %v vs person %v", everyone, counts)
	}
}
