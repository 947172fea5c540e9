package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// lockedBuffer is an io.Writer safe for the serve goroutine and the test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const testToken = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"

// startServe runs the real serve command on 127.0.0.1:0 and returns its base URL.
func startServe(t *testing.T) string {
	t.Helper()
	return startServeIn(t, t.TempDir(), "127.0.0.1")
}

// startServeIn runs serve on the data folder dir, listening on ip (a loopback address) port 0.
func startServeIn(t *testing.T, dir, ip string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	env := Env{Stdout: out, Stderr: io.Discard, Getenv: func(k string) string {
		if k == "FASTEN_API_TOKEN" {
			return testToken
		}
		return ""
	}}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--listen", ip + ":0", "--data-dir", dir}, env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	re := regexp.MustCompile(`Fasten is running at (http://` + regexp.QuoteMeta(ip) + `:\d+)/#token=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			if m[2] != testToken {
				t.Fatalf("printed token %q", m[2])
			}
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		case <-time.After(20 * time.Millisecond): // polling the output with a deadline
		}
	}
	t.Fatal("serve printed no URL")
	return ""
}

// raw sends a hand-written HTTP/1.1 request (so the Host header can be anything, even empty)
// and returns the status code.
func raw(t *testing.T, base, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, request)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeModeGuardsOverTCP(t *testing.T) {
	base := startServe(t)
	host := strings.TrimPrefix(base, "http://")
	cases := []struct {
		name, req string
		want      int
	}{
		{"health is open", "GET /api/v1/health HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n", 200},
		{"no token", "GET /api/v1/sources HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n", 401},
		{"wrong token", "GET /api/v1/sources HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n", 401},
		{"token in the query", "GET /api/v1/sources?token=" + testToken + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n", 401},
		{"token", "GET /api/v1/sources HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + testToken + "\r\nConnection: close\r\n\r\n", 200},
		{"foreign host", "GET /api/v1/sources HTTP/1.1\r\nHost: evil.test\r\nAuthorization: Bearer " + testToken + "\r\nConnection: close\r\n\r\n", 403},
		{"empty host", "GET /api/v1/health HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n", 403},
		{"foreign origin", "GET /api/v1/sources HTTP/1.1\r\nHost: " + host + "\r\nOrigin: http://evil.test\r\nAuthorization: Bearer " + testToken + "\r\nConnection: close\r\n\r\n", 403},
		{"cross-site fetch", "GET /api/v1/sources HTTP/1.1\r\nHost: " + host + "\r\nSec-Fetch-Site: cross-site\r\nAuthorization: Bearer " + testToken + "\r\nConnection: close\r\n\r\n", 403},
	}
	for _, c := range cases {
		if got := raw(t, base, c.req); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
	// Protective headers on a real response.
	resp, err := http.Get(base + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS header present")
	}
	// A short FASTEN_API_TOKEN is refused before anything listens.
	err = serve(context.Background(), []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()},
		Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string {
			if k == "FASTEN_API_TOKEN" {
				return "short"
			}
			return ""
		}})
	if err == nil || !strings.Contains(err.Error(), "at least 43") {
		t.Fatalf("short token: %v", err)
	}
	// serve refuses a non-loopback address.
	if err := serve(context.Background(), []string{"--listen", "0.0.0.0:0"}, Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}); err == nil {
		t.Fatal("serve listened on 0.0.0.0")
	}
}

// TestImportEverySharedFileFromTheCommandLine: `import --json` over every Synthea and bulk file
// stores exactly what a plain JSON count of the files gives.
func TestImportEverySharedFileFromTheCommandLine(t *testing.T) {
	var files []string
	for _, pat := range []string{filepath.Join(shareddata.Synthea, "*.json"), filepath.Join(shareddata.BulkNDJSON, "*.ndjson")} {
		p, err := shareddata.Path(pat)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := filepath.Glob(p)
		files = append(files, m...)
	}
	sort.Strings(files)
	want := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".ndjson") {
			for _, line := range bytes.Split(b, []byte("\n")) {
				var r struct{ ResourceType string }
				if json.Unmarshal(line, &r) == nil && r.ResourceType != "" {
					want[r.ResourceType]++
				}
			}
			continue
		}
		var bundle struct {
			Entry []struct{ Resource struct{ ResourceType string } }
		}
		if err := json.Unmarshal(b, &bundle); err != nil {
			t.Fatal(err)
		}
		for _, e := range bundle.Entry {
			want[e.Resource.ResourceType]++
		}
	}
	var out bytes.Buffer
	env := Env{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	data := t.TempDir()
	if err := importCmd(context.Background(), append([]string{"--json", "--data-dir", data}, files...), env); err != nil {
		t.Fatal(err)
	}
	var res struct {
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
		Skipped  []any          `json:"skipped"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out.String())
	}
	if res.SourceID == 0 || res.Skipped == nil || fmt.Sprint(res.Counts) != fmt.Sprint(want) {
		t.Fatalf("import --json:\n got %v\nwant %v", res.Counts, want)
	}
	// The same files again: nothing changes.
	out.Reset()
	if err := importCmd(context.Background(), append([]string{"--json", "--data-dir", data}, files...), env); err != nil {
		t.Fatal(err)
	}
	var again struct {
		Added int `json:"added"`
	}
	json.Unmarshal(out.Bytes(), &again)
	if again.Added != 0 {
		t.Fatalf("re-import added %d", again.Added)
	}
}
