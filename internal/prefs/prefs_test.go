package prefs

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/autostart"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// prefsEnv serves a Preferences over HTTP like the app does.
type prefsEnv struct {
	t     *testing.T
	cfg   *config.Store
	prefs *Preferences
	srv   *httptest.Server
}

func newPrefsEnv(t *testing.T, opt Options) *prefsEnv {
	t.Helper()
	if opt.Config == nil {
		opt.Config = config.NewStore(filepath.Join(t.TempDir(), "config.json"))
	}
	p := New(opt)
	mux := http.NewServeMux()
	for _, r := range p.Routes() {
		mux.HandleFunc(r.Method+" "+httpkit.Prefix+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &prefsEnv{t: t, cfg: opt.Config, prefs: p, srv: srv}
}

// do sends a request and decodes the answer into out (a View or httpkit.ErrorBody).
func (e *prefsEnv) do(method, body string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+httpkit.Prefix+"/preferences", strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s /preferences: %d %s: %v", method, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (e *prefsEnv) get() View {
	e.t.Helper()
	var v View
	if code := e.do("GET", "", &v); code != http.StatusOK {
		e.t.Fatalf("GET /preferences: %d", code)
	}
	return v
}

// TestPreferencesAutostart: with XDG_CONFIG_HOME in a temp folder, turning start at login on
// writes a .desktop entry that runs this program with --background (and the data folder), the
// settings file records it, and turning it off removes the entry. The entry is the truth.
func TestPreferencesAutostart(t *testing.T) {
	skipUnlessXDG(t)
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	cmd, err := autostart.Command()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	exec := LoginCommand(cmd, dataDir, "/nonexistent/default")
	e := newPrefsEnv(t, Options{Login: autostart.New("fasten-desktop", "Fasten Desktop", exec)})
	entry := filepath.Join(xdg, "autostart", "fasten-desktop.desktop")

	v := e.get()
	if v.Autostart || !v.AutostartSupported || v.AutostartNote != "" {
		t.Fatalf("before: %+v", v)
	}
	if code := e.do("PATCH", `{"autostart": true}`, &v); code != http.StatusOK || !v.Autostart {
		t.Fatalf("enable: %d %+v", code, v)
	}
	raw, err := os.ReadFile(entry)
	if err != nil {
		t.Fatalf("the login entry was not written: %v", err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	var execLine string
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "Exec="); ok {
			execLine = v
		}
	}
	want, err := xdgExecLine([]string{exe, "--background", "--data-dir", dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if execLine != want {
		t.Errorf("Exec=%s, want %s", execLine, want)
	}
	if c, _ := e.cfg.Load(); !c.Autostart {
		t.Error("the settings file does not record autostart")
	}

	// The entry is the truth: removed behind the app's back, the toggle shows off.
	os.Remove(entry)
	if v := e.get(); v.Autostart {
		t.Error("autostart shown on without an entry")
	}
	if code := e.do("PATCH", `{"autostart": true}`, &v); code != http.StatusOK || !v.Autostart {
		t.Fatalf("enable again: %d %+v", code, v)
	}
	if code := e.do("PATCH", `{"autostart": false}`, &v); code != http.StatusOK || v.Autostart {
		t.Fatalf("disable: %d %+v", code, v)
	}
	if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the entry is still there: %v", err)
	}
	if c, _ := e.cfg.Load(); c.Autostart {
		t.Error("the settings file still records autostart")
	}
	// Turning off what is off is fine.
	if code := e.do("PATCH", `{"autostart": false}`, &v); code != http.StatusOK || v.Autostart {
		t.Fatalf("disable twice: %d %+v", code, v)
	}
}

// TestPreferencesAutostartUnsupported: a build that cannot start at login says why and
// changes nothing.
func TestPreferencesAutostartUnsupported(t *testing.T) {
	const why = "This copy of Fasten has no window."
	e := newPrefsEnv(t, Options{LoginUnsupported: why})
	v := e.get()
	if v.Autostart || v.AutostartSupported || v.AutostartNote != why {
		t.Fatalf("view %+v", v)
	}
	var eb httpkit.ErrorBody
	if code := e.do("PATCH", `{"autostart": true, "sync_interval": "6h"}`, &eb); code != http.StatusConflict ||
		eb.Error.Code != "autostart_unsupported" || eb.Error.Message != why {
		t.Fatalf("enable: %d %+v", code, eb)
	}
	if c, _ := e.cfg.Load(); c.Autostart || c.SyncInterval != "" {
		t.Errorf("the settings changed: %+v", c)
	}
	// Turning it off is harmless.
	if code := e.do("PATCH", `{"autostart": false}`, &v); code != http.StatusOK || v.Autostart {
		t.Fatalf("disable: %d %+v", code, v)
	}
}

// fakeLogin is a login entry whose Enable fails on demand.
type fakeLogin struct {
	mu      sync.Mutex
	on      bool
	failErr error
}

func (f *fakeLogin) Enable() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return f.failErr
	}
	f.on = true
	return nil
}

func (f *fakeLogin) Disable() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on = false
	return nil
}

