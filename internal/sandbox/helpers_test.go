package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// The data is loaded once per test binary and shared by every test server (it is immutable).
var (
	dataOnce sync.Once
	dataSet  *Data
	dataErr  error
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// signingKey is one id_token key for every test server (RSA key generation is slow).
func signingKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey
}

func testData(t testing.TB) *Data {
	t.Helper()
	dataOnce.Do(func() { dataSet, dataErr = LoadData("", time.Time{}) })
	if dataErr != nil {
		t.Fatalf("load data: %v", dataErr)
	}
	return dataSet
}

// testPatientFile is a mid-sized Synthea patient (193 bundle entries).
const testPatientFile = "patient-1037e006-916b-45e5-a7f6-33f3e3196e0b.json"

// otherPatientFile is a second patient, for cross-patient checks.
const otherPatientFile = "patient-fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json"

const testRedirect = "http://127.0.0.1:5555/callback"

const fullScope = "launch/patient openid fhirUser offline_access patient/*.rs"

// bundleFacts reads a Synthea bundle independently of the package code: the Patient id, the
// entry count by type and the "Type/id" of every entry.
type bundleFacts struct {
	patientID string
	counts    map[string]int
	keys      map[string]bool
}

func readFacts(t testing.TB, file string) bundleFacts {
	t.Helper()
	p, err := shareddata.Path(shareddata.Synthea, file)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("%s: %v", filepath.Base(p), err)
	}
	f := bundleFacts{counts: map[string]int{}, keys: map[string]bool{}}
	for _, e := range b.Entry {
		r := e.Resource
		f.counts[r.ResourceType]++
		f.keys[r.ResourceType+"/"+r.ID] = true
		if r.ResourceType == "Patient" {
			f.patientID = r.ID
		}
	}
	return f
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	srv   *Server
	ts    *httptest.Server
	clock *testClock
	hc    *http.Client // does not follow redirects
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.Data = testData(t)
	if cfg.SigningKey == nil {
		cfg.SigningKey = signingKey(t)
	}
	clock := newTestClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	if err := srv.SetBaseURL(ts.URL); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &harness{srv: srv, ts: ts, clock: clock, hc: hc}
}

func (h *harness) fhirBase() string { return h.ts.URL + "/fhir" }

func pkcePair(seed string) (verifier, challenge string) {
	sum := sha256.Sum256([]byte(seed))
	verifier = base64.RawURLEncoding.EncodeToString(sum[:]) // 43 chars
	c := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(c[:])
}

// authorizeQuery is a valid authorize request; tests override fields.
func (h *harness) authorizeQuery(challenge, scope string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {DefaultClientID},
		"redirect_uri":          {testRedirect},
		"scope":                 {scope},
		"state":                 {"state-123"},
		"aud":                   {h.fhirBase()},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

func (h *harness) authorizeURL(q url.Values) string {
	return h.ts.URL + "/auth/authorize?" + q.Encode()
}

// approve signs in as patientID and returns the code and verifier.
func (h *harness) approve(t *testing.T, patientID, scope string) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkcePair(t.Name() + patientID + scope)
	loc, err := SignIn(context.Background(), h.hc, h.authorizeURL(h.authorizeQuery(challenge, scope)), patientID, true)
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	q := loc.Query()
	if q.Get("state") != "state-123" || q.Get("code") == "" || q.Get("iss") != h.fhirBase() {
		t.Fatalf("callback %v: want code, state and iss", redactURL(loc))
	}
	return q.Get("code"), verifier
}

func redactURL(u *url.URL) string {
	c := *u
	q := c.Query()
	if q.Has("code") {
		q.Set("code", Redacted)
	}
	c.RawQuery = q.Encode()
	return c.String()
}

type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    *int    `json:"expires_in"`
	Scope        string  `json:"scope"`
	RefreshToken string  `json:"refresh_token"`
	Patient      *string `json:"patient"`
	IDToken      string  `json:"id_token"`
	Error        string  `json:"error"`
}

func (h *harness) postToken(t *testing.T, form url.Values, basicUser, basicPass string) (int, tokenResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+"/auth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("token response: %v", err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", cc)
	}
	return resp.StatusCode, tr
}

func (h *harness) exchange(t *testing.T, code, verifier string) (int, tokenResponse) {
	t.Helper()
	return h.postToken(t, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
		"code_verifier": {verifier}, "client_id": {DefaultClientID},
	}, "", "")
}

// connect runs the whole sign-in and returns the token response.
func (h *harness) connect(t *testing.T, patientID, scope string) tokenResponse {
	t.Helper()
	code, verifier := h.approve(t, patientID, scope)
	status, tr := h.exchange(t, code, verifier)
	if status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token exchange: %d %q", status, tr.Error)
	}
	return tr
}

// get calls the FHIR API (path below /fhir, or an absolute URL) with token.
func (h *harness) get(t *testing.T, token, pathOrURL string) (*http.Response, []byte) {
	t.Helper()
	u := pathOrURL
	if !strings.HasPrefix(u, "http") {
		u = h.fhirBase() + pathOrURL
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

type testBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        int    `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

func (b testBundle) next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
}

// fetchAll follows next links from start and returns every entry's "Type/id" in order plus
// the number of pages and the first page's total.
func (h *harness) fetchAll(t *testing.T, token, start string) (keys []string, pages, total int) {
	t.Helper()
	next := start
	for next != "" {
		resp, body := h.get(t, token, next)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, resp.StatusCode, body)
		}
		var b testBundle
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("bundle: %v", err)
		}
		if b.ResourceType != "Bundle" || b.Type != "searchset" {
			t.Fatalf("not a searchset bundle: %s %s", b.ResourceType, b.Type)
		}
		if pages == 0 {
			total = b.Total
		}
		pages++
		for _, e := range b.Entry {
			var rh resourceHead
			if err := json.Unmarshal(e.Resource, &rh); err != nil {
				t.Fatal(err)
			}
			k := rh.ResourceType + "/" + rh.ID
			if e.FullURL != h.fhirBase()+"/"+k {
				t.Fatalf("fullUrl %q for %s", e.FullURL, k)
			}
			keys = append(keys, k)
		}
		next = b.next()
		if next != "" && !strings.HasPrefix(next, h.fhirBase()+"/") {
			t.Fatalf("next link %q is not below the FHIR base", next)
		}
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
	}
	return keys, pages, total
}

func newHTTPTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}
