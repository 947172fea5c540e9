package syncer

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

func routesHandler(s *Syncer) http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.Routes() {
		mux.HandleFunc(r.Method+" "+api.Prefix+r.Path, r.Handler)
	}
	return mux
}

func do(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, api.Prefix+path, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func TestRoutes(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	manual := e.addSource(records.NewSource{Kind: records.KindManual, Name: "file"}, nil)
	gone := e.addSource(records.NewSource{Name: "Old Hospital", Status: records.StatusReconnectNeeded}, nil)
	s := New(e.config(nil))
	h := routesHandler(s)

	mustOK(t, runOne(t, s, id))
	code, body := do(t, h, "GET", "/sources/"+itoa(id)+"/sync-runs")
	var runs []map[string]any
	decodeJSON(t, []byte(body), &runs)
	if code != 200 || len(runs) != 1 || runs[0]["status"] != "ok" || runs[0]["trigger"] != "manual" || runs[0]["added"] != float64(193) ||
		runs[0]["finished_at"] == nil || runs[0]["requests"].(float64) < 2 {
		t.Errorf("sync-runs: %d %s", code, body)
	}
	for _, k := range []string{"id", "source_id", "started_at", "updated", "unchanged", "error", "warnings"} {
		if _, ok := runs[0][k]; !ok {
			t.Errorf("sync-runs item lacks %q", k)
		}
	}

	// Without Run, requests stay queued: Syncing shows it, a second one is coalesced.
	for i, want := range []string{`"queued":true`, `"queued":false`} {
		code, body = do(t, h, "POST", "/sources/"+itoa(id)+"/sync")
		if code != http.StatusAccepted || !strings.Contains(body, want) || !strings.Contains(body, `"source_id":`+itoa(id)) {
			t.Errorf("POST sync %d: %d %s", i, code, body)
		}
	}
	if !s.Syncing(id) {
		t.Errorf("not syncing after POST")
	}
	code, body = do(t, h, "POST", "/sync")
	if code != http.StatusAccepted || body != `{"source_ids":[`+itoa(id)+`]}`+"\n" {
		t.Errorf("POST /sync: %d %s", code, body)
	}

	for _, tc := range []struct {
		method, path string
		code         int
		errCode      string
	}{
		{"POST", "/sources/999/sync", 404, "not_found"},
		{"POST", "/sources/x/sync", 404, "not_found"},
		{"POST", "/sources/" + itoa(manual) + "/sync", 409, "conflict"},
		{"POST", "/sources/" + itoa(gone) + "/sync", 409, "reconnect_needed"},
		{"GET", "/sources/999/sync-runs", 404, "not_found"},
		{"GET", "/sources/" + itoa(id) + "/sync-runs?limit=0", 400, "bad_request"},
	} {
		code, body := do(t, h, tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, `"code":"`+tc.errCode+`"`) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
		}
	}
	code, body = do(t, h, "POST", "/sources/"+itoa(gone)+"/sync")
	if !strings.Contains(body, "Sign in to Old Hospital again to resume syncing.") {
		t.Errorf("reconnect message: %s", body)
	}

	code, body = do(t, h, "GET", "/sources/"+itoa(manual)+"/sync-runs")
	if code != 200 || body != "[]\n" {
		t.Errorf("history of a file source: %d %s", code, body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
