package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func newEnv(t testing.TB) (*Importer, *records.Store) {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := records.New(d)
	testDBs.Store(st, d)
	return New(st, nil, Limits{}), st
}

// testDBs maps a test's store to its database, for checks below the store (integrity, pragmas).
var testDBs sync.Map

func dbOf(st *records.Store) *db.DB {
	d, _ := testDBs.Load(st)
	return d.(*db.DB)
}

func data(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func inputs(paths ...string) []Input {
	var in []Input
	for _, p := range paths {
		in = append(in, Input{Name: filepath.Base(p), Path: p})
	}
	return in
}

// plainCounts counts resources by type the plain way: encoding/json over the whole file (a
// Bundle's entries, or every NDJSON line that has a resourceType).
func plainCounts(t testing.TB, files ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
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
			ResourceType string
			Entry        []struct{ Resource struct{ ResourceType string } }
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			t.Fatal(err)
		}
		if bundle.ResourceType != "Bundle" {
			out[bundle.ResourceType]++
		}
		for _, e := range bundle.Entry {
			out[e.Resource.ResourceType]++
		}
	}
	return out
}

// distinctCounts counts distinct Type/id per file (a file that holds two versions of one resource
// holds one record), summed over files.
func distinctCounts(t testing.TB, files ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range files {
		seen := map[string]bool{}
		err := fhir.Scan(context.Background(), mustOpen(t, f), f, fhir.Options{ContinueOnInvalid: true}, func(e *fhir.Entry) error {
			if e.ID == "" { // the importer gives every id-less resource its own id
				out[e.Type]++
				return nil
			}
			if e.Invalid == nil && e.Raw != nil && !seen[e.Type+"/"+e.ID] {
				seen[e.Type+"/"+e.ID] = true
				out[e.Type]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func mustOpen(t testing.TB, f string) *os.File {
	t.Helper()
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

func glob(t testing.TB, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("no files for %s", pattern)
	}
	sort.Strings(m)
	return m
}

func rowCount(t testing.TB, st *records.Store) (resources, sources, codes int) {
	t.Helper()
	r := dbOf(st).Read
	r.QueryRow(`SELECT count(*) FROM resources`).Scan(&resources)
	r.QueryRow(`SELECT count(*) FROM sources`).Scan(&sources)
	r.QueryRow(`SELECT count(*) FROM resource_codes`).Scan(&codes)
	return
}

func sameCounts(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: types differ: got %v want %v", what, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s: got %d, plain JSON count %d", what, k, got[k], v)
		}
	}
}

func TestImportSyntheaAndBulkMatchPlainCounts(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	synthea := glob(t, data(t, shareddata.Synthea, "*.json"))
	bulk := glob(t, data(t, shareddata.BulkNDJSON, "*.ndjson"))

	// All Synthea files in one import: one transaction, one source per file.
	res, err := im.Import(ctx, inputs(synthea...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := plainCounts(t, synthea...)
	sameCounts(t, "synthea result", res.Counts, want)
	all, _ := st.Counts(ctx, records.Filter{})
	sameCounts(t, "synthea stored", all, want)
	if len(res.Sources) != len(synthea) {
		t.Fatalf("%d sources for %d files", len(res.Sources), len(synthea))
	}
	for i, fr := range res.Sources {
		got, _ := st.Counts(ctx, records.Filter{SourceID: fr.SourceID})
		sameCounts(t, fr.File, got, plainCounts(t, synthea[i]))
		src, _ := st.GetSource(ctx, fr.SourceID)
		if src.Name != filepath.Base(synthea[i]) || src.Kind != "manual" {
			t.Errorf("source %d: %+v", fr.SourceID, src)
		}
	}
	if res.Added != 9005 || res.Unchanged != 0 {
		t.Errorf("added %d unchanged %d", res.Added, res.Unchanged)
	}

	// The bulk export: its 13 resource files plus the export log.
	res2, err := im.Import(ctx, inputs(bulk...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantBulk := plainCounts(t, bulk...)
	sameCounts(t, "bulk result", res2.Counts, wantBulk)
	all, _ = st.Counts(ctx, records.Filter{})
	for k, v := range wantBulk {
		want[k] += v
	}
	sameCounts(t, "everything stored", all, want)
	if len(res2.Warnings) == 0 || !strings.Contains(strings.Join(res2.Warnings, "\n"), "log.ndjson is a bulk-export log") {
		t.Errorf("warnings: %v", res2.Warnings)
	}

	// References: every urn:uuid and every conditional reference whose target is in the import is
	// now Type/id, and that target exists.
	checkRefs(t, st)
}

// checkRefs walks every stored resource's references.
func checkRefs(t *testing.T, st *records.Store) {
	t.Helper()
	rows, err := dbOf(st).Read.Query(`SELECT type, fhir_id, raw FROM resources`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[string]bool{}
	var all []struct{ ref, raw string }
	for rows.Next() {
		var typ, id, raw string
		rows.Scan(&typ, &id, &raw)
		have[typ+"/"+id] = true
		all = append(all, struct{ ref, raw string }{typ + "/" + id, raw})
	}
	local, dangling := 0, 0
	for _, r := range all {
		err := fhir.Scan(context.Background(), strings.NewReader(r.raw), r.ref, fhir.Options{}, func(e *fhir.Entry) error {
			for _, ref := range e.Refs {
				switch {
				case strings.HasPrefix(ref.Value, "urn:uuid:"):
					dangling++ // allowed only when the target was never in the import; checked below
				case strings.Contains(ref.Value, "?identifier="):
					t.Errorf("%s: conditional reference %s left unresolved", r.ref, ref.Value)
				case strings.HasPrefix(ref.Value, "#"):
				default:
					if !have[ref.Value] {
						t.Errorf("%s: reference %s points at nothing in the source", r.ref, ref.Value)
					}
					local++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if dangling != 0 {
		t.Errorf("%d urn:uuid references left although every target was imported", dangling)
	}
	if local < 10000 {
		t.Errorf("only %d resolved references", local)
	}
}

func TestReimportIsIdempotentAndKeepsTheSource(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	files := glob(t, data(t, shareddata.Synthea, "patient-1*.json"))
	first, err := im.Import(ctx, inputs(files...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r1, s1, c1 := rowCount(t, st)
	second, err := im.Import(ctx, inputs(files...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2, s2, c2 := rowCount(t, st)
	if second.SourceID != first.SourceID || !second.ReusedSource {
		t.Errorf("re-import went to source %d (first %d), reused=%v", second.SourceID, first.SourceID, second.ReusedSource)
	}
	if r1 != r2 || s1 != s2 || c1 != c2 {
		t.Errorf("counts changed: resources %d->%d sources %d->%d codes %d->%d", r1, r2, s1, s2, c1, c2)
	}
	if second.Unchanged != first.Added || second.Added != 0 || second.Updated != 0 {
		t.Errorf("second import: %+v", second)
	}
	// Into a chosen source: the same rows, still no duplicates.
	third, err := im.Import(ctx, inputs(files[0]), Options{SourceID: first.SourceID})
	if err != nil {
		t.Fatal(err)
	}
	if r3, _, _ := rowCount(t, st); r3 != r1 || third.Added != 0 {
		t.Errorf("import into the chosen source added rows: %d -> %d (%+v)", r1, r3, third)
	}
}

// badCase is what we do with one of the FHIR validator's "bad" files.
type badCase struct {
	refuse string // the error code when refused
	accept string // why it is accepted: the validator's complaint is not one an importer checks
}

const (
	terminology = "terminology (wrong display, unknown code, value set binding): the importer keeps codes as written"
	profiles    = "profile, extension or invariant rule: the importer does not validate against StructureDefinitions"
	bundleRule  = "Bundle bookkeeping rule (fullUrl form, links, document references): every resource in it is well-formed and imported"
	content     = "element content rule (base64, sizes, dates, empty arrays, shapes): stored as written, shown as text"
	narrative   = "narrative XHTML rule: stored as written and shown only after sanitising (see the UI's DOMPurify policy)"
	unknownProp = "unknown JSON property: kept as written; the importer does not reject elements it does not interpret"
	references  = "reference target rule: unresolved references are kept as written"
)

var badCases = map[string]badCase{
	"bad-json-close-1":                         {refuse: fhir.CodeInvalidJSON},
	"bad-json-close-2":                         {refuse: fhir.CodeInvalidJSON},
	"bad-json-close-3":                         {refuse: fhir.CodeInvalidJSON},
	"contained-resource":                       {refuse: fhir.CodeInvalidID},
	"patient-id-bad-1":                         {refuse: fhir.CodeInvalidID},
	"patient-id-bad-2":                         {refuse: fhir.CodeInvalidID},
	"patient-id-bad-3":                         {refuse: fhir.CodeInvalidID},
	"resource-invalid-id-1":                    {refuse: fhir.CodeInvalidID},
	"resource-invalid-id-2":                    {refuse: fhir.CodeInvalidID},
	"resource-invalid-id-3":                    {refuse: fhir.CodeInvalidID},
	"resource-invalid-eid-2":                   {refuse: fhir.CodeTooLarge},
	"shc-file":                                 {refuse: fhir.CodeMissingResourceType},
	"xml-bad-entities":                         {refuse: fhir.CodeBOM},
	"attachment-with-invalid-binary":           {accept: content},
	"attachment-with-wrong-size":               {accept: content},
	"parameters-attachment":                    {accept: content},
	"ai4":                                      {accept: content},
	"empty-array":                              {accept: content},
	"synthea":                                  {accept: content},
	"bundle-document-versioned-references-bad": {accept: bundleRule},
	"bundle-duplicate-id":                      {accept: bundleRule},
	"med-example":                              {accept: bundleRule},
	"bundle-id-search-2":                       {accept: bundleRule},
	"ips-link":                                 {accept: bundleRule},
	"bundle-urn":                               {accept: profiles},
	"dr-example-org":                           {accept: profiles},
	"capstmt":                                  {accept: profiles},
	"sp-diff-type":                             {accept: profiles},
	"sp-diff-base":                             {accept: profiles},
	"sp-composite":                             {accept: profiles},
	"hakan-se":                                 {accept: profiles},
	"hakan-se-2":                               {accept: profiles},
	"pat-dob-ext":                              {accept: profiles},
	"target-ref-profile-empty":                 {accept: profiles},
	"pat-example-ext":                          {accept: profiles},
	"versioned-extension":                      {accept: profiles},
	"maiden-name":                              {accept: profiles},
	"risk-assessment-probability-range":        {accept: profiles},
	"bundle-ea-testcase":                       {accept: profiles},
	"ai7":                                      {accept: profiles},
	"ai8":                                      {accept: profiles},
	"Observation-ex-pain":                      {accept: profiles},
	"us-docref":                                {accept: terminology},
	"mr-covid-bnd1":                            {accept: terminology},
	"mni-patientOverview-bundle-example1":      {accept: terminology},
	"mni-patientOverview-bundle-example1b":     {accept: terminology},
	"bundle-duplicate-ids-not":                 {accept: terminology},
	"bundle-id-search-3":                       {accept: terminology},
	"bundle-id-search-4":                       {accept: terminology},
	"bundle-id-collection":                     {accept: terminology},
	"condition-extensions-on-pattern":          {accept: terminology},
	"uk-msg":                                   {accept: terminology},
	"no.gastronet":                             {accept: terminology},
	"mimic__encounter":                         {accept: terminology},
	"ips-nz-pj":                                {accept: terminology},
	"pat-security-bad-xhtml":                   {accept: narrative},
	"pat-security-bad-string":                  {accept: narrative},
	"bundle-with-contained":                    {accept: narrative},
	"ips-htmlrefs-backwards":                   {accept: narrative},
	"ips-htmlrefs-forwards":                    {accept: narrative},
	"json-comments":                            {accept: unknownProp},
	"ai3":                                      {accept: unknownProp},
	"dr-eh":                                    {accept: references},
	"parameters-reference-bad":                 {accept: references},
}

func TestValidatorBadCases(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	files := glob(t, data(t, shareddata.TestCases, "bad", "*.json"))
	seen := map[string]bool{}
	var report []string
	for _, f := range files {
		if strings.HasSuffix(f, ".expected-outcome.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		seen[name] = true
		c, ok := badCases[name]
		if !ok {
			t.Errorf("%s: not in the table; decide whether it is refused or accepted and why", name)
			continue
		}
		r0, s0, c0 := rowCount(t, st)
		res, err := im.Import(ctx, inputs(f), Options{})
		r1, s1, c1 := rowCount(t, st)
		if c.refuse != "" {
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Errorf("%s: want refused with %s, got %v", name, c.refuse, err)
				continue
			}
			if re.Err.Code != c.refuse {
				t.Errorf("%s: refused with %s (%v), want %s", name, re.Err.Code, err, c.refuse)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Base(f)+", line ") || !strings.Contains(msg, "column") {
				t.Errorf("%s: message does not name the position: %s", name, msg)
			}
			if r0 != r1 || s0 != s1 || c0 != c1 {
				t.Errorf("%s: refused import changed the database: resources %d->%d sources %d->%d codes %d->%d", name, r0, r1, s0, s1, c0, c1)
			}
			report = append(report, fmt.Sprintf("%-42s refused  %s", name, msg))
			continue
		}
		if err != nil {
			t.Errorf("%s: want accepted (%s), got %v", name, c.accept, err)
			continue
		}
		sameCounts(t, name, res.Counts, distinctCounts(t, f))
		report = append(report, fmt.Sprintf("%-42s accepted %s", name, c.accept))
	}
	for name := range badCases {
		if !seen[name] {
			t.Errorf("table lists %s but the folder does not have it", name)
		}
	}
	if testing.Verbose() {
		t.Log("\n" + strings.Join(report, "\n"))
	}
}

func TestValidatorGoodCasesAreAccepted(t *testing.T) {
	im, _ := newEnv(t)
	for _, f := range glob(t, data(t, shareddata.TestCases, "good", "*.json")) {
		if strings.HasSuffix(f, ".expected-outcome.json") {
			continue
		}
		res, err := im.Import(context.Background(), inputs(f), Options{})
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		sameCounts(t, filepath.Base(f), res.Counts, distinctCounts(t, f))
	}
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRefusedImportWritesNothingAndSkipInvalidListsEach(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	good := `{"resourceType":"Patient","id":"p1","name":[{"family":"Núñez"}]}`
	ndjson := good + "\n" +
		`{"resourceType":"Observation","id":"bad_id","subject":{"reference":"Patient/p1"}}` + "\n" +
		`{"resourceType":"Nonsense","id":"x"}` + "\n" +
		`{"resourceType":"Observation","id":"o2","code":{"text":"Glucose"},"subject":{"reference":"Patient/p1"}}` + "\n" +
		`{"resourceType":"Observation","id":"o3", this is not json` + "\n" +
		`{"resourceType":"Observation","id":"o4","subject":{"reference":"Patient/p1"}}` + "\n"
	f := writeFile(t, "mixed.ndjson", ndjson)
	_, err := im.Import(ctx, inputs(f), Options{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Err.Pos.Line != 2 || re.Err.Code != fhir.CodeInvalidID {
		t.Fatalf("want refused at line 2, got %v", err)
	}
	if r, s, _ := rowCount(t, st); r != 0 || s != 0 {
		t.Fatalf("refused import wrote %d resources, %d sources", r, s)
	}
	res, err := im.Import(ctx, inputs(f), Options{SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["Observation"] != 2 || res.Counts["Patient"] != 1 || res.SkippedTotal != 3 || len(res.Skipped) != 3 {
		t.Fatalf("counts %v skipped %+v", res.Counts, res.Skipped)
	}
	var lines []string
	for _, s := range res.Skipped {
		lines = append(lines, s.Code+"@"+s.Position[:strings.Index(s.Position, ",")])
	}
	if strings.Join(lines, " ") != "invalid_id@line 2 unknown_resource_type@line 3 invalid_json@line 5" {
		t.Fatalf("skipped: %v", lines)
	}
}

func TestDuplicatesPolicy(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	cases := []struct{ name, content string }{
		{"d.ndjson", `{"resourceType":"Patient","id":"p","gender":"male"}` + "\n" + `{"resourceType":"Patient","id":"p","gender":"female"}` + "\n"},
		{"b.json", `{"resourceType":"Bundle","type":"document","entry":[{"fullUrl":"http://x/Patient/q","resource":{"resourceType":"Patient","id":"q","meta":{"versionId":"1"},"gender":"male"}},{"fullUrl":"http://x/Patient/q","resource":{"resourceType":"Patient","id":"q","meta":{"versionId":"2"},"gender":"female"}}]}`},
	}
	for _, c := range cases {
		res, err := im.Import(ctx, inputs(writeFile(t, c.name, c.content)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := st.List(ctx, records.ListQuery{Type: "Patient", Filter: records.Filter{SourceID: res.SourceID}})
		if res.Counts["Patient"] != 1 || len(page.Items) != 1 || !strings.Contains(string(page.Items[0].Resource), "female") ||
			!strings.Contains(strings.Join(res.Warnings, " "), "more than once") {
			t.Fatalf("%s: counts %v warnings %v stored %v", c.name, res.Counts, res.Warnings, page.Items)
		}
	}
}

func TestTransactionEntriesGetStableIDs(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:5b2a8a9e-8a4f-4b51-9e58-0c0d2f5b1a11","resource":{"resourceType":"Patient","name":[{"family":"Ng"}]},"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"Weight"},"subject":{"reference":"urn:uuid:5b2a8a9e-8a4f-4b51-9e58-0c0d2f5b1a11"}},"request":{"method":"POST","url":"Observation"}},
	 {"request":{"method":"DELETE","url":"Patient/old"}}]}`
	f := writeFile(t, "tx.json", bundle)
	res, err := im.Import(ctx, inputs(f), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Get(ctx, "Patient", "5b2a8a9e-8a4f-4b51-9e58-0c0d2f5b1a11", res.SourceID)
	if err != nil {
		t.Fatalf("patient id from the urn:uuid fullUrl: %v", err)
	}
	var pr map[string]any
	json.Unmarshal(p.Resource, &pr)
	if pr["id"] != "5b2a8a9e-8a4f-4b51-9e58-0c0d2f5b1a11" {
		t.Fatalf("stored resource lacks its id: %s", p.Resource)
	}
	page, _ := st.List(ctx, records.ListQuery{Type: "Observation", Filter: records.Filter{SourceID: res.SourceID}})
	if len(page.Items) != 1 || !strings.Contains(string(page.Items[0].Resource), `"reference":"Patient/5b2a8a9e-8a4f-4b51-9e58-0c0d2f5b1a11"`) {
		t.Fatalf("observation: %+v", page.Items)
	}
	if !strings.Contains(strings.Join(res.Warnings, " "), "DELETE") {
		t.Errorf("warnings: %v", res.Warnings)
	}
	// Same file again: same ids, nothing new.
	res2, err := im.Import(ctx, inputs(f), Options{})
	if err != nil || res2.Added != 0 || res2.SourceID != res.SourceID {
		t.Fatalf("re-import %+v %v", res2, err)
	}
}

func zipOf(t testing.TB, entries map[string][]byte, method uint16) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "export.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(entries[n])
	}
	zw.Close()
	f.Close()
	return p
}

func TestZipGzipAndHostileArchives(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	files := glob(t, data(t, shareddata.Synthea, "patient-2*.json"))
	entries := map[string][]byte{"README.txt": []byte("not fhir"), "__MACOSX/._x.json": []byte("junk")}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		entries["export/"+filepath.Base(f)] = b
	}
	res, err := im.Import(ctx, inputs(zipOf(t, entries, zip.Deflate)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "zip", res.Counts, plainCounts(t, files...))

	// gzip-compressed NDJSON
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	b, _ := os.ReadFile(data(t, shareddata.BulkNDJSON, "Condition.000.ndjson"))
	zw.Write(b)
	zw.Close()
	gzf := writeFile(t, "Condition.ndjson.gz", gz.String())
	res, err = im.Import(ctx, []Input{{Name: "Condition.ndjson.gz", Path: gzf}}, Options{})
	if err != nil || res.Counts["Condition"] != 555 {
		t.Fatalf("gzip: %v %v", res, err)
	}

	before, _, _ := rowCount(t, st)
	// zip slip
	_, err = im.Import(ctx, inputs(zipOf(t, map[string][]byte{"../../etc/evil.json": []byte(`{"resourceType":"Patient","id":"x"}`)}, zip.Deflate)), Options{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Err.Code != "unsafe_zip_entry" {
		t.Fatalf("zip slip: %v", err)
	}
	// zip bomb: 100 MB of spaces around one resource compresses to about 100 KB (a ratio of
	// about 1000); the import stops after 16 MB of it.
	bomb := append([]byte(`{"resourceType":"Patient","id":"x","gender":"male"`), bytes.Repeat([]byte(" "), 100<<20)...)
	bomb = append(bomb, '}')
	_, err = im.Import(ctx, inputs(zipOf(t, map[string][]byte{"bomb.json": bomb}, zip.Deflate)), Options{})
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "zip bomb") {
		t.Fatalf("zip bomb: %v", err)
	}
	// too many entries
	small := New(st, nil, Limits{MaxZipEntries: 3})
	many := map[string][]byte{}
	for i := range 4 {
		many[fmt.Sprintf("p%d.json", i)] = []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"m%d"}`, i))
	}
	if _, err = small.Import(ctx, inputs(zipOf(t, many, zip.Store)), Options{}); !errors.As(err, &le) {
		t.Fatalf("entry limit: %v", err)
	}
	if after, _, _ := rowCount(t, st); after != before {
		t.Fatalf("hostile archives wrote rows: %d -> %d", before, after)
	}
}

func TestCancelRollsBack(t *testing.T) {
	im, st := newEnv(t)
	files := glob(t, data(t, shareddata.Synthea, "patient-*.json"))
	ctx, cancel := context.WithCancel(context.Background())
	_, err := im.Import(ctx, inputs(files...), Options{Progress: func(p Progress) {
		if p.Phase == "writing" && p.Resources > 500 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want canceled, got %v", err)
	}
	if r, s, c := rowCount(t, st); r+s+c != 0 {
		t.Fatalf("cancelled import left rows: %d %d %d", r, s, c)
	}
}

func TestDiskFullRollsBackAndNextImportWorks(t *testing.T) {
	ctx := context.Background()
	im, st := newEnv(t)
	small := glob(t, data(t, shareddata.Synthea, "patient-1*.json"))[:1]
	if _, err := im.Import(ctx, inputs(small...), Options{}); err != nil {
		t.Fatal(err)
	}
	r0, s0, _ := rowCount(t, st)
	// Cap the database file just above its current size: the next big import hits SQLITE_FULL,
	// exactly as a full disk does.
	w := dbOf(st).Write
	var pages int
	w.QueryRow(`PRAGMA page_count`).Scan(&pages)
	if _, err := w.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+50)); err != nil {
		t.Fatal(err)
	}
	_, err := im.Import(ctx, inputs(glob(t, data(t, shareddata.Synthea, "patient-*.json"))...), Options{})
	if !errors.Is(err, db.ErrDiskFull) || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("want a disk-full error, got %v", err)
	}
	if r, s, _ := rowCount(t, st); r != r0 || s != s0 {
		t.Fatalf("failed import changed counts: %d->%d, %d->%d", r0, r, s0, s)
	}
	if err := dbOf(st).IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	w.Exec(`PRAGMA max_page_count = 4294967294`)
	if _, err := im.Import(ctx, inputs(glob(t, data(t, shareddata.Synthea, "patient-2*.json"))...), Options{}); err != nil {
		t.Fatalf("next import after freeing space: %v", err)
	}
}

func TestProgressMovesAndEnds(t *testing.T) {
	im, _ := newEnv(t)
	var got []Progress
	files := glob(t, data(t, shareddata.Synthea, "patient-[1-4]*.json"))
	total := 0
	for _, n := range plainCounts(t, files...) {
		total += n
	}
	_, err := im.Import(context.Background(), inputs(files...), Options{Progress: func(p Progress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 {
		t.Fatalf("only %d progress reports", len(got))
	}
	last := got[len(got)-1]
	if last.Phase != "done" || last.Fraction != 1 || last.Resources != total {
		t.Fatalf("last report %+v", last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Fraction < got[i-1].Fraction {
			t.Fatalf("progress went backwards: %+v then %+v", got[i-1], got[i])
		}
	}
}
