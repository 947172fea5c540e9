package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestLoadData(t *testing.T) {
	d := testData(t)
	srv, err := New(Config{Data: d})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "patient-*.json"))
	if len(srv.Patients()) != len(files) || len(files) != 31 {
		t.Fatalf("%d patients, %d files", len(srv.Patients()), len(files))
	}
	// 8801 is the number of entries over the 31 Synthea bundles.
	total := 0
	for _, p := range srv.Patients() {
		total += p.Resources
		if p.Name == "" || p.BirthDate == "" {
			t.Errorf("patient %+v", p)
		}
	}
	if total != 8801 {
		t.Errorf("%d resources over all patients, want 8801", total)
	}
	// Every stored resource has its references resolved and meta stamped.
	st := srv.store
	for _, p := range st.order {
		for _, r := range append(slices.Clone(p.list), sharedOf(st, p)...) {
			raw := r.bytes()
			if bytes.Contains(raw, []byte("urn:uuid:")) || !bytes.Contains(raw, []byte(`"versionId":"1","lastUpdated":"2024-01-01T00:00:00.000Z"`)) {
				t.Fatalf("%s: references or meta not rewritten", r.key())
			}
		}
	}
	// Three bundles checked resource by resource against an independent decoding.
	for _, f := range []string{testPatientFile, otherPatientFile, "patient-796796f6-3df3-4eab-a9fc-61c5746c0893.json"} {
		facts := readFacts(t, f)
		info, ok := srv.Patient(facts.patientID)
		if !ok || info.Resources != len(facts.keys) {
			t.Errorf("%s: %+v", f, info)
		}
		for k := range facts.keys {
			typ, id, _ := strings.Cut(k, "/")
			raw, ok := srv.Resource(typ, id)
			if !ok || !json.Valid(raw) {
				t.Fatalf("%s missing or invalid JSON", k)
			}
			var head resourceHead
			if err := json.Unmarshal(raw, &head); err != nil || head.ResourceType+"/"+head.ID != k {
				t.Fatalf("%s: head %+v %v", k, head, err)
			}
		}
	}
	// Unicode names survive.
	found := false
	for _, p := range srv.Patients() {
		if strings.ContainsAny(p.Name, "áéíóúñÁÉÍÓÚÑü") {
			found = true
		}
	}
	if !found {
		t.Error("no accented patient name: UTF-8 lost?")
	}
	if _, err := New(Config{Data: d, BaseTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("BaseTime conflicting with Data accepted")
	}
}

func sharedOf(st *store, p *patientRec) []*resource {
	var out []*resource
	for _, k := range p.shared {
		out = append(out, st.shared[k])
	}
	return out
}

func TestLoadDataErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadData(dir, time.Time{}); err == nil {
		t.Error("empty folder accepted")
	}
	for name, content := range map[string]string{
		"truncated":  `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a"`,
		"no patient": `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]}`,
		"bad id":     `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a b"}}]}`,
		"not bundle": `{"resourceType":"Patient","id":"a"}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "patient-x.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadData(dir, time.Time{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A minimal valid folder, with meta missing, meta with a versionId, and pretty-printing.
	dir = t.TempDir()
	bundle := `{
  "resourceType": "Bundle", "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Zoë"], "family": "Test"}], "birthDate": "2000-01-02"}},
    {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "7"}, "subject": {"reference": "urn:uuid:p1"}}},
    {"fullUrl": "urn:uuid:o2", "resource": {"resourceType": "Observation", "id": "o2", "meta": {}, "subject": {"reference": "urn:uuid:p1"}, "note": [{"text": "say \"hi\" \u00e9"}]}}
  ]}`
	if err := os.WriteFile(filepath.Join(dir, "patient-p1.json"), []byte(bundle), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadData(dir, time.Date(2022, 2, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Data: d})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := srv.Patient("p1"); p.Name != "Zoë Test" || p.BirthDate != "2000-01-02" || p.Resources != 3 {
		t.Errorf("patient %+v", p)
	}
	for _, id := range []string{"o1", "o2"} {
		raw, _ := srv.Resource("Observation", id)
		var r struct {
			Meta struct {
				VersionID   string `json:"versionId"`
				LastUpdated string `json:"lastUpdated"`
			} `json:"meta"`
			Subject struct{ Reference string } `json:"subject"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("%s: %v: %s", id, err, raw)
		}
		if r.Meta.VersionID != "1" || r.Meta.LastUpdated != "2022-02-02T00:00:00.000Z" || r.Subject.Reference != "Patient/p1" {
			t.Errorf("%s: %s", id, raw)
		}
	}
	raw, _ := srv.Resource("Patient", "p1")
	if !bytes.HasPrefix(raw, []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"`)) {
		t.Errorf("Patient without meta: %s", raw)
	}
}

