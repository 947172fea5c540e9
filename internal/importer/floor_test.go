package importer

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
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

// TestFloorChild is the floor's own process for BenchmarkImportVsFloor (it does nothing in a
// normal test run): it imports FASTEN_FLOOR_FILE into FASTEN_FLOOR_DB and prints the count.
func TestFloorChild(t *testing.T) {
	path, dbPath := os.Getenv("FASTEN_FLOOR_FILE"), os.Getenv("FASTEN_FLOOR_DB")
	if path == "" || dbPath == "" {
		t.Skip("the floor's child process of BenchmarkImportVsFloor")
	}
	n, err := floorImport(path, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("floor-resources=%d\n", n)
}

// BenchmarkImportVsFloor (issue 17): the importer against the storage floor on the same NDJSON
// file (the shared bulk export replicated with fresh ids to FASTEN_BENCH_RESOURCES, default
// 200,000) in the same run, alternating, two rounds. Each side is a process of its own, timed
// from start to exit with its peak RSS as the kernel accounts it: the importer is the real
// command line (`fasten-desktop import --json` into an empty data folder: open, migrate, import,
// people, statistics, checkpoint at close), the floor this test binary running floorImport. It
// reports importer/floor (the floor's time over the importer's: 1 is as fast as the floor, 0.5
// twice its time) for each round.
func BenchmarkImportVsFloor(b *testing.B) {
	n := benchSize()
	path := bulkFile(b, n)
	st, _ := os.Stat(path)
	mb := float64(st.Size()) / 1e6
	bin := filepath.Join(b.TempDir(), "fasten-desktop")
	build := exec.Command("go", "build", "-o", bin, "../..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for round := 1; round <= 2; round++ {
		dir := b.TempDir()
		imp := exec.Command(bin, "import", "--data-dir", filepath.Join(dir, "data"), "--json", path)
		start := time.Now()
		out, err := imp.Output()
		impTime := time.Since(start)
		if err != nil {
			b.Fatalf("import: %v %s", err, out)
		}
		var res Result
		if err := json.Unmarshal(out, &res); err != nil {
			b.Fatalf("import --json: %v", err)
		}
		impRSS := peakRSSMiB(imp.ProcessState)
		os.RemoveAll(filepath.Join(dir, "data"))

		fl := exec.Command(self, "-test.run", "^TestFloorChild$", "-test.count", "1")
		fl.Env = append(os.Environ(), "FASTEN_FLOOR_FILE="+path, "FASTEN_FLOOR_DB="+filepath.Join(dir, "floor.db"))
		start = time.Now()
		fout, err := fl.Output()
		floorTime := time.Since(start)
		if err != nil {
			b.Fatalf("floor: %v %s", err, fout)
		}
		floorRSS := peakRSSMiB(fl.ProcessState)
		os.Remove(filepath.Join(dir, "floor.db"))
		var got int
		for _, line := range strings.Split(string(fout), "\n") {
			if v, ok := strings.CutPrefix(line, "floor-resources="); ok {
				got, _ = strconv.Atoi(v)
			}
		}
		if got != res.Resources {
			b.Fatalf("the floor stored %d resources, the importer %d", got, res.Resources)
		}
		ratio := floorTime.Seconds() / impTime.Seconds()
		b.ReportMetric(ratio, fmt.Sprintf("importer/floor-round%d", round))
		b.ReportMetric(impRSS, fmt.Sprintf("importer-peak-RSS-MiB-round%d", round))
		b.Logf("round %d: %d resources, %.0f MB: importer %.1fs (%.0f res/s, peak RSS %.0f MiB), floor %.1fs (%.0f res/s, peak RSS %.0f MiB): importer/floor ratio %.2f",
			round, got, mb, impTime.Seconds(), float64(got)/impTime.Seconds(), impRSS, floorTime.Seconds(), float64(got)/floorTime.Seconds(), floorRSS, ratio)
	}
}
