package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/replicate"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

// fakeDesktop records whether the window was opened, and on which lock.
type fakeDesktop struct {
	mu    sync.Mutex
	calls int
}

func (f *fakeDesktop) open(ctx context.Context, c Common, background bool, l *owner.Lock) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return nil
}

// importResult is the part of `import --json` compared across runs (not the duration).
type importResult struct {
	SourceID     int64          `json:"source_id"`
	Counts       map[string]int `json:"counts"`
	Resources    int            `json:"resources"`
	Added        int            `json:"added"`
	Updated      int            `json:"updated"`
	Unchanged    int            `json:"unchanged"`
	Bytes        int64          `json:"bytes"`
	SkippedTotal int            `json:"skipped_total"`
	Sources      []struct {
		File     string         `json:"file"`
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
	} `json:"sources"`
}

func cliImport(t *testing.T, dir string, files ...string) (importResult, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append([]string{"import", "--json", "--data-dir", dir}, files...), Env{Stdout: &out, Stderr: &errb, Getenv: noEnv})
	if code != 0 {
		t.Fatalf("import into %s: exit %d: %s", dir, code, errb.String())
	}
	var res importResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("import --json: %v\n%s", err, out.String())
	}
	return res, errb.String()
}

// TestIssue13_B_CLIImportGoesThroughServe: while serve holds the folder, `import` is done by
// serve (through the control socket) and gives what an import into an idle folder gives.
func TestIssue13_B_CLIImportGoesThroughServe(t *testing.T) {
	files := []string{syntheaFile(t, 0), syntheaFile(t, 1)}
	idle, _ := cliImport(t, t.TempDir(), files...)

	dir := t.TempDir()
	base := startServeIn(t, dir, "127.0.0.1")
	if _, err := owner.Acquire(dir, "test"); !errors.Is(err, owner.ErrHeld) {
		t.Fatalf("serve does not hold the folder: %v", err)
	}
	through, stderr := cliImport(t, dir, files...)
	if strings.Contains(stderr, "Waiting") {
		t.Errorf("the import waited instead of going through serve: %s", stderr)
	}
	if a, b := fmt.Sprintf("%+v", idle), fmt.Sprintf("%+v", through); a != b {
		t.Fatalf("through serve:\n%s\nidle folder:\n%s", b, a)
	}
	// serve has it: its API lists the new sources.
	req, _ := http.NewRequest("GET", base+"/api/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range through.Sources {
		if !strings.Contains(string(body), filepath.Base(s.File)) {
			t.Errorf("serve does not list %s: %s", s.File, body)
		}
	}
	// A refused file through serve reads as it does directly.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"resourceType":"Patient","id":1}`), 0o600)
	var errb bytes.Buffer
	if code := Main([]string{"import", "--data-dir", dir, bad}, Env{Stdout: io.Discard, Stderr: &errb, Getenv: noEnv}); code != 1 || !strings.Contains(errb.String(), "refused: ") || !strings.Contains(errb.String(), "Nothing was imported") {
		t.Errorf("refused through serve: %d %s", code, errb.String())
	}
	// backup through serve.
	dest := filepath.Join(t.TempDir(), "copy.db")
	errb.Reset()
	if code := Main([]string{"backup", "--data-dir", dir, dest}, Env{Stdout: io.Discard, Stderr: &errb, Getenv: noEnv}); code != 0 {
		t.Fatalf("backup through serve: %d %s", code, errb.String())
	}
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup: %v %v", st, err)
	}
}

