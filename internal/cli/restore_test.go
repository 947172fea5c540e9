package cli

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

func countResources(t *testing.T, data string) int {
	t.Helper()
	d, err := sql.Open("sqlite", "file:"+filepath.Join(data, "fasten.db")+"?mode=ro")
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

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin), Getenv: noEnv})
	return out.String(), errb.String(), code
}

// `restore FILE` checks the backup, shows it, asks, and only then replaces the records; the
// records from before are kept beside the database. A refused file changes nothing.
func TestRestoreCommand(t *testing.T) {
	data := t.TempDir()
	cliImport(t, data, syntheaFile(t, 0))
	backedUp := countResources(t, data)
	backup := filepath.Join(t.TempDir(), "family.db")
	if _, e, code := runCLI(t, "", "backup", "--data-dir", data, backup); code != 0 {
		t.Fatalf("backup: %s", e)
	}
	cliImport(t, data, syntheaFile(t, 1))
	changed := countResources(t, data)

	// Declined: nothing changes.
	out, e, code := runCLI(t, "n\n", "restore", "--data-dir", data, backup)
	if code != 0 || !strings.Contains(out, "family.db is a good backup (checked)") || !strings.Contains(out, "Nothing was changed.") {
		t.Fatalf("declined restore: exit %d\n%s\n%s", code, out, e)
	}
	if countResources(t, data) != changed {
		t.Fatal("a declined restore changed the records")
	}
	// No answer at all (not a terminal, no --yes): refused, nothing changes.
	if _, e, code := runCLI(t, "", "restore", "--data-dir", data, backup); code != 2 || !strings.Contains(e, "--yes") {
		t.Fatalf("restore without an answer: exit %d: %s", code, e)
	}
	// A file that is not a backup.
	junk := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 20), 0o600)
	if _, e, code := runCLI(t, "", "restore", "--yes", "--data-dir", data, junk); code != 1 || !strings.Contains(e, "notes.txt is not a Fasten backup") {
		t.Fatalf("restore of a text file: exit %d: %s", code, e)
	}
	if countResources(t, data) != changed {
		t.Fatal("a refused restore changed the records")
	}
	// Confirmed.
	out, e, code = runCLI(t, "y\n", "restore", "--data-dir", data, backup)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, e)
	}
	if got := countResources(t, data); got != backedUp {
		t.Fatalf("after the restore %d records, want the backup's %d", got, backedUp)
	}
	kept, _ := filepath.Glob(filepath.Join(data, "fasten-before-restore-*.db"))
	if len(kept) != 1 || !strings.Contains(out, kept[0]) {
		t.Fatalf("previous database kept as %v; output:\n%s", kept, out)
	}
	if n := countResourcesIn(t, kept[0]); n != changed {
		t.Fatalf("the kept previous database has %d records, want %d", n, changed)
	}
}

func countResourcesIn(t *testing.T, file string) int {
	t.Helper()
	dir := t.TempDir()
	b, _ := os.ReadFile(file)
	os.WriteFile(filepath.Join(dir, "fasten.db"), b, 0o600)
	return countResources(t, dir)
}

// While the app (here: serve's backend with its control socket) holds the folder, `restore` is
// done by it: its readers see the backup's records at once.
func TestRestoreCommandThroughTheApp(t *testing.T) {
	data := t.TempDir()
	cliImport(t, data, syntheaFile(t, 0))
	backedUp := countResources(t, data)
	backup := filepath.Join(t.TempDir(), "family.db")
	if _, e, code := runCLI(t, "", "backup", "--data-dir", data, backup); code != 0 {
		t.Fatalf("backup: %s", e)
	}
	cliImport(t, data, syntheaFile(t, 1))

	ctx := context.Background()
	b, err := backend.Open(ctx, backend.Options{DataDir: data, Getenv: noEnv, Keyring: secretstest.New()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.Run(runCtx) }()
	go func() { defer wg.Done(); RunControl(runCtx, b, func() {}) }()
	defer func() { stop(); wg.Wait(); b.Close() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := control.Dial(ctx, data); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no control socket")
		}
	}
	out, e, code := runCLI(t, "", "restore", "--yes", "--data-dir", data, backup)
	if code != 0 || !strings.Contains(out, "Restored family.db") {
		t.Fatalf("restore through the app: exit %d\n%s\n%s", code, out, e)
	}
	var n int
	if err := b.DB.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&n); err != nil || n != backedUp {
		t.Fatalf("the app sees %d records after the restore (%v), want %d", n, err, backedUp)
	}
	srcs, err := b.Store.ListSources(ctx, 0)
	if err != nil || len(srcs) != 1 || srcs[0].ResourceCount != backedUp {
		t.Fatalf("the app's sources after the restore: %+v %v", srcs, err)
	}
}