func (f *fakeLogin) Enabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}

// TestPreferencesAutostartErrors: a failing login entry is a plain sentence; a settings file
// that cannot be written puts the entry back as it was.
func TestPreferencesAutostartErrors(t *testing.T) {
	login := &fakeLogin{failErr: errors.New("permission denied")}
	e := newPrefsEnv(t, Options{Login: login})
	var eb httpkit.ErrorBody
	if code := e.do("PATCH", `{"autostart": true}`, &eb); code != http.StatusInternalServerError || eb.Error.Code != "autostart_failed" ||
		!strings.HasPrefix(eb.Error.Message, "Could not register Fasten to start when you log in: permission denied") {
		t.Fatalf("failing entry: %d %+v", code, eb)
	}
	login.failErr = autostart.ErrUnsupported
	if code := e.do("PATCH", `{"autostart": true}`, &eb); code != http.StatusConflict || eb.Error.Code != "autostart_unsupported" {
		t.Fatalf("unsupported entry: %d %+v", code, eb)
	}

	// The settings folder is a file: the settings cannot be written, the entry is undone.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, nil, 0o600)
	login2 := &fakeLogin{}
	e2 := newPrefsEnv(t, Options{Login: login2, Config: config.NewStore(filepath.Join(blocker, "config.json"))})
	if code := e2.do("PATCH", `{"autostart": true}`, &eb); code != http.StatusInternalServerError || eb.Error.Code != "internal" {
		t.Fatalf("unwritable settings: %d %+v", code, eb)
	}
	// A 500 names a log id, never the error (which names the settings file's path).
	if eb.Error.ID == "" || !strings.Contains(eb.Error.Message, eb.Error.ID) || strings.Contains(eb.Error.Message, "blocker") {
		t.Errorf("unwritable settings: the answer %+v", eb)
	}
	if login2.Enabled() {
		t.Error("the login entry stayed although the settings were not saved")
	}
}

// TestPreferencesSyncInterval: accepted and refused intervals, saved in the settings file,
// applied to the running syncer when it can change, else at the next start.
func TestPreferencesSyncInterval(t *testing.T) {
	var applied []time.Duration
	var mu sync.Mutex
	for _, live := range []bool{false, true} {
		opt := Options{ActiveInterval: 12 * time.Hour}
		if live {
			opt.ApplyInterval = func(d time.Duration) {
				mu.Lock()
				applied = append(applied, d)
				mu.Unlock()
			}
		}
		e := newPrefsEnv(t, opt)
		v := e.get()
		if v.SyncInterval != "12h" || v.SyncIntervalDefault != "12h" || v.SyncIntervalActive != "12h" ||
			!slices.Equal(v.SyncIntervalChoices, []string{"1h", "3h", "6h", "12h", "24h", "72h", "168h"}) ||
			v.SyncIntervalMin != "1h" || v.SyncIntervalMax != "168h" {
			t.Fatalf("defaults: %+v", v)
		}
		for _, tc := range []struct{ in, saved string }{
			{"6h", "6h"}, {" 3H ", "3h"}, {"1d", "24h"}, {"7d", "168h"}, {"90m", "1h30m"}, {"1h30m", "1h30m"}, {"168h", "168h"}, {"1h", "1h"},
		} {
			body, _ := json.Marshal(map[string]string{"sync_interval": tc.in})
			if code := e.do("PATCH", string(body), &v); code != http.StatusOK || v.SyncInterval != tc.saved {
				t.Fatalf("live=%v %q: %d %+v", live, tc.in, code, v)
			}
			if c, _ := e.cfg.Load(); c.SyncInterval != tc.saved {
				t.Errorf("live=%v %q: the settings file has %q", live, tc.in, c.SyncInterval)
			}
			wantActive := "12h"
			if live {
				wantActive = tc.saved
			}
			if v.SyncIntervalActive != wantActive {
				t.Errorf("live=%v %q: active %q, want %q", live, tc.in, v.SyncIntervalActive, wantActive)
			}
		}
		before, _ := e.cfg.Load()
		for _, tc := range []struct{ in, msg string }{
			{"30m", "Fasten syncs at most once an hour"},
			{"0", "Fasten syncs at most once an hour"},
			{"-2h", "Fasten syncs at most once an hour"},
			{"8d", "Fasten syncs at least once a week"},
			{"169h", "Fasten syncs at least once a week"},
			{"99999999d", "Fasten syncs at least once a week"},
			{"soon", `"soon" is not a length of time`},
			{"1.5d", `"1.5d" is not a length of time`},
			{"12", `"12" is not a length of time`},
		} {
			body, _ := json.Marshal(map[string]string{"sync_interval": tc.in})
			var eb httpkit.ErrorBody
			if code := e.do("PATCH", string(body), &eb); code != http.StatusBadRequest || eb.Error.Code != "invalid_sync_interval" ||
				!strings.HasPrefix(eb.Error.Message, tc.msg) {
				t.Errorf("live=%v %q: %d %+v", live, tc.in, code, eb)
			}
		}
		if after, _ := e.cfg.Load(); after != before {
			t.Errorf("a refused interval changed the settings: %+v -> %+v", before, after)
		}
		// "" goes back to the default.
		if code := e.do("PATCH", `{"sync_interval": ""}`, &v); code != http.StatusOK || v.SyncInterval != "12h" {
			t.Fatalf("reset: %d %+v", code, v)
		}
		if c, _ := e.cfg.Load(); c.SyncInterval != "" {
			t.Errorf("reset left %q in the settings file", c.SyncInterval)
		}
	}
	if len(applied) != 9 || applied[0] != 6*time.Hour || applied[8] != 12*time.Hour {
		t.Errorf("applied to the syncer: %v", applied)
	}
}

