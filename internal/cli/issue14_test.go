package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func noEnv(string) string { return "" }

func syntheaFile(t *testing.T, i int) string {
	t.Helper()
	p, err := shareddata.Path(shareddata.Synthea, "patient-*.json")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(p)
	if len(m) <= i {
		t.Fatalf("too few Synthea files: %d", len(m))
	}
	return m[i]
}

// TestIssue14_7_ListenOnAnotherLoopbackAddress: serve on 127.0.0.2 answers requests addressed
// to 127.0.0.2 (it prints that address, so it must accept it as its Host).
func TestIssue14_7_ListenOnAnotherLoopbackAddress(t *testing.T) {
	base := startServeIn(t, t.TempDir(), "127.0.0.2")
	if !strings.HasPrefix(base, "http://127.0.0.2:") {
		t.Fatalf("printed %s", base)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", base, resp.StatusCode)
	}
	// Other hosts stay refused.
	host := strings.TrimPrefix(base, "http://")
	if got := raw(t, base, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.3"+host[len("127.0.0.2"):]+"\r\nConnection: close\r\n\r\n"); got != 403 {
		t.Errorf("foreign loopback host: %d", got)
	}
}

// TestIssue14_13_ImportRefusesFIFO: a named pipe is refused with a message at once, not read
// forever.
func TestIssue14_13_ImportRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "records.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	// Should the check be missing, a writer ends the blocked read so the test fails instead of
	// hanging.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
		}
	}()
	var stderr bytes.Buffer
	code := Main([]string{"import", "--data-dir", filepath.Join(dir, "data"), fifo}, Env{Stdout: io.Discard, Stderr: &stderr, Getenv: noEnv})
	if code != 1 || !strings.Contains(stderr.String(), "named pipe") || !strings.Contains(stderr.String(), "regular files only") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestIssue14_21_BackupRefusesDanglingSymlink (command line): `backup` onto a dangling link
// fails and leaves the link; onto a new name it writes a 0600 copy whatever the umask.
func TestIssue14_21_BackupRefusesDanglingSymlink(t *testing.T) {
	data := t.TempDir()
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv}
	if code := Main([]string{"import", "--data-dir", data, syntheaFile(t, 0)}, env); code != 0 {
		t.Fatalf("import: %d", code)
	}
	out := t.TempDir()
	link := filepath.Join(out, "backup.db")
	if err := os.Symlink(filepath.Join(out, "missing", "x.db"), link); err != nil {
		t.Skip(err)
	}
	var stderr bytes.Buffer
	env.Stderr = &stderr
	if code := Main([]string{"backup", "--data-dir", data, link}, env); code != 1 || !strings.Contains(stderr.String(), "exists already") {
		t.Fatalf("backup onto a dangling link: exit %d %s", code, stderr.String())
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st, err)
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dest := filepath.Join(out, "new.db")
	if code := Main([]string{"backup", "--data-dir", data, dest}, env); code != 0 {
		t.Fatalf("backup: %d %s", code, stderr.String())
	}
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st.Mode(), err)
	}
}

// TestIssue14_1_FilesArePrivate: every file the app writes in its folders (database, WAL,
// settings, log, owner record) is 0600 and every folder 0700, whatever the umask.
func TestIssue14_1_FilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	data := filepath.Join(t.TempDir(), "data")
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv}
	if code := Main([]string{"import", "--data-dir", data, syntheaFile(t, 1)}, env); code != 0 {
		t.Fatalf("import: %d", code)
	}
	n := 0
	filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		want := os.FileMode(0o600)
		if info.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if n < 4 {
		t.Fatalf("only %d paths under %s", n, data)
	}
}

// TestIssue14_3_ConcurrentMigrations (command line): six imports started at once on a new data
// folder all succeed: one takes the folder, the others wait for it (a one-shot import serves no
// control socket) and then run, each with its own source.
func TestIssue14_3_ConcurrentMigrations(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	const n = 6
	var wg sync.WaitGroup
	codes := make([]int, n)
	outs := make([]bytes.Buffer, n)
	errs := make([]bytes.Buffer, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = Main([]string{"import", "--json", "--data-dir", data, syntheaFile(t, 2+i)}, Env{Stdout: &outs[i], Stderr: &errs[i], Getenv: noEnv})
		}()
	}
	close(start)
	wg.Wait()
	sources := map[int64]bool{}
	waited := 0
	for i := range n {
		if codes[i] != 0 {
			t.Fatalf("import %d: exit %d: %s", i, codes[i], errs[i].String())
		}
		var res struct {
			SourceID  int64 `json:"source_id"`
			Resources int   `json:"resources"`
		}
		if err := json.Unmarshal(outs[i].Bytes(), &res); err != nil || res.Resources == 0 {
			t.Fatalf("import %d: %v %s", i, err, outs[i].String())
		}
		sources[res.SourceID] = true
		if strings.Contains(errs[i].String(), "Waiting until it is done") {
			waited++
		}
	}
	if len(sources) != n {
		t.Errorf("sources %v", sources)
	}
	if waited == 0 {
		t.Log("no import had to wait (they did not overlap)")
	}
}

// errString is err's text or "".
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var _ = errors.New
var _ = fmt.Sprint
var _ = context.Background
