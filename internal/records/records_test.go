package records

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return New(d)
}

// put writes resources (raw JSON) into a new manual source and returns its id.
func put(t *testing.T, s *Store, raws ...string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = s.CreateSource(ctx, tx, NewSource{Kind: KindManual, Name: "test"}); err != nil {
			return err
		}
		w, err := s.NewWriter(ctx, tx, id, false)
		if err != nil {
			return err
		}
		defer w.Close()
		for _, raw := range raws {
			ix, err := fhir.IndexResource([]byte(raw))
			if err != nil {
				return err
			}
			if _, err := w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func obs(id, date, code, title, category string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","category":[{"coding":[{"code":%q}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":%q}`,
		id, category, code, title, date)
}

func TestKeysetPagingWithTiesVisitsEveryRowOnce(t *testing.T) {
	s := newStore(t)
	var raws []string
	for i := range 53 {
		date := fmt.Sprintf("2020-01-%02d", 1+i%5) // many rows share a date
		raws = append(raws, obs(fmt.Sprintf("o%02d", i), date, "1-1", "Test", "laboratory"))
	}
	raws = append(raws, `{"resourceType":"Observation","id":"nodate","status":"final","code":{"text":"Undated"}}`)
	put(t, s, raws...)
	for _, sort := range []string{"-date", "date", "title", "-title"} {
		seen := map[string]bool{}
		cur := ""
		for pages := 0; pages < 100; pages++ {
			p, err := s.List(context.Background(), ListQuery{Type: "Observation", Sort: sort, Cursor: cur, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range p.Items {
				if seen[it.ID] {
					t.Fatalf("%s: %s twice", sort, it.ID)
				}
				seen[it.ID] = true
			}
			if cur = p.NextCursor; cur == "" {
				break
			}
		}
		if len(seen) != 54 {
			t.Fatalf("%s: visited %d of 54", sort, len(seen))
		}
	}
	// Undated records come last, newest first.
	p, _ := s.Timeline(context.Background(), TimelineQuery{Limit: 500})
	if last := p.Items[len(p.Items)-1]; last.ID != "nodate" || last.Date != nil {
		t.Fatalf("last item %s %v", last.ID, last.Date)
	}
	if _, err := s.List(context.Background(), ListQuery{Type: "Observation", Sort: "price"}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("unknown sort: %v", err)
	}
}

func TestSearchQueriesAreSafe(t *testing.T) {
	s := newStore(t)
	put(t, s, obs("a", "2020-01-01", "2339-0", "Glucose", "laboratory"), obs("b", "2020-01-02", "718-7", "Hemoglobin", "laboratory"))
	for _, q := range []string{`"`, `glu*`, `NEAR(a b)`, `a OR`, `'); DROP TABLE resources; --`, `(`, `^`, `glucose AND`, strings.Repeat("x ", 500)} {
		if _, err := s.Search(context.Background(), q, Filter{}, "", 10); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
	p, _ := s.Search(context.Background(), "gluc", Filter{}, "", 10)
	if len(p.Items) != 1 || p.Items[0].ID != "a" {
		t.Fatalf("prefix search: %+v", p.Items)
	}
	p, _ = s.Search(context.Background(), "2339", Filter{}, "", 10) // codes are searchable
	if len(p.Items) != 1 {
		t.Fatalf("code search: %+v", p.Items)
	}
}

func TestSummaryLatestPerCode(t *testing.T) {
	s := newStore(t)
	put(t, s,
		obs("h1", "2019-01-01", "8302-2", "Body Height", "vital-signs"),
		obs("h2", "2021-01-01", "8302-2", "Body Height", "vital-signs"),
		obs("w1", "2020-06-01", "29463-7", "Body Weight", "vital-signs"),
		obs("g1", "2020-06-01", "2339-0", "Glucose", "laboratory"),
		`{"resourceType":"Condition","id":"c1","clinicalStatus":{"coding":[{"code":"active"}]},"code":{"text":"Asthma"},"subject":{"reference":"Patient/p"}}`,
		`{"resourceType":"Condition","id":"c2","clinicalStatus":{"coding":[{"code":"resolved"}]},"code":{"text":"Flu"},"subject":{"reference":"Patient/p"}}`,
		`{"resourceType":"Patient","id":"p","name":[{"given":["Ana"],"family":"Núñez"}]}`,
	)
	sum, err := s.Summary(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var vitals []string
	for _, v := range sum.Vitals {
		vitals = append(vitals, v.ID)
	}
	if strings.Join(vitals, ",") != "h2,w1" || len(sum.Labs) != 1 || len(sum.Conditions) != 1 || sum.Conditions[0].ID != "c1" {
		t.Fatalf("vitals %v labs %d conditions %+v", vitals, len(sum.Labs), sum.Conditions)
	}
	if !strings.Contains(string(sum.Patient), "Núñez") {
		t.Fatalf("patient %s", sum.Patient)
	}
}

func TestExportIsValidJSONWithAwkwardContent(t *testing.T) {
	s := newStore(t)
	src := put(t, s, `{"resourceType":"Patient","id":"p","name":[{"text":"Zoë \"Q\" </script> \u2028"}]}`)
	var b strings.Builder
	if err := s.Export(context.Background(), &b, Filter{SourceID: src}, "2026-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Type  string
		Entry []struct{ Resource map[string]any }
	}
	if err := json.Unmarshal([]byte(b.String()), &bundle); err != nil || len(bundle.Entry) != 1 {
		t.Fatalf("%v %s", err, b.String())
	}
}

func TestUnchangedPutWritesNothingAndChangedPutUpdates(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	src := put(t, s, obs("a", "2020-01-01", "1-1", "A", "laboratory"))
	outcomes := func(raw string) Outcome {
		var out Outcome
		err := s.WriteTx(ctx, func(tx *sql.Tx) error {
			w, err := s.NewWriter(ctx, tx, src, false)
			if err != nil {
				return err
			}
			defer w.Close()
			ix, _ := fhir.IndexResource([]byte(raw))
			out, err = w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if o := outcomes(obs("a", "2020-01-01", "1-1", "A", "laboratory")); o != Unchanged {
		t.Fatalf("same content: %v", o)
	}
	if o := outcomes(obs("a", "2020-02-02", "1-1", "A2", "laboratory")); o != Updated {
		t.Fatalf("changed content: %v", o)
	}
	p, _ := s.Search(ctx, "A2", Filter{}, "", 10)
	if len(p.Items) != 1 || *p.Items[0].Date != "2020-02-02" {
		t.Fatalf("update not visible: %+v", p.Items)
	}
	if c, _ := s.Counts(ctx, Filter{}); c["Observation"] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestSourceErrors(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.GetSource(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.DeleteSource(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	id := put(t, s, obs("a", "2020-01-01", "1-1", "A", "laboratory"))
	if _, err := s.RenameSource(ctx, id, "   "); err == nil {
		t.Fatal("blank name accepted")
	}
	if _, err := s.RenameSource(ctx, id, strings.Repeat("n", 201)); err == nil {
		t.Fatal("long name accepted")
	}
	if err := s.UpdateSource(ctx, 99, SourceUpdate{}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// TestCountsTableFollowsEveryChange: the trigger-kept counts equal a real count after inserts,
// updates of a row's person, and deleting a source, for every filter.
func TestCountsTableFollowsEveryChange(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a := put(t, s, obs("a1", "2020-01-01", "1-1", "A", "laboratory"), obs("a2", "2020-01-02", "1-2", "B", "vital-signs"),
		`{"resourceType":"Patient","id":"p"}`)
	b := put(t, s, obs("b1", "2020-01-01", "1-1", "A", "laboratory"))
	check := func(step string) {
		t.Helper()
		for _, f := range []Filter{{}, {SourceID: a}, {SourceID: b}, {ProfileID: 1}, {SourceID: a, ProfileID: 1}} {
			got, err := s.Counts(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var args []any
			rows, err := s.db.Read.Query(`SELECT type, count(*) FROM resources r WHERE 1=1`+f.where("r.", &args)+` GROUP BY type`, args...)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{}
			for rows.Next() {
				var typ string
				var n int
				rows.Scan(&typ, &n)
				want[typ] = n
			}
			rows.Close()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s, filter %+v: counts %v, real %v", step, f, got, want)
			}
		}
	}
	check("after inserts")
	s.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO profiles(id, name, created_at, updated_at) VALUES (1, 'Ana', 't', 't')`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE resources SET profile_id = 1 WHERE source_id = ?`, a)
		return err
	})
	check("after moving a source's records to a person")
	s.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE resources SET profile_id = NULL WHERE fhir_id = 'a2'`)
		return err
	})
	check("after unlinking one record")
	if _, err := s.DeleteSource(ctx, a); err != nil {
		t.Fatal(err)
	}
	check("after deleting a source")
	var left int
	s.db.Read.QueryRow(`SELECT count(*) FROM resource_counts WHERE source_id = ?`, a).Scan(&left)
	if left != 0 {
		t.Fatalf("%d count rows left for a deleted source", left)
	}
}

// TestWriterKeepsSearchIndexAndCounts: the Writer keeps the full-text index and the counts itself
// (migration 6 dropped the insert triggers): inserts, changed titles, a record moving to another
// person and a source's deletion all leave the index consistent (FTS5 integrity-check) and the
// counts equal to a real count.
func TestWriterKeepsSearchIndexAndCounts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	put1 := func(src int64, raw string, profile *int64) Outcome {
		t.Helper()
		var out Outcome
		err := s.WriteTx(ctx, func(tx *sql.Tx) error {
			w, err := s.NewWriter(ctx, tx, src, false)
			if err != nil {
				return err
			}
			defer w.Close()
			ix, _ := fhir.IndexResource([]byte(raw))
			out, err = w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: profile})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	search := func(q string) int {
		t.Helper()
		p, err := s.Search(ctx, q, Filter{}, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Items)
	}
	consistent := func(step string) {
		t.Helper()
		if _, err := s.db.Write.Exec(`INSERT INTO resources_fts(resources_fts, rank) VALUES('integrity-check', 1)`); err != nil {
			t.Fatalf("%s: search index: %v", step, err)
		}
		var fts, rows, counted int
		s.db.Read.QueryRow(`SELECT count(*) FROM resources_fts`).Scan(&fts)
		s.db.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&rows)
		s.db.Read.QueryRow(`SELECT coalesce(sum(n), 0) FROM resource_counts WHERE profile_id >= 0`).Scan(&counted)
		if fts != rows || counted != rows {
			t.Fatalf("%s: %d records, %d in the search index, counts say %d", step, rows, fts, counted)
		}
	}
	src := put(t, s, `{"resourceType":"Condition","id":"c1","code":{"text":"Acute bronchitis"},"subject":{"reference":"Patient/p"},"note":[{"text":"José Martínez"}]}`)
	if search("bronchitis") != 1 || search("jose") != 1 {
		t.Fatal("an inserted record is not found (by its title, or by a word without its accent)")
	}
	consistent("insert")
	if o := put1(src, `{"resourceType":"Condition","id":"c1","code":{"text":"Asthma"},"subject":{"reference":"Patient/p"}}`, nil); o != Updated {
		t.Fatalf("changed record: %v", o)
	}
	if search("bronchitis") != 0 || search("asthma") != 1 {
		t.Fatal("the search index still has the old title, or not the new one")
	}
	consistent("changed title")
	s.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO profiles(id, name, created_at, updated_at) VALUES (7, 'Ana', 't', 't')`)
		return err
	})
	seven := int64(7)
	if o := put1(src, `{"resourceType":"Condition","id":"c1","code":{"text":"Asthma, mild"},"subject":{"reference":"Patient/p"}}`, &seven); o != Updated {
		t.Fatalf("changed record: %v", o)
	}
	if c, _ := s.Counts(ctx, Filter{ProfileID: 7}); c["Condition"] != 1 {
		t.Fatalf("the record moved to person 7, counts say %v", c)
	}
	consistent("moved to a person")
	put1(src, `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"Pulse"}}`, &seven)
	if c, _ := s.Counts(ctx, Filter{ProfileID: 7}); c["Condition"] != 1 || c["Observation"] != 1 {
		t.Fatalf("counts of person 7: %v", c)
	}
	consistent("second record")
	if _, err := s.DeleteSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if search("asthma") != 0 || search("pulse") != 0 {
		t.Fatal("a deleted source's records are still found")
	}
	consistent("deleted source")
	if err := s.WriteTx(ctx, func(tx *sql.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := s.NewWriter(ctx, tx, src, false)
		return err
	})
	if err == nil {
		t.Fatal("a Writer outside Store.WriteTx (whose counts nobody would store) was allowed")
	}
}

func TestJSONReferences(t *testing.T) {
	raw := `{"resourceType":"Encounter","participant":[{"individual":{"reference" : "Practitioner/a1","display":"Dr A"}}],` +
		`"note":[{"text":"see \"reference\" books"}],"serviceProvider":{"reference":"Organization\/o\u00e9"},` +
		`"location":[{"location":{"reference":"Location/l1"}}],"reason":{"reference":42}}`
	got := strings.Join(jsonReferences([]byte(raw)), ",")
	if got != "Practitioner/a1,Organization/oé,Location/l1" {
		t.Fatalf("references %q", got)
	}
}
