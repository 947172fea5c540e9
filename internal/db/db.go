// Package db opens the app's SQLite database (modernc.org/sqlite, no cgo) the way the app needs
// it: WAL, synchronous=FULL, a busy timeout, foreign keys, BEGIN IMMEDIATE for every write
// transaction, one writer connection plus a pool of read-only connections, and the embedded
// numbered migrations applied in a transaction at open.
//
// synchronous=FULL (not NORMAL): with WAL, NORMAL can lose the last committed transactions on a
// power cut. An import is one large transaction, so FULL costs one extra fsync per commit, which is
// nothing next to the import itself; a user who was told "imported" must find the records there.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is the database: Write has exactly one connection (SQLite allows one writer at a time and a
// single connection makes writers queue in Go instead of spinning on SQLITE_BUSY), Read is a pool
// of query-only connections for the API.
type DB struct {
	Path  string
	Write *sql.DB
	Read  *sql.DB

	generation atomic.Uint64 // committed write transactions (WriteTx) since Open
}

// Generation counts the write transactions committed through WriteTx since Open: a value read
// before a query and still current afterwards means nothing was written in between, so what
// the query found may be kept (a cache of derived reads).
func (d *DB) Generation() uint64 { return d.generation.Load() }

// Options tune Open; the zero value is right for the app.
type Options struct {
	ReadConns   int // default: max(4, NumCPU)
	BusyTimeout int // milliseconds, default 10000
}

func dsn(path string, readOnly bool, busy int) string {
	q := url.Values{}
	// busy_timeout first so that the following pragmas already wait instead of failing.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	// Statement journals (every INSERT that fires the full-text trigger needs one) and sorts stay
	// in memory instead of temp files.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "cache_size(-16384)") // 16 MiB per reader
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "cache_size(-65536)") // 64 MiB: index inserts of a big import stay cached
	}
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and brings its schema up to date.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	if opt.ReadConns <= 0 {
		opt.ReadConns = max(4, runtime.NumCPU()) // the dashboard summary runs its reads side by side
	}
	if opt.BusyTimeout <= 0 {
		opt.BusyTimeout = 10000
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database folder: %w", err)
	}
	// Create the file private before SQLite does (SQLite would make it 0644 under umask 022);
	// the WAL and shared-memory files take its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	w, mode, err := openWriter(ctx, path, opt.BusyTimeout)
	if err != nil {
		return nil, err
	}
	d := &DB{Path: path, Write: w}
	if mode != "wal" {
		w.Close()
		return nil, fmt.Errorf("open database %s: journal mode is %q, want wal (is the folder on a network drive?)", path, mode)
	}
	if err := os.Chmod(path, 0o600); err != nil && runtime.GOOS != "windows" {
		w.Close()
		return nil, fmt.Errorf("restrict database file: %w", err)
	}
	if err := d.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// Planner statistics for every table that lacks them or changed a lot (bounded work).
	if err := d.optimize(ctx, true); err != nil {
		w.Close()
		return nil, err
	}
	// Start from a short WAL: a crash may have left a long one behind.
	if _, err := w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		w.Close()
		return nil, fmt.Errorf("checkpoint %s: %w", path, Explain(err))
	}
	r, err := sql.Open("sqlite", dsn(path, true, opt.BusyTimeout))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r.SetMaxOpenConns(opt.ReadConns)
	r.SetMaxIdleConns(opt.ReadConns)
	d.Read = r
	return d, nil
}

// Optimize refreshes the query planner's statistics where they are stale (after an import or a
// sync changed many rows). The work is bounded (analysis_limit), so it is cheap on any size.
// Without statistics SQLite can pick a poor index (the dashboard's immunization query took 26 ms
// instead of 1 ms on 200,000 records).
func (d *DB) Optimize(ctx context.Context) error { return d.optimize(ctx, false) }

func (d *DB) optimize(ctx context.Context, allTables bool) error {
	q := "PRAGMA optimize"
	if allTables {
		q = "PRAGMA optimize=0x10002" // also tables never queried on this connection
	}
	for _, stmt := range []string{"PRAGMA analysis_limit=400", q} {
		if _, err := d.Write.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("optimize %s: %w", d.Path, Explain(err))
		}
	}
	return nil
}

