package smart_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// fhirServer serves the given well-known and metadata documents under /fhir (nil: 404).
func fhirServer(t *testing.T, wellKnown func(base string) string, metadata func(base string) string) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var accepts []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.URL.Path+" "+r.Header.Get("Accept"))
		mu.Unlock()
		base := srv.URL + "/fhir"
		switch {
		case r.URL.Path == "/fhir/.well-known/smart-configuration" && wellKnown != nil:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(wellKnown(base)))
		case r.URL.Path == "/fhir/metadata" && metadata != nil:
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = w.Write([]byte(metadata(base)))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), accepts...)
	}
}

func v2Config(base string) string {
	return `{"issuer":"` + base + `","authorization_endpoint":"` + base + `/auth/authorize","token_endpoint":"` + base + `/auth/token",
	"revocation_endpoint":"` + base + `/auth/revoke",
	"capabilities":["launch-standalone","client-public","permission-v2","permission-offline"],
	"scopes_supported":["openid","fhirUser","launch/patient","offline_access","patient/*.rs"],
	"code_challenge_methods_supported":["S256"]}`
}

func v1Metadata(base string) string {
	return `{"resourceType":"CapabilityStatement","rest":[{"mode":"server","security":{"extension":[
	{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[
		{"url":"authorize","valueUri":"` + base + `/oauth/authorize"},
		{"url":"token","valueUri":"` + base + `/oauth/token"}]},
	{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities","valueCode":"launch-standalone"}]}}]}`
}

func TestDiscoverV2(t *testing.T) {
	srv, accepts := fhirServer(t, v2Config, nil)
	base := srv.URL + "/fhir"
	s, err := smart.Discover(context.Background(), srv.Client(), base+"/")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if s.FHIRBase != base || s.AuthorizationEndpoint != base+"/auth/authorize" || s.TokenEndpoint != base+"/auth/token" ||
		s.Issuer != base || s.RevocationEndpoint != base+"/auth/revoke" || !s.V2 || !s.SupportsS256() || s.FromCapabilityStatement {
		t.Errorf("unexpected server: %+v", s)
	}
	reqs := accepts()
	if got := reqs[0]; got != "/fhir/.well-known/smart-configuration application/json" {
		t.Errorf("first request %q, want the well-known document with Accept: application/json", got)
	}
	if len(reqs) != 1 {
		t.Errorf("%d requests, want 1 (no metadata fallback needed)", len(reqs))
	}
	if got := smart.Scopes(s, []string{"Observation", "Condition"}); got != "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Condition.rs" {
		t.Errorf("Scopes = %q", got)
	}
}

func TestDiscoverV1Fallback(t *testing.T) {
	srv, accepts := fhirServer(t, nil, v1Metadata)
	_, err := smart.Discover(context.Background(), srv.Client(), srv.URL+"/fhir")
	var nos *smart.NoS256Error
	if !errors.Is(err, smart.ErrNoS256) || !errors.As(err, &nos) {
		t.Fatalf("Discover of a CapabilityStatement-only server: %v, want a *NoS256Error", err)
	}
	// The fallback did read the endpoints (they are only not trusted without S256).
	if !nos.Server.FromCapabilityStatement || nos.Server.AuthorizationEndpoint != srv.URL+"/fhir/oauth/authorize" ||
		nos.Server.TokenEndpoint != srv.URL+"/fhir/oauth/token" || nos.Server.V2 ||
		len(nos.Server.Capabilities) != 1 || nos.Server.Capabilities[0] != "launch-standalone" {
		t.Errorf("fallback server: %+v", nos.Server)
	}
	if reqs := accepts(); len(reqs) != 2 || !strings.HasPrefix(reqs[1], "/fhir/metadata application/fhir+json") {
		t.Errorf("requests %q, want well-known then metadata", reqs)
	}
}

func TestDiscoverV1WithWellKnownGetsReadScopes(t *testing.T) {
	srv, _ := fhirServer(t, func(base string) string {
		return `{"authorization_endpoint":"` + base + `/a","token_endpoint":"` + base + `/t",
		"capabilities":["launch-standalone","permission-v1"],"code_challenge_methods_supported":["S256"]}`
	}, nil)
	s, err := smart.Discover(context.Background(), srv.Client(), srv.URL+"/fhir")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if s.V2 {
		t.Error("V2 true for a permission-v1 server")
	}
	if got := smart.Scopes(s, []string{"Observation"}); got != "launch/patient openid fhirUser offline_access patient/Observation.read" {
		t.Errorf("Scopes = %q", got)
	}
}

