package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

type env struct {
	srv   *Server
	store *records.Store
	db    *db.DB // below the store, for tests that set up rows by hand
	http  *httptest.Server
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := records.New(d)
	cfg := Config{Store: st, Importer: importer.New(st, nil, importer.Limits{}), Version: "test", SpoolDir: t.TempDir()}
	for _, m := range mutate {
		m(&cfg)
	}
	s := New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{srv: s, store: st, db: d, http: ts}
}

func (e *env) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(e.http.URL + Prefix + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func (e *env) upload(t *testing.T, files []string, fields map[string]string, hdr map[string]string) (int, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		for _, f := range files {
			w, _ := mw.CreateFormFile("file", filepath.Base(f))
			fh, err := os.Open(f)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			io.Copy(w, fh)
			fh.Close()
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest("POST", e.http.URL+Prefix+"/imports", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func data(t *testing.T, elem ...string) string {
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func glob(t *testing.T, pat string) []string {
	m, _ := filepath.Glob(pat)
	if len(m) == 0 {
		t.Fatalf("nothing matches %s", pat)
	}
	sort.Strings(m)
	return m
}

// plainCount counts resources in files the plain way: a Bundle's entries, NDJSON lines with a
// resourceType.
func plainCount(t *testing.T, files ...string) map[string]int {
	out := map[string]int{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.HasSuffix(f, ".ndjson") {
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 64<<20)
			for sc.Scan() {
				var r struct{ ResourceType string }
				if json.Unmarshal(sc.Bytes(), &r) == nil && r.ResourceType != "" {
					out[r.ResourceType]++
				}
			}
			continue
		}
		var bundle struct {
			Entry []struct{ Resource struct{ ResourceType string } }
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			t.Fatal(err)
		}
		for _, e := range bundle.Entry {
			out[e.Resource.ResourceType]++
		}
	}
	return out
}

func equalCounts(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestImportEverySharedFileOverHTTP(t *testing.T) {
	e := newEnv(t)
	synthea := glob(t, data(t, shareddata.Synthea, "*.json"))
	bulk := glob(t, data(t, shareddata.BulkNDJSON, "*.ndjson"))
	want := plainCount(t, append(append([]string{}, synthea...), bulk...)...)

	// Synthea one file per request; the bulk export in one request.
	for _, f := range synthea {
		code, body := e.upload(t, []string{f}, nil, nil)
		if code != 200 {
			t.Fatalf("%s: %d %s", f, code, body)
		}
		var res importer.Result
		json.Unmarshal(body, &res)
		equalCounts(t, filepath.Base(f), res.Counts, plainCount(t, f))
	}
	code, body := e.upload(t, bulk, nil, map[string]string{"X-Import-Id": "bulk-import-1"})
	if code != 200 {
		t.Fatalf("bulk: %d %s", code, body)
	}
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	equalCounts(t, "all counts", counts, want)

	var st ImportStatus
	if e.get(t, "/imports/bulk-import-1", &st) != 200 || st.State != "done" || st.Result == nil || st.Result.Resources != 7160 {
		t.Fatalf("import status %+v", st)
	}

	// Idempotent: the same files again change nothing and keep the sources.
	var before []records.Source
	e.get(t, "/sources", &before)
	for _, f := range synthea[:3] {
		code, body := e.upload(t, []string{f}, nil, nil)
		var res importer.Result
		json.Unmarshal(body, &res)
		if code != 200 || !res.ReusedSource || res.Added != 0 {
			t.Fatalf("re-import %s: %d %s", f, code, body)
		}
	}
	var after []records.Source
	e.get(t, "/sources", &after)
	e.get(t, "/resources/counts", &counts)
	equalCounts(t, "counts after re-import", counts, want)
	if len(after) != len(before) {
		t.Fatalf("sources %d -> %d", len(before), len(after))
	}
}

func TestRefusedUploadIsAnOperationOutcomeAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"bad-json-close-2.json", "resource-invalid-id-1.json", "xml-bad-entities.json"} {
		code, body := e.upload(t, []string{data(t, shareddata.TestCases, "bad", name)}, nil, nil)
		var oo struct {
			ResourceType string
			Issue        []struct {
				Diagnostics string
				Location    []string
				Details     struct{ Coding []struct{ Code string } }
			}
		}
		json.Unmarshal(body, &oo)
		if code != 400 || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 ||
			!strings.Contains(oo.Issue[0].Diagnostics, name+", line ") || len(oo.Issue[0].Location) != 1 || oo.Issue[0].Details.Coding[0].Code == "" {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	var srcs []records.Source
	e.get(t, "/sources", &srcs)
	if len(counts) != 0 || len(srcs) != 0 {
		t.Fatalf("refused uploads wrote %v %v", counts, srcs)
	}
	// skip_invalid imports the rest and lists what was skipped.
	f := filepath.Join(t.TempDir(), "mixed.ndjson")
	os.WriteFile(f, []byte(`{"resourceType":"Patient","id":"ok"}`+"\n"+`{"resourceType":"Patient","id":"not_ok"}`+"\n"), 0o600)
	code, body := e.upload(t, []string{f}, map[string]string{"skip_invalid": "true"}, nil)
	var res importer.Result
	json.Unmarshal(body, &res)
	if code != 200 || res.Counts["Patient"] != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Position, "line 2") {
		t.Fatalf("skip_invalid: %d %s", code, body)
	}
}

func TestUploadCap(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxUpload = 64 << 10 })
	code, body := e.upload(t, []string{data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")}, nil, nil)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too_large") {
		t.Fatalf("%d %s", code, body)
	}
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	if len(counts) != 0 {
		t.Fatalf("over-cap upload wrote %v", counts)
	}
	ents, _ := os.ReadDir(e.srv.cfg.SpoolDir)
	if len(ents) != 0 {
		t.Fatalf("spool not cleaned: %v", ents)
	}
}

func TestQueriesPagingAndSources(t *testing.T) {
	e := newEnv(t)
	f := data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	code, body := e.upload(t, []string{f}, nil, nil)
	if code != 200 {
		t.Fatal(string(body))
	}
	want := plainCount(t, f)

	// Page through every Observation, newest first, with a small limit.
	seen := map[string]bool{}
	last := "9999"
	cursor := ""
	for pages := 0; ; pages++ {
		var p records.Page
		if c := e.get(t, "/resources?type=Observation&limit=7&cursor="+cursor, &p); c != 200 {
			t.Fatalf("page %d: %d", pages, c)
		}
		for _, it := range p.Items {
			if seen[it.ID] {
				t.Fatalf("%s twice", it.ID)
			}
			seen[it.ID] = true
			if it.Date == nil || *it.Date > last {
				t.Fatalf("not sorted by date desc: %v after %s", it.Date, last)
			}
			last = *it.Date
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != want["Observation"] {
		t.Fatalf("paged %d observations, file has %d", len(seen), want["Observation"])
	}
	// Timeline: all types, with a type filter and a text filter.
	var tl records.Page
	e.get(t, "/timeline?types=Condition,Immunization&limit=500", &tl)
	if len(tl.Items) != want["Condition"]+want["Immunization"] {
		t.Fatalf("timeline %d items", len(tl.Items))
	}
	var q records.Page
	e.get(t, "/timeline?q=bronchitis", &q)
	for _, it := range q.Items {
		if !strings.Contains(strings.ToLower(string(it.Resource)), "bronchitis") {
			t.Fatalf("q filter returned %s", it.Title)
		}
	}
	var sr records.Page
	e.get(t, "/search?q=body%20height", &sr)
	if len(sr.Items) == 0 || !strings.Contains(sr.Items[0].Title, "Body Height") {
		t.Fatalf("search: %+v", sr.Items)
	}
	// Labs by code (the chart query).
	var lab records.Page
	e.get(t, "/resources?type=Observation&code=http://loinc.org|8302-2&sort=date", &lab)
	if len(lab.Items) == 0 {
		t.Fatal("no body heights by code")
	}
	// One resource, unknown ones, bad parameters.
	var it records.Item
	if c := e.get(t, "/resources/Observation/"+lab.Items[0].ID, &it); c != 200 || it.ID != lab.Items[0].ID {
		t.Fatalf("get one: %d %+v", c, it)
	}
	var eb ErrorBody
	if c := e.get(t, "/resources/Observation/nope", &eb); c != 404 || eb.Error.Code != "not_found" {
		t.Fatalf("missing: %d %+v", c, eb)
	}
	if c := e.get(t, "/resources?type=Nope", &eb); c != 400 || eb.Error.Code != "bad_request" {
		t.Fatalf("bad type: %d %+v", c, eb)
	}
	if c := e.get(t, "/resources?type=Observation&cursor=garbage!", &eb); c != 400 {
		t.Fatalf("bad cursor: %d", c)
	}
	if c := e.get(t, "/nothing/here", &eb); c != 404 || eb.Error.Code != "not_found" {
		t.Fatalf("unknown route: %d", c)
	}
	// Summary.
	var sum records.Summary
	e.get(t, "/summary", &sum)
	if sum.Patient == nil || len(sum.Vitals) == 0 || len(sum.Encounters) == 0 || sum.Counts["Observation"] != want["Observation"] {
		t.Fatalf("summary: patient %v vitals %d encounters %d", sum.Patient != nil, len(sum.Vitals), len(sum.Encounters))
	}
	// Rename, then delete with what went.
	var srcs []records.Source
	e.get(t, "/sources", &srcs)
	id := srcs[0].ID
	req, _ := http.NewRequest("PATCH", fmt.Sprintf("%s%s/sources/%d", e.http.URL, Prefix, id), strings.NewReader(`{"name":"Clínica Ñandú"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, _ := http.DefaultClient.Do(req)
	var renamed records.Source
	json.NewDecoder(resp.Body).Decode(&renamed)
	resp.Body.Close()
	if renamed.Name != "Clínica Ñandú" {
		t.Fatalf("rename: %+v", renamed)
	}
	req, _ = http.NewRequest("DELETE", fmt.Sprintf("%s%s/sources/%d", e.http.URL, Prefix, id), nil)
	resp, _ = http.DefaultClient.Do(req)
	var del struct {
		Deleted int
		Counts  map[string]int
	}
	json.NewDecoder(resp.Body).Decode(&del)
	resp.Body.Close()
	total := 0
	for _, n := range want {
		total += n
	}
	if del.Deleted != total {
		t.Fatalf("deleted %d of %d", del.Deleted, total)
	}
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	if len(counts) != 0 {
		t.Fatalf("left after delete: %v", counts)
	}
}

func TestExportRoundTrip(t *testing.T) {
	e := newEnv(t)
	files := glob(t, data(t, shareddata.Synthea, "patient-2*.json"))
	for _, f := range files {
		if c, b := e.upload(t, []string{f}, nil, nil); c != 200 {
			t.Fatal(string(b))
		}
	}
	resp, err := http.Get(e.http.URL + Prefix + "/export")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("headers %v", resp.Header)
	}
	out := filepath.Join(t.TempDir(), "export.json")
	fh, _ := os.Create(out)
	io.Copy(fh, resp.Body)
	fh.Close()
	resp.Body.Close()
	var bundle struct {
		ResourceType, Type string
		Entry              []json.RawMessage
	}
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &bundle); err != nil || bundle.Type != "collection" {
		t.Fatalf("export is not a collection Bundle: %v", err)
	}
	// Import the export into a fresh store: same counts.
	e2 := newEnv(t)
	if c, body := e2.upload(t, []string{out}, nil, nil); c != 200 {
		t.Fatalf("re-import of export: %s", body)
	}
	var c1, c2 map[string]int
	e.get(t, "/resources/counts", &c1)
	e2.get(t, "/resources/counts", &c2)
	equalCounts(t, "export round trip", c2, c1)
}

func TestImportCancel(t *testing.T) {
	e := newEnv(t)
	// A request whose body never finishes: cancel it through DELETE /imports/{id}.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		w, _ := mw.CreateFormFile("file", "slow.ndjson")
		w.Write([]byte(`{"resourceType":"Patient","id":"p"}` + "\n"))
		// keep the body open
	}()
	req, _ := http.NewRequest("POST", e.http.URL+Prefix+"/imports", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-Import-Id", "cancel-me-1")
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Wait until the server knows the import, then cancel it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st map[string]any
		if e.get(t, "/imports/cancel-me-1", &st) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the import never started")
		}
		runtime.Gosched()
	}
	dreq, _ := http.NewRequest("DELETE", e.http.URL+Prefix+"/imports/cancel-me-1", nil)
	resp, err := http.DefaultClient.Do(dreq)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("cancel: %v %v", resp, err)
	}
	resp.Body.Close()
	<-done
	pw.Close()
	var st ImportStatus
	e.get(t, "/imports/cancel-me-1", &st)
	if st.State != "cancelled" {
		t.Fatalf("state %+v", st)
	}
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	if len(counts) != 0 {
		t.Fatalf("cancelled import wrote %v", counts)
	}
}

// TestEveryRouteIsDocumented checks that every core route is in docs/openapi.yaml (the backend
// package checks the full route list, with every service wired, in both directions).
func TestEveryRouteIsDocumented(t *testing.T) {
	documented := DocumentedRoutes(t, "../../docs/openapi.yaml")
	e := newEnv(t)
	for _, r := range e.srv.Routes() {
		if k := r.Method + " " + r.Path; !documented[k] {
			t.Errorf("%s is served but not in docs/openapi.yaml", k)
		}
	}
}

// DocumentedRoutes reads the "METHOD /path" pairs under paths: in an OpenAPI YAML file.
func DocumentedRoutes(t testing.TB, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|post|put|patch|delete):\s*$`)
	inPaths := false
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "paths:") {
			inPaths = true
			continue
		}
		if !inPaths {
			continue
		}
		if m := pathRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := methodRE.FindStringSubmatch(line); m != nil && cur != "" {
			documented[strings.ToUpper(m[1])+" "+cur] = true
		}
	}
	if len(documented) < 15 {
		t.Fatalf("parsed only %d documented routes from %s", len(documented), file)
	}
	return documented
}