// TestIssue13_A_UploadSurvivesSecondProcesses: while a 100 MB upload runs through serve, a second
// serve, a second window and a command-line import on the same folder leave it intact: exact
// counts, integrity_check ok.
func TestIssue13_A_UploadSurvivesSecondProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB import")
	}
	ctx := context.Background()
	src, err := replicate.Load(ctx, syntheaFile(t, 3), syntheaFile(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.ndjson")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.WriteNDJSON(f, 0, 100<<20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(big)
	t.Logf("upload: %d resources, %.1f MB", want, float64(st.Size())/1e6)

	dir := t.TempDir()
	serveCtx, stopServe := context.WithCancel(ctx)
	out := &lockedBuffer{}
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- serve(serveCtx, []string{"--listen", "127.0.0.1:0", "--data-dir", dir}, Env{Stdout: out, Stderr: io.Discard, Getenv: func(k string) string {
			if k == "FASTEN_API_TOKEN" {
				return testToken
			}
			return ""
		}})
	}()
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if i := strings.Index(out.String(), "http://"); i >= 0 {
			base = strings.SplitN(out.String()[i:], "/#", 2)[0]
		}
	}
	if base == "" {
		t.Fatal("serve printed no URL")
	}

	// The upload: the first half now, the rest once the other processes have had their go.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	half := make(chan struct{})
	rest := make(chan struct{})
	go func() {
		w, _ := mw.CreateFormFile("file", "big.ndjson")
		fh, err := os.Open(big)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		defer fh.Close()
		io.CopyN(w, fh, st.Size()/2)
		close(half)
		<-rest
		io.Copy(w, fh)
		pw.CloseWithError(mw.Close())
	}()
	type upload struct {
		status int
		body   []byte
		err    error
	}
	upDone := make(chan upload, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/api/v1/imports", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			upDone <- upload{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		upDone <- upload{status: resp.StatusCode, body: b}
	}()
	<-half
	spool, _ := filepath.Glob(filepath.Join(dir, "spool", "upload-*"))
	if len(spool) == 0 {
		t.Fatal("the upload is not being spooled")
	}

	// A second serve: exit 1 with who holds the folder.
	var errb bytes.Buffer
	code := Main([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, Env{Stdout: io.Discard, Stderr: &errb, Getenv: noEnv})
	msg := errb.String()
	if code != 1 || !strings.Contains(msg, "already running with the data folder") || !strings.Contains(msg, "fasten-desktop serve") ||
		!strings.Contains(msg, fmt.Sprintf("process %d", os.Getpid())) || !strings.Contains(msg, "since") {
		t.Errorf("second serve: exit %d: %s", code, msg)
	}
	// A second window: never opened on the folder; serve is named.
	var desk fakeDesktop
	errb.Reset()
	code = Main([]string{"--data-dir", dir}, Env{Stdout: io.Discard, Stderr: &errb, Getenv: noEnv, Desktop: desk.open})
	if code != 1 || desk.calls != 0 || !strings.Contains(errb.String(), "fasten-desktop serve") {
		t.Errorf("second window: exit %d, opened %d times: %s", code, desk.calls, errb.String())
	}
	// A command-line import: done by serve, next to the upload.
	small, _ := cliImport(t, dir, syntheaFile(t, 5))
	if small.Resources == 0 {
		t.Fatal("the small import stored nothing")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "spool", "upload-*")); len(left) != len(spool) {
		t.Fatalf("the spool changed under the upload: %v -> %v", spool, left)
	}
	close(rest)
	up := <-upDone
	if up.err != nil || up.status != 200 {
		t.Fatalf("upload: %v %d %s", up.err, up.status, up.body)
	}
	var res importResult
	json.Unmarshal(up.body, &res)
	if res.Resources != want || res.Added != want {
		t.Fatalf("upload stored %d (added %d), want %d", res.Resources, res.Added, want)
	}
	stopServe()
	if err := <-serveDone; err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, filepath.Join(dir, "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	d.Read.QueryRow(`SELECT count(*) FROM resources WHERE source_id = ?`, res.SourceID).Scan(&n)
	if n != want {
		t.Errorf("the upload's source holds %d resources, want %d", n, want)
	}
	d.Read.QueryRow(`SELECT count(*) FROM resources`).Scan(&n)
	if n != want+small.Resources {
		t.Errorf("the folder holds %d resources, want %d + %d", n, want, small.Resources)
	}
}

// appWithProvider opens the app's backend (as the window does: its lock, its control socket,
// its background services) on a new folder with one provider source signed in to the sandbox,
// whose access token has expired.
func appWithProvider(t *testing.T, srv *sandbox.Server, ts *httptest.Server) (*backend.Backend, int64, func()) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	kr := secretstest.New()
	b, err := backend.Open(ctx, backend.Options{DataDir: dir, Getenv: noEnv, Keyring: kr, Command: owner.CommandWindow})
	if err != nil {
		t.Fatal(err)
	}
	tok := syncTestSignIn(t, srv, ts.Client(), srv.Patients()[0].ID)
	if err := smart.NewSecretTokenStore(kr, "tok-1").Save(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var id int64
	err = b.DB.WriteTx(ctx, func(tx *sql.Tx) error {
		fhirBase := srv.FHIRBase()
		id, err = b.Store.CreateSource(ctx, tx, records.NewSource{
			Kind: records.KindProvider, Name: "Demo Hospital", PatientID: tok.Patient, FHIRBase: fhirBase,
			Scopes: tok.Scope, TokenURL: ts.URL + "/auth/token", ClientID: sandbox.DefaultClientID, TokenKey: "tok-1",
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The saved access token is no longer valid: the first sync needs a refresh.
	srv.ExpireAccessTokens()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.Run(runCtx) }()
	go func() { defer wg.Done(); RunControl(runCtx, b, func() {}) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := control.Dial(ctx, dir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no control socket")
		}
	}
	return b, id, func() { stop(); wg.Wait(); b.Close() }
}

// TestIssue13_CD_CLISyncThroughTheApp: (c) a `sync` while the app syncs leaves the app's run
// alone (nothing is marked interrupted; the CLI waits for that very run); (d) the provider sees
// one refresh although the app and the command line both needed a token.
func TestIssue13_CD_CLISyncThroughTheApp(t *testing.T) {
	srv, err := sandbox.New(sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	srv.SetBaseURL(ts.URL)
	// Slow FHIR answers keep the app's sync running while the command line starts; the saved
	// access token is expired (appWithProvider), so whoever syncs first needs a refresh.
	srv.SetFaults(sandbox.Faults{Latency: 40 * time.Millisecond})
	before := srv.TokenCalls()["refresh_token"]

	b, id, done := appWithProvider(t, srv, ts)
	defer done()
	// The app syncs the new source at start (or now, if it has not yet).
	b.Syncer.Enqueue(context.Background(), id, syncer.TriggerManual)
	for deadline := time.Now().Add(20 * time.Second); !b.Syncer.Syncing(id); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the app did not start syncing")
		}
	}
	var out, errb bytes.Buffer
	code := Main([]string{"sync", "--data-dir", b.Dirs.Data}, Env{Stdout: &out, Stderr: &errb, Getenv: noEnv})
	if code != 0 || !strings.HasPrefix(out.String(), "Demo Hospital (source 1): ") || !strings.Contains(out.String(), " added, ") {
		t.Fatalf("sync: exit %d: %s %s", code, out.String(), errb.String())
	}
	for deadline := time.Now().Add(20 * time.Second); b.Syncer.Syncing(id); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the app's sync did not end")
		}
	}
	runs, err := b.Syncer.Runs(context.Background(), id, 10)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, r := range runs {
		if r.Status == "interrupted" {
			t.Errorf("run %d was marked interrupted: %+v", r.ID, r)
		}
		if r.Status == syncer.RunOK {
			ok++
		}
	}
	if ok != 1 || len(runs) != 1 {
		t.Errorf("runs: %+v", runs)
	}
	if got := srv.TokenCalls()["refresh_token"] - before; got != 1 {
		t.Errorf("the provider saw %d refreshes, want 1", got)
	}
}

