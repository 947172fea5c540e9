//go:build unix

package db

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// TestIssue14_3_ConcurrentMigrations: six opens at once of a new database all succeed (the
// schema version is read inside the migration's write transaction) and migrate it once.
func TestIssue14_3_ConcurrentMigrations(t *testing.T) {
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "fasten.db")
		var wg sync.WaitGroup
		errs := make([]error, 6)
		start := make(chan struct{})
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := Open(context.Background(), path, Options{})
				if err == nil {
					err = d.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		d, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var v int
		d.Read.QueryRow("PRAGMA user_version").Scan(&v)
		if v != SchemaVersion() {
			t.Errorf("schema %d, want %d", v, SchemaVersion())
		}
		if err := d.IntegrityCheck(context.Background()); err != nil {
			t.Error(err)
		}
		d.Close()
	}
}

func backupTestDB(t *testing.T) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "fasten.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestIssue14_21_BackupRefusesDanglingSymlink: a backup onto any existing path, a dangling link
// included, is refused and the link is left as it was.
func TestIssue14_21_BackupRefusesDanglingSymlink(t *testing.T) {
	d := backupTestDB(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "backup.db")
	target := filepath.Join(dir, "elsewhere", "target.db")
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if err := d.Backup(context.Background(), link); err == nil {
		t.Fatal("backup replaced a dangling symlink")
	}
	if got, err := os.Readlink(link); err != nil || got != target {
		t.Fatalf("the link changed: %q %v", got, err)
	}
	// An existing file and a link to one are refused as well.
	file := filepath.Join(dir, "file.db")
	os.WriteFile(file, []byte("keep"), 0o600)
	if err := d.Backup(context.Background(), file); err == nil {
		t.Fatal("backup overwrote a file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("file changed")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestIssue14_1_BackupIsPrivate: the backup is 0600 whatever the umask (it holds every record).
func TestIssue14_1_BackupIsPrivate(t *testing.T) {
	d := backupTestDB(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dest := filepath.Join(t.TempDir(), "backup.db")
	if err := d.Backup(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v, want 0600", st.Mode().Perm())
	}
	chk, err := sql.Open("sqlite", "file:"+dest+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()
	if err := CheckIntegrity(context.Background(), chk); err != nil {
		t.Fatal(err)
	}
	// The live database, its WAL and shared memory file are private as well.
	for _, p := range []string{d.Path, d.Path + "-wal", d.Path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v", filepath.Base(p), st.Mode().Perm())
		}
	}
}
