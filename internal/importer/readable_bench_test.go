package importer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// BenchmarkReadable measures the issue-15 reads on the benchmark database (200,000 records in one
// source by default): a record's detail (references resolved, related records) for a visit, a
// result and a doctor, and a page of prescriptions titled through their Medication. p50/p95 ms.
func BenchmarkReadable(b *testing.B) {
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
	ctx := context.Background()
	pick := func(typ string) records.Item {
		p, err := st.List(ctx, records.ListQuery{Type: typ, Limit: 1})
		if err != nil || len(p.Items) == 0 {
			b.Fatalf("no %s: %v", typ, err)
		}
		return p.Items[0]
	}
	enc, obs, doc := pick("Encounter"), pick("Observation"), pick("Practitioner")
	detail := func(it records.Item) func() error {
		return func() error { _, err := st.Detail(ctx, it.Type, it.ID, it.SourceID); return err }
	}
	queries := []struct {
		name string
		run  func() error
	}{
		{"detail-visit", detail(enc)},
		{"detail-result", detail(obs)},
		{"detail-doctor", detail(doc)},
		{"prescriptions", func() error {
			_, err := st.List(ctx, records.ListQuery{Type: "MedicationRequest", Limit: 50})
			return err
		}},
	}
	b.ResetTimer()
	for range b.N {
		for _, q := range queries {
			var ds []time.Duration
			for range 20 {
				start := time.Now()
				if err := q.run(); err != nil {
					b.Fatalf("%s: %v", q.name, err)
				}
				ds = append(ds, time.Since(start))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, q.name+"-p50-ms")
			b.ReportMetric(float64(ds[len(ds)*95/100].Microseconds())/1000, q.name+"-p95-ms")
		}
	}
}
