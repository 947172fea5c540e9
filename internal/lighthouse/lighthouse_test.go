package lighthouse_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
)

func TestUserKey(t *testing.T) {
	cases := []struct{ secret, local, want string }{
		// printf 'fasten-desktop/user-key/v1:local-user-1' | openssl dgst -sha256 -hmac 'installation-secret'
		{"installation-secret", "local-user-1", "284a5498e0e3eca17a6cb908c739502c227bfca742997f18597e81bf9c01c3f7"},
		{"k", "", "60e56ad9f9c7d63f02f717a68a179ad0dddee8610e70ff76b6d92e386b20214c"},
	}
	for _, tc := range cases {
		if got := lighthouse.UserKey(tc.secret, tc.local); got != tc.want {
			t.Errorf("UserKey(%q, %q) = %s, want %s", tc.secret, tc.local, got, tc.want)
		}
	}
	if lighthouse.UserKey("a", "u") == lighthouse.UserKey("b", "u") || lighthouse.UserKey("a", "u") == lighthouse.UserKey("a", "v") {
		t.Error("keys collide")
	}
}

// tokenProvider is a confidential provider's token endpoint plus SMART discovery.
func tokenProvider(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token"})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		if !ok || id != "conf" || secret != "conf-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		if r.PostFormValue("refresh_token") == "bad" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		io.WriteString(w, `{"access_token":"at","token_type":"Bearer","refresh_token":"rt2"}`)
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type counted struct {
	h              http.Handler
	ok, notModifed atomic.Int32
}

func (c *counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRec{ResponseWriter: w}
	c.h.ServeHTTP(rec, r)
	if r.URL.Path == "/v1/providers" {
		switch rec.status {
		case http.StatusOK:
			c.ok.Add(1)
		case http.StatusNotModified:
			c.notModifed.Add(1)
		}
	}
}

type statusRec struct {
	http.ResponseWriter
	status int
}

func (s *statusRec) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusRec) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// startGateway runs a reference gateway on a SQLite file behind a loopback server.
func startGateway(t *testing.T, providers []gateway.Provider) (string, *counted) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	g, err := gateway.New(context.Background(), gateway.Config{
		DB: filepath.Join(t.TempDir(), "gw.db"), Providers: providers, PublicURL: base, RegisterLimit: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &counted{h: g.Handler()}
	srv.Config.Handler = c
	srv.Start()
	t.Cleanup(func() { srv.Close(); g.Close() })
	return base, c
}

func challenge(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(b)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func state() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestClientAgainstGateway(t *testing.T) {
	tp := tokenProvider(t)
	base, counter := startGateway(t, []gateway.Provider{
		{ID: "demo", Name: "Demo Hospital", FHIRBase: tp.URL + "/fhir", ClientID: "fasten-desktop", Scopes: "openid", UserLimit: 5},
		{ID: "conf", Name: "Confidential Care", FHIRBase: tp.URL + "/fhir", ClientID: "conf", ClientSecret: "conf-secret",
			Scopes: "openid", UserLimit: 2},
	})
	ctx := context.Background()
	anon := lighthouse.New(base, nil)

	if _, err := anon.Providers(ctx, ""); !lighthouse.IsType(err, lighthouse.TypeInstallationUnknown) {
		t.Fatalf("unregistered Providers: %v", err)
	}
	if _, err := anon.Register(ctx, "Ada", "not-an-email"); !lighthouse.IsType(err, lighthouse.TypeBadRequest) ||
		err.Error() != "Enter a valid email address for the administrator, like name@example.org." {
		t.Fatalf("bad email: %v", err)
	}
	reg, err := anon.Register(ctx, "Ada", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	c := anon.WithInstallation(reg.InstallationID, reg.InstallationSecret)
	if c.InstallationID() != reg.InstallationID || anon.InstallationID() != "" {
		t.Error("WithInstallation must return a copy")
	}

	// catalog: fetched once, then revalidated with 304
	ps, err := c.Providers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].ID != "demo" || ps[1].Confidential != true || ps[0].RedirectURI != base+"/v1/callback/demo" ||
		ps[0].TokenURL != tp.URL+"/token" || ps[0].UserLimit != 5 {
		t.Fatalf("catalog %+v", ps)
	}
	ps[0].Name = "mutated by the caller"
	again, err := c.Providers(ctx, "")
	if err != nil || len(again) != 2 || again[0].Name != "Demo Hospital" {
		t.Fatalf("cached catalog %+v %v", again, err)
	}
	if counter.ok.Load() != 1 || counter.notModifed.Load() != 1 {
		t.Errorf("catalog requests: %d x 200, %d x 304; want 1 and 1", counter.ok.Load(), counter.notModifed.Load())
	}
	if f, err := c.Providers(ctx, "confidential"); err != nil || len(f) != 1 || f[0].ID != "conf" {
		t.Errorf("filtered %+v %v", f, err)
	}

	// connect: admitted, warned near the limit, refused past it
	connect := func(key string) (lighthouse.ConnectResponse, error) {
		return c.Connect(ctx, "conf", lighthouse.ConnectRequest{State: state(), CodeChallenge: challenge(t), RedirectPort: 51000,
			UserKey: lighthouse.UserKey(reg.InstallationSecret, key)})
	}
	r1, err := connect("user-1")
	if err != nil || !strings.HasPrefix(r1.AuthorizeURL, base+"/v1/connect/conf?ticket=") || r1.Warning != nil ||
		r1.RedirectURI != base+"/v1/callback/conf" || r1.ExpiresAt.IsZero() {
		t.Fatalf("connect 1: %+v %v", r1, err)
	}
	r2, err := connect("user-2")
	if err != nil || r2.Warning == nil || r2.Warning.Type != lighthouse.TypeUserLimitNear || r2.Warning.Count != 2 || r2.Warning.Limit != 2 {
		t.Fatalf("connect 2: %+v %v", r2, err)
	}
	_, err = connect("user-3")
	var le *lighthouse.Error
	if !errors.As(err, &le) || le.Type != lighthouse.TypeUserLimitReached || le.Limit != 2 || le.ProviderName != "Confidential Care" ||
		le.Status != http.StatusForbidden || err.Error() != "This installation has reached the limit of 2 users for Confidential Care." {
		t.Fatalf("connect 3: %#v", err)
	}
	if _, err := connect("user-1"); err != nil {
		t.Errorf("known user refused: %v", err)
	}
	if _, err := c.Connect(ctx, "nope/../x", lighthouse.ConnectRequest{State: state(), CodeChallenge: challenge(t), RedirectPort: 51000,
		UserKey: lighthouse.UserKey("s", "u")}); !lighthouse.IsType(err, lighthouse.TypeProviderUnknown) {
		t.Errorf("unknown provider: %v", err)
	}

	// token swap: relayed unchanged; gateway problems typed
	status, body, err := c.SwapToken(ctx, "conf", lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: "rt"})
	if err != nil || status != 200 || string(body) != `{"access_token":"at","token_type":"Bearer","refresh_token":"rt2"}` {
		t.Errorf("swap: %d %s %v", status, body, err)
	}
	status, body, err = c.SwapToken(ctx, "conf", lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: "bad"})
	if err != nil || status != 400 || string(body) != `{"error":"invalid_grant"}` {
		t.Errorf("provider error: %d %s %v", status, body, err)
	}
	if _, _, err := c.SwapToken(ctx, "demo", lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: "rt"}); !lighthouse.IsType(err, lighthouse.TypeProviderNotConfidential) {
		t.Errorf("public provider swap: %v", err)
	}

	// wrong and unknown credentials
	if _, err := anon.WithInstallation(reg.InstallationID, "wrong").Providers(ctx, ""); !lighthouse.IsType(err, lighthouse.TypeInstallationAuthFailed) {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := anon.WithInstallation(strings.Repeat("f", 32), reg.InstallationSecret).Providers(ctx, ""); !lighthouse.IsType(err, lighthouse.TypeInstallationUnknown) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestRateLimitedError(t *testing.T) {
	base, _ := startGateway(t, []gateway.Provider{{ID: "demo", Name: "Demo", FHIRBase: "https://f.example/fhir", ClientID: "c", Scopes: "openid", UserLimit: 1}})
	c := lighthouse.New(base, nil)
	var err error
	for i := 0; i < 6 && err == nil; i++ {
		_, err = c.Register(context.Background(), "Ada", "ada@example.org")
	}
	var le *lighthouse.Error
	if !errors.As(err, &le) || le.Type != lighthouse.TypeRateLimited || le.RetryAfter <= 0 || le.RetryAfter > time.Hour {
		t.Fatalf("%#v", err)
	}
}

// recorder is a fake Lighthouse that records every request.
type recorder struct {
	mu   sync.Mutex
	seen []string // one line per request: URL, headers but Authorization, body
	auth []string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var sb strings.Builder
	sb.WriteString(r.Method + " " + r.URL.String() + "\n")
	for k, vs := range r.Header {
		if k != "Authorization" {
			sb.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
	}
	sb.Write(body)
	rc.mu.Lock()
	rc.seen = append(rc.seen, sb.String())
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	rc.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/providers":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[]`)
	case strings.HasPrefix(r.URL.Path, "/v1/connect/"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"authorize_url":"http://x/v1/connect/p?ticket=t","redirect_uri":"http://x/v1/callback/p","expires_at":"2026-01-01T00:00:00Z"}`)
	case strings.HasPrefix(r.URL.Path, "/v1/token/"):
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Lighthouse-Upstream", "provider")
		io.WriteString(w, `{}`)
	default:
		http.NotFound(w, r)
	}
}

func TestSecretOnlyInAuthorizationHeader(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	const secret = "the-installation-secret-value"
	c := lighthouse.New(srv.URL, nil).WithInstallation("inst-1", secret)
	ctx := context.Background()
	if _, err := c.Providers(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx, "p", lighthouse.ConnectRequest{State: "s", CodeChallenge: "c", RedirectPort: 50000,
		UserKey: lighthouse.UserKey(secret, "u")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.SwapToken(ctx, "p", lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 3 {
		t.Fatalf("%d requests", len(rec.seen))
	}
	for i, s := range rec.seen {
		if strings.Contains(s, secret) {
			t.Errorf("request %d carries the secret outside Authorization:\n%s", i, s)
		}
		if !strings.Contains(s, "X-Installation-Id: inst-1") {
			t.Errorf("request %d lacks X-Installation-Id:\n%s", i, s)
		}
		if rec.auth[i] != "Bearer "+secret {
			t.Errorf("request %d Authorization %q", i, rec.auth[i])
		}
	}
}

func TestClientRefusesRedirectToAnotherHost(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/providers": // same host: followed
			http.Redirect(w, r, srvURL+"/moved/providers", http.StatusTemporaryRedirect)
		case "/moved/providers":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"id":"p"}]`)
		default: // another host: refused
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	c := lighthouse.New(srv.URL, nil).WithInstallation("inst", "secret-xyz")
	ctx := context.Background()
	if ps, err := c.Providers(ctx, ""); err != nil || len(ps) != 1 {
		t.Fatalf("same-host redirect: %v %v", ps, err)
	}
	_, err := c.Connect(ctx, "p", lighthouse.ConnectRequest{State: "s", RedirectPort: 50000, UserKey: "k"})
	if err == nil || !strings.Contains(err.Error(), "refusing a redirect") || strings.Contains(err.Error(), "secret-xyz") {
		t.Fatalf("cross-host redirect: %v", err)
	}
	if _, err := lighthouse.New(srv.URL, nil).Register(ctx, "a", "a@example.org"); err == nil {
		t.Error("unauthenticated cross-host redirect followed")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestClientBaseURL(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://lighthouse.example.org", true},
		{"https://lighthouse.example.org/base/", true},
		{"http://127.0.0.1:9500", true},
		{"http://[::1]:9500", true},
		{"http://localhost:9500", true},
		{"http://lighthouse.example.org", false},
		{"ftp://lighthouse.example.org", false},
		{"lighthouse.example.org", false},
		{"https://user:pw@lighthouse.example.org", false},
		{"https://lighthouse.example.org/?x=1", false},
	}
	for _, tc := range cases {
		c := lighthouse.New(tc.url, &http.Client{Transport: failingTransport{}})
		_, err := c.Register(context.Background(), "a", "a@example.org")
		refused := err != nil && !strings.Contains(err.Error(), "could not be reached")
		if refused == tc.ok {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

func TestClientNetworkAndUnexpectedErrors(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	c := lighthouse.New(srv.URL, nil).WithInstallation("inst", "secret-value-123")
	_, err := c.Providers(ctx, "")
	if err == nil || !strings.HasPrefix(err.Error(), "the Lighthouse at "+addr+" could not be reached: ") || strings.Contains(err.Error(), "secret-value-123") {
		t.Errorf("network error %q", err)
	}
	var le *lighthouse.Error
	if errors.As(err, &le) {
		t.Error("a network failure is not a Lighthouse problem")
	}

	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>bad gateway</html>")
	}))
	defer proxy.Close()
	_, err = lighthouse.New(proxy.URL, nil).WithInstallation("i", "s").Providers(ctx, "")
	if !errors.As(err, &le) || le.Type != lighthouse.TypeUnexpectedResponse || le.Status != 502 ||
		err.Error() != "The Lighthouse answered with an unexpected HTTP 502 Bad Gateway." {
		t.Errorf("proxy error %#v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lighthouse.New(proxy.URL, nil).WithInstallation("i", "s").Providers(cctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// Forget frees a user's slot (the gateway's count drops and another user gets in), is
// idempotent, and a revoked installation gets ErrInstallationRevoked with plain words.
func TestForgetAndRevoked(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gw.db")
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	g, err := gateway.New(context.Background(), gateway.Config{DB: db, PublicURL: base,
		Providers: []gateway.Provider{{ID: "demo", Name: "Demo Hospital", FHIRBase: "https://f.example/fhir", ClientID: "c", Scopes: "openid", UserLimit: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = g.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); g.Close() })
	ctx := context.Background()
	reg, err := lighthouse.New(base, nil).Register(ctx, "Ada", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	c := lighthouse.New(base, nil).WithInstallation(reg.InstallationID, reg.InstallationSecret)
	key := func(person string) string { return lighthouse.UserKey(reg.InstallationSecret, person) }
	connect := func(person string) error {
		_, err := c.Connect(ctx, "demo", lighthouse.ConnectRequest{State: state(), CodeChallenge: challenge(t), RedirectPort: 51000, UserKey: key(person)})
		return err
	}
	admin := func(args ...string) string {
		var out strings.Builder
		if err := gateway.Command(ctx, append([]string{"admin", "--db", db}, args...), &out, &out, nil); err != nil {
			t.Fatalf("admin %v: %v", args, err)
		}
		return out.String()
	}
	for _, p := range []string{"person-1", "person-2"} {
		if err := connect(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := connect("person-3"); !lighthouse.IsType(err, lighthouse.TypeUserLimitReached) {
		t.Fatalf("third person: %v", err)
	}
	if !strings.Contains(admin("installations"), "demo 2/2") {
		t.Fatalf("before forget:\n%s", admin("installations"))
	}
	// person-1 deleted in the app; then merged person-2's old key forgotten as well
	for i := 0; i < 2; i++ {
		if err := c.Forget(ctx, "demo", key("person-1")); err != nil {
			t.Fatalf("forget %d: %v", i, err)
		}
	}
	if out := admin("installations"); !strings.Contains(out, "demo 1/2") {
		t.Errorf("the gateway's count did not drop:\n%s", out)
	}
	if err := connect("person-3"); err != nil {
		t.Errorf("the freed slot is refused: %v", err)
	}
	if err := c.Forget(ctx, "nope", key("person-1")); !lighthouse.IsType(err, lighthouse.TypeProviderUnknown) {
		t.Errorf("unknown provider: %v", err)
	}
	if err := lighthouse.New(base, nil).Forget(ctx, "demo", key("person-1")); !lighthouse.IsType(err, lighthouse.TypeInstallationUnknown) {
		t.Errorf("unregistered forget: %v", err)
	}

	admin("revoke", reg.InstallationID)
	for name, call := range map[string]func() error{
		"connect":   func() error { return connect("person-1") },
		"providers": func() error { _, err := c.Providers(ctx, ""); return err },
		"forget":    func() error { return c.Forget(ctx, "demo", key("person-3")) },
		"swap": func() error {
			_, _, err := c.SwapToken(ctx, "demo", lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: "x"})
			return err
		},
	} {
		err := call()
		if !errors.Is(err, lighthouse.ErrInstallationRevoked) || !lighthouse.IsType(err, lighthouse.TypeInstallationRevoked) {
			t.Errorf("%s while revoked: %v", name, err)
		} else if err.Error() != lighthouse.RevokedMessage {
			t.Errorf("%s: message %q", name, err.Error())
		}
	}
	if errors.Is(&lighthouse.Error{Type: lighthouse.TypeUserLimitReached}, lighthouse.ErrInstallationRevoked) {
		t.Error("another problem matches ErrInstallationRevoked")
	}
	admin("unrevoke", reg.InstallationID)
	if err := connect("person-3"); err != nil {
		t.Errorf("after unrevoke: %v", err)
	}
}
