package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAccessControl: bearer token required, compartment enforced, errors as OperationOutcome.
func TestAccessControl(t *testing.T) {
	h := newHarness(t, Config{})
	me := readFacts(t, testPatientFile)
	other := readFacts(t, otherPatientFile)
	tok := h.connect(t, me.patientID, fullScope)
	var otherObs, otherOrg string
	for k := range other.keys {
		if strings.HasPrefix(k, "Observation/") && otherObs == "" {
			otherObs = k
		}
		if strings.HasPrefix(k, "Organization/") && otherOrg == "" {
			otherOrg = k
		}
	}
	for _, tc := range []struct {
		name, token, path string
		status            int
		challenge         string // expected in WWW-Authenticate
	}{
		{"no token", "", "/Patient/" + me.patientID, 401, `Bearer realm=`},
		{"unknown token", "not-a-token", "/Patient/" + me.patientID, 401, `error="invalid_token"`},
		{"no token on search", "", "/Observation?patient=" + me.patientID, 401, `Bearer`},
		{"own patient", tok.AccessToken, "/Patient/" + me.patientID, 200, ""},
		{"other patient read", tok.AccessToken, "/Patient/" + other.patientID, 404, ""},
		{"other patient's observation", tok.AccessToken, "/" + otherObs, 404, ""},
		{"other patient search", tok.AccessToken, "/Observation?patient=" + other.patientID, 403, ""},
		{"other patient everything", tok.AccessToken, "/Patient/" + other.patientID + "/$everything", 403, ""},
		{"other patient by _id", tok.AccessToken, "/Patient?_id=" + other.patientID, 200, ""},
		{"shared organization", tok.AccessToken, "/" + otherOrg, 200, ""},
		{"unknown type", tok.AccessToken, "/Foo?patient=" + me.patientID, 400, ""},
		{"unknown type read", tok.AccessToken, "/Foo/1", 400, ""},
		{"lower-case type", tok.AccessToken, "/observation?patient=" + me.patientID, 400, ""},
		{"search without patient", tok.AccessToken, "/Observation", 400, ""},
		{"search shared type", tok.AccessToken, "/Organization?patient=" + me.patientID, 400, ""},
		{"unknown id", tok.AccessToken, "/Observation/nope", 404, ""},
		{"type without data", tok.AccessToken, "/DocumentReference?patient=" + me.patientID, 200, ""},
		{"unsupported path", tok.AccessToken, "/Patient/" + me.patientID + "/_history/1", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(t, tc.token, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s: %d, want %d: %s", tc.path, resp.StatusCode, tc.status, body)
			}
			if tc.challenge != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Errorf("WWW-Authenticate %q lacks %q", resp.Header.Get("WWW-Authenticate"), tc.challenge)
			}
			if tc.status >= 400 {
				var oo struct {
					ResourceType string `json:"resourceType"`
					Issue        []struct{ Severity, Code string }
				}
				if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
					t.Errorf("error body is not an OperationOutcome: %s", body)
				}
			}
			if tc.status == 200 && strings.Contains(tc.path, "_id=") {
				var b testBundle
				_ = json.Unmarshal(body, &b)
				if b.Total != 0 {
					t.Errorf("another patient visible through _id: total %d", b.Total)
				}
			}
		})
	}
	// POST is refused: the server is read-only.
	resp, err := http.Post(h.fhirBase()+"/Observation", "application/fhir+json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestExpireAndRevoke: ExpireAccessTokens forces a refresh, RevokeRefreshTokens and the
// RefreshInvalidGrant fault make refresh fail.
func TestExpireAndRevoke(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	refresh := func(rt string) (int, tokenResponse) {
		return h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {DefaultClientID}}, "", "")
	}
	h.srv.ExpireAccessTokens()
	if resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != 401 {
		t.Fatalf("after ExpireAccessTokens: %d", resp.StatusCode)
	}
	status, tok2 := refresh(tok.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, tok2.Error)
	}
	if resp, _ := h.get(t, tok2.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != 200 {
		t.Fatalf("refreshed token: %d", resp.StatusCode)
	}

	h.srv.SetFaults(Faults{RefreshInvalidGrant: true})
	if status, tr := refresh(tok2.RefreshToken); status != 400 || tr.Error != "invalid_grant" {
		t.Errorf("RefreshInvalidGrant: %d %q", status, tr.Error)
	}
	h.srv.SetFaults(Faults{})
	status, tok3 := refresh(tok2.RefreshToken) // the fault did not spend the token
	if status != 200 {
		t.Fatalf("refresh after clearing the fault: %d", status)
	}
	h.srv.RevokeRefreshTokens()
	if status, tr := refresh(tok3.RefreshToken); status != 400 || tr.Error != "invalid_grant" {
		t.Errorf("after RevokeRefreshTokens: %d %q", status, tr.Error)
	}
	if resp, _ := h.get(t, tok3.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != 200 {
		t.Errorf("access token after RevokeRefreshTokens: %d, want still valid", resp.StatusCode)
	}
	// Another client cannot use the refresh token.
	tok4 := h.connect(t, facts.patientID, fullScope)
	if status, tr := h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok4.RefreshToken},
		"client_id": {"nobody"}}, "", ""); status != 401 || tr.Error != "invalid_client" {
		t.Errorf("refresh by an unknown client: %d %q", status, tr.Error)
	}
	if c := h.srv.TokenCalls(); c["refresh_token"] != 5 || c["authorization_code"] != 2 {
		t.Errorf("TokenCalls %v", c)
	}
}

