package connect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/connect"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestValidateAdmin(t *testing.T) {
	cases := []struct {
		name, email string
		ok          bool
		wantName    string
	}{
		{"Ada Lovelace", "ada@example.org", true, "Ada Lovelace"},
		{"  Ada \t Lovelace ", " ada@example.org ", true, "Ada Lovelace"},
		{"José María", "jm@correo.example.es", true, "José María"},
		{"", "ada@example.org", false, ""},
		{"   ", "ada@example.org", false, ""},
		{strings.Repeat("a", 201), "ada@example.org", false, ""},
		{strings.Repeat("á", 200), "ada@example.org", true, strings.Repeat("á", 200)},
		{"Ada\x00", "ada@example.org", false, ""},
		{"Ada", "", false, ""},
		{"Ada", "ada", false, ""},
		{"Ada", "ada@localhost", false, ""},
		{"Ada", "Ada <ada@example.org>", false, ""},
		{"Ada", "ada@example.org, bob@example.org", false, ""},
		{"Ada", "ada@@example.org", false, ""},
		{"Ada", "ada@example..org", false, ""},
		{"Ada", "ada@.example.org", false, ""},
		{"Ada", "ada@example.org.", false, ""},
		{"Ada", "a b@example.org", false, ""},
		{"Ada", strings.Repeat("a", 250) + "@example.org", false, ""},
	}
	for _, tc := range cases {
		name, _, err := connect.ValidateAdmin(tc.name, tc.email)
		if (err == nil) != tc.ok || (tc.ok && name != tc.wantName) {
			t.Errorf("ValidateAdmin(%q, %q) = %q, %v; want ok=%v", tc.name, tc.email, name, err, tc.ok)
		}
	}
}

func TestRegisterValidationAndReRegister(t *testing.T) {
	e := newEnv(t, envOptions{})
	var ae apiError
	if code := e.call("POST", "/installation", map[string]string{"name": "Ada", "email": "not-an-email"}, &ae); code != 400 || ae.Error.Code != "invalid_email" || ae.Error.Message != "Please enter a valid email address, such as name@example.org." {
		t.Fatalf("%d %+v", code, ae)
	}
	if code := e.call("POST", "/installation", map[string]string{"name": "", "email": "ada@example.org"}, &ae); code != 400 || ae.Error.Code != "invalid_name" {
		t.Fatalf("%d %+v", code, ae)
	}
	if code := e.call("POST", "/installation", map[string]any{"name": "Ada", "email": "ada@example.org", "extra": 1}, &ae); code != 400 {
		t.Fatalf("unknown field: %d", code)
	}
	if in, _ := e.svc.Installation(); in != nil {
		t.Fatal("registered after refusals")
	}

	first := e.register()
	secret1, err := e.kr.Get(context.Background(), connect.InstallationSecretKey(first.InstallationID))
	must(t, err)
	var second connect.Installation
	if code := e.call("POST", "/installation", map[string]string{"name": "Grace Hopper", "email": "grace@example.org"}, &second); code != 201 {
		t.Fatalf("re-register: %d", code)
	}
	secret2, err := e.kr.Get(context.Background(), connect.InstallationSecretKey(second.InstallationID))
	must(t, err)
	if second.InstallationID == first.InstallationID || bytes.Equal(secret1, secret2) || second.Name != "Grace Hopper" {
		t.Fatalf("re-registering did not replace the registration: %+v", second)
	}
	if _, err := e.kr.Get(context.Background(), connect.InstallationSecretKey(first.InstallationID)); err == nil {
		t.Fatal("the replaced registration's secret is still in the keyring")
	}
	// The new registration works with the Lighthouse.
	var ps []connect.CatalogEntry
	if code := e.call("GET", "/providers", nil, &ps); code != 200 || len(ps) != 3 {
		t.Fatalf("providers after re-register: %d %v", code, ps)
	}
}