// Close checkpoints the WAL into the main file and closes every connection.
func (d *DB) Close() error {
	var errs []error
	if d.Read != nil {
		errs = append(errs, d.Read.Close())
	}
	if d.Write != nil {
		if err := d.optimize(context.Background(), false); err != nil {
			errs = append(errs, err)
		}
		if _, err := d.Write.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint at close: %w", err))
		}
		errs = append(errs, d.Write.Close())
	}
	return errors.Join(errs...)
}

// WriteTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it, or rolls back when fn
// fails, panics or ctx ends.
func (d *DB) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := d.Write.BeginTx(ctx, nil)
	if err != nil {
		return Explain(err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
		if err != nil {
			tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return Explain(err)
	}
	d.generation.Add(1)
	return nil
}

// ApplicationID is the SQLite header's application id of every Fasten Desktop database (and so of
// every backup): "FSTN".
const ApplicationID int32 = 0x4653544e

// Hold runs fn with the writer connection to itself: every WriteTx waits until fn returns. A
// restore copies the previous database aside and replaces it while holding it, so no write can
// fall between the two. The generation moves on afterwards (whatever was cached is stale).
func (d *DB) Hold(ctx context.Context, fn func(c *sql.Conn) error) error {
	c, err := d.Write.Conn(ctx)
	if err != nil {
		return Explain(err)
	}
	defer c.Close()
	defer d.generation.Add(1)
	return fn(c)
}

// RestoreFrom replaces the whole database, on c (from Hold), with the database file src, in one
// transaction of SQLite's backup API: every connection sees either the old or the new records,
// and a crash part way leaves the old ones. src must have the same page size (a WAL database
// cannot change its page size) and be at this binary's schema version.
func RestoreFrom(ctx context.Context, c *sql.Conn, src string) error {
	return c.Raw(func(dc any) error {
		r, ok := dc.(interface {
			NewRestore(string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("restore: the SQLite driver has no backup API")
		}
		b, err := r.NewRestore("file:" + (&url.URL{Path: src}).EscapedPath() + "?mode=ro")
		if err != nil {
			return fmt.Errorf("restore: open %s: %w", src, Explain(err))
		}
		_, err = b.Step(-1)
		if ferr := b.Finish(); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("restore: %w", Explain(err))
		}
		return ctx.Err()
	})
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must be 1, 2, 3... without gaps", m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// migrate brings the schema up to date in one write transaction (BEGIN IMMEDIATE), reading the
// schema version inside it: two processes opening a new database at once (the data folder's lock
// normally prevents that) queue on SQLite's write lock, and the second finds the work done.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return d.WriteTx(ctx, func(tx *sql.Tx) error {
		var cur int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
			return fmt.Errorf("read schema version: %w", Explain(err))
		}
		if cur > len(ms) {
			return fmt.Errorf("the database %s was written by a newer Fasten Desktop (schema %d, this one knows %d); update the app", d.Path, cur, len(ms))
		}
		// Mark the file as ours (the header's application id), so a restore can tell a Fasten
		// backup from any other SQLite file. Files from before this mark have 0 there.
		var app int32
		if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
			return fmt.Errorf("read application id: %w", Explain(err))
		}
		if app != ApplicationID {
			if app != 0 {
				return fmt.Errorf("%s is not a Fasten Desktop database (another program's SQLite file, application id %#x)", d.Path, uint32(app))
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
				return fmt.Errorf("mark database: %w", Explain(err))
			}
		}
		for _, m := range ms[cur:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, Explain(err))
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, Explain(err))
			}
		}
		return nil
	})
}

