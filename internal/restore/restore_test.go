package restore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

type env struct {
	dir string
	db  *db.DB
	st  *records.Store
	imp *importer.Importer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	d, err := db.Open(context.Background(), filepath.Join(dir, "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	st := records.New(d)
	return &env{dir: dir, db: d, st: st, imp: importer.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), importer.Limits{})}
}

func (e *env) importFile(t *testing.T, elem ...string) *importer.Result {
	t.Helper()
	p, err := shareddata.Path(elem...)
	if err != nil {
		t.Skip(err)
	}
	res, err := e.imp.Import(context.Background(), []importer.Input{{Name: filepath.Base(p), Path: p}}, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// counts are the exact record counts by type and by source name, and the people's names.
func (e *env) counts(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT type || '=' || count(*) FROM resources GROUP BY type ORDER BY type`,
		`SELECT s.name || '=' || count(r.id) FROM sources s LEFT JOIN resources r ON r.source_id = s.id GROUP BY s.id ORDER BY s.id`,
		`SELECT name FROM profiles ORDER BY id`,
		`SELECT count(*) FROM resources_fts WHERE resources_fts MATCH 'diabetes OR hypertension OR influenza'`,
	} {
		rows, err := e.db.Read.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

func (e *env) total(t *testing.T) (n int) {
	t.Helper()
	if err := e.db.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// syncBuffer collects a child's output from two writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) backup(t *testing.T) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "my backup.db")
	if err := e.db.Backup(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

func TestRestoreBringsBackExactlyTheBackedUpRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.importFile(t, "synthea-r4", "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	first := e.importFile(t, "synthea-r4", "patient-1037e006-916b-45e5-a7f6-33f3e3196e0b.json")
	want := e.counts(t)
	wantTotal := 0
	if err := e.db.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&wantTotal); err != nil {
		t.Fatal(err)
	}
	file := e.backup(t)
	before, _ := os.ReadFile(file)

	// Records change after the backup: another patient comes in, a source goes.
	e.importFile(t, "synthea-r4", "patient-139c7815-7842-419a-9f97-f406a66c06df.json")
	if _, err := e.st.DeleteSource(ctx, first.SourceID); err != nil {
		t.Fatal(err)
	}
	changed := e.counts(t)
	if changed == want {
		t.Fatal("the records did not change")
	}

	p, err := PrepareFile(ctx, file, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Total != wantTotal || len(p.Summary.People) != 2 || len(p.Summary.Sources) != 2 || p.Summary.Name != "my backup.db" {
		t.Fatalf("summary %+v, want %d records of 2 people in 2 sources", p.Summary, wantTotal)
	}
	if e.counts(t) != changed {
		t.Fatal("preparing a restore changed the records")
	}
	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	res, err := Apply(ctx, e.db, p, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.counts(t); got != want {
		t.Fatalf("after the restore:\n%s\nwant (the backup):\n%s", got, want)
	}
	if res.Summary.Total != wantTotal {
		t.Fatalf("result says %d records, want %d", res.Summary.Total, wantTotal)
	}
	// The counts the app shows (kept by the Writer, not recomputed) match too.
	srcs, err := e.st.ListSources(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, s := range srcs {
		sum += s.ResourceCount
	}
	if sum != wantTotal {
		t.Fatalf("sources count %d records after the restore, want %d", sum, wantTotal)
	}
	// The records before the restore are kept beside the database, and the user's file is as it was.
	if res.Previous != filepath.Join(e.dir, "fasten-before-restore-20261207-103000.db") {
		t.Fatalf("previous kept in %q", res.Previous)
	}
	prev, err := db.Open(ctx, res.Previous, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := &env{db: prev}
	if got := old.counts(t); got != changed {
		t.Fatalf("the kept previous database holds\n%s\nwant\n%s", got, changed)
	}
	prev.Close()
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("the backup file was changed by the restore")
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, ".restore-*")); len(left) != 0 {
		t.Fatalf("the checked copy was left behind: %v", left)
	}
	if err := e.db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	// Writing goes on: importing the same file again is still recognised as already there.
	again := e.importFile(t, "synthea-r4", "patient-1037e006-916b-45e5-a7f6-33f3e3196e0b.json")
	if again.Added != 0 {
		t.Fatalf("re-import after the restore added %d records", again.Added)
	}
}

func TestRestoreMarksProvidersForANewSignInAndForgetsOldTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := "https://fhir.example.org/r4"
	provider := func(name, key string) {
		t.Helper()
		if err := e.st.WriteTx(ctx, func(tx *sql.Tx) error {
			_, err := e.st.CreateSource(ctx, tx, records.NewSource{Kind: records.KindProvider, Name: name, ProviderID: name, FHIRBase: base, PatientID: "p", TokenKey: key})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	provider("General Hospital", "source-token-backed-up")
	file := e.backup(t)
	provider("Clinic", "source-token-current")
	p, err := PrepareFile(ctx, file, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var forgot []string
	paused, resumed := false, false
	_, err = Apply(ctx, e.db, p, Options{
		Pause:  func(context.Context) (func(), error) { paused = true; return func() { resumed = true }, nil },
		Forget: func(_ context.Context, keys []string) { forgot = keys },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !paused || !resumed {
		t.Fatalf("syncs paused %v, resumed %v", paused, resumed)
	}
	if strings.Join(forgot, ",") != "source-token-backed-up,source-token-current" {
		t.Fatalf("forgot %v", forgot)
	}
	srcs, err := e.st.ListSources(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].Name != "General Hospital" || srcs[0].Status != records.StatusReconnectNeeded || srcs[0].TokenKey != "" {
		t.Fatalf("sources after the restore: %+v", srcs)
	}
}

// Files that are not a good backup are refused with a message that says what is wrong, and
// nothing changes: not the records, not the data folder.
func TestRestoreRefusesDamagedForeignAndNewerFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.importFile(t, "synthea-r4", "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	good := e.backup(t)
	want := e.counts(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw, _ := os.ReadFile(good)

	// Damaged: pages in the middle overwritten (as a bad disk or a cut-off copy would).
	bad := bytes.Clone(raw)
	for i := len(bad) / 2; i < len(bad)/2+8192 && i < len(bad); i++ {
		bad[i] = 0x5a
	}
	damaged := write("damaged.db", bad)
	truncated := write("cut off.db", raw[:len(raw)/3])

	// Another program's database, ours by neither id nor tables.
	foreign := filepath.Join(dir, "other-app.sqlite")
	o, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Exec(`CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('hello')`); err != nil {
		t.Fatal(err)
	}
	o.Close()
	// Another program's database with an application id of its own.
	otherID := filepath.Join(dir, "other-id.sqlite")
	o, _ = sql.Open("sqlite", otherID)
	o.Exec(`PRAGMA application_id = 42; CREATE TABLE profiles(id); CREATE TABLE sources(id); CREATE TABLE resources(id); CREATE TABLE resources_fts(id); CREATE TABLE sync_runs(id); PRAGMA user_version = 1`)
	o.Close()
	// A newer app's backup.
	newer := write("newer.db", raw)
	o, _ = sql.Open("sqlite", newer)
	if _, err := o.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	o.Close()

	for _, c := range []struct {
		path string
		kind error
		says string
	}{
		{write("notes.txt", []byte("this is not a database, just some text that is long enough to have a header.......................")), ErrNotBackup, "notes.txt is not a Fasten backup (it is not a database file)"},
		{write("empty.db", nil), ErrNotBackup, "empty.db is not a Fasten backup"},
		{foreign, ErrNotBackup, "other-app.sqlite is not a Fasten backup"},
		{otherID, ErrNotBackup, "another program's database"},
		{damaged, ErrDamaged, "damaged.db"},
		{truncated, ErrDamaged, "cut off.db"},
		{newer, ErrNewer, "schema 99"},
	} {
		p, err := PrepareFile(ctx, c.path, e.dir)
		if err == nil {
			p.Discard()
			t.Errorf("%s: accepted", filepath.Base(c.path))
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %q (want %v saying %q)", filepath.Base(c.path), err, c.kind, c.says)
		}
		if strings.Contains(err.Error(), e.dir) {
			t.Errorf("%s: the message names the data folder's temporary copy: %q", filepath.Base(c.path), err)
		}
	}
	if got := e.counts(t); got != want {
		t.Fatal("a refused restore changed the records")
	}
	ents, _ := os.ReadDir(e.dir)
	for _, ent := range ents {
		if ent.Name() != "fasten.db" && ent.Name() != "fasten.db-wal" && ent.Name() != "fasten.db-shm" {
			t.Errorf("left in the data folder: %s", ent.Name())
		}
	}
}