func TestSettingsLighthouseURL(t *testing.T) {
	e := newEnv(t, envOptions{override: "http://127.0.0.1:1"})
	var st connect.Settings
	e.call("GET", "/settings", nil, &st)
	if st.LighthouseURL != "http://127.0.0.1:1" || st.LighthouseURLSource != connect.URLFromFlag || st.DefaultLighthouseURL != config.DefaultLighthouseURL {
		t.Fatalf("settings with the flag: %+v", st)
	}
	// The flag's Lighthouse is down: registration says so in plain words.
	var ae apiError
	if code := e.call("POST", "/installation", map[string]string{"name": "Ada", "email": "ada@example.org"}, &ae); code != http.StatusBadGateway ||
		ae.Error.Code != "lighthouse_unreachable" || !strings.Contains(ae.Error.Message, "could not reach the Lighthouse at 127.0.0.1:1") {
		t.Fatalf("register with the Lighthouse down: %d %+v", code, ae)
	}

	for _, bad := range []string{"http://lighthouse.example.org", "ftp://x", "https://", "https://x/?q=1", "https://user:pw@x", "not a url"} {
		if code := e.call("PATCH", "/settings", map[string]string{"lighthouse_url": bad}, &ae); code != 400 || ae.Error.Code != "invalid_lighthouse_url" {
			t.Errorf("PATCH %q: %d %+v", bad, code, ae)
		}
	}

	// A change in Settings applies at once, over the flag.
	if code := e.call("PATCH", "/settings", map[string]string{"lighthouse_url": e.lhURL + "/"}, &st); code != 200 || st.LighthouseURL != e.lhURL || st.LighthouseURLSource != connect.URLFromSettings {
		t.Fatalf("PATCH: %d %+v", code, st)
	}
	in := e.register()
	if in.LighthouseURL != e.lhURL {
		t.Fatalf("registered with %s", in.LighthouseURL)
	}
	if _, err := e.kr.Get(context.Background(), connect.InstallationSecretKey(in.InstallationID)); err != nil {
		t.Fatal(err)
	}

	// Another Lighthouse: the registration ends and its secret leaves the keyring (it must never
	// be sent to another Lighthouse); the name and email stay to prefill the form.
	if code := e.call("PATCH", "/settings", map[string]string{"lighthouse_url": "https://lighthouse.example.org"}, &st); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	if st.Installation != nil || st.LighthouseURL != "https://lighthouse.example.org" || st.AdminEmail != "ada@example.org" {
		t.Fatalf("after changing the Lighthouse: %+v", st)
	}
	if _, err := e.kr.Get(context.Background(), connect.InstallationSecretKey(in.InstallationID)); err == nil {
		t.Fatal("the old installation secret is still in the keyring")
	}
	if code := e.call("GET", "/providers", nil, &ae); code != http.StatusConflict || ae.Error.Code != "not_registered" {
		t.Fatalf("providers: %d %+v", code, ae)
	}
	// "" goes back to the public Lighthouse.
	e.call("PATCH", "/settings", map[string]string{"lighthouse_url": ""}, &st)
	if st.LighthouseURL != config.DefaultLighthouseURL {
		t.Fatalf("reset: %+v", st)
	}
}

func TestSkipOnboarding(t *testing.T) {
	e := newEnv(t, envOptions{})
	var st connect.Settings
	if code := e.call("PATCH", "/settings", map[string]bool{"onboarding_done": true}, &st); code != 200 || !st.OnboardingDone || st.Installation != nil {
		t.Fatalf("%d %+v", code, st)
	}
	var ae apiError
	if code := e.call("PATCH", "/settings", map[string]any{}, &ae); code != 400 {
		t.Fatalf("empty patch: %d", code)
	}
}

// TestRegisteredWithAnotherLighthouse: the flag points at another Lighthouse than the one this
// installation registered with: the registration is not used there (its secret is never sent)
// and the settings say why.
func TestRegisteredWithAnotherLighthouse(t *testing.T) {
	e := newEnv(t, envOptions{})
	in := e.register()
	other, err := connect.New(connect.Options{Store: e.store, Config: e.cfg, Keyring: e.kr, LighthouseOverride: "https://other-lighthouse.example.org"})
	must(t, err)
	defer other.Close()
	st, err := other.Settings()
	must(t, err)
	if st.Installation != nil || st.RegisteredElsewhere != e.lhURL {
		t.Fatalf("settings %+v", st)
	}
	_, err = other.Providers(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "Register this installation") {
		t.Fatalf("providers through the other Lighthouse: %v", err)
	}
	// A secret in the keyring that belongs to another registration is not used either.
	b, _ := json.Marshal(map[string]any{"v": 1, "installation_id": "someone-else", "lighthouse_url": e.lhURL, "secret": "x"})
	must(t, e.kr.Set(context.Background(), connect.InstallationSecretKey(in.InstallationID), b))
	fresh, err := connect.New(connect.Options{Store: e.store, Config: e.cfg, Keyring: e.kr})
	must(t, err)
	defer fresh.Close()
	if _, err := fresh.Providers(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "belongs to another registration") {
		t.Fatalf("mismatched secret: %v", err)
	}
}

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
	var st connect.Settings
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
// api package's test covers the core routes; see the report for the assembled check).
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
	if len(routes) < 10 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, r := range routes {
		if !documented[r.Method+" "+r.Path] {
			t.Errorf("%s %s is served but not in docs/openapi.yaml", r.Method, r.Path)
		}
	}
}
