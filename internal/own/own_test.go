package own

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/ips"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

type recorder struct{ topics []string }

func (r *recorder) Publish(topic string, data any) { r.topics = append(r.topics, topic) }

type fixture struct {
	store   *records.Store
	srv     *httptest.Server
	profile int64 // the imported Synthea patient
	events  *recorder
}

func setup(t *testing.T) *fixture {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := records.New(d)
	files, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		t.Skip(err)
	}
	matches, _ := filepath.Glob(filepath.Join(files, "patient-*.json"))
	if len(matches) == 0 {
		t.Skip("no Synthea data")
	}
	if _, err := importer.New(s, nil, importer.Limits{}).Import(context.Background(),
		[]importer.Input{{Name: filepath.Base(matches[0]), Path: matches[0]}}, importer.Options{}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.ListProfiles(context.Background(), "2100-01-01")
	if err != nil || len(ps) != 1 {
		t.Fatalf("people: %v %v", ps, err)
	}
	ev := &recorder{}
	svc := New(Options{Store: s, Events: ev})
	mux := http.NewServeMux()
	for _, r := range svc.Routes() {
		mux.HandleFunc(r.Method+" /api/v1"+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{store: s, srv: srv, profile: ps[0].ID, events: ev}
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+"/api/v1"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func weight(kg float64, date string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}],"text":"Body weight"},
		"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, date, kg)
}