// openWriter opens the writer connection and reads its journal mode. Turning a new file into
// WAL (the DSN's journal_mode pragma) takes an exclusive lock that SQLite does not wait for with
// busy_timeout, so a second process opening the same new file at that moment gets SQLITE_BUSY:
// retry, with backoff, for as long as the busy timeout allows.
func openWriter(ctx context.Context, path string, busyMS int) (*sql.DB, string, error) {
	deadline := time.Now().Add(time.Duration(busyMS) * time.Millisecond)
	wait := 5 * time.Millisecond
	for {
		w, err := sql.Open("sqlite", dsn(path, false, busyMS))
		if err != nil {
			return nil, "", fmt.Errorf("open database %s: %w", path, err)
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		var mode string
		err = w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil {
			return w, mode, nil
		}
		w.Close()
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, "", fmt.Errorf("open database %s: %w", path, Explain(err))
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// ErrDiskFull is returned (wrapped) when SQLite could not write because the disk is full.
var ErrDiskFull error = &httpkit.Kind{Status: http.StatusInsufficientStorage, Code: "disk_full", Text: "the disk is full"}

// Explain turns SQLite error codes users can act on into clear, wrapped errors.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: free some space and try again (%v)", ErrDiskFull, err)
		case sqlite3.SQLITE_IOERR:
			if se.Code() == sqlite3.SQLITE_IOERR_WRITE || se.Code() == sqlite3.SQLITE_IOERR_FSYNC {
				return fmt.Errorf("could not write to the disk: %w", err)
			}
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("the database file is damaged: %w", err)
		case sqlite3.SQLITE_READONLY:
			return fmt.Errorf("the database file is read-only: %w", err)
		}
	}
	return err
}

// IntegrityCheck runs PRAGMA integrity_check and returns nil when it says "ok".
func (d *DB) IntegrityCheck(ctx context.Context) error {
	return CheckIntegrity(ctx, d.Write)
}

// CheckIntegrity runs PRAGMA integrity_check through q (any database, such as a backup being
// restored) and returns nil when it says "ok"; else the first problems it names.
func CheckIntegrity(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) error {
	rows, err := q.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return Explain(err)
	}
	defer rows.Close()
	var msgs []string
	n := 0
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return Explain(err)
		}
		if s == "ok" {
			continue
		}
		if n++; n <= 3 {
			msgs = append(msgs, s)
		}
	}
	if err := rows.Err(); err != nil {
		return Explain(err)
	}
	if n == 0 {
		return nil
	}
	if n > 3 {
		msgs = append(msgs, fmt.Sprintf("and %d more", n-3))
	}
	return fmt.Errorf("integrity check failed: %s", strings.Join(msgs, "; "))
}

// ErrExists is returned (wrapped) by Backup when the destination exists.
var ErrExists = errors.New("exists already; choose a new file name (a backup never overwrites a file)")

// Backup writes a consistent copy of the database to dest, which must not exist (not even as a
// dangling link): VACUUM INTO a private (0600) temporary file in the destination's folder, check
// it, fsync it, then link it to dest, which fails rather than replace anything that appeared
// meanwhile. The copy is 0600 whatever the umask: it holds every record.
func (d *DB) Backup(ctx context.Context, dest string) (err error) {
	return BackupOn(ctx, d.Write, dest)
}

// BackupOn is Backup through q: the DB's writer pool, or the connection Hold gave.
func BackupOn(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, dest string) (err error) {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s %w", dest, ErrExists)
	}
	dir := filepath.Dir(dest)
	// CreateTemp makes the file 0600; VACUUM INTO accepts an existing empty file and keeps its
	// mode, so the copy is never readable by others, not even for a moment.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	name := tmp.Name()
	if runtime.GOOS != "windows" {
		err = tmp.Chmod(0o600)
	}
	tmp.Close()
	defer func() {
		os.Remove(name)
		os.Remove(name + "-journal")
	}()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err = q.ExecContext(ctx, "VACUUM INTO ?", name); err != nil {
		return fmt.Errorf("backup: %w", Explain(err))
	}
	chk, err := sql.Open("sqlite", "file:"+(&url.URL{Path: name}).EscapedPath()+"?mode=ro")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	err = CheckIntegrity(ctx, chk)
	chk.Close()
	if err != nil {
		return fmt.Errorf("backup copy: %w", err)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// A hard link never replaces an existing path (rename would); the deferred Remove drops the
	// temporary name. Where links are not supported, a checked rename is the fallback.
	if err = os.Link(name, dest); err != nil {
		if _, lerr := os.Lstat(dest); lerr == nil {
			return fmt.Errorf("%s %w", dest, ErrExists)
		}
		if err = os.Rename(name, dest); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if df, derr := os.Open(dir); derr == nil {
		_ = df.Sync()
		df.Close()
	}
	return nil
}
