// Package restore puts a backup (a file written by `backup` or Settings → Backup) back in place
// of the current records, in three steps that a person can follow:
//
//  1. Prepare copies the chosen file into the data folder (the user's file is never changed),
//     checks the copy (an SQLite file, ours by its application id or, for files from before the
//     id, by its tables; a schema this binary knows; PRAGMA integrity_check), brings an older
//     schema up to date on the copy and summarises it: people, sources, records by kind.
//  2. The person looks at the summary and confirms (the window, the browser, or `restore`'s
//     prompt); Discard drops the copy instead.
//  3. Apply, holding the database's only writer: writes the current database beside it as
//     fasten-before-restore-<time>.db (checked, like a backup), replaces every page with the
//     copy's in one transaction of SQLite's backup API (a crash leaves the old records), and
//     marks every provider source as needing a new sign-in: tokens live in the system keyring and
//     are never in a backup.
//
// Syncs are paused around Apply (Options.Pause) so none writes a page of the old database into
// the new one; the sign-ins of the replaced provider sources leave the keyring (Options.Forget).
package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Why a file is refused. Each is wrapped with the file's name and what to do.
var (
	ErrNotBackup = &httpkit.Kind{Status: http.StatusUnprocessableEntity, Code: "not_a_backup", Text: "not a Fasten backup"}
	ErrDamaged   = &httpkit.Kind{Status: http.StatusUnprocessableEntity, Code: "damaged_backup", Text: "the backup is damaged"}
	ErrNewer     = &httpkit.Kind{Status: http.StatusUnprocessableEntity, Code: "newer_backup", Text: "the backup was made by a newer Fasten Desktop"}
)

// Summary is what a backup holds, shown before anything is replaced.
type Summary struct {
	Name   string `json:"name"` // the file's name as the person chose it
	Size   int64  `json:"size"`
	Schema int    `json:"schema"` // its schema version before it was brought up to date
	records.Contents
}

// Prepared is a checked copy of a backup in the data folder, waiting for confirmation.
type Prepared struct {
	Summary Summary
	path    string
}

// Discard removes the copy (nothing else changes).
func (p *Prepared) Discard() {
	if p != nil && p.path != "" {
		removeDB(p.path)
	}
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

// Prepare copies r (the backup, named name for messages) into dir, checks it and summarises it.
// Any refusal is one of ErrNotBackup, ErrDamaged, ErrNewer (wrapped, with the name), or an
// I/O error; nothing outside dir's temporary copy is touched.
func Prepare(ctx context.Context, r io.Reader, name, dir string) (_ *Prepared, err error) {
	f, err := os.CreateTemp(dir, ".restore-*.db")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	p := &Prepared{path: f.Name()}
	defer func() {
		if err != nil {
			p.Discard()
		}
	}()
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("restore: copy %s: %w", name, db.Explain(err))
	}
	schema, err := check(ctx, p.path, name)
	if err != nil {
		return nil, err
	}
	if err := samePageSize(ctx, p.path); err != nil {
		return nil, fmt.Errorf("restore %s: %w", name, err)
	}
	// Bring an older schema up to date on the copy (db.Open migrates, in one transaction), and
	// leave it checkpointed and closed.
	d, err := db.Open(ctx, p.path, db.Options{ReadConns: 1})
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", name, err)
	}
	p.Summary.Contents, err = records.ReadContents(ctx, d.Read)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", name, err)
	}
	p.Summary.Name, p.Summary.Size, p.Summary.Schema = name, n, schema
	return p, nil
}

// PrepareFile is Prepare for a file on disk.
func PrepareFile(ctx context.Context, path, dir string) (*Prepared, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("restore: %s is a folder; choose a backup file", path)
	}
	return Prepare(ctx, f, filepath.Base(path), dir)
}

const sqliteMagic = "SQLite format 3\x00"

