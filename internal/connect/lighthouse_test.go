package connect_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// TestLighthouseDown: with the Lighthouse gone, importing files works, the catalog says the
// Lighthouse cannot be reached, and an already-connected public-client source still refreshes
// straight at the provider and reads its records.
func TestLighthouseDown(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	p := e.patient()
	fin := e.connectPatient(demo, p)
	src := e.source(*fin.SourceID)
	e.gatewayTS.Close()

	var ae apiError
	if code := e.call("GET", "/providers", nil, &ae); code != http.StatusBadGateway || ae.Error.Code != "lighthouse_unreachable" || !strings.Contains(ae.Error.Message, "could not reach the Lighthouse") {
		t.Fatalf("providers: %d %+v", code, ae)
	}
	var st installation.Settings
	if code := e.call("GET", "/settings", nil, &st); code != 200 || st.Installation == nil {
		t.Fatalf("settings: %d", code)
	}

	// Import a file.
	dir, err := shareddata.Path(shareddata.Synthea)
	must(t, err)
	matches, _ := filepath.Glob(filepath.Join(dir, "patient-*.json"))
	if len(matches) == 0 {
		t.Fatal("no Synthea file")
	}
	f, err := os.Open(matches[0])
	must(t, err)
	defer f.Close()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(matches[0]))
	io.Copy(fw, f)
	mw.Close()
	resp, err := http.Post(e.api.URL+api.Prefix+"/imports", mw.FormDataContentType(), &body)
	must(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import with the Lighthouse down: %d %s", resp.StatusCode, out)
	}

	// Refresh and read straight at the provider.
	before := tokenCalls(e.hospital, "refresh_token")
	tm, err := e.svc.TokenManagerFor(context.Background(), src)
	must(t, err)
	if _, err := tm.Refresh(context.Background(), ""); err != nil {
		t.Fatalf("refresh with the Lighthouse down: %v", err)
	}
	if tokenCalls(e.hospital, "refresh_token") != before+1 {
		t.Fatal("the refresh did not reach the provider")
	}
	if code, _, err := e.fhirGet(src, "Patient/"+p.ID); err != nil || code != 200 {
		t.Fatalf("read: %d %v", code, err)
	}
}

// TestRoutesDocumented: every route of this service is described in docs/openapi.yaml (the
// backend's test checks the assembled API both ways).
func TestRoutesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	must(t, err)
	documented := map[string]bool{}
	cur := ""
	inPaths := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "paths:"):
			inPaths = true
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && cur != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ":"):
			documented[strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))+" "+cur] = true
		}
	}
	e := newEnv(t, envOptions{})
	routes := e.svc.Routes()
	if len(routes) < 6 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, r := range routes {
		if !documented[r.Method+" "+r.Path] {
			t.Errorf("%s %s is served but not in docs/openapi.yaml", r.Method, r.Path)
		}
	}
}
