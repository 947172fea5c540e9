//go:build unix

package gateway

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Issue 14 item 1 (gateway part): the SQLite files hold the ticket key and admin emails: 0600,
// and the directory the gateway creates 0700, whatever the umask.
func TestIssue14_1_GatewayFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "new", "state")
	db := filepath.Join(dir, "gw.db")
	e := newEnv(t, db, demoProviders("https://fhir.example.org/r4"))
	e.register("Ada", "ada@example.org")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("dir %s mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	// An existing world-readable database is tightened when opened.
	db2 := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(db2, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	newEnv(t, db2, demoProviders("https://fhir.example.org/r4"))
	if fi, _ := os.Stat(db2); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing database left at %v", fi.Mode().Perm())
	}
}