// check says whether the file at path is a backup this binary can restore, and its schema.
func check(ctx context.Context, path, name string) (int, error) {
	head := make([]byte, 100)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	k, _ := io.ReadFull(f, head)
	f.Close()
	if k < len(head) || string(head[:16]) != sqliteMagic {
		return 0, fmt.Errorf("the file %s is %w (it is not a database file); choose a file written by Settings → Backup or the backup command", name, ErrNotBackup)
	}
	c, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer c.Close()
	damaged := func(err error) error {
		return fmt.Errorf("%w: %s cannot be read (%v); nothing was changed. Try another copy", ErrDamaged, name, err)
	}
	var app int32
	var version int
	if err := c.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return 0, damaged(err)
	}
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, damaged(err)
	}
	if app != db.ApplicationID {
		if app != 0 {
			return 0, fmt.Errorf("the file %s is %w (another program's database); nothing was changed", name, ErrNotBackup)
		}
		// Written before databases carried the application id: ours by its tables.
		var tables int
		err := c.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table'
			AND name IN ('profiles', 'sources', 'resources', 'resources_fts', 'sync_runs')`).Scan(&tables)
		if err != nil {
			return 0, damaged(err)
		}
		if tables != 5 || version < 1 {
			return 0, fmt.Errorf("the file %s is %w (a database of another program); nothing was changed", name, ErrNotBackup)
		}
	}
	if version > db.SchemaVersion() {
		return 0, fmt.Errorf("%w: %s has schema %d, this app knows %d; update Fasten Desktop, then restore it", ErrNewer, name, version, db.SchemaVersion())
	}
	if err := db.CheckIntegrity(ctx, c); err != nil {
		return 0, fmt.Errorf("%w: %s did not pass its check (%v); nothing was changed. Try another copy", ErrDamaged, name, err)
	}
	return version, nil
}

// samePageSize rewrites the copy with the app's page size when it has another (the backup API
// cannot change a WAL database's page size): the copy is in rollback mode, so VACUUM can.
func samePageSize(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	var size int
	if err := c.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return db.Explain(err)
	}
	if size == pageSize {
		return nil
	}
	for _, q := range []string{"PRAGMA journal_mode = DELETE", fmt.Sprintf("PRAGMA page_size = %d", pageSize), "VACUUM"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return db.Explain(err)
		}
	}
	return nil
}

// pageSize is SQLite's default, which every database the app creates has.
const pageSize = 4096

// Options are what Apply needs from the running app.
type Options struct {
	// Pause stops every sync (waiting for running ones to end) and keeps new ones from starting
	// until resume is called. nil: nothing syncs (a command-line run).
	Pause func(ctx context.Context) (resume func(), err error)
	// Forget takes the sign-ins of the replaced provider sources out of the keyring, after the
	// records were replaced. Their keyring keys are passed. nil: leave them.
	Forget func(ctx context.Context, tokenKeys []string)
	// Now is the clock for the previous database's file name (tests).
	Now func() time.Time
}

// Result is what Apply did.
type Result struct {
	// Previous is the file the records before the restore were kept in.
	Previous string  `json:"previous"`
	Summary  Summary `json:"summary"` // what is there now
}

// Apply replaces the records of d with the prepared backup's and removes the copy. On any
// error d still holds exactly the records it had.
func Apply(ctx context.Context, d *db.DB, p *Prepared, opt Options) (res Result, err error) {
	if p == nil || p.path == "" {
		return res, errors.New("restore: nothing prepared")
	}
	if _, err := os.Stat(p.path); err != nil {
		return res, fmt.Errorf("restore: the checked copy of %s is gone (%v); choose the backup again", p.Summary.Name, err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Pause != nil {
		resume, err := opt.Pause(ctx)
		if err != nil {
			return res, fmt.Errorf("restore: could not pause syncing: %w", err)
		}
		defer resume()
	}
	var tokenKeys []string
	err = d.Hold(ctx, func(c *sql.Conn) error {
		keys, err := records.ProviderTokenKeys(ctx, c)
		if err != nil {
			return err
		}
		prev := filepath.Join(filepath.Dir(d.Path), "fasten-before-restore-"+opt.Now().UTC().Format("20060102-150405")+".db")
		for i := 2; ; i++ {
			if _, err := os.Lstat(prev); err != nil {
				break
			}
			prev = filepath.Join(filepath.Dir(d.Path), fmt.Sprintf("fasten-before-restore-%s-%d.db", opt.Now().UTC().Format("20060102-150405"), i))
		}
		if err := db.BackupOn(ctx, c, prev); err != nil {
			return fmt.Errorf("restore: keeping the current records in %s failed, nothing was changed: %w", prev, err)
		}
		if err := db.RestoreFrom(ctx, c, p.path); err != nil {
			return fmt.Errorf("%w; your records are as they were (a copy is in %s)", err, prev)
		}
		res.Previous = prev
		tokenKeys = keys
		// Tokens are not in a backup: every provider source asks for a new sign-in.
		if err := records.AfterRestore(ctx, c, opt.Now()); err != nil {
			return fmt.Errorf("restore: the records were restored, but marking the providers for a new sign-in failed: %w", err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	p.Discard()
	if opt.Forget != nil && len(tokenKeys) > 0 {
		opt.Forget(ctx, tokenKeys)
	}
	res.Summary.Contents, err = records.ReadContents(ctx, d.Read)
	res.Summary.Name, res.Summary.Size, res.Summary.Schema = p.Summary.Name, p.Summary.Size, p.Summary.Schema
	return res, err
}
