package db

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func open(t *testing.T) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenPragmas(t *testing.T) {
	d := open(t)
	ctx := context.Background()
	check := func(db *sql.DB, pragma, want string) {
		t.Helper()
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", pragma, got, want)
		}
	}
	for _, db := range []*sql.DB{d.Write, d.Read} {
		check(db, "journal_mode", "wal")
		check(db, "foreign_keys", "1")
		check(db, "synchronous", "2") // FULL
		check(db, "busy_timeout", "10000")
	}
	check(d.Read, "query_only", "1")
	var v int
	d.Write.QueryRow("PRAGMA user_version").Scan(&v)
	if v != SchemaVersion() || v < 1 {
		t.Fatalf("user_version %d, want %d", v, SchemaVersion())
	}
	if _, err := d.Read.Exec("CREATE TABLE x(a)"); err == nil {
		t.Fatal("read pool accepted a write")
	}
	st, err := os.Stat(d.Path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("db file mode %v %v", st.Mode(), err)
	}
}

func TestMigrationsAreIdempotentAndNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := d.Write.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(ctx, path, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("want newer-schema error, got %v", err)
	}
}

func TestWriteTxRollsBack(t *testing.T) {
	d := open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := d.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO sources(kind,name,created_at,updated_at) VALUES('manual','x','t','t')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var n int
	d.Read.QueryRow("SELECT count(*) FROM sources").Scan(&n)
	if n != 0 {
		t.Fatalf("rolled-back row visible: %d", n)
	}
	// Foreign keys are enforced.
	err = d.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO resources(source_id,type,fhir_id,hash,raw,created_at,updated_at) VALUES(42,'Patient','p',x'00','{}','t','t')`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Fatalf("want foreign key error, got %v", err)
	}
}

func TestConcurrentWritersQueue(t *testing.T) {
	d := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.WriteTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO sources(kind,name,created_at,updated_at) VALUES('manual',?,'t','t')`, i)
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	d.Read.QueryRow("SELECT count(*) FROM sources").Scan(&n)
	if n != 20 {
		t.Fatalf("got %d rows", n)
	}
}

func TestBackup(t *testing.T) {
	d := open(t)
	ctx := context.Background()
	d.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO sources(kind,name,created_at,updated_at) VALUES('manual','x','t','t')`)
		return err
	})
	dest := filepath.Join(t.TempDir(), "backup.db")
	if err := d.Backup(ctx, dest); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, dest, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n int
	b.Read.QueryRow("SELECT count(*) FROM sources").Scan(&n)
	if n != 1 {
		t.Fatalf("backup has %d sources", n)
	}
}

func TestPathWithSpacesAndUnicode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Application Support", "Fästen #1")
	d, err := Open(context.Background(), filepath.Join(dir, "f.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(filepath.Join(dir, "f.db")); err != nil {
		t.Fatalf("database not at the literal path: %v", err)
	}
}
