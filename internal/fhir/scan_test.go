package fhir

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func dataPath(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type scanned struct {
	Type, ID, FullURL string
	Raw               string
	Refs              []Ref
	Invalid           *Error
	Pos               Position
}

func scanBytes(t testing.TB, name string, in []byte, opt Options) ([]scanned, error) {
	t.Helper()
	var out []scanned
	err := Scan(context.Background(), bytes.NewReader(in), name, opt, func(e *Entry) error {
		out = append(out, scanned{e.Type, e.ID, e.FullURL, string(e.Raw), append([]Ref(nil), e.Refs...), e.Invalid, e.Pos})
		return nil
	})
	return out, err
}

// countByJSON counts resources the plain way: decode the whole file with encoding/json.
func countByJSON(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var doc struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if strings.HasSuffix(path, ".ndjson") {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r struct{ ResourceType string }
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.ResourceType != "" {
				counts[r.ResourceType]++
			}
		}
		return counts
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ResourceType != "Bundle" {
		counts[doc.ResourceType]++
		return counts
	}
	for _, e := range doc.Entry {
		counts[e.Resource.ResourceType]++
	}
	return counts
}

func TestScanRealDataMatchesPlainJSONCounts(t *testing.T) {
	var files []string
	for _, pat := range []string{filepath.Join(shareddata.Synthea, "*.json"), filepath.Join(shareddata.BulkNDJSON, "*.ndjson")} {
		m, _ := filepath.Glob(dataPath(t, pat))
		files = append(files, m...)
	}
	if len(files) < 40 {
		t.Fatalf("expected the shared data, found %d files", len(files))
	}
	total := 0
	for _, f := range files {
		want := countByJSON(t, f)
		got := map[string]int{}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		err = Scan(context.Background(), fh, filepath.Base(f), Options{}, func(e *Entry) error {
			if !KnownType(e.Type) || !ValidID(e.ID) {
				t.Errorf("%s: %s/%s", e.Pos, e.Type, e.ID)
			}
			if !json.Valid(e.Raw) {
				t.Errorf("%s: captured bytes are not one JSON value", e.Pos)
			}
			for _, r := range e.Refs {
				var v string
				if err := json.Unmarshal(e.Raw[r.Start:r.End], &v); err != nil || v != r.Value {
					t.Fatalf("%s: reference span %q does not hold %q", e.Pos, e.Raw[r.Start:r.End], r.Value)
				}
			}
			got[e.Type]++
			return nil
		})
		fh.Close()
		if filepath.Base(f) == "log.ndjson" {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != CodeMissingResourceType || fe.Pos.Line != 1 {
				t.Errorf("log.ndjson: want missing_resource_type at line 1, got %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s: scanned %d, plain JSON count %d", filepath.Base(f), k, got[k], v)
			}
			total += v
		}
		if len(got) != len(want) {
			t.Errorf("%s: types %v vs %v", filepath.Base(f), got, want)
		}
	}
	if total < 16000 {
		t.Errorf("only %d resources in the shared data?", total)
	}
}

func TestScanFormats(t *testing.T) {
	pat := `{"resourceType":"Patient","id":"p1","name":[{"family":"Müller"}]}`
	obs := `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`
	cases := []struct {
		name, in string
		want     []string // Type/id in order
	}{
		{"single.json", pat, []string{"Patient/p1"}},
		{"x.ndjson", pat + "\n" + obs + "\n", []string{"Patient/p1", "Observation/o1"}},
		{"crlf.ndjson", pat + "\r\n" + obs + "\r\n\r\n", []string{"Patient/p1", "Observation/o1"}},
		{"bundle.json", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":` + pat + `},{"resource":` + obs + `}]}`, []string{"Patient/p1", "Observation/o1"}},
		// entry before resourceType: buffered and read again
		{"late.json", `{"type":"searchset","entry":[{"resource":` + pat + `},{"resource":` + obs + `}],"resourceType":"Bundle"}`, []string{"Patient/p1", "Observation/o1"}},
		// A Bundle line inside NDJSON is expanded too.
		{"mixed.ndjson", `{"resourceType":"Bundle","entry":[{"resource":` + obs + `}]}` + "\n" + pat, []string{"Observation/o1", "Patient/p1"}},
		// A List has "entry" too, but it is not a Bundle.
		{"list.json", `{"resourceType":"List","id":"l","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/p1"}}]}`, []string{"List/l"}},
		{"nested.json", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Bundle","id":"inner","type":"document"}}]}`, []string{"Bundle/inner"}},
		{"noid.json", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:abc","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`, []string{"Patient/"}},
	}
	for _, c := range cases {
		got, err := scanBytes(t, c.name, []byte(c.in), Options{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var ids []string
		for _, g := range got {
			ids = append(ids, g.Type+"/"+g.ID)
			if !json.Valid([]byte(g.Raw)) {
				t.Errorf("%s: raw not JSON: %s", c.name, g.Raw)
			}
		}
		if strings.Join(ids, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: got %v want %v", c.name, ids, c.want)
		}
	}
}

func TestScanHostileInput(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000)
	deepRes := `{"resourceType":"Basic","id":"b","extension":` + strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000) + `}`
	big := `{"resourceType":"Basic","id":"b","text":{"div":"` + strings.Repeat("x", 1<<20+10) + `"}}`
	bigData := `{"resourceType":"Binary","id":"b","contentType":"text/plain","data":"` + strings.Repeat("QUFB", 1<<19) + `"}`
	cases := []struct {
		name, in string
		code     string // "" = accepted
		line     int
	}{
		{"truncated", `{"resourceType":"Patient","id":"p1","name":[{"fam`, CodeInvalidJSON, 1},
		{"truncated-between", "{\"resourceType\":\"Patient\",\n\"id\":\"p1\",", CodeInvalidJSON, 2},
		{"bom", "\xef\xbb\xbf{\"resourceType\":\"Patient\",\"id\":\"p\"}", CodeBOM, 1},
		{"bad-utf8", "{\"resourceType\":\"Patient\",\"id\":\"p\",\n\"name\":[{\"family\":\"M\xfcller\"}]}", CodeInvalidUTF8, 2},
		{"trailing", `{"resourceType":"Patient","id":"p"} garbage`, CodeInvalidJSON, 1},
		{"trailing-comma", `{"resourceType":"Patient","id":"p",}`, CodeInvalidJSON, 1},
		{"deep-top", deep, CodeTooDeep, 1},
		{"deep-array", deepRes, CodeTooDeep, 1},
		{"dup-key", `{"resourceType":"Patient","id":"p","gender":"male","gender":"female"}`, CodeDuplicateKey, 1},
		{"dup-key-nested", `{"resourceType":"Patient","id":"p","name":[{"family":"a","family":"b"}]}`, CodeDuplicateKey, 1},
		{"no-type", `{"id":"p"}`, CodeMissingResourceType, 1},
		{"unknown-type", `{"resourceType":"Patiant","id":"p"}`, CodeUnknownResourceType, 1},
		{"bad-id", `{"resourceType":"Patient","id":"a_b"}`, CodeInvalidID, 1},
		{"id-not-string", `{"resourceType":"Patient","id":5}`, CodeInvalidID, 1},
		{"long-string", big, CodeTooLarge, 1},
		{"long-base64-data-ok", bigData, "", 0},
		{"control-char", "{\"resourceType\":\"Patient\",\"id\":\"p\",\"gender\":\"ma\x01le\"}", CodeInvalidJSON, 1},
		{"bad-escape", `{"resourceType":"Patient","id":"p","gender":"\q"}`, CodeInvalidJSON, 1},
		{"bad-number", `{"resourceType":"Observation","id":"o","valueInteger":01}`, CodeInvalidJSON, 1},
		{"array-top", `[{"resourceType":"Patient","id":"p"}]`, CodeNotAResource, 1},
		{"empty", "  \n", CodeInvalidJSON, 2},
		{"comment", "{\"resourceType\":\"Patient\", // hi\n\"id\":\"p\"}", CodeInvalidJSON, 1},
		{"contained-bad", `{"resourceType":"Condition","contained":[{"resourceType":"Nope","id":"x"}],"subject":{"reference":"#x"}}`, CodeUnknownResourceType, 1},
		{"bundle-entry-dup", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p","id":"q"}}]}`, CodeDuplicateKey, 1},
		{"bundle-level-dup", `{"resourceType":"Bundle","type":"collection","type":"batch","entry":[]}`, CodeDuplicateKey, 1},
	}
	for _, c := range cases {
		_, err := scanBytes(t, c.name+".json", []byte(c.in), Options{})
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: want accepted, got %v", c.name, err)
			}
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: want %s, got %v", c.name, c.code, err)
			continue
		}
		if fe.Code != c.code || fe.Pos.Line != c.line || !strings.Contains(fe.Error(), c.name+".json, line") {
			t.Errorf("%s: got code %s line %d (%v), want %s line %d", c.name, fe.Code, fe.Pos.Line, fe, c.code, c.line)
		}
	}
}

func TestScanBundleEntryPositions(t *testing.T) {
	in := "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[\n" +
		"{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"ok\"}},\n" +
		"{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"not ok\"}}\n]}"
	_, err := scanBytes(t, "b.json", []byte(in), Options{})
	var fe *Error
	if !errors.As(err, &fe) || fe.Pos.Entry != 1 || fe.Pos.Line != 3 || fe.Code != CodeInvalidID {
		t.Fatalf("got %v (%+v)", err, fe)
	}
	if !strings.Contains(fe.Error(), "entry 1") || fe.Resource != "Patient/not ok" {
		t.Fatalf("message %q resource %q", fe.Error(), fe.Resource)
	}
}

func TestScanContinueOnInvalid(t *testing.T) {
	in := `{"resourceType":"Patient","id":"a"}` + "\n" +
		`{"resourceType":"Patient","id":"b_bad"}` + "\n" +
		`{"resourceType":"Patient","id":"c", BROKEN` + "\n" +
		`{"resourceType":"Patient","id":"d"}` + "\n"
	got, err := scanBytes(t, "x.ndjson", []byte(in), Options{ContinueOnInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	var ok, bad []string
	for _, g := range got {
		if g.Invalid != nil {
			bad = append(bad, g.Invalid.Code+"@"+itoa(g.Invalid.Pos.Line))
		} else {
			ok = append(ok, g.ID)
		}
	}
	if strings.Join(ok, ",") != "a,d" || strings.Join(bad, ",") != "invalid_id@2,invalid_json@3" {
		t.Fatalf("ok=%v bad=%v", ok, bad)
	}
	// Without the option the first problem stops the scan.
	if _, err := scanBytes(t, "x.ndjson", []byte(in), Options{}); err == nil {
		t.Fatal("want an error")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestScanResourceSizeLimit(t *testing.T) {
	in := `{"resourceType":"Basic","id":"b","text":{"div":"` + strings.Repeat("y", 600<<10) + `"}}`
	_, err := scanBytes(t, "x.json", []byte(in), Options{MaxResourceBytes: 512 << 10})
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != CodeTooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestScanCancel(t *testing.T) {
	var sb strings.Builder
	for i := range 5000 {
		sb.WriteString(`{"resourceType":"Basic","id":"b` + itoa(i) + `"}` + "\n")
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Scan(ctx, strings.NewReader(sb.String()), "x.ndjson", Options{}, func(*Entry) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 5000 {
		t.Fatalf("err %v after %d", err, n)
	}
}

func TestValidIDMatchesRule(t *testing.T) {
	for _, id := range []string{"a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "", "a_b", "a b", "é", "a/b", "==", "1"} {
		if ValidID(id) != idRE.MatchString(id) {
			t.Errorf("%q: ValidID %v, rule %v", id, ValidID(id), idRE.MatchString(id))
		}
	}
	for _, typ := range []string{"Patient", "Observation", "ExplanationOfBenefit", "MedicinalProductUndesirableEffect", "VisionPrescription"} {
		if !KnownType(typ) {
			t.Errorf("%s unknown", typ)
		}
	}
	for _, typ := range []string{"Resource", "DomainResource", "patient", "Patient ", "Subscription2"} {
		if KnownType(typ) {
			t.Errorf("%s known", typ)
		}
	}
}

// FuzzScan: whatever the input, Scan must not panic, and anything it accepts as a single
// top-level value must be valid JSON to encoding/json too.
func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","id":"p"}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p","x":[1,2.5e3,true,null,"\u00e9"]}}]}`))
	f.Add([]byte("{\"resourceType\":\"Patient\",\"id\":\"p\"}\n{\"resourceType\":\"Basic\",\"id\":\"q\"}"))
	f.Add([]byte(`{"entry":[],"resourceType":"Bundle"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		err := Scan(context.Background(), bytes.NewReader(in), "f.json", Options{MaxDepth: 20}, func(e *Entry) error {
			n++
			if !json.Valid(e.Raw) && e.Raw != nil {
				t.Fatalf("emitted invalid JSON %q from %q", e.Raw, in)
			}
			return nil
		})
		if err == nil && n > 0 {
			dec := json.NewDecoder(bytes.NewReader(in))
			for {
				var v json.RawMessage
				if derr := dec.Decode(&v); derr != nil {
					if derr.Error() == "EOF" {
						break
					}
					t.Fatalf("Scan accepted %q but encoding/json says %v", in, derr)
				}
			}
		}
	})
}
