package people_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// env is a real SQLite file with the store, the importer and the people service.
type env struct {
	t      *testing.T
	db     *db.DB
	store  *records.Store
	im     *importer.Importer
	people *people.Service
	ctx    context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := records.New(d)
	return &env{t: t, db: d, store: st, im: importer.New(st, nil, importer.Limits{}), people: people.New(people.Options{Store: st}), ctx: ctx}
}

func dataPath(t testing.TB, elem ...string) string {
	t.Helper()
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// importFiles imports paths as one import.
func (e *env) importFiles(paths ...string) *importer.Result {
	e.t.Helper()
	var in []importer.Input
	for _, p := range paths {
		in = append(in, importer.Input{Name: filepath.Base(p), Path: p})
	}
	res, err := e.im.Import(e.ctx, in, importer.Options{})
	if err != nil {
		e.t.Fatalf("import %v: %v", paths, err)
	}
	return res
}

func (e *env) list() []people.Profile {
	e.t.Helper()
	ps, err := e.people.List(e.ctx, people.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// profileOf returns each stored record's person by type/id (0: not linked). Records stored
// twice (in two sources) must agree.
func (e *env) profileOf() map[string]int64 {
	e.t.Helper()
	rows, err := e.db.Read.Query(`SELECT type, fhir_id, profile_id FROM resources`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var t, id string
		var p sql.NullInt64
		if err := rows.Scan(&t, &id, &p); err != nil {
			e.t.Fatal(err)
		}
		k := t + "/" + id
		if old, ok := out[k]; ok && old != p.Int64 {
			e.t.Fatalf("%s is stored twice with different people (%d, %d)", k, old, p.Int64)
		}
		out[k] = p.Int64
	}
	return out
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Write.Exec(q, args...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Read.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// fileRecord is what the test reads from a file itself: a record and the patient it names.
type fileRecord struct {
	key     string // Type/id
	patient string // the Patient id it is about ("" for none); a Patient is about itself
	name    string // Patients: "Given Family" of the official name
}

type refDoc struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Subject      *struct {
		Reference string `json:"reference"`
	} `json:"subject"`
	Patient *struct {
		Reference string `json:"reference"`
	} `json:"patient"`
	Beneficiary *struct {
		Reference string `json:"reference"`
	} `json:"beneficiary"`
	Name json.RawMessage `json:"name"` // a string for an Organization, HumanNames for a Patient
}

func (d refDoc) record() fileRecord {
	r := fileRecord{key: d.ResourceType + "/" + d.ID}
	if d.ResourceType == "Patient" {
		r.patient = d.ID
		var names []struct {
			Use    string   `json:"use"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		}
		json.Unmarshal(d.Name, &names)
		for _, n := range names {
			if n.Use == "official" {
				r.name = strings.Join(append(append([]string{}, n.Given...), n.Family), " ")
			}
		}
		return r
	}
	for _, ref := range []*struct {
		Reference string `json:"reference"`
	}{d.Subject, d.Patient, d.Beneficiary} {
		if ref != nil && strings.HasPrefix(ref.Reference, "Patient/") {
			r.patient = strings.TrimPrefix(ref.Reference, "Patient/")
			break
		}
	}
	return r
}

// readNDJSON reads every record of an NDJSON file with the patient it names.
func readNDJSON(t testing.TB, path string) []fileRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []fileRecord
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var d refDoc
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d.ResourceType == "" { // the bulk export log
			continue
		}
		out = append(out, d.record())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// bulkFiles lists the bulk NDJSON resource files (not the export log), sorted.
func bulkFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(dataPath(t, shareddata.BulkNDJSON, "*.000.ndjson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("bulk files: %v %v", files, err)
	}
	sort.Strings(files)
	return files
}

func ptr(n int64) *int64 { return &n }
