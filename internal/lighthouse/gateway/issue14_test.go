package gateway

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 14 item 9: invalid registrations must not use up the allowance of valid ones; invisible
// or direction-overriding names and address-literal emails are refused.
func TestIssue14_9_RegistrationLimiterCountsFailuresSeparately(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"),
		func(c *Config) { c.RegisterLimit = 3 })
	for i := 0; i < 20; i++ {
		r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": "", "email": "nope"})
		if r.status != http.StatusBadRequest && r.status != http.StatusTooManyRequests {
			t.Fatalf("invalid attempt %d: %d %s", i, r.status, r.body)
		}
	}
	// The valid ones still get their full allowance.
	for i := 0; i < 3; i++ {
		e.register("Ada", "ada@example.org")
	}
	r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": "Ada", "email": "ada@example.org"})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("4th valid registration: %d %s", r.status, r.body)
	}
	// Failures are limited too, on their own count.
	e2 := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"),
		func(c *Config) { c.RegisterLimit = 3 })
	limited := false
	for i := 0; i < 200 && !limited; i++ {
		r := e2.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": "", "email": "nope"})
		limited = r.status == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("200 invalid registrations from one address were never rate limited")
	}
	e2.register("Ada", "ada@example.org")
}

func TestIssue14_9_RegistrationRefusesInvisibleNamesAndAddressLiterals(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"),
		func(c *Config) { c.RegisterLimit = 1000 })
	bad := []struct{ name, email string }{
		{"\u200b", "ada@example.org"},
		{"\ufeff", "ada@example.org"},
		{"\u200b\u200c\u2060", "ada@example.org"},
		{"\u2028", "ada@example.org"},
		{"\u3000", "ada@example.org"},
		{"Ada \u202eLovelace", "ada@example.org"},
		{"Ada\u2066x\u2069", "ada@example.org"},
		{"Ada\u200f", "ada@example.org"},
		{"Ada", "a@[127.0.0.1]"},
		{"Ada", "a@127.0.0.1"},
		{"Ada", "a@localhost"},
		{"Ada", "a@-example.org"},
		{"Ada", "a@example.123"},
		{"Ada", "a@exa_mple.org"},
	}
	for _, b := range bad {
		r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": b.name, "email": b.email})
		if r.status != http.StatusBadRequest {
			t.Errorf("register(%q, %q) = %d %s, want 400", b.name, b.email, r.status, r.body)
		}
	}
	for _, good := range []struct{ name, email string }{
		{"Ada Lovelace", "ada@example.org"},
		{"José Ñúñez", "jose@mail.example.co.uk"},
		{"محمد", "m@xn--mgbh0fb.example"},
		{"李雷", "li@例子.中国"},
	} {
		if r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": good.name, "email": good.email}); r.status != http.StatusCreated {
			t.Errorf("register(%q, %q) = %d %s, want 201", good.name, good.email, r.status, r.body)
		}
	}
}

// Issue 14 item 17: a gateway bound to all interfaces says so and needs --public-url.
func TestIssue14_17_ListenAllInterfacesNeedsPublicURL(t *testing.T) {
	dir := t.TempDir()
	providers := writeProvidersFile(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Command(ctx, []string{"--listen", "0.0.0.0:0", "--db", filepath.Join(dir, "gw.db"), "--providers", providers},
		&syncBuffer{}, &syncBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "--public-url") {
		t.Fatalf("Command on 0.0.0.0 without --public-url: %v", err)
	}
	line := startCommand(t, "--listen", "0.0.0.0:0", "--db", filepath.Join(dir, "gw.db"), "--providers", providers,
		"--public-url", "https://lighthouse.example.org")
	if !strings.HasPrefix(line, "lighthouse listening on http://0.0.0.0:") {
		t.Errorf("ready line %q does not name the real address", line)
	}
}

// Issue 14 item 18: the gateway never relays a provider's non-JSON body from its own origin.
func TestIssue14_18_TokenErrorsRelayedOnlyAsJSON(t *testing.T) {
	fp := newFakeProvider(t, "conf", "s3cret")
	ps := demoProviders(fp.fhirBase())
	ps = append(ps, Provider{ID: "conf", Name: "Conf Clinic", FHIRBase: fp.fhirBase(), ClientID: "conf",
		ClientSecret: "s3cret", Scopes: "openid", UserLimit: 5})
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), ps)
	inst := e.register("Ada", "ada@example.org")
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
	}{
		{http.StatusBadRequest, "text/html", "<html><script>alert(1)</script></html>"},
		{http.StatusOK, "text/html", `<b>{"access_token":"x"}</b>`},
		{http.StatusInternalServerError, "text/plain", "oops"},
	} {
		fp.setTokenReply(tc.status, tc.ctype, tc.body)
		r := e.call(http.MethodPost, "/v1/token/conf", inst, map[string]string{"grant_type": "refresh_token", "refresh_token": "rt"})
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("provider %d %s: relayed as %q: %s", tc.status, tc.ctype, ct, r.body)
			continue
		}
		if p := r.problem(t); p.Type != TypeProviderError || r.status != http.StatusBadGateway {
			t.Errorf("provider %d %s: %d %s", tc.status, tc.ctype, r.status, r.body)
		}
		if strings.Contains(string(r.body), "<") {
			t.Errorf("provider body leaked: %s", r.body)
		}
	}
	// A JSON body with a wrong content type is relayed as JSON.
	fp.setTokenReply(http.StatusBadRequest, "text/html", `{"error":"invalid_grant"}`)
	r := e.call(http.MethodPost, "/v1/token/conf", inst, map[string]string{"grant_type": "refresh_token", "refresh_token": "rt"})
	if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "application/json" || r.header.Get(UpstreamHeader) != "provider" {
		t.Errorf("JSON error: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
}

func writeProvidersFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "providers.json")
	if err := os.WriteFile(p, []byte(`[{"id":"demo","name":"Demo Hospital","fhir_base":"http://127.0.0.1:9400/fhir",
		"client_id":"fasten-desktop","scopes":"openid","user_limit":10}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startCommand runs Command with args until the test ends and returns its ready line.
func startCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := newLineWriter()
	done := make(chan error, 1)
	go func() { done <- Command(ctx, args, &syncBuffer{}, stderr, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Command: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Command did not stop")
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line := <-stderr.lines:
			if strings.HasPrefix(line, "lighthouse listening on ") {
				return line
			}
		case err := <-done:
			t.Fatalf("Command returned early: %v", err)
		case <-deadline:
			t.Fatal("no ready line")
		}
	}
}
