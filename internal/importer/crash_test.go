//go:build unix

package importer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/replicate"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// The child side: import FASTEN_CRASH_FILE into FASTEN_CRASH_DB, then say so.
func TestMain(m *testing.M) {
	if os.Getenv("FASTEN_CRASH_CHILD") == "1" {
		ctx := context.Background()
		d, err := db.Open(ctx, os.Getenv("FASTEN_CRASH_DB"), db.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		st := records.New(d)
		f := os.Getenv("FASTEN_CRASH_FILE")
		if _, err := New(st, nil, Limits{}).Import(ctx, []Input{{Name: filepath.Base(f), Path: f}}, Options{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		d.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer d.Close()
	if err := d.IntegrityCheck(context.Background()); err != nil {
		t.Fatalf("after SIGKILL: %v", err)
	}
	var n, codes, fts int
	d.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&n)
	d.Read.QueryRow(`SELECT count(*) FROM resource_codes rc LEFT JOIN resources r ON r.id = rc.resource_id WHERE r.id IS NULL`).Scan(&codes)
	if codes != 0 {
		t.Fatalf("%d codes without their resource", codes)
	}
	// The full-text index must agree with the table.
	if _, err := d.Write.Exec(`INSERT INTO resources_fts(resources_fts, rank) VALUES('integrity-check', 1)`); err != nil {
		t.Fatalf("FTS integrity: %v", err)
	}
	d.Read.QueryRow(`SELECT count(*) FROM resources_fts`).Scan(&fts)
	if fts != n {
		t.Fatalf("FTS has %d rows for %d resources", fts, n)
	}
	var counted int
	d.Read.QueryRow(`SELECT coalesce(sum(n), 0) FROM resource_counts WHERE profile_id >= 0`).Scan(&counted)
	if counted != n {
		t.Fatalf("the counts table says %d for %d resources", counted, n)
	}
	return n
}

// TestSIGKILLDuringImport kills an importing child process at random points, at least 20 times:
// every time the database passes PRAGMA integrity_check and holds exactly the rows it held
// before, or exactly those plus the whole file.
func TestSIGKILLDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("under -race the re-executed child is several times slower and the race detector adds nothing to a crash test; `make test` runs this test without -race")
	}
	runs, perRun := 20, 5000
	if v := os.Getenv("FASTEN_CRASH_RUNS"); v != "" {
		runs, _ = strconv.Atoi(v)
	}
	files, _ := filepath.Glob(data(t, shareddata.Synthea, "patient-1*.json"))
	src, err := replicate.Load(context.Background(), files...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "fasten.db")
	rng := rand.New(rand.NewPCG(42, 7))

	child := func(k int) (*exec.Cmd, string) {
		f := filepath.Join(dir, fmt.Sprintf("run-%d.ndjson", k))
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.WriteNDJSONFrom(out, 1+k*perRun/len(src.Resources)+k, perRun, 0); err != nil {
			t.Fatal(err)
		}
		out.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FASTEN_CRASH_CHILD=1", "FASTEN_CRASH_DB="+dbPath, "FASTEN_CRASH_FILE="+f)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd, f
	}

	// One uninterrupted run measures how long an import takes here.
	cmd, f := child(0)
	startT := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child import: %v %s", err, out)
	}
	full := time.Since(startT)
	os.Remove(f)
	before := countRows(t, dbPath)
	if before != perRun {
		t.Fatalf("first import stored %d of %d", before, perRun)
	}
	killed, completed := 0, 0
	for k := 1; k <= runs; k++ {
		cmd, f := child(k)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(float64(full) * (0.05 + 1.1*rng.Float64()))
		timer := time.AfterFunc(delay, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		err := cmd.Wait()
		timer.Stop()
		after := countRows(t, dbPath)
		switch {
		case after == before:
			killed++
		case after == before+perRun:
			completed++
		default:
			t.Fatalf("run %d (killed after %v, exit %v): %d rows, want %d or %d", k, delay, err, after, before, before+perRun)
		}
		before = after
		os.Remove(f)
	}
	t.Logf("%d runs: %d killed before commit, %d completed; a full import takes %v", runs, killed, completed, full.Round(time.Millisecond))
	if killed < runs/3 {
		t.Fatalf("only %d of %d runs were interrupted: the kill points miss the import", killed, runs)
	}
}