// TestFaults exercises each injected failure.
func TestFaults(t *testing.T) {
	facts := readFacts(t, testPatientFile)
	obs := "/Observation?patient=" + facts.patientID
	pat := "/Patient/" + facts.patientID
	for _, tc := range []struct {
		name   string
		faults Faults
		calls  []string // paths called in order
		want   []int    // statuses
		header map[int][2]string
	}{
		{"401 twice", Faults{Unauthorized: 2}, []string{pat, obs, pat}, []int{401, 401, 200},
			map[int][2]string{0: {"WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token", error_description="The access token expired"`}}},
		{"429 with Retry-After", Faults{TooManyRequests: 1, RetryAfter: 1500 * time.Millisecond}, []string{obs, obs}, []int{429, 200},
			map[int][2]string{0: {"Retry-After", "2"}}},
		{"429 default Retry-After", Faults{TooManyRequests: 1}, []string{obs}, []int{429}, map[int][2]string{0: {"Retry-After", "1"}}},
		{"429 without Retry-After", Faults{TooManyRequests: 1, OmitRetryAfter: true}, []string{obs}, []int{429}, map[int][2]string{0: {"Retry-After", ""}}},
		{"500 burst", Faults{ServerErrors: 3}, []string{obs, obs, obs, obs}, []int{500, 500, 500, 200}, nil},
		{"503 with Retry-After", Faults{ServerErrors: 1, ServerErrorStatus: 503, RetryAfter: 3 * time.Second}, []string{pat, pat}, []int{503, 200},
			map[int][2]string{0: {"Retry-After", "3"}}},
		{"order 401 then 429 then 500", Faults{Unauthorized: 1, TooManyRequests: 1, ServerErrors: 1}, []string{pat, pat, pat, pat}, []int{401, 429, 500, 200}, nil},
		{"path prefix", Faults{ServerErrors: 1, PathPrefix: "/Observation"}, []string{pat, pat + "/$everything", obs, obs}, []int{200, 200, 500, 200}, nil},
		{"metadata untouched", Faults{ServerErrors: 1}, []string{"/metadata", "/.well-known/smart-configuration", pat}, []int{200, 200, 500}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			tok := h.connect(t, facts.patientID, fullScope)
			h.srv.SetFaults(tc.faults)
			h.srv.ResetRequests()
			for i, p := range tc.calls {
				resp, _ := h.get(t, tok.AccessToken, p)
				if resp.StatusCode != tc.want[i] {
					t.Errorf("call %d %s: %d, want %d", i, p, resp.StatusCode, tc.want[i])
				}
				if hv, ok := tc.header[i]; ok && resp.Header.Get(hv[0]) != hv[1] {
					t.Errorf("call %d: %s = %q, want %q", i, hv[0], resp.Header.Get(hv[0]), hv[1])
				}
			}
			left := h.srv.Faults()
			if left.Unauthorized != 0 || left.TooManyRequests != 0 || left.ServerErrors != 0 {
				t.Errorf("faults left: %+v", left)
			}
			reqs := h.srv.Requests()
			for i, r := range reqs {
				if (r.Status >= 400) != (r.Fault != "") {
					t.Errorf("log %d: status %d fault %q", i, r.Status, r.Fault)
				}
			}
		})
	}
}

// TestLatency: every affected call waits at least the configured latency.
func TestLatency(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	const latency = 80 * time.Millisecond
	h.srv.SetFaults(Faults{Latency: latency, PathPrefix: "/Patient"})
	start := time.Now()
	resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID)
	if elapsed := time.Since(start); resp.StatusCode != 200 || elapsed < latency {
		t.Errorf("status %d after %v, want 200 after at least %v", resp.StatusCode, elapsed, latency)
	}
	reqs := h.srv.Requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/fhir/Patient/"+facts.patientID || last.Time.After(start.Add(latency)) {
		t.Errorf("log entry %+v", last)
	}
}

// TestRequestLogRedaction: secrets never appear in the log.
func TestRequestLogRedaction(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	// A client that wrongly puts secrets in a URL still does not get them logged.
	h.get(t, "", "/Patient/"+facts.patientID+"?access_token="+tok.AccessToken+"&code=abc&refresh_token="+tok.RefreshToken)
	h.get(t, "", h.ts.URL+"/auth/token?client_secret=zzz&code_verifier=vvv")
	all := fmt.Sprintf("%+v", h.srv.Requests())
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, "abc&", "zzz", "vvv"} {
		if strings.Contains(all, secret) {
			t.Errorf("request log contains a secret %q", secret[:3])
		}
	}
	if !strings.Contains(all, Redacted) {
		t.Error("no redaction marker")
	}
	var tokenPosts int
	for _, r := range h.srv.Requests() {
		if r.Path == "/auth/token" && r.Method == http.MethodPost {
			tokenPosts++
			if r.GrantType != "authorization_code" || r.Status != 200 {
				t.Errorf("token log entry %+v", r)
			}
		}
	}
	if tokenPosts != 1 {
		t.Errorf("%d token posts logged", tokenPosts)
	}
	h.srv.ResetRequests()
	if len(h.srv.Requests()) != 0 || len(h.srv.TokenCalls()) != 0 {
		t.Error("ResetRequests left entries")
	}
}

func TestRequestLogCap(t *testing.T) {
	h := newHarness(t, Config{MaxLoggedRequests: 3})
	for i := range 5 {
		h.get(t, "", fmt.Sprintf("/metadata?n=%d", i))
	}
	reqs := h.srv.Requests()
	if len(reqs) != 3 || reqs[0].Query.Get("n") != "2" || reqs[2].Query.Get("n") != "4" {
		t.Errorf("log %+v", reqs)
	}
}

func TestParseDateFilter(t *testing.T) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		param string
		t     time.Time
		want  bool
	}{
		{"gt2024-01-01T00:00:00.000Z", base, false},
		{"gt2024-01-01T00:00:00.000Z", base.Add(time.Millisecond), true},
		{"gt2024-01-01T00:00:00Z", base.Add(999 * time.Millisecond), false},
		{"gt2024-01-01T00:00:00Z", base.Add(time.Second), true},
		{"ge2024-01-01T00:00:00Z", base, true},
		{"lt2024-01-01T00:00:00Z", base, false},
		{"lt2024-01-01T00:00:00Z", base.Add(-time.Millisecond), true},
		{"le2024-01-01", base.Add(23 * time.Hour), true},
		{"le2024-01-01", base.Add(24 * time.Hour), false},
		{"2024-01", base.Add(30 * 24 * time.Hour), true},
		{"eq2024", base.AddDate(1, 0, 0), false},
		{"gt2024-01-01T01:00:00+01:00", base.Add(time.Second), true},
		{"gt2024-01-01T01:00:00 01:00", base, false}, // unescaped '+'
		{"gt2023-12-31T19:00:00-05:00", base, false},
		{"gt2024-01-01T00:00", base.Add(59 * time.Second), false},
		{"sa2023-12-31", base, true},
		{"eb2024-01-02", base, true},
		{"gt2024-01-01T00:00:00.5Z", base.Add(600 * time.Millisecond), true},
	} {
		f, err := parseDateFilter(tc.param)
		if err != nil {
			t.Errorf("%s: %v", tc.param, err)
			continue
		}
		if got := f.match(tc.t); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.param, tc.t.Format(time.RFC3339Nano), got, tc.want)
		}
	}
	for _, bad := range []string{"", "gt", "ne2024", "ap2024", "gt2024-1-1", "gt2024-01-01T00", "gtnow", "2024-01-01T00:00:00.1234567890Z"} {
		if _, err := parseDateFilter(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestConcurrentUse runs searches, mutations and fault changes at once (for -race).
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	var ids []string
	for k := range facts.keys {
		if id, ok := strings.CutPrefix(k, "Observation/"); ok {
			ids = append(ids, id)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				switch (w + i) % 4 {
				case 0:
					if err := h.srv.Touch("Observation", ids[(w*5+i)%len(ids)]); err != nil {
						errs <- err
					}
				case 1:
					h.srv.SetFaults(Faults{Latency: time.Millisecond})
					_ = h.srv.Requests()
				case 2:
					_ = h.srv.Patients()
				}
				req, _ := http.NewRequest(http.MethodGet, h.fhirBase()+"/Observation?patient="+facts.patientID+"&_count=20", nil)
				req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBaseURLVariants: before SetBaseURL the Host header gives the base; a base URL with a
// path prefix is honoured.
func TestBaseURLVariants(t *testing.T) {
	srv, err := New(Config{Data: testData(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := newHTTPTestServer(t, srv.Handler())
	resp, err := http.Get(ts.URL + "/fhir/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Token string `json:"token_endpoint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc.Token != ts.URL+"/auth/token" {
		t.Errorf("token endpoint %q without a base URL", disc.Token)
	}
	if err := srv.SetBaseURL(ts.URL + "/hospital/"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(ts.URL + "/hospital/fhir/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if resp.StatusCode != 200 || disc.Token != ts.URL+"/hospital/auth/token" || srv.FHIRBase() != ts.URL+"/hospital/fhir" {
		t.Errorf("with a path prefix: %d %q %q", resp.StatusCode, disc.Token, srv.FHIRBase())
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://h/?q=1", "::"} {
		if err := srv.SetBaseURL(bad); err == nil {
			t.Errorf("SetBaseURL(%q) accepted", bad)
		}
	}
}

// TestLoginPage: the page is self-contained (CSP, no external loads) and escapes input.
func TestLoginPage(t *testing.T) {
	h := newHarness(t, Config{})
	_, challenge := pkcePair("page")
	q := h.authorizeQuery(challenge, fullScope+` <script>alert(1)</script>`)
	resp, err := h.hc.Get(h.authorizeURL(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)
	if strings.Contains(page, "<script>") {
		t.Error("unescaped input on the page")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if regexp.MustCompile(`(src|href)="https?:`).MatchString(page) {
		t.Error("the page loads something external")
	}
	if got := strings.Count(page, `type="radio" name="patient"`); got != len(h.srv.Patients()) {
		t.Errorf("%d patients on the page, want %d", got, len(h.srv.Patients()))
	}
}
