package smart_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

var unreserved43 = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestNewPKCE(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p := smart.NewPKCE()
		if p.Method != "S256" {
			t.Fatalf("Method %q", p.Method)
		}
		if !unreserved43.MatchString(p.Verifier) {
			t.Fatalf("verifier %q: want 43 base64url characters (32 bytes)", p.Verifier)
		}
		raw, err := base64.RawURLEncoding.DecodeString(p.Verifier)
		if err != nil || len(raw) != 32 {
			t.Fatalf("verifier does not decode to 32 bytes: %d, %v", len(raw), err)
		}
		sum := sha256.Sum256([]byte(p.Verifier))
		if want := base64.RawURLEncoding.EncodeToString(sum[:]); p.Challenge != want {
			t.Fatalf("challenge %q, want base64url(sha256(verifier)) %q", p.Challenge, want)
		}
		if seen[p.Verifier] {
			t.Fatal("verifier repeated")
		}
		seen[p.Verifier] = true
		for _, s := range []string{p.String(), fmt.Sprintf("%v %+v %#v", p, p, p)} {
			if strings.Contains(s, p.Verifier) {
				t.Fatalf("formatted PKCE shows the verifier: %s", s)
			}
		}
	}
}

// RFC 7636 Appendix B.
func TestS256ChallengeKnownAnswer(t *testing.T) {
	if got := smart.S256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256Challenge = %q", got)
	}
}

func TestNewState(t *testing.T) {
	seen := map[string]bool{}
	var bits [256]int // how often each bit position is set, over all states
	const n = 2000
	for range n {
		s := smart.NewState()
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(raw)*8 < 128 {
			t.Fatalf("state %q: %d bits, %v; want >= 128 random bits", s, len(raw)*8, err)
		}
		if seen[s] {
			t.Fatalf("state %q repeated", s)
		}
		seen[s] = true
		for i := range 256 {
			if raw[i/8]&(1<<(i%8)) != 0 {
				bits[i]++
			}
		}
	}
	// Every bit position must vary: a stuck bit (constant prefix, counter, timestamp) is caught.
	// With 2000 fair draws, a bit set fewer than 800 or more than 1200 times is a ~1e-19 event.
	for i, c := range bits {
		if c < 800 || c > 1200 {
			t.Errorf("bit %d set in %d of %d states: not uniformly random", i, c, n)
		}
	}
}

func TestScopes(t *testing.T) {
	v2 := &smart.Server{V2: true}
	v1 := &smart.Server{Capabilities: []string{"permission-v1"}}
	v2BySupported := &smart.Server{ScopesSupported: []string{"openid", "patient/Observation.rs"}}
	v1BySupported := &smart.Server{ScopesSupported: []string{"openid", "patient/*.read"}}
	tests := []struct {
		name  string
		s     *smart.Server
		types []string
		want  string
	}{
		{"v2", v2, []string{"Observation", "Condition"}, "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Condition.rs"},
		{"v1", v1, []string{"Observation"}, "launch/patient openid fhirUser offline_access patient/Observation.read"},
		{"v2 from scopes_supported", v2BySupported, []string{"Observation"}, "launch/patient openid fhirUser offline_access patient/Observation.rs"},
		{"v1 from scopes_supported", v1BySupported, []string{"Observation"}, "launch/patient openid fhirUser offline_access patient/Observation.read"},
		{"unknown server defaults to v1", &smart.Server{}, []string{"Observation"}, "launch/patient openid fhirUser offline_access patient/Observation.read"},
		{"no types: wildcard", v2, nil, "launch/patient openid fhirUser offline_access patient/*.rs"},
		{"duplicates and junk dropped", v2, []string{"Observation", "Observation", "bad type", "x/y", "Patient"}, "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Patient.rs"},
	}
	for _, tc := range tests {
		if got := smart.Scopes(tc.s, tc.types); got != tc.want {
			t.Errorf("%s: Scopes = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestAuthCodeURL(t *testing.T) {
	s := &smart.Server{FHIRBase: "https://ehr.example/fhir", AuthorizationEndpoint: "https://ehr.example/auth/authorize?tenant=1", TokenEndpoint: "https://ehr.example/auth/token"}
	p := smart.NewPKCE()
	state := smart.NewState()
	scope := smart.Scopes(&smart.Server{V2: true}, []string{"Observation"})
	raw := smart.AuthCodeURL(s, "fasten-desktop", "http://127.0.0.1:5000/callback", scope, state, p)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"response_type":         "code",
		"client_id":             "fasten-desktop",
		"redirect_uri":          "http://127.0.0.1:5000/callback",
		"scope":                 scope,
		"state":                 state,
		"aud":                   "https://ehr.example/fhir",
		"code_challenge":        p.Challenge,
		"code_challenge_method": "S256",
		"tenant":                "1",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if strings.Contains(raw, p.Verifier) {
		t.Error("the authorization URL contains the PKCE verifier")
	}
	if u.Host != "ehr.example" || u.Path != "/auth/authorize" {
		t.Errorf("URL %s does not go to the authorization endpoint", raw)
	}
}

func TestGrantedTypesAndMissingScopes(t *testing.T) {
	tests := []struct {
		scope string
		want  []string
	}{
		{"launch/patient openid fhirUser offline_access patient/Observation.rs patient/Condition.rs", []string{"Observation", "Condition"}},
		{"patient/Observation.read patient/AllergyIntolerance.read", []string{"Observation", "AllergyIntolerance"}},
		{"patient/*.rs", []string{"*"}},
		{"patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs", []string{"Observation"}},
		{"patient/Observation.c patient/Condition.write patient/Encounter.s user/Patient.rs", []string{"Encounter"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := smart.GrantedTypes(tc.scope); !slices.Equal(got, tc.want) {
			t.Errorf("GrantedTypes(%q) = %q, want %q", tc.scope, got, tc.want)
		}
	}
	requested := "launch/patient openid patient/Observation.rs patient/Condition.rs"
	if got := smart.MissingScopes(requested, "launch/patient openid patient/Observation.rs"); !slices.Equal(got, []string{"patient/Condition.rs"}) {
		t.Errorf("MissingScopes = %q", got)
	}
	if got := smart.MissingScopes(requested, ""); got != nil {
		t.Errorf("MissingScopes with no granted scope = %q, want none (RFC 6749: as requested)", got)
	}
}
