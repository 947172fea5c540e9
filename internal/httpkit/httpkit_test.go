package httpkit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

var errGone = &httpkit.Kind{Status: http.StatusNotFound, Code: "not_found", Text: "not found"}

func TestFail(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		msgHas     string
		msgHasNot  string
		wantOutome bool
	}{
		{"kind wrapped", fmt.Errorf("source 4: %w", errGone), 404, "not_found", "Source 4: not found.", "", false},
		{"status error", httpkit.BadRequest("A name must be 1 to 200 characters."), 400, "bad_request", "A name must be 1 to 200 characters.", "", false},
		{"outcome kind", fmt.Errorf("%w: all 3 resources were invalid", &httpkit.OutcomeKind{Kind: httpkit.Kind{Status: 400, Code: "empty", Text: "no FHIR resources"}}), 400, "empty", "No FHIR resources: all 3 resources were invalid.", "", true},
		{"internal hides text", fmt.Errorf("open /home/ann/.local/share/fasten/spool/x: permission denied"), 500, "internal", "error ", "/home/ann", false},
		{"max bytes", &http.MaxBytesError{Limit: 4 << 20}, 413, "too_large", "4 MiB", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logBuf.Reset()
			rec := httptest.NewRecorder()
			httpkit.Fail(rec, httptest.NewRequest("GET", "/api/v1/x", nil), log, c.err)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			body := rec.Body.String()
			if c.wantOutome {
				if !strings.Contains(body, `"resourceType":"OperationOutcome"`) || !strings.Contains(body, c.msgHas) {
					t.Fatalf("want an OperationOutcome with %q, got %s", c.msgHas, body)
				}
				return
			}
			var eb httpkit.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatal(err)
			}
			if eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msgHas) {
				t.Fatalf("got %+v, want code %s with %q", eb.Error, c.code, c.msgHas)
			}
			if c.msgHasNot != "" && strings.Contains(body, c.msgHasNot) {
				t.Fatalf("the response leaks %q: %s", c.msgHasNot, body)
			}
			if c.status == 500 {
				if eb.Error.ID == "" || !strings.Contains(logBuf.String(), "error_id="+eb.Error.ID) || !strings.Contains(logBuf.String(), "/home/ann") {
					t.Fatalf("a 500 must log the error under the id it returns; log: %s body: %s", logBuf.String(), body)
				}
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	cases := []struct {
		in     string
		ok     bool
		status int
	}{
		{`{"name":"Ann"}`, true, 0},
		{`{"name":"Ann","name":"Bob"}`, false, 400},
		{`{"name":"Ann","extra":1}`, false, 400},
		{`{"name":"Ann"} {"name":"Bob"}`, false, 400},
		{`{"name":"Ann"} x`, false, 400},
		{``, false, 400},
		{`{"name":"` + strings.Repeat("a", 70<<10) + `"}`, false, 413},
	}
	for _, c := range cases {
		var v body
		err := httpkit.DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(c.in)), &v, 0, false)
		if c.ok != (err == nil) {
			t.Fatalf("%.40q: err %v, want ok=%v", c.in, err, c.ok)
		}
		var se *httpkit.StatusError
		if err != nil && (!errors.As(err, &se) || se.Status != c.status) {
			t.Fatalf("%.40q: %v, want status %d", c.in, err, c.status)
		}
	}
	var v body
	if err := httpkit.DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(" ")), &v, 0, true); err != nil {
		t.Fatalf("an allowed empty body: %v", err)
	}
}

// TestLeaf keeps httpkit a leaf: it imports nothing of the app, so every feature can use it.
func TestLeaf(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if strings.Contains(imp.Path.Value, "github.com/fastenhealth/fasten-desktop/") {
				t.Errorf("%s imports %s: httpkit must stay a leaf", f, imp.Path.Value)
			}
		}
	}
}