// TestSecondWindowHandsOverToTheFirst: a second launch while a window holds the folder asks it
// to show itself and ends (an autostart launch changes nothing); it never opens the folder.
func TestSecondWindowHandsOverToTheFirst(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := backend.Open(ctx, backend.Options{DataDir: dir, Getenv: noEnv, Keyring: secretstest.New(), Command: owner.CommandWindow})
	if err != nil {
		t.Fatal(err)
	}
	shown := make(chan struct{}, 10)
	runCtx, stop := context.WithCancel(ctx)
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- RunControl(runCtx, b, func() { shown <- struct{}{} }) }()
	var once sync.Once
	shutdown := func() { once.Do(func() { stop(); <-ctlDone; b.Close() }) }
	defer shutdown()

	var desk fakeDesktop
	var out, errb bytes.Buffer
	// The first window's control socket may not be up yet: the second launch waits for it.
	code := Main([]string{"--data-dir", dir}, Env{Stdout: &out, Stderr: &errb, Getenv: noEnv, Desktop: desk.open})
	if code != 0 || desk.calls != 0 || !strings.Contains(out.String(), "already open") {
		t.Fatalf("second launch: exit %d, opened %d: %s %s", code, desk.calls, out.String(), errb.String())
	}
	select {
	case <-shown:
	default:
		t.Fatal("the first window was not asked to show itself")
	}
	out.Reset()
	code = Main([]string{"--background", "--data-dir", dir}, Env{Stdout: &out, Stderr: &errb, Getenv: noEnv, Desktop: desk.open})
	if code != 0 || desk.calls != 0 || len(shown) != 0 {
		t.Fatalf("--background launch: exit %d, opened %d, shown %d", code, desk.calls, len(shown))
	}
	// With the folder free, the window opens on it (holding its lock).
	shutdown()
	code = Main([]string{"--data-dir", dir}, Env{Stdout: io.Discard, Stderr: &errb, Getenv: noEnv, Desktop: func(ctx context.Context, c Common, bg bool, l *owner.Lock) error {
		desk.calls++
		if l == nil || l.Dir() != dir || l.Holder().Command != owner.CommandWindow {
			return fmt.Errorf("lock %+v", l)
		}
		if _, err := owner.Acquire(dir, "test"); !errors.Is(err, owner.ErrHeld) {
			return fmt.Errorf("the folder is not held while the window runs: %v", err)
		}
		return nil
	}})
	if code != 0 || desk.calls != 1 {
		t.Fatalf("free folder: exit %d, opened %d: %s", code, desk.calls, errb.String())
	}
	l, err := owner.Acquire(dir, "test")
	if err != nil {
		t.Fatalf("the window did not let go of the folder: %v", err)
	}
	l.Release()
}

// TestBackendOpenTakesTheFolderFirst: a backend refuses a folder another process holds before it
// touches anything in it (the spool keeps its files, no database is created).
func TestBackendOpenTakesTheFolderFirst(t *testing.T) {
	dir := t.TempDir()
	l, err := owner.Acquire(dir, "serve")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	spooled := filepath.Join(dir, "spool", "upload-123")
	os.WriteFile(spooled, []byte("in progress"), 0o600)
	_, err = backend.Open(context.Background(), backend.Options{DataDir: dir, Getenv: noEnv, Keyring: secretstest.New()})
	if !errors.Is(err, owner.ErrHeld) {
		t.Fatalf("open: %v", err)
	}
	if _, err := os.Stat(spooled); err != nil {
		t.Errorf("the spool was cleaned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fasten.db")); !os.IsNotExist(err) {
		t.Errorf("the database was touched: %v", err)
	}
}