func bp(sys, dia float64, date string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}],"text":"Blood pressure"},
		"effectiveDateTime":%q,"component":[
		{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
		{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`, date, sys, dia)
}

func TestOwnEntriesLifecycle(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	today := time.Now().UTC().Format("2006-01-02")
	st, w := f.do(t, "POST", fmt.Sprintf("/resources?profile=%d", f.profile), weight(72.5, today))
	if st != 201 || w["type"] != "Observation" || w["id"] == "" {
		t.Fatalf("post weight: %d %v", st, w)
	}
	wid := w["id"].(string)
	src := int64(w["source_id"].(float64))
	st, b := f.do(t, "POST", fmt.Sprintf("/resources?profile=%d", f.profile), bp(128, 82, today+"T08:30:00Z"))
	if st != 201 {
		t.Fatalf("post bp: %d %v", st, b)
	}
	if int64(b["source_id"].(float64)) != src {
		t.Errorf("second entry went to source %v, the first to %d: one source per person", b["source_id"], src)
	}
	source, err := f.store.GetSource(ctx, src)
	if err != nil || source.Name != records.SelfSourceName || !records.IsSelfSource(source) || source.Kind != records.KindManual {
		t.Fatalf("own source: %+v %v", source, err)
	}
	// Indexed like any record: the person's, listed by LOINC code, on the dashboard.
	page, err := f.store.List(ctx, records.ListQuery{Type: "Observation", Code: "http://loinc.org|29463-7", Filter: records.Filter{ProfileID: f.profile}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) == 0 || page.Items[0].ID != wid || !IsSelfEntered(page.Items[0].Resource) {
		t.Fatalf("weight not first in the person's weights: %+v", page.Items[:min(1, len(page.Items))])
	}
	sum, err := f.store.Summary(ctx, records.Filter{ProfileID: f.profile})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, v := range sum.Vitals {
		found[v.ID] = true
	}
	if !found[wid] || !found[b["id"].(string)] {
		t.Errorf("dashboard vitals do not show the entries: %v", found)
	}
	// Edit the weight.
	st, out := f.do(t, "PUT", "/resources/Observation/"+wid, weight(71, today))
	if st != 200 {
		t.Fatalf("put: %d %v", st, out)
	}
	it, err := f.store.Get(ctx, "Observation", wid, 0)
	if err != nil || !strings.Contains(string(it.Resource), `"value":71`) || it.ProfileID == nil || *it.ProfileID != f.profile {
		t.Fatalf("after edit: %s %v", it.Resource, err)
	}
	// Delete the blood pressure.
	if st, out := f.do(t, "DELETE", "/resources/Observation/"+b["id"].(string), ""); st != 200 {
		t.Fatalf("delete: %d %v", st, out)
	}
	if _, err := f.store.Get(ctx, "Observation", b["id"].(string), 0); err == nil {
		t.Error("deleted entry still there")
	}
	if st, _ := f.do(t, "DELETE", "/resources/Observation/"+b["id"].(string), ""); st != 404 {
		t.Errorf("second delete: %d", st)
	}
	// Imported records are never editable.
	cond, err := f.store.List(ctx, records.ListQuery{Type: "Condition", Filter: records.Filter{ProfileID: f.profile}, Limit: 1})
	if err != nil || len(cond.Items) == 0 {
		t.Fatal("no imported condition", err)
	}
	cid := cond.Items[0].ID
	body := `{"resourceType":"Condition","code":{"text":"changed"}}`
	if st, out := f.do(t, "PUT", "/resources/Condition/"+cid, body); st != 409 || out["error"].(map[string]any)["code"] != "not_editable" {
		t.Errorf("put imported: %d %v", st, out)
	}
	if st, out := f.do(t, "DELETE", "/resources/Condition/"+cid, ""); st != 409 || out["error"].(map[string]any)["code"] != "not_editable" {
		t.Errorf("delete imported: %d %v", st, out)
	}
	if after, _ := f.store.Get(ctx, "Condition", cid, 0); string(after.Resource) != string(cond.Items[0].Resource) {
		t.Error("the imported condition changed")
	}
	// The person's Patient is imported: it is not editable either.
	pts, _ := f.store.PersonPatients(ctx, f.profile)
	if st, _ := f.do(t, "DELETE", "/resources/Patient/"+pts[0].ID, ""); st != 409 {
		t.Errorf("delete imported patient: %d", st)
	}
	if st, _ := f.do(t, "PUT", "/resources/Observation/nope", weight(70, today)); st != 404 {
		t.Errorf("put unknown: %d", st)
	}
	if len(f.events.topics) != 4 { // two added, one changed, one deleted
		t.Errorf("events: %v, want 4 changes", f.events.topics)
	}
}

func TestOwnEntriesRefused(t *testing.T) {
	f := setup(t)
	today := time.Now().UTC().Format("2006-01-02")
	future := time.Now().AddDate(0, 0, 5).Format("2006-01-02")
	post := fmt.Sprintf("/resources?profile=%d", f.profile)
	for _, tc := range []struct {
		name, path, body string
		status           int
		location         string
	}{
		{"no unit system", post, strings.Replace(weight(70, today), `"system":"http://unitsofmeasure.org",`, "", 1), 400, "Observation.valueQuantity.system"},
		{"wrong unit", post, strings.Replace(weight(70, today), `"code":"kg"}`, `"code":"stone"}`, 1), 400, "Observation.valueQuantity.code"},
		{"implausible", post, weight(-3, today), 400, "Observation.valueQuantity.value"},
		{"future", post, weight(70, future), 400, "Observation.effectiveDateTime"},
		{"no date", post, strings.Replace(weight(70, today), `"effectiveDateTime":"`+today+`",`, "", 1), 400, "Observation.effectiveDateTime"},
		{"bp without diastolic", post, strings.Replace(bp(120, 80, today), `"8462-4"`, `"0000-0"`, 1), 400, "Observation.component"},
		{"bp wrong unit", post, strings.Replace(bp(120, 80, today), `"code":"mm[Hg]"}}]`, `"code":"kPa"}}]`, 1), 400, "Observation.component[1].valueQuantity.code"},
		{"not enterable", post, `{"resourceType":"Claim"}`, 400, "resourceType"},
		{"no type", post, `{"status":"final"}`, 400, "resourceType"},
		{"condition without code", post, `{"resourceType":"Condition"}`, 400, "Condition.code"},
		{"allergy criticality", post, `{"resourceType":"AllergyIntolerance","code":{"text":"Peanuts"},"criticality":"deadly"}`, 400, "AllergyIntolerance.criticality"},
		{"immunization no date", post, `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"Flu"}}`, 400, "Immunization.occurrenceDateTime"},
		{"medication no status", post, `{"resourceType":"MedicationStatement","medicationCodeableConcept":{"text":"Aspirin"}}`, 400, "MedicationStatement.status"},
		{"note with a link", post, `{"resourceType":"DocumentReference","status":"current","date":"2025-01-01","content":[{"attachment":{"contentType":"text/plain","data":"eA==","url":"http://example.org/x"}}]}`, 400, "DocumentReference.content[0].attachment.url"},
		{"not json", post, `{"resourceType":`, 400, ""},
		{"duplicate key", post, `{"resourceType":"Condition","resourceType":"Condition","code":{"text":"x"}}`, 400, ""},
	} {
		st, m := f.do(t, "POST", tc.path, tc.body)
		if st != tc.status {
			t.Errorf("%s: %d, want %d (%v)", tc.name, st, tc.status, m)
			continue
		}
		if m["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: not an OperationOutcome: %v", tc.name, m)
			continue
		}
		issue := m["issue"].([]any)[0].(map[string]any)
		var loc string
		if l, ok := issue["location"].([]any); ok {
			loc = l[0].(string)
		}
		if loc != tc.location {
			t.Errorf("%s: location %q, want %q (%v)", tc.name, loc, tc.location, issue["diagnostics"])
		}
	}
	if st, _ := f.do(t, "POST", "/resources", weight(70, today)); st != 400 {
		t.Errorf("no profile: %d", st)
	}
	if st, _ := f.do(t, "POST", "/resources?profile=9999", weight(70, today)); st != 404 {
		t.Errorf("unknown profile: %d", st)
	}
	// Nothing refused was stored.
	srcs, _ := f.store.ListSources(context.Background(), 0)
	for _, s := range srcs {
		if records.IsSelfSource(s) && s.ResourceCount > 0 {
			t.Errorf("a refused entry was stored: %+v", s)
		}
	}
	// A PUT's body must be the record it names.
	_, w := f.do(t, "POST", post, weight(70, today))
	if st, _ := f.do(t, "PUT", "/resources/Condition/"+w["id"].(string), weight(70, today)); st != 400 {
		t.Errorf("type mismatch: %d", st)
	}
}

// A person added by hand (no Patient anywhere) records a condition, an allergy, a medication,
// an immunization and a note; the IPS shows them and is still a valid document.
func TestOwnEntriesOfPersonWithoutRecords(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	var id int64
	if err := f.store.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = f.store.CreateProfile(ctx, tx, records.NewProfile{Name: "Kim Example", BirthDate: "1980-02-03"}, time.Now().UTC().Format(time.RFC3339))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	post := fmt.Sprintf("/resources?profile=%d", id)
	for _, body := range []string{
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"Hypertension"}],"text":"High blood pressure"},"onsetDateTime":"2020-05-01"}`,
		`{"resourceType":"AllergyIntolerance","code":{"text":"Penicillin"},"criticality":"high","reaction":[{"manifestation":[{"text":"Hives"}]}]}`,
		`{"resourceType":"MedicationStatement","status":"active","medicationCodeableConcept":{"text":"Lisinopril 10 mg"},"dosage":[{"text":"1 tablet every morning"}]}`,
		`{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"Influenza"},"occurrenceDateTime":"2025-10-01"}`,
		`{"resourceType":"DocumentReference","status":"current","description":"Felt dizzy","date":"2025-11-01T09:00:00Z","content":[{"attachment":{"contentType":"text/plain","data":"RmVsdCBkaXp6eQ=="}}]}`,
	} {
		if st, m := f.do(t, "POST", post, body); st != 201 {
			t.Fatalf("%s: %d %v", body, st, m)
		}
	}
	pts, err := f.store.PersonPatients(ctx, id)
	if err != nil || len(pts) != 1 || !strings.Contains(string(pts[0].Resource), "Kim Example") {
		t.Fatalf("the person's Patient: %v %v", pts, err)
	}
	doc, err := ips.NewBuilder(f.store, nil).Build(ctx, id, ips.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(doc)
	for _, want := range []string{"High blood pressure", "Penicillin", "high", "Hives", "Lisinopril 10 mg", "1 tablet every morning", "Influenza", SelfTagCode} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("IPS lacks %q", want)
		}
	}
	// Every reference resolves: the entries point at the Patient made for the person.
	var bundle struct {
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(raw, &bundle)
	urls := map[string]bool{}
	for _, e := range bundle.Entry {
		urls[e.FullURL] = true
	}
	for _, e := range bundle.Entry {
		for _, f := range []string{"subject", "patient"} {
			if r, ok := e.Resource[f].(map[string]any); ok {
				if ref, _ := r["reference"].(string); !urls[ref] {
					t.Errorf("%v.%s %q does not resolve", e.Resource["resourceType"], f, ref)
				}
			}
		}
	}
}
