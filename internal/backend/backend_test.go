package backend

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/prefs"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

func open(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(context.Background(), Options{DataDir: t.TempDir(), Keyring: secretstest.New(), Version: "test",
		Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestEveryRouteIsDocumented: every route the assembled backend serves is in docs/openapi.yaml
// and every documented route is served.
func TestEveryRouteIsDocumented(t *testing.T) {
	b := open(t)
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|post|put|patch|delete):\s*$`)
	cur, inPaths := "", false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "paths:"):
			inPaths = true
		case !inPaths:
		case pathRE.MatchString(line):
			cur = pathRE.FindStringSubmatch(line)[1]
		case methodRE.MatchString(line):
			documented[strings.ToUpper(methodRE.FindStringSubmatch(line)[1])+" "+cur] = true
		}
	}
	served := map[string]bool{}
	for _, r := range b.API.Routes() {
		k := r.Method + " " + r.Path
		if served[k] {
			t.Errorf("%s is registered twice", k)
		}
		served[k] = true
		if !documented[k] {
			t.Errorf("%s is served but not in docs/openapi.yaml", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("%s is in docs/openapi.yaml but not served", k)
		}
	}
	if len(served) < 25 {
		t.Fatalf("only %d routes", len(served))
	}
}

// TestRunStopsWithTheContext: the background services end when asked, so the window and serve
// mode can close the database after them.
func TestRunStopsWithTheContext(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestPreferencesWired: the assembled backend serves /preferences; this test binary has no
// window, so starting at login is refused with the reason.
func TestPreferencesWired(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	b := open(t)
	srv := httptest.NewServer(b.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + httpkit.Prefix + "/preferences")
	if err != nil {
		t.Fatal(err)
	}
	var v prefs.View
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || v.SyncInterval != "12h" || v.SyncIntervalActive != "12h" {
		t.Fatalf("GET /preferences: %d %+v", resp.StatusCode, v)
	}
	info, _ := debug.ReadBuildInfo()
	if ok, _ := prefs.LoginSupport("linux", info.Settings); !ok && (v.AutostartSupported || !strings.Contains(v.AutostartNote, "no window")) {
		t.Errorf("a test binary without the window: %+v", v)
	}
	req, _ := http.NewRequest("PATCH", srv.URL+httpkit.Prefix+"/preferences", strings.NewReader(`{"sync_interval": "6h"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || v.SyncInterval != "6h" {
		t.Fatalf("PATCH: %d %+v", resp.StatusCode, v)
	}
	if c, _ := b.Config.Load(); c.SyncInterval != "6h" {
		t.Errorf("settings file: %+v", c)
	}
}