func TestModifyRemoveAdd(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	var condID string
	for k := range facts.keys {
		if id, ok := strings.CutPrefix(k, "Condition/"); ok {
			condID = id
		}
	}
	h.clock.Advance(time.Minute)
	if err := h.srv.Modify("Condition", condID, func(m map[string]any) {
		m["clinicalStatus"] = map[string]any{"text": "resolved"}
		m["id"] = "hijack"
	}); err != nil {
		t.Fatal(err)
	}
	raw, _ := h.srv.Resource("Condition", condID)
	var c struct {
		ID             string `json:"id"`
		ClinicalStatus struct{ Text string }
		Meta           struct{ VersionID, LastUpdated string }
	}
	_ = json.Unmarshal(raw, &c)
	if c.ID != condID || c.ClinicalStatus.Text != "resolved" || c.Meta.VersionID != "2" || c.Meta.LastUpdated != "2025-03-01T12:01:00.000Z" {
		t.Errorf("modified: %+v", c)
	}
	if err := h.srv.Touch("Condition", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Touch unknown: %v", err)
	}

	// Remove.
	if err := h.srv.Remove("Condition", condID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := h.get(t, tok.AccessToken, "/Condition/"+condID); resp.StatusCode != 404 {
		t.Errorf("read removed: %d", resp.StatusCode)
	}
	keys, _, _ := h.fetchAll(t, tok.AccessToken, "/Condition?patient="+facts.patientID+"&_count=2")
	if len(keys) != facts.counts["Condition"]-1 || slices.Contains(keys, "Condition/"+condID) {
		t.Errorf("after remove: %v", keys)
	}
	if err := h.srv.Remove("Patient", facts.patientID); err == nil {
		t.Error("removing a Patient accepted")
	}

	// Add to an existing patient, with a urn:uuid reference inside the batch.
	h.clock.Advance(time.Minute)
	err := h.srv.AddResources(facts.patientID,
		json.RawMessage(`{"resourceType":"Encounter","id":"enc-new","subject":{"reference":"urn:uuid:`+facts.patientID+`"}}`),
		json.RawMessage(`{"resourceType":"Observation","id":"obs-new","encounter":{"reference":"urn:uuid:enc-new"},"subject":{"reference":"Patient/`+facts.patientID+`"}}`),
		json.RawMessage(`{"resourceType":"Location","id":"loc-new","name":"Ward 3"}`))
	if err != nil {
		t.Fatal(err)
	}
	keys, _, _ = h.fetchAll(t, tok.AccessToken, "/Patient/"+facts.patientID+"/$everything?_since=2025-03-01T12:02:00Z")
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"Encounter/enc-new", "Location/loc-new", "Observation/obs-new"}) {
		t.Errorf("$everything after add: %v", keys)
	}
	_, body := h.get(t, tok.AccessToken, "/Observation/obs-new")
	if !strings.Contains(string(body), `"reference":"Encounter/enc-new"`) {
		t.Errorf("urn:uuid not resolved: %s", body)
	}
	// Replacing bumps the version.
	if err := h.srv.AddResources(facts.patientID, json.RawMessage(`{"resourceType":"Observation","id":"obs-new","status":"final"}`)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := h.get(t, tok.AccessToken, "/Observation/obs-new"); resp.Header.Get("ETag") != `W/"2"` {
		t.Errorf("replaced: etag %q", resp.Header.Get("ETag"))
	}
	// A new patient needs its Patient resource; errors leave nothing behind.
	before := len(h.srv.Patients())
	for name, batch := range map[string][]json.RawMessage{
		"no Patient":     {json.RawMessage(`{"resourceType":"Observation","id":"x1"}`)},
		"wrong Patient":  {json.RawMessage(`{"resourceType":"Patient","id":"someone-else"}`)},
		"no id":          {json.RawMessage(`{"resourceType":"Patient","id":"new-p"}`), json.RawMessage(`{"resourceType":"Observation"}`)},
		"bad JSON":       {json.RawMessage(`{"resourceType":"Patient","id":"new-p"`)},
		"foreign record": {json.RawMessage(`{"resourceType":"Patient","id":"new-p"}`), json.RawMessage(`{"resourceType":"Condition","id":"` + condIDOf(t, readFacts(t, otherPatientFile)) + `"}`)},
	} {
		if err := h.srv.AddResources("new-p", batch...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if len(h.srv.Patients()) != before {
		t.Error("a failed AddResources created a patient")
	}
	if err := h.srv.AddResources("new-p",
		json.RawMessage(`{"resourceType":"Observation","id":"np-o1","subject":{"reference":"Patient/new-p"}}`),
		json.RawMessage(`{"resourceType":"Patient","id":"new-p","name":[{"given":["Ada"],"family":"New"}]}`)); err != nil {
		t.Fatal(err)
	}
	p, ok := h.srv.Patient("new-p")
	if !ok || p.Name != "Ada New" || p.Resources != 2 {
		t.Errorf("new patient %+v", p)
	}
	tok2 := h.connect(t, "new-p", fullScope)
	keys, _, _ = h.fetchAll(t, tok2.AccessToken, "/Patient/new-p/$everything")
	if !slices.Equal(keys, []string{"Patient/new-p", "Observation/np-o1"}) {
		t.Errorf("new patient's $everything: %v", keys)
	}
}

// TestChangeAfterSearchFrozenClock: with a clock that does not move, a change made after a
// search is still newer than that search's Bundle.meta.lastUpdated.
func TestChangeAfterSearchFrozenClock(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	_, body := h.get(t, tok.AccessToken, "/Condition?patient="+facts.patientID+"&_count=1")
	var b struct {
		Meta struct{ LastUpdated string } `json:"meta"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Meta.LastUpdated != "2025-03-01T12:00:00.000Z" {
		t.Fatalf("Bundle.meta.lastUpdated %q %v", b.Meta.LastUpdated, err)
	}
	id := condIDOf(t, facts)
	if err := h.srv.Touch("Condition", id); err != nil {
		t.Fatal(err)
	}
	keys, _, _ := h.fetchAll(t, tok.AccessToken, "/Condition?patient="+facts.patientID+"&_lastUpdated=gt"+b.Meta.LastUpdated)
	if !slices.Equal(keys, []string{"Condition/" + id}) {
		t.Errorf("after a change at the same clock time: %v", keys)
	}
}

func condIDOf(t *testing.T, f bundleFacts) string {
	t.Helper()
	for k := range f.keys {
		if id, ok := strings.CutPrefix(k, "Condition/"); ok {
			return id
		}
	}
	t.Fatal("no Condition")
	return ""
}

// TestReplicatePatient: copies get fresh ids, references inside the copy point at the copy,
// shared references stay, and the result is searchable and changeable.
func TestReplicatePatient(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	const times = 3
	n, err := h.srv.ReplicatePatient(facts.patientID, "big", times)
	if err != nil {
		t.Fatal(err)
	}
	compartment := 0
	for typ, c := range facts.counts {
		if !IsSharedType(typ) && typ != "Patient" {
			compartment += c
		}
	}
	if n != 1+times*compartment {
		t.Fatalf("added %d, want %d", n, 1+times*compartment)
	}
	info, _ := h.srv.Patient("big")
	if info.Resources != n+facts.counts["Organization"]+facts.counts["Practitioner"] || info.Counts["Observation"] != times*facts.counts["Observation"] {
		t.Errorf("PatientInfo %+v", info)
	}
	tok := h.connect(t, "big", fullScope)
	keys, _, total := h.fetchAll(t, tok.AccessToken, "/Patient/big/$everything?_count=500")
	if total != info.Resources || len(keys) != total {
		t.Fatalf("$everything: total %d, %d keys, want %d", total, len(keys), info.Resources)
	}
	served := map[string]bool{}
	for _, k := range keys {
		if served[k] {
			t.Fatalf("%s twice", k)
		}
		served[k] = true
	}
	// Every reference in the copies resolves to a served resource, none to the source patient.
	refRe := []byte(`"reference":"`)
	for _, k := range keys {
		typ, id, _ := strings.Cut(k, "/")
		raw, _ := h.srv.Resource(typ, id)
		if IsSharedType(typ) {
			continue
		}
		if bytes.Contains(raw, []byte(facts.patientID)) {
			t.Fatalf("%s mentions the source patient: %s", k, raw)
		}
		for rest := raw; ; {
			i := bytes.Index(rest, refRe)
			if i < 0 {
				break
			}
			rest = rest[i+len(refRe):]
			ref := string(rest[:bytes.IndexByte(rest, '"')])
			if !strings.HasPrefix(ref, "#") && !served[ref] {
				t.Fatalf("%s references %s, which the patient does not have", k, ref)
			}
		}
		var head resourceHead
		if err := json.Unmarshal(raw, &head); err != nil || head.ID != id {
			t.Fatalf("%s: id %q %v", k, head.ID, err)
		}
	}
	// A copy can be touched and is then found incrementally.
	var obs string
	for _, k := range keys {
		if strings.HasPrefix(k, "Observation/") {
			obs = strings.TrimPrefix(k, "Observation/")
			break
		}
	}
	h.clock.Advance(time.Minute)
	if err := h.srv.Touch("Observation", obs); err != nil {
		t.Fatal(err)
	}
	got, _, _ := h.fetchAll(t, tok.AccessToken, "/Observation?patient=big&_lastUpdated=gt2025-03-01T12:00:00Z")
	if !slices.Equal(got, []string{"Observation/" + obs}) {
		t.Errorf("incremental after touching a copy: %v", got)
	}
	// Replicating again continues the numbering; replicating into the source works too.
	if _, err := h.srv.ReplicatePatient(facts.patientID, "big", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.ReplicatePatient(facts.patientID, facts.patientID, 1); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.srv.Patient(facts.patientID); p.Resources != len(facts.keys)+compartment {
		t.Errorf("source after self-replication: %d", p.Resources)
	}
	for _, bad := range []struct {
		src, dst string
		times    int
	}{{"nope", "x", 1}, {facts.patientID, "bad id", 1}, {facts.patientID, "x", 0}, {facts.patientID, strings.Repeat("a", 60), 1}} {
		if _, err := h.srv.ReplicatePatient(bad.src, bad.dst, bad.times); err == nil {
			t.Errorf("ReplicatePatient(%q, %q, %d) accepted", bad.src, bad.dst, bad.times)
		}
	}
	// The source patient's data is unchanged by replication.
	tokSrc := h.connect(t, facts.patientID, fullScope)
	if resp, _ := h.get(t, tokSrc.AccessToken, "/Observation?patient=big"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("source token on the copy: %d", resp.StatusCode)
	}
}

// BenchmarkEverything50k pages through $everything of a 50,000-resource patient with
// _count=1000 over loopback and reports resources/s of the sandbox (the client only reads the
// bytes and finds the next link, so the figure is the server's and the HTTP stack's).
func BenchmarkEverything50k(b *testing.B) {
	d := testData(b)
	srv, err := New(Config{Data: d})
	if err != nil {
		b.Fatal(err)
	}
	ts := newBenchServer(b, srv)
	src := readFacts(b, "patient-796796f6-3df3-4eab-a9fc-61c5746c0893.json") // the largest bundle
	per := 0
	for typ, c := range src.counts {
		if !IsSharedType(typ) && typ != "Patient" {
			per += c
		}
	}
	times := (50000 + per - 1) / per
	if _, err := srv.ReplicatePatient(src.patientID, "bench", times); err != nil {
		b.Fatal(err)
	}
	info, _ := srv.Patient("bench")
	tok := benchToken(b, srv, ts, "bench")
	nextMarker := []byte(`"relation":"next","url":"`)
	var got, bytesRead int
	b.ResetTimer()
	for b.Loop() {
		got, bytesRead = 0, 0
		next := ts.URL + "/fhir/Patient/bench/$everything?_count=1000"
		for next != "" {
			req, _ := http.NewRequest(http.MethodGet, next, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("page: %d %v", resp.StatusCode, err)
			}
			bytesRead += len(body)
			got += bytes.Count(body, []byte(`"fullUrl":`))
			next = ""
			head := body[:min(len(body), 4096)]
			if i := bytes.Index(head, nextMarker); i >= 0 {
				rest := head[i+len(nextMarker):]
				next = string(rest[:bytes.IndexByte(rest, '"')])
			}
		}
	}
	if got != info.Resources {
		b.Fatalf("got %d resources, want %d", got, info.Resources)
	}
	b.ReportMetric(float64(got*b.N)/b.Elapsed().Seconds(), "resources/s")
	b.ReportMetric(float64(bytesRead*b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

func newBenchServer(b *testing.B, srv *Server) *httptest.Server {
	b.Helper()
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	if err := srv.SetBaseURL(ts.URL); err != nil {
		b.Fatal(err)
	}
	return ts
}

// benchToken signs in as patientID and returns an access token.
func benchToken(b *testing.B, srv *Server, ts *httptest.Server, patientID string) string {
	b.Helper()
	verifier, challenge := pkcePair("bench")
	q := url.Values{
		"response_type": {"code"}, "client_id": {DefaultClientID}, "redirect_uri": {testRedirect},
		"scope": {fullScope}, "state": {"s"}, "aud": {srv.FHIRBase()},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	loc, err := SignIn(context.Background(), nil, ts.URL+"/auth/authorize?"+q.Encode(), patientID, true)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.PostForm(ts.URL+"/auth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {testRedirect},
		"code_verifier": {verifier}, "client_id": {DefaultClientID},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		b.Fatalf("token: %v %q", err, tr.Error)
	}
	return tr.AccessToken
}
