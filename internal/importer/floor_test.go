package importer

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// floorImport is the storage floor of issue 17: read an NDJSON file value by value, check each
// with encoding/json (resourceType and id), and upsert (type, id, json) into one WITHOUT
// ROWID table in one transaction, on the same modernc driver with WAL and synchronous=FULL.
// Nothing any real import can skip (parsing, one durable transaction) and nothing more.
func floorImport(path, dbPath string) (int, error) {
	d, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	d.SetMaxOpenConns(1)
	if _, err := d.Exec(`CREATE TABLE IF NOT EXISTS floor(type TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY(type, id)) WITHOUT ROWID`); err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tx, err := d.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT INTO floor(type, id, json) VALUES (?,?,?) ON CONFLICT(type, id) DO UPDATE SET json = excluded.json`)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	// One JSON value after another (the replicated files keep each resource's own formatting,
	// so a value may span lines, as the importer's scanner allows).
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	n := 0
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			return n, fmt.Errorf("resource %d: %w", n+1, err)
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return n, fmt.Errorf("resource %d: %w", n+1, err)
		}
		if head.ResourceType == "" || head.ID == "" {
			return n, fmt.Errorf("resource %d: no resourceType or id", n+1)
		}
		if _, err := st.Exec(head.ResourceType, head.ID, string(raw)); err != nil {
			return n, err
		}
		n++
	}
	return n, tx.Commit()
}

// BenchmarkImportVsFloor (issue 17): the importer against the storage floor on the same NDJSON
// file (the shared bulk export replicated with fresh ids to FASTEN_BENCH_RESOURCES) in the same run, alternating, two rounds; reports importer/floor (the importer's speed as
// a share of the floor's: 1 is as fast as the floor) for each round.
func BenchmarkImportVsFloor(b *testing.B) {
	n := benchSize()
	path := bulkFile(b, n)
	st, _ := os.Stat(path)
	mb := float64(st.Size()) / 1e6
	b.ResetTimer()
	for round := 1; round <= 2; round++ {
		d := freshDB(b)
		im := New(records.New(d), nil, Limits{})
		start := time.Now()
		res, err := im.Import(context.Background(), []Input{{Name: filepath.Base(path), Path: path}}, Options{})
		imp := time.Since(start)
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		got, err := floorImport(path, filepath.Join(b.TempDir(), "floor.db"))
		floor := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if got != res.Resources {
			b.Fatalf("the floor stored %d resources, the importer %d", got, res.Resources)
		}
		b.ReportMetric(floor.Seconds()/imp.Seconds(), fmt.Sprintf("importer/floor-round%d", round))
		b.Logf("round %d: %d resources, %.0f MB: importer %.1fs (%.0f res/s), floor %.1fs (%.0f res/s): importer/floor ratio %.2f",
			round, got, mb, imp.Seconds(), float64(got)/imp.Seconds(), floor.Seconds(), float64(got)/floor.Seconds(), floor.Seconds()/imp.Seconds())
	}
}
