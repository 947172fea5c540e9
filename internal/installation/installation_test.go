package installation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// env is the installation service over a settings file and an in-memory keyring, with a
// reference Lighthouse on loopback, its routes served like the app serves them.
type env struct {
	t     *testing.T
	lhURL string
	cfg   *config.Store
	kr    *secretstest.Memory
	inst  *installation.Service
	api   *httptest.Server
}

type envOptions struct {
	override string // LighthouseOverride; "" = the test gateway through the settings file
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, kr: secretstest.New(), cfg: config.NewStore(filepath.Join(dir, "settings.json"))}
	var gw http.Handler
	lh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r) }))
	t.Cleanup(lh.Close)
	e.lhURL = lh.URL
	g, err := gateway.New(context.Background(), gateway.Config{
		DB: filepath.Join(dir, "lighthouse.db"), PublicURL: e.lhURL, RegisterLimit: 1000,
		Providers: []gateway.Provider{
			{ID: "demo", Name: "Demo Hospital", FHIRBase: "https://fhir.example.org/r4", ClientID: "demo-app", Scopes: "launch/patient openid patient/*.rs", UserLimit: 10},
			{ID: "other", Name: "Other Clinic", FHIRBase: "https://other.example.org/fhir", ClientID: "demo-app", Scopes: "launch/patient openid patient/*.rs", UserLimit: 10},
		},
	})
	must(t, err)
	t.Cleanup(func() { g.Close() })
	gw = g.Handler()
	if o.override == "" {
		_, err := e.cfg.Update(func(c *config.Config) error { c.LighthouseURL = e.lhURL; return nil })
		must(t, err)
	}
	e.inst, err = installation.New(installation.Options{Config: e.cfg, Keyring: e.kr, LighthouseOverride: o.override})
	must(t, err)
	e.api = httptest.NewServer(serve(e.inst))
	t.Cleanup(e.api.Close)
	return e
}

// serve serves the service's routes under httpkit.Prefix like the API server does.
func serve(s *installation.Service) http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.Routes() {
		mux.HandleFunc(r.Method+" "+httpkit.Prefix+r.Path, r.Handler)
	}
	return mux
}

// call sends a JSON request to the routes and decodes the answer into out (if not nil).
func (e *env) call(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.api.URL+httpkit.Prefix+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		ID      string `json:"id"`
	} `json:"error"`
}

func (e *env) register() installation.Installation {
	e.t.Helper()
	var in installation.Installation
	if code := e.call("POST", "/installation", map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"}, &in); code != http.StatusCreated {
		e.t.Fatalf("register: HTTP %d", code)
	}
	return in
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

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
		name, _, err := installation.ValidateAdmin(tc.name, tc.email)
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
	if in, _ := e.inst.Installation(); in != nil {
		t.Fatal("registered after refusals")
	}

	first := e.register()
	secret1, err := e.kr.Get(context.Background(), installation.SecretKey(first.InstallationID))
	must(t, err)
	var second installation.Installation
	if code := e.call("POST", "/installation", map[string]string{"name": "Grace Hopper", "email": "grace@example.org"}, &second); code != 201 {
		t.Fatalf("re-register: %d", code)
	}
	secret2, err := e.kr.Get(context.Background(), installation.SecretKey(second.InstallationID))
	must(t, err)
	if second.InstallationID == first.InstallationID || bytes.Equal(secret1, secret2) || second.Name != "Grace Hopper" {
		t.Fatalf("re-registering did not replace the registration: %+v", second)
	}
	if _, err := e.kr.Get(context.Background(), installation.SecretKey(first.InstallationID)); err == nil {
		t.Fatal("the replaced registration's secret is still in the keyring")
	}
	// The new registration works with the Lighthouse.
	sess, err := e.inst.Session(context.Background())
	must(t, err)
	if sess.InstallationID != second.InstallationID {
		t.Fatalf("session of %s, want %s", sess.InstallationID, second.InstallationID)
	}
	if ps, err := sess.Client.Providers(context.Background(), ""); err != nil || len(ps) != 2 {
		t.Fatalf("providers after re-register: %v %v", ps, err)
	}
}

func TestSettingsLighthouseURL(t *testing.T) {
	e := newEnv(t, envOptions{override: "http://127.0.0.1:1"})
	var st installation.Settings
	e.call("GET", "/settings", nil, &st)
	if st.LighthouseURL != "http://127.0.0.1:1" || st.LighthouseURLSource != installation.URLFromFlag || st.DefaultLighthouseURL != config.DefaultLighthouseURL {
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
	if code := e.call("PATCH", "/settings", map[string]string{"lighthouse_url": e.lhURL + "/"}, &st); code != 200 || st.LighthouseURL != e.lhURL || st.LighthouseURLSource != installation.URLFromSettings {
		t.Fatalf("PATCH: %d %+v", code, st)
	}
	in := e.register()
	if in.LighthouseURL != e.lhURL {
		t.Fatalf("registered with %s", in.LighthouseURL)
	}
	if _, err := e.kr.Get(context.Background(), installation.SecretKey(in.InstallationID)); err != nil {
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
	if _, err := e.kr.Get(context.Background(), installation.SecretKey(in.InstallationID)); err == nil {
		t.Fatal("the old installation secret is still in the keyring")
	}
	if _, err := e.inst.Session(context.Background()); !errors.Is(err, installation.ErrNotRegistered) {
		t.Fatalf("session after changing the Lighthouse: %v", err)
	}
	// "" goes back to the public Lighthouse.
	e.call("PATCH", "/settings", map[string]string{"lighthouse_url": ""}, &st)
	if st.LighthouseURL != config.DefaultLighthouseURL {
		t.Fatalf("reset: %+v", st)
	}
}

func TestSkipOnboarding(t *testing.T) {
	e := newEnv(t, envOptions{})
	var st installation.Settings
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
	other, err := installation.New(installation.Options{Config: e.cfg, Keyring: e.kr, LighthouseOverride: "https://other-lighthouse.example.org"})
	must(t, err)
	st, err := other.Settings()
	must(t, err)
	if st.Installation != nil || st.RegisteredElsewhere != e.lhURL {
		t.Fatalf("settings %+v", st)
	}
	_, err = other.Session(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Register this installation") {
		t.Fatalf("a session with the other Lighthouse: %v", err)
	}
	// A secret in the keyring that belongs to another registration is not used either.
	b, _ := json.Marshal(map[string]any{"v": 1, "installation_id": "someone-else", "lighthouse_url": e.lhURL, "secret": "x"})
	must(t, e.kr.Set(context.Background(), installation.SecretKey(in.InstallationID), b))
	fresh, err := installation.New(installation.Options{Config: e.cfg, Keyring: e.kr})
	must(t, err)
	if _, err := fresh.Session(context.Background()); err == nil || !strings.Contains(err.Error(), "belongs to another registration") {
		t.Fatalf("mismatched secret: %v", err)
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
	routes := e.inst.Routes()
	if len(routes) != 4 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, r := range routes {
		if !documented[r.Method+" "+r.Path] {
			t.Errorf("%s %s is served but not in docs/openapi.yaml", r.Method, r.Path)
		}
	}
}
