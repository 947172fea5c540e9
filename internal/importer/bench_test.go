package importer

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/replicate"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// Benchmarks for the import figures (run with `make bench`, or
// `go test -run '^$' -bench . -benchtime 1x ./internal/importer/`). FASTEN_BENCH_RESOURCES sets
// the data size (default 200,000 resources replicated from the Synthea set with fresh ids).

func benchSize() int {
	if v, err := strconv.Atoi(os.Getenv("FASTEN_BENCH_RESOURCES")); err == nil && v > 0 {
		return v
	}
	return 200000
}

// benchFile writes (once, cached under the temp dir) an NDJSON file of n replicated resources.
func benchFile(b *testing.B, n int) string {
	b.Helper()
	return replicatedFile(b, "synthea", n, data(b, shareddata.Synthea, "*.json"))
}

// bulkFile is benchFile for the shared bulk export (issue 17's data set): its NDJSON files
// replicated with fresh ids to n resources.
func bulkFile(b *testing.B, n int) string {
	b.Helper()
	return replicatedFile(b, "bulk", n, data(b, shareddata.BulkNDJSON, "*.000.ndjson"))
}

func replicatedFile(b *testing.B, name string, n int, pattern string) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "fasten-bench")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.ndjson", name, n))
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path
	}
	files, _ := filepath.Glob(pattern)
	src, err := replicate.Load(context.Background(), files...)
	if err != nil {
		b.Fatal(err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.WriteNDJSON(f, n, 0); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

func freshDB(b *testing.B) *db.DB {
	b.Helper()
	d, err := db.Open(context.Background(), filepath.Join(b.TempDir(), "fasten.db"), db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// rawRows prepares exactly the rows the importer stores (references resolved, index fields
// extracted), outside the timed part of the baseline.
func rawRows(b *testing.B, path string) []records.Row {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var rows []records.Row
	err = fhir.Scan(context.Background(), f, path, fhir.Options{}, func(e *fhir.Entry) error {
		ix, err := fhir.IndexResource(e.Raw)
		if err != nil {
			return err
		}
		rows = append(rows, records.Row{Type: e.Type, ID: e.ID, Raw: string(e.Raw), Index: ix})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return rows
}

// rawInsert is the baseline: the same rows with one prepared INSERT in one transaction into the
// same schema (its triggers keep the full-text index, as for the importer).
func rawInsert(b *testing.B, d *db.DB, rows []records.Row) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	err := d.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO sources(kind, name, status, created_at, updated_at) VALUES ('manual','raw','ok','t','t')`)
		if err != nil {
			return err
		}
		src, _ := res.LastInsertId()
		st, err := tx.Prepare(`INSERT INTO resources(source_id, type, fhir_id, version, last_updated, sort_date, title, status, category, code,
			patient_ref, profile_id, search_text, hash, raw, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rows {
			ix := r.Index
			if _, err := st.Exec(src, r.Type, r.ID, ix.VersionID, ix.LastUpdated, ix.Date, ix.Title, ix.Status, ix.Category, ix.Code,
				ix.Patient, nil, ix.Text, records.Hash(r.Raw), r.Raw, "t", "t"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkImportVsRaw imports the replicated file and, in the same run, inserts the same rows
// raw, and reports both rates and their ratio.
func BenchmarkImportVsRaw(b *testing.B) {
	n := benchSize()
	path := benchFile(b, n)
	st, _ := os.Stat(path)
	mb := float64(st.Size()) / 1e6
	rows := rawRows(b, path)
	b.ResetTimer()
	var imp, raw time.Duration
	for range b.N {
		d := freshDB(b)
		im := New(records.New(d), nil, Limits{})
		start := time.Now()
		res, err := im.Import(context.Background(), []Input{{Name: filepath.Base(path), Path: path}}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		imp += time.Since(start)
		if res.Added != len(rows) {
			b.Fatalf("imported %d of %d", res.Added, len(rows))
		}
		d.Close()
		d = freshDB(b)
		raw += rawInsert(b, d, rows)
		d.Close()
	}
	b.StopTimer()
	impS, rawS := imp.Seconds()/float64(b.N), raw.Seconds()/float64(b.N)
	b.ReportMetric(float64(len(rows))/impS, "import-res/s")
	b.ReportMetric(mb/impS, "import-MB/s")
	b.ReportMetric(float64(len(rows))/rawS, "raw-res/s")
	b.ReportMetric(rawS/impS, "import/raw")
	b.Logf("%d resources, %.0f MB: import %.1fs (%.0f res/s, %.1f MB/s), raw insert %.1fs (%.0f res/s): ratio %.2f",
		len(rows), mb, impS, float64(len(rows))/impS, mb/impS, rawS, float64(len(rows))/rawS, rawS/impS)
}

// BenchmarkQueries measures the dashboard summary, a timeline page (first and deep) and a search
// on the benchmark database, reporting p50 and p95 in milliseconds.
func BenchmarkQueries(b *testing.B) {
	n := benchSize()
	path := benchFile(b, n)
	dbPath := filepath.Join(os.TempDir(), "fasten-bench", fmt.Sprintf("synthea-%d.db", n))
	if _, err := os.Stat(dbPath); err != nil {
		d, err := db.Open(context.Background(), dbPath+".tmp", db.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := New(records.New(d), nil, Limits{}).Import(context.Background(), []Input{{Name: filepath.Base(path), Path: path}}, Options{}); err != nil {
			b.Fatal(err)
		}
		d.Close()
		os.Rename(dbPath+".tmp", dbPath)
		os.Remove(dbPath + ".tmp-wal")
		os.Remove(dbPath + ".tmp-shm")
	}
	d, err := db.Open(context.Background(), dbPath, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	st := records.New(d)
	ppl := people.New(people.Options{Store: st})
	ctx := context.Background()
	deep := ""
	{
		p, _ := st.Timeline(ctx, records.TimelineQuery{Limit: 50})
		for range 100 { // a cursor 100 pages in
			if p.NextCursor == "" {
				break
			}
			deep = p.NextCursor
			p, _ = st.Timeline(ctx, records.TimelineQuery{Limit: 50, Cursor: deep})
		}
	}
	queries := []struct {
		name string
		run  func() error
	}{
		{"summary", func() error { _, err := st.Summary(ctx, records.Filter{}); return err }},
		{"timeline", func() error { _, err := st.Timeline(ctx, records.TimelineQuery{Limit: 50}); return err }},
		{"timeline-deep", func() error { _, err := st.Timeline(ctx, records.TimelineQuery{Limit: 50, Cursor: deep}); return err }},
		{"timeline-type", func() error {
			_, err := st.Timeline(ctx, records.TimelineQuery{Limit: 50, Types: []string{"Immunization", "Condition"}})
			return err
		}},
		{"search", func() error { _, err := st.Search(ctx, "hemoglobin", records.Filter{}, "", 50); return err }},
		{"labs-by-code", func() error {
			_, err := st.List(ctx, records.ListQuery{Type: "Observation", Code: "http://loinc.org|4548-4", Limit: 200})
			return err
		}},
		// The household overview: every person with counts by type.
		{"people", func() error { _, err := ppl.List(ctx, people.ListOptions{Counts: true}); return err }},
		{"person", func() error {
			list, err := ppl.List(ctx, people.ListOptions{})
			if err == nil && len(list) > 0 {
				_, err = ppl.Get(ctx, list[0].ID)
			}
			return err
		}},
	}
	b.ResetTimer()
	for range b.N {
		for _, q := range queries {
			var ds []time.Duration
			for range 60 {
				start := time.Now()
				if err := q.run(); err != nil {
					b.Fatalf("%s: %v", q.name, err)
				}
				ds = append(ds, time.Since(start))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			p50, p95 := ds[len(ds)/2], ds[len(ds)*95/100]
			b.ReportMetric(float64(p50.Microseconds())/1000, q.name+"-p50-ms")
			b.ReportMetric(float64(p95.Microseconds())/1000, q.name+"-p95-ms")
		}
	}
}

// BenchmarkImportPeakRSS imports a large NDJSON file (FASTEN_BENCH_BYTES, default 1 GiB) with the
// real command-line binary in a child process and reports the child's peak resident memory as
// the kernel accounts it, with the throughput.
func BenchmarkImportPeakRSS(b *testing.B) {
	size := int64(1 << 30)
	if v, err := strconv.ParseInt(os.Getenv("FASTEN_BENCH_BYTES"), 10, 64); err == nil && v > 0 {
		size = v
	}
	dir := filepath.Join(os.TempDir(), "fasten-bench")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("big-%d.ndjson", size))
	if _, err := os.Stat(path); err != nil {
		files, _ := filepath.Glob(data(b, shareddata.Synthea, "*.json"))
		bulk, _ := filepath.Glob(data(b, shareddata.BulkNDJSON, "*.000.ndjson")) // not the export log
		src, err := replicate.Load(context.Background(), append(files, bulk...)...)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(path + ".tmp")
		if _, err := src.WriteNDJSON(f, 0, size); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Rename(path+".tmp", path)
	}
	st, _ := os.Stat(path)
	bin := filepath.Join(b.TempDir(), "fasten-desktop")
	build := exec.Command("go", "build", "-o", bin, "../..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(bin, "import", "--data-dir", b.TempDir(), "--json", path)
		start := time.Now()
		out, err := cmd.Output()
		el := time.Since(start)
		if err != nil {
			b.Fatalf("import: %v %s", err, out)
		}
		peak := peakRSSMiB(cmd.ProcessState)
		b.ReportMetric(peak, "peak-RSS-MiB")
		b.ReportMetric(float64(st.Size())/1e6/el.Seconds(), "MB/s")
		b.Logf("%.0f MB in %.1fs, peak RSS %.0f MiB", float64(st.Size())/1e6, el.Seconds(), peak)
	}
}

// BenchmarkImportPeakRSSSmall (issue 14.11): the CLI binary importing NDJSON files of 30,000,
// 300,000 and 3,000,000 small resources; reports the child's peak RSS for each. Memory must not
// grow with the number of resources beyond a few bytes per resource (16 for duplicate detection).
func BenchmarkImportPeakRSSSmall(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "fasten-desktop")
	build := exec.Command("go", "build", "-o", bin, "../..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("resources=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "small.ndjson")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			for i := range n {
				fmt.Fprintf(w, `{"resourceType":"Observation","id":"o%d","status":"final","code":{"text":"Pulse"},"valueQuantity":{"value":%d,"unit":"/min"}}`+"\n", i, 60+i%40)
			}
			w.Flush()
			f.Close()
			b.ResetTimer()
			for range b.N {
				cmd := exec.Command(bin, "import", "--data-dir", b.TempDir(), "--json", path)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("import: %v %s", err, out)
				}
				peak := peakRSSMiB(cmd.ProcessState)
				b.ReportMetric(peak, "peak-RSS-MiB")
				b.Logf("%d small resources: peak RSS %.0f MiB", n, peak)
			}
		})
	}
}

// benchSizes are the resource counts of BenchmarkImportPeakRSSSmall; FASTEN_BENCH_SMALL (a
// comma-separated list) replaces them.
func benchSizes() []int {
	v := os.Getenv("FASTEN_BENCH_SMALL")
	if v == "" {
		return []int{30_000, 300_000, 3_000_000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}