func TestDiscoverRefusesWithoutS256(t *testing.T) {
	tests := []struct {
		name    string
		methods string
	}{
		{"no methods listed", ``},
		{"plain only", `,"code_challenge_methods_supported":["plain"]`},
		{"empty list", `,"code_challenge_methods_supported":[]`},
		{"lower-case s256", `,"code_challenge_methods_supported":["s256"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fhirServer(t, func(base string) string {
				return `{"authorization_endpoint":"` + base + `/a","token_endpoint":"` + base + `/t","capabilities":["permission-v2"]` + tc.methods + `}`
			}, v1Metadata)
			_, err := smart.Discover(context.Background(), srv.Client(), srv.URL+"/fhir")
			if !errors.Is(err, smart.ErrNoS256) {
				t.Fatalf("Discover: %v, want ErrNoS256", err)
			}
			host := strings.TrimPrefix(srv.URL, "http://")
			if want := host + " does not support PKCE S256; connecting is refused for your safety"; err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestDiscoverFailures(t *testing.T) {
	big := strings.Repeat(" ", 2<<20)
	tests := []struct {
		name      string
		wellKnown func(string) string
		metadata  func(string) string
		base      func(srvURL string) string
		want      error
	}{
		{"nothing served", nil, nil, nil, smart.ErrDiscovery},
		{"well-known not JSON, no metadata", func(string) string { return "<html>" }, nil, nil, smart.ErrDiscovery},
		{"well-known without endpoints, metadata without oauth-uris", func(string) string { return `{"capabilities":[]}` },
			func(string) string { return `{"resourceType":"CapabilityStatement","rest":[{}]}` }, nil, smart.ErrDiscovery},
		{"well-known over the size cap", func(b string) string { return v2Config(b) + big }, nil, nil, smart.ErrDiscovery},
		{"metadata is another resource", nil, func(string) string { return `{"resourceType":"Patient"}` }, nil, smart.ErrDiscovery},
		{"plain-http token endpoint on a public host", func(b string) string {
			return strings.Replace(v2Config(b), `"token_endpoint":"`+b+`/auth/token"`, `"token_endpoint":"http://ehr.example.com/token"`, 1)
		}, nil, nil, smart.ErrInsecureURL},
		{"plain-http FHIR base on a public host", v2Config, nil, func(string) string { return "http://ehr.example.com/fhir" }, smart.ErrInsecureURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fhirServer(t, tc.wellKnown, tc.metadata)
			base := srv.URL + "/fhir"
			if tc.base != nil {
				base = tc.base(srv.URL)
			}
			_, err := smart.Discover(context.Background(), srv.Client(), base)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Discover: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDiscoverUsesClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	hc := srv.Client()
	hc.Timeout = 50 * time.Millisecond
	_, err := smart.Discover(context.Background(), hc, srv.URL+"/fhir")
	var ue *url.Error
	if !errors.Is(err, smart.ErrDiscovery) || !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("Discover against a server that never answers: %v, want ErrDiscovery with a timeout", err)
	}
}

func TestCheckIssuer(t *testing.T) {
	withIssuer := &smart.Server{FHIRBase: "https://ehr.example/fhir", Issuer: "https://auth.example/"}
	noIssuer := &smart.Server{FHIRBase: "https://ehr.example/fhir"}
	tests := []struct {
		s    *smart.Server
		iss  string
		want error
	}{
		{withIssuer, "", nil},
		{withIssuer, "https://auth.example", nil},
		{withIssuer, "https://evil.example", smart.ErrIssuerMismatch},
		{noIssuer, "https://ehr.example/fhir/", nil},
		{noIssuer, "https://auth.example", smart.ErrIssuerMismatch},
	}
	for _, tc := range tests {
		if err := smart.CheckIssuer(tc.s, tc.iss); !errors.Is(err, tc.want) {
			t.Errorf("CheckIssuer(%q, %q) = %v, want %v", tc.s.Issuer, tc.iss, err, tc.want)
		}
	}
}
