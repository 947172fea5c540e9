package syncer

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

const crashChildEnv = "FASTEN_SYNCER_CRASH_CHILD"

// crashSpec is what the parent hands the child process (in a temp file): the database, the
// source, its (sandbox test) token and the page size.
type crashSpec struct {
	DB       string      `json:"db"`
	SourceID int64       `json:"source_id"`
	Token    smart.Token `json:"token"`
	PageSize int         `json:"page_size"`
}

// TestCrashChild is the child of TestCrashMidSync: it syncs until the parent kills it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process of TestCrashMidSync")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec crashSpec
	decodeJSON(t, b, &spec)
	e := openEnv(t, spec.DB)
	e.toks[spec.SourceID] = &memTokens{tok: &spec.Token}
	cfg := e.config(nil)
	cfg.PageSize = spec.PageSize
	res, err := New(cfg).RunOnce(context.Background(), []int64{spec.SourceID})
	t.Logf("child finished before it was killed: %+v %v", res, err)
}

// TestCrashMidSync: a process syncing a big patient is killed with SIGKILL in the middle; the
// database is intact, holds only whole pages, and the next sync completes with no duplicates.
func TestCrashMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	p := newProvider(t, sandbox.Config{})
	if _, err := p.srv.ReplicatePatient(testPatient, "big", 15); err != nil {
		t.Fatal(err)
	}
	want, _ := p.srv.Patient("big")
	tok := p.signIn(t, "big", fullScope)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "fasten.db")

	const pageSize = 25
	e := openEnv(t, dbPath)
	id := e.connect(p, "Demo Hospital", tok)
	e.db.Close() // the "app" quits; the child is the app now
	spec, _ := json.Marshal(crashSpec{DB: dbPath, SourceID: id, Token: *tok, PageSize: pageSize})
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		t.Fatal(err)
	}

	pages := (want.Resources + pageSize - 1) / pageSize
	killAt := 10 + rand.IntN(pages/2)
	p.srv.ResetRequests()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+specPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for served := 0; served < killAt; {
		select {
		case err := <-exited:
			t.Fatalf("the child exited before it was killed (%v):\n%s", err, out.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the child served only %d pages:\n%s", served, out.String())
		case <-time.After(2 * time.Millisecond):
		}
		served = 0
		for _, lr := range p.srv.Requests() {
			if strings.HasSuffix(lr.Path, "/$everything") && lr.Status == 200 {
				served++
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-exited
	t.Logf("killed after %d of %d pages", killAt, pages)

	// Restart: the database opens, is intact, and holds whole pages only.
	e = openEnv(t, dbPath)
	e.toks[id] = &memTokens{tok: tok}
	ctx := context.Background()
	if err := e.db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	stored := total(e.counts(id))
	if stored == 0 || stored%pageSize != 0 || stored >= want.Resources {
		t.Fatalf("%d resources stored after the crash: want a whole number of %d-resource pages, fewer than %d", stored, pageSize, want.Resources)
	}
	if e.source(id).SyncState != "" {
		t.Errorf("a cursor was saved by an unfinished sync")
	}
	s := New(e.config(nil))
	if n, err := s.MarkInterrupted(ctx); err != nil || n != 1 {
		t.Errorf("MarkInterrupted: %d %v", n, err)
	}
	r := runOne(t, s, id)
	mustOK(t, r)
	if !r.Full || r.Added != want.Resources-stored || r.Unchanged != stored || r.Updated != 0 {
		t.Errorf("resumed sync: full %v added %d unchanged %d updated %d; %d were stored, want %d in all",
			r.Full, r.Added, r.Unchanged, r.Updated, stored, want.Resources)
	}
	if got := e.counts(id); !maps.Equal(got, want.Counts) {
		t.Errorf("counts %v, want %v", got, want.Counts)
	}
	var dups int
	if err := e.db.Read.QueryRow(`SELECT count(*) FROM (SELECT 1 FROM resources GROUP BY source_id, type, fhir_id HAVING count(*) > 1)`).Scan(&dups); err != nil || dups != 0 {
		t.Errorf("duplicates: %d %v", dups, err)
	}
	if err := e.db.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	runs, _ := s.Runs(ctx, id, 0)
	if len(runs) != 2 || runs[0].Status != RunOK || runs[1].Status != RunInterrupted {
		t.Errorf("history: %+v", runs)
	}
}