// TestPreferencesBadRequests: bodies that are not a preferences change.
func TestPreferencesBadRequests(t *testing.T) {
	e := newPrefsEnv(t, Options{Login: &fakeLogin{}})
	for _, body := range []string{`{}`, `{"autostart": "yes"}`, `{"colour": "red"}`, `not json`, `{"autostart": true} {}`, ``, `{"sync_interval": 6}`} {
		var eb httpkit.ErrorBody
		if code := e.do("PATCH", body, &eb); code != http.StatusBadRequest || eb.Error.Code != "bad_request" || eb.Error.Message == "" {
			t.Errorf("%q: %d %+v", body, code, eb)
		}
	}
	if c, _ := e.cfg.Load(); c.Autostart || c.SyncInterval != "" {
		t.Errorf("settings changed: %+v", c)
	}
}

func TestParseAndFormatSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"1h", time.Hour}, {"2d", 48 * time.Hour}, {"7D", 168 * time.Hour}, {"45m30s", 0}, {"100m", 100 * time.Minute}} {
		d, err := ParseSyncInterval(tc.in)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%q accepted as %v", tc.in, d)
			}
			continue
		}
		if err != nil || d != tc.want {
			t.Errorf("%q: %v %v", tc.in, d, err)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 36 * time.Hour: "36h", 90 * time.Minute: "1h30m", 5 * time.Minute: "5m", 61*time.Minute + time.Second: "1h1m1s"} {
		if got := FormatSyncInterval(d); got != want {
			t.Errorf("FormatSyncInterval(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(FormatSyncInterval(d)); err != nil || back != d {
			t.Errorf("%q does not read back as %v", FormatSyncInterval(d), d)
		}
	}
}

func TestLoginSupport(t *testing.T) {
	set := func(tags, cgo string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "-tags", Value: tags}, {Key: "CGO_ENABLED", Value: cgo}}
	}
	for _, tc := range []struct {
		goos     string
		settings []debug.BuildSetting
		ok       bool
		why      string
	}{
		{"linux", set("desktop,production,webkit2_41", "1"), true, ""},
		{"linux", set("dev", "1"), true, ""},
		{"darwin", set("desktop,production", "1"), true, ""},
		{"windows", set("desktop,production", "1"), true, ""},
		{"windows", set("desktop,production", "0"), false, "This Windows build"},
		{"linux", set("", "0"), false, "This copy of Fasten has no window"},
		{"linux", set("desktopish", "1"), false, "This copy of Fasten has no window"},
		{"linux", nil, false, "This copy of Fasten has no window"},
		{"plan9", set("desktop", "1"), false, "Starting at login is not supported on plan9"},
	} {
		ok, why := LoginSupport(tc.goos, tc.settings)
		if ok != tc.ok || !strings.HasPrefix(why, tc.why) || (!ok && why == "") {
			t.Errorf("%s %v: %v %q", tc.goos, tc.settings, ok, why)
		}
	}
}

func TestLoginCommand(t *testing.T) {
	cmd := []string{"/opt/fasten/fasten-desktop", "--background"}
	if got := LoginCommand(cmd, "/home/a/.local/share/fasten-desktop/", "/home/a/.local/share/fasten-desktop"); !slices.Equal(got, cmd) {
		t.Errorf("default folder: %q", got)
	}
	if got := LoginCommand(cmd, "/data/fasten", "/home/a/.local/share/fasten-desktop"); !slices.Equal(got, append(cmd, "--data-dir", "/data/fasten")) {
		t.Errorf("other folder: %q", got)
	}
	if cmd[1] != "--background" || len(cmd) != 2 {
		t.Error("LoginCommand changed its argument")
	}
}
