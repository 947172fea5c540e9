//go:build unix

package restore

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

func TestMain(m *testing.M) {
	if os.Getenv("FASTEN_RESTORE_CHILD") == "1" {
		ctx := context.Background()
		d, err := db.Open(ctx, os.Getenv("FASTEN_RESTORE_DB"), db.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		p, err := PrepareFile(ctx, os.Getenv("FASTEN_RESTORE_FILE"), filepath.Dir(d.Path))
		if err == nil {
			_, err = Apply(ctx, d, p, Options{})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		d.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

// A restore killed at any moment (SIGKILL: copying the backup, keeping the previous records,
// replacing the pages) leaves a database that passes its integrity check and holds either all
// the records it had or exactly the backup's: never a mixture, never fewer.
func TestSIGKILLDuringRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("under -race the re-executed child is several times slower and the race detector adds nothing to a crash test; `make test` runs this test without -race")
	}
	e := newEnv(t)
	for _, f := range []string{"patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json", "patient-1037e006-916b-45e5-a7f6-33f3e3196e0b.json"} {
		e.importFile(t, "synthea-r4", f)
	}
	backup := e.backup(t)
	newCount := e.total(t)
	for _, f := range []string{"patient-139c7815-7842-419a-9f97-f406a66c06df.json", "patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json"} {
		e.importFile(t, "synthea-r4", f)
	}
	oldCount := e.total(t)
	e.db.Close()
	template := e.db.Path

	run := func(k int, kill time.Duration) (string, bool) {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("run-", k))
		os.MkdirAll(dir, 0o700)
		path := filepath.Join(dir, "fasten.db")
		copyFile(t, template, path)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FASTEN_RESTORE_CHILD=1", "FASTEN_RESTORE_DB="+path, "FASTEN_RESTORE_FILE="+backup)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		if kill > 0 {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("child: %v %s", err, out.String())
				}
			case <-time.After(kill):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				killed = true
			}
		} else if err := <-done; err != nil {
			t.Fatalf("child: %v %s", err, out.String())
		}
		return path, killed
	}
	start := time.Now()
	path, _ := run(0, 0)
	full := time.Since(start)
	if n := countIn(t, path); n != newCount {
		t.Fatalf("an uninterrupted restore left %d records, want the backup's %d", n, newCount)
	}
	rng := rand.New(rand.NewPCG(16, 7))
	killed, finished, old := 0, 0, 0
	for k := 1; k <= 12; k++ {
		at := time.Duration(float64(full) * (0.05 + 0.9*rng.Float64()))
		path, wasKilled := run(k, at)
		d, err := db.Open(context.Background(), path, db.Options{})
		if err != nil {
			t.Fatalf("run %d (killed after %v): the database does not open: %v", k, at, err)
		}
		if err := d.IntegrityCheck(context.Background()); err != nil {
			t.Fatalf("run %d (killed after %v): %v", k, at, err)
		}
		d.Close()
		// What the cut-off restore left is cleaned at the next start; the data folder then
		// holds the database and at most a complete copy of the previous records.
		CleanDir(filepath.Dir(path), filepath.Dir(path))
		ents, _ := os.ReadDir(filepath.Dir(path))
		for _, ent := range ents {
			if n := ent.Name(); n != "fasten.db" && n != "fasten.db-wal" && n != "fasten.db-shm" && !strings.HasPrefix(n, "fasten-before-restore-") {
				t.Errorf("run %d: left behind: %s", k, n)
			}
		}
		switch n := countIn(t, path); n {
		case newCount:
			finished++
		case oldCount:
			old++
		default:
			t.Fatalf("run %d (killed after %v): %d records, want %d (before) or %d (the backup's)", k, at, n, oldCount, newCount)
		}
		if wasKilled {
			killed++
		}
	}
	t.Logf("a restore takes %v; 12 runs: %d killed, %d ended with the backup's records, %d with the previous ones", full, killed, finished, old)
	if killed == 0 || old == 0 {
		t.Fatalf("no run was killed before the records were replaced (killed %d, previous kept %d): the test proves nothing", killed, old)
	}
}

func countIn(t *testing.T, path string) int {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(`SELECT count(*) FROM resources`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
