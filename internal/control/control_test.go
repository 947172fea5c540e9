package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

func serveTest(t *testing.T, h Handlers) (string, *Client) {
	t.Helper()
	dir := t.TempDir()
	// A socket left by a crashed owner is replaced.
	os.WriteFile(SocketPath(dir), []byte("stale"), 0o600)
	srv, err := Listen(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	c, err := Dial(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, c
}

func TestControlSocket(t *testing.T) {
	var got ImportRequest
	cancelled := make(chan struct{})
	dir, c := serveTest(t, Handlers{
		Import: func(ctx context.Context, in []importer.Input, opt importer.Options) (*importer.Result, error) {
			got = ImportRequest{Files: in, SkipInvalid: opt.SkipInvalid, SourceID: opt.SourceID}
			if in[0].Name == "slow" {
				<-ctx.Done()
				close(cancelled)
				return nil, ctx.Err()
			}
			if in[0].Name == "bad" {
				return nil, &importer.LimitError{Msg: "too big"}
			}
			opt.Progress(importer.Progress{Phase: "checking", Resources: 3})
			return &importer.Result{SourceID: 7, Resources: 3, Counts: map[string]int{"Patient": 3}}, nil
		},
		Sync: func(ctx context.Context, ids []int64) ([]syncer.RunResult, error) {
			return []syncer.RunResult{{SourceID: 1, Status: syncer.RunFailed, Err: syncer.ErrNoTokens, Error: "no sign-in"}}, nil
		},
	})
	if runtime.GOOS != "windows" {
		st, err := os.Stat(SocketPath(dir))
		if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
			t.Fatalf("socket %v %v", st.Mode(), err)
		}
	}
	if c.Hello.PID != os.Getpid() || c.Hello.Window {
		t.Errorf("hello %+v", c.Hello)
	}
	var prog []importer.Progress
	res, err := c.Import(context.Background(), ImportRequest{Files: []importer.Input{{Name: "a.json", Path: "/x/a.json"}}, SkipInvalid: true, SourceID: 4},
		func(p importer.Progress) { prog = append(prog, p) })
	if err != nil || res.SourceID != 7 || res.Counts["Patient"] != 3 || len(prog) != 1 || prog[0].Resources != 3 {
		t.Fatalf("import: %+v %v %v", res, err, prog)
	}
	if !got.SkipInvalid || got.SourceID != 4 || got.Files[0].Path != "/x/a.json" {
		t.Errorf("the owner got %+v", got)
	}
	_, err = c.Import(context.Background(), ImportRequest{Files: []importer.Input{{Name: "bad", Path: "/x/b"}}}, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != KindFailed || ce.Message != "too big" {
		t.Errorf("failed import: %v", err)
	}
	// Relative paths and unknown fields are refused before any work.
	if _, err := c.Import(context.Background(), ImportRequest{Files: []importer.Input{{Name: "a", Path: "a.json"}}}, nil); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative path: %v", err)
	}
	req, _ := http.NewRequest("POST", "http://fasten-control/v1/import", bytes.NewReader([]byte(`{"files":[],"evil":1}`)))
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var l line
	json.NewDecoder(resp.Body).Decode(&l)
	resp.Body.Close()
	if resp.StatusCode != 400 || l.Error == nil {
		t.Errorf("unknown field: %d %+v", resp.StatusCode, l)
	}
	// Sync results keep whether their message stands alone.
	sr, err := c.Sync(context.Background(), SyncRequest{})
	if err != nil || len(sr) != 1 || !sr[0].Plain || sr[0].Error != "no sign-in" {
		t.Errorf("sync: %+v %v", sr, err)
	}
	// No backup or window here.
	if _, err := c.Backup(context.Background(), BackupRequest{Dest: "/x/y.db"}); err == nil {
		t.Error("backup without a handler")
	}
	if ok, err := c.Show(context.Background()); ok || err != nil {
		t.Errorf("show: %v %v", ok, err)
	}
	// A client that goes away (Ctrl-C) cancels the owner's work.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Import(ctx, ImportRequest{Files: []importer.Input{{Name: "slow", Path: "/x/s"}}}, nil)
		errc <- err
	}()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner's import was not cancelled")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
}

func TestDialWithoutOwner(t *testing.T) {
	if _, err := Dial(context.Background(), t.TempDir()); !errors.Is(err, ErrNoSocket) {
		t.Fatal(err)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("x", 120))
	os.MkdirAll(long, 0o700)
	if _, err := Listen(long, Handlers{}); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatal(err)
	}
}
