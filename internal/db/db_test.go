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

// A restore replaces the live WAL database's pages while the read pool is open: readers see the
// backup's rows afterwards, the file stays in WAL mode, intact, marked as ours, and writable.
func TestRestoreFromIntoLiveDatabase(t *testing.T) {
	d := open(t)
	ctx := context.Background()
	add := func(name string) {
		t.Helper()
		if err := d.WriteTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO sources(kind,name,created_at,updated_at) VALUES('manual',?,'t','t')`, name)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q *sql.DB) (n int) {
		t.Helper()
		if err := q.QueryRow("SELECT count(*) FROM sources").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	add("kept")
	dest := filepath.Join(t.TempDir(), "backup.db")
	if err := d.Backup(ctx, dest); err != nil {
		t.Fatal(err)
	}
	add("after the backup")
	add("and another")
	if count(d.Read) != 3 {
		t.Fatal("setup")
	}
	gen := d.Generation()
	if err := d.Hold(ctx, func(c *sql.Conn) error { return RestoreFrom(ctx, c, dest) }); err != nil {
		t.Fatal(err)
	}
	if d.Generation() == gen {
		t.Error("the generation did not move on after a restore")
	}
	if n := count(d.Read); n != 1 {
		t.Fatalf("readers see %d sources after the restore, want 1", n)
	}
	var mode string
	var app int32
	d.Write.QueryRow("PRAGMA journal_mode").Scan(&mode)
	d.Write.QueryRow("PRAGMA application_id").Scan(&app)
	if mode != "wal" || app != ApplicationID {
		t.Fatalf("after the restore: journal_mode %q, application_id %#x", mode, app)
	}
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	add("written after the restore")
	if n := count(d.Read); n != 2 {
		t.Fatalf("%d sources after a write, want 2", n)
	}
	// Reopened from the file: what was restored is on disk.
	d.Close()
	d2, err := Open(ctx, d.Path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if n := count(d2.Read); n != 2 {
		t.Fatalf("reopened: %d sources, want 2", n)
	}
}

// Another program's SQLite file (its own application id) is not opened as ours.
func TestForeignApplicationIDRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	o, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Exec("PRAGMA application_id = 1234; CREATE TABLE t(a)"); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if d, err := Open(context.Background(), path, Options{}); err == nil {
		d.Close()
		t.Fatal("opened another program's database")
	} else if !strings.Contains(err.Error(), "not a Fasten Desktop database") {
		t.Fatalf("error %v", err)
	}
}
