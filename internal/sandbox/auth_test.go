package sandbox

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeErrors: errors with a trustworthy client and redirect URI go back to the
// redirect URI with error and state; the others are shown as a page.
func TestAuthorizeErrors(t *testing.T) {
	h := newHarness(t, Config{})
	_, challenge := pkcePair("authorize-errors")
	for _, tc := range []struct {
		name   string
		change func(q url.Values)
		page   bool   // an HTML error page, no redirect
		err    string // error= in the redirect
		state  bool   // state echoed
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, true, "", false},
		{"missing client", func(q url.Values) { q.Del("client_id") }, true, "", false},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, true, "", false},
		{"localhost redirect", func(q url.Values) { q.Set("redirect_uri", "http://localhost:5555/callback") }, true, "", false},
		{"missing redirect", func(q url.Values) { q.Del("redirect_uri") }, true, "", false},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, false, "unsupported_response_type", true},
		{"missing state", func(q url.Values) { q.Del("state") }, false, "invalid_request", false},
		{"wrong aud", func(q url.Values) { q.Set("aud", "https://other.example/fhir") }, false, "invalid_request", true},
		{"missing aud", func(q url.Values) { q.Del("aud") }, false, "invalid_request", true},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, false, "invalid_request", true},
		{"missing challenge method", func(q url.Values) { q.Del("code_challenge_method") }, false, "invalid_request", true},
		{"missing challenge", func(q url.Values) { q.Del("code_challenge") }, false, "invalid_request", true},
		{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, false, "invalid_request", true},
		{"missing scope", func(q url.Values) { q.Del("scope") }, false, "invalid_scope", true},
		{"repeated state", func(q url.Values) { q.Add("state", "again") }, false, "invalid_request", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := h.authorizeQuery(challenge, fullScope)
			tc.change(q)
			resp, err := h.hc.Get(h.authorizeURL(q))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.page {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
					!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
					t.Fatalf("got %d Location %q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusFound || err != nil {
				t.Fatalf("got %d, want a redirect", resp.StatusCode)
			}
			lq := loc.Query()
			if !strings.HasPrefix(loc.String(), testRedirect+"?") || lq.Get("error") != tc.err || lq.Has("code") {
				t.Errorf("redirect %s, want error=%s", loc, tc.err)
			}
			if tc.state != (lq.Get("state") == "state-123") {
				t.Errorf("state in %s, want echoed=%v", loc, tc.state)
			}
		})
	}
}

func TestDenyAndBadDecision(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	_, challenge := pkcePair("deny")
	loc, err := SignIn(context.Background(), h.hc, h.authorizeURL(h.authorizeQuery(challenge, fullScope)), facts.patientID, false)
	if err != nil {
		t.Fatal(err)
	}
	if q := loc.Query(); q.Get("error") != "access_denied" || q.Get("state") != "state-123" || q.Has("code") {
		t.Errorf("deny redirect %s", loc)
	}

	// Unknown handle, unknown patient, missing decision.
	resp, err := h.hc.PostForm(h.ts.URL+"/auth/authorize", url.Values{FieldRequestID: {"nope"}, FieldDecision: {"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("unknown handle: %d", resp.StatusCode)
	}
	resp, err = h.hc.Get(h.authorizeURL(h.authorizeQuery(challenge, fullScope)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	handle := resp.Header.Get(RequestIDHeader)
	for _, form := range []url.Values{
		{FieldRequestID: {handle}, FieldPatient: {"no-such-patient"}, FieldDecision: {"allow"}},
		{FieldRequestID: {handle}, FieldPatient: {facts.patientID}},
	} {
		resp, err := h.hc.PostForm(h.ts.URL+"/auth/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(RequestIDHeader) != handle {
			t.Errorf("bad decision %v: %d, want the page again with 400", form, resp.StatusCode)
		}
	}
	// The handle still works after those mistakes.
	resp, err = h.hc.PostForm(h.ts.URL+"/auth/authorize", url.Values{FieldRequestID: {handle}, FieldPatient: {facts.patientID}, FieldDecision: {"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("allow after mistakes: %d, want 303", resp.StatusCode)
	}
	// A pending request expires after 10 minutes.
	resp, err = h.hc.Get(h.authorizeURL(h.authorizeQuery(challenge, fullScope)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h.clock.Advance(11 * time.Minute)
	resp, err = h.hc.PostForm(h.ts.URL+"/auth/authorize", url.Values{FieldRequestID: {resp.Header.Get(RequestIDHeader)},
		FieldPatient: {facts.patientID}, FieldDecision: {"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("expired handle: %d, want 400", resp.StatusCode)
	}
}

// TestTokenErrors covers the code exchange's refusals.
func TestTokenErrors(t *testing.T) {
	facts := readFacts(t, testPatientFile)
	for _, tc := range []struct {
		name   string
		prep   func(h *harness) // before the exchange
		change func(form url.Values)
		status int
		err    string
	}{
		{"wrong verifier", nil, func(f url.Values) { f.Set("code_verifier", strings.Repeat("a", 43)) }, 400, "invalid_grant"},
		{"missing verifier", nil, func(f url.Values) { f.Del("code_verifier") }, 400, "invalid_grant"},
		{"wrong redirect_uri", nil, func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:5555/other") }, 400, "invalid_grant"},
		{"missing redirect_uri", nil, func(f url.Values) { f.Del("redirect_uri") }, 400, "invalid_grant"},
		{"unknown code", nil, func(f url.Values) { f.Set("code", "made-up") }, 400, "invalid_grant"},
		{"missing code", nil, func(f url.Values) { f.Del("code") }, 400, "invalid_request"},
		{"expired code", func(h *harness) { h.clock.Advance(61 * time.Second) }, nil, 400, "invalid_grant"},
		{"unknown client", nil, func(f url.Values) { f.Set("client_id", "nobody") }, 401, "invalid_client"},
		{"public client with secret", nil, func(f url.Values) { f.Set("client_secret", "x") }, 401, "invalid_client"},
		{"bad grant type", nil, func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"repeated code", nil, func(f url.Values) { f.Add("code", "x") }, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			code, verifier := h.approve(t, facts.patientID, fullScope)
			if tc.prep != nil {
				tc.prep(h)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
				"code_verifier": {verifier}, "client_id": {DefaultClientID}}
			if tc.change != nil {
				tc.change(form)
			}
			status, tr := h.postToken(t, form, "", "")
			if status != tc.status || tr.Error != tc.err || tr.AccessToken != "" {
				t.Errorf("got %d %q, want %d %q", status, tr.Error, tc.status, tc.err)
			}
		})
	}
}

// TestCodeReuse: a code works once; replaying it fails and revokes what it produced.
func TestCodeReuse(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	code, verifier := h.approve(t, facts.patientID, fullScope)
	status, tok := h.exchange(t, code, verifier)
	if status != http.StatusOK {
		t.Fatalf("first exchange: %d", status)
	}
	if status, tr := h.exchange(t, code, verifier); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("replayed code: %d %q", status, tr.Error)
	}
	if resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token of a replayed code: %d, want 401", resp.StatusCode)
	}
	status, tr := h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		"client_id": {DefaultClientID}}, "", "")
	if status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Errorf("refresh token of a replayed code: %d %q", status, tr.Error)
	}
	// A failed attempt also spends the code.
	code, verifier = h.approve(t, facts.patientID, fullScope)
	if status, _ := h.postToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {strings.Repeat("b", 43)}, "client_id": {DefaultClientID}}, "", ""); status != 400 {
		t.Fatalf("wrong verifier: %d", status)
	}
	if status, _ := h.exchange(t, code, verifier); status != http.StatusBadRequest {
		t.Errorf("code after a failed attempt: %d, want 400", status)
	}
}

// TestConfidentialClient: Basic and client_secret_post work, a wrong or missing secret does not,
// and an exactly registered (Lighthouse-style) redirect URI is required.
func TestConfidentialClient(t *testing.T) {
	const cb = "http://127.0.0.1:7777/v1/callback/demo"
	const secret = "s3cret/with:odd&chars"
	facts := readFacts(t, testPatientFile)
	for _, tc := range []struct {
		name       string
		basic      bool
		secret     string
		status     int
		wantErr    string
		wantHeader bool
	}{
		{"basic", true, secret, 200, "", false},
		{"post", false, secret, 200, "", false},
		{"basic wrong secret", true, "nope", 401, "invalid_client", true},
		{"post wrong secret", false, "nope", 401, "invalid_client", false},
		{"no secret", false, "", 401, "invalid_client", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Clients: []Client{{ID: "lighthouse-demo", Secret: secret, RedirectURIs: []string{cb}}}})
			verifier, challenge := pkcePair("conf")
			q := h.authorizeQuery(challenge, fullScope)
			q.Set("client_id", "lighthouse-demo")
			q.Set("redirect_uri", "http://127.0.0.1:7778/v1/callback/demo")
			if resp, err := h.hc.Get(h.authorizeURL(q)); err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("other loopback port accepted for a client without AllowLoopbackRedirects")
			}
			q.Set("redirect_uri", cb)
			loc, err := SignIn(context.Background(), h.hc, h.authorizeURL(q), facts.patientID, true)
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
				"redirect_uri": {cb}, "code_verifier": {verifier}}
			user, pass := "", ""
			if tc.basic {
				user, pass = "lighthouse-demo", tc.secret
			} else {
				form.Set("client_id", "lighthouse-demo")
				if tc.secret != "" {
					form.Set("client_secret", tc.secret)
				}
			}
			req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/auth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if user != "" {
				req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
			}
			resp, err := h.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var tr tokenResponse
			_ = json.NewDecoder(resp.Body).Decode(&tr)
			if resp.StatusCode != tc.status || tr.Error != tc.wantErr {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, tr.Error, tc.status, tc.wantErr)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.wantHeader {
				t.Errorf("WWW-Authenticate present = %v, want %v", got, tc.wantHeader)
			}
		})
	}
}

// TestTokenResponseSwitches covers OmitPatient, OmitExpiresIn, AccessTokenTTL and the
// narrowed grants.
func TestTokenResponseSwitches(t *testing.T) {
	facts := readFacts(t, testPatientFile)
	t.Run("omit patient and expires_in", func(t *testing.T) {
		h := newHarness(t, Config{OmitPatient: true, OmitExpiresIn: true})
		tok := h.connect(t, facts.patientID, fullScope)
		if tok.Patient != nil || tok.ExpiresIn != nil {
			t.Errorf("patient %v expires_in %v, want both absent", tok.Patient, tok.ExpiresIn)
		}
	})
	t.Run("ttl", func(t *testing.T) {
		h := newHarness(t, Config{AccessTokenTTL: 5 * time.Minute})
		tok := h.connect(t, facts.patientID, fullScope)
		if tok.ExpiresIn == nil || *tok.ExpiresIn != 300 {
			t.Fatalf("expires_in %v, want 300", tok.ExpiresIn)
		}
		h.clock.Advance(299 * time.Second)
		if resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != 200 {
			t.Errorf("before expiry: %d", resp.StatusCode)
		}
		h.clock.Advance(time.Second)
		resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("after expiry: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("no offline_access, no refresh token", func(t *testing.T) {
		h := newHarness(t, Config{})
		tok := h.connect(t, facts.patientID, "launch/patient patient/Observation.rs")
		if tok.RefreshToken != "" || tok.IDToken != "" || tok.Patient == nil {
			t.Errorf("token %+v", tok)
		}
		if resp, _ := h.get(t, tok.AccessToken, "/Condition?patient="+facts.patientID); resp.StatusCode != http.StatusForbidden {
			t.Errorf("Condition without scope: %d, want 403", resp.StatusCode)
		}
		if resp, _ := h.get(t, tok.AccessToken, "/Observation?patient="+facts.patientID); resp.StatusCode != http.StatusOK {
			t.Errorf("Observation with scope: %d", resp.StatusCode)
		}
	})
	t.Run("withheld types", func(t *testing.T) {
		h := newHarness(t, Config{WithholdTypes: []string{"Claim", "ExplanationOfBenefit"}})
		tok := h.connect(t, facts.patientID, fullScope)
		granted := strings.Fields(tok.Scope)
		for _, sc := range granted {
			if sc == "patient/*.rs" || strings.Contains(sc, "/Claim.") || strings.Contains(sc, "/ExplanationOfBenefit.") {
				t.Errorf("granted %s", sc)
			}
		}
		if !strings.Contains(tok.Scope, "patient/Observation.rs") {
			t.Errorf("scope %q lacks patient/Observation.rs", tok.Scope)
		}
		if resp, _ := h.get(t, tok.AccessToken, "/Claim?patient="+facts.patientID); resp.StatusCode != http.StatusForbidden {
			t.Errorf("Claim search: %d, want 403", resp.StatusCode)
		}
		keys, _, _ := h.fetchAll(t, tok.AccessToken, "/Patient/"+facts.patientID+"/$everything?_count=1000")
		want := len(facts.keys) - facts.counts["Claim"] - facts.counts["ExplanationOfBenefit"]
		if len(keys) != want {
			t.Errorf("$everything with withheld types: %d resources, want %d", len(keys), want)
		}
	})
	t.Run("GrantScopes hook and v1 scopes", func(t *testing.T) {
		h := newHarness(t, Config{GrantScopes: func(g []string) []string {
			var out []string
			for _, s := range g {
				if s != "offline_access" {
					out = append(out, s)
				}
			}
			return out
		}})
		tok := h.connect(t, facts.patientID, "launch/patient offline_access patient/*.read patient/Observation.write")
		if tok.Scope != "launch/patient patient/*.read" || tok.RefreshToken != "" {
			t.Errorf("scope %q refresh %v", tok.Scope, tok.RefreshToken != "")
		}
	})
	t.Run("smart v1 drops v2 scopes", func(t *testing.T) {
		h := newHarness(t, Config{SMARTv1Only: true})
		tok := h.connect(t, facts.patientID, "launch/patient offline_access patient/*.rs patient/Observation.read")
		if tok.Scope != "launch/patient offline_access patient/Observation.read" {
			t.Errorf("scope %q", tok.Scope)
		}
	})
	t.Run("refresh may narrow scope only", func(t *testing.T) {
		h := newHarness(t, Config{})
		tok := h.connect(t, facts.patientID, fullScope)
		status, tr := h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"client_id": {DefaultClientID}, "scope": {"patient/*.rs user/*.rs"}}, "", "")
		if status != 400 || tr.Error != "invalid_scope" {
			t.Errorf("widening refresh: %d %q", status, tr.Error)
		}
		status, tr = h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"client_id": {DefaultClientID}, "scope": {"launch/patient offline_access patient/*.rs"}}, "", "")
		if status != 200 || tr.Scope != "launch/patient offline_access patient/*.rs" || tr.IDToken != "" {
			t.Errorf("narrowing refresh: %d %+v", status, tr)
		}
	})
}

// TestNoS256 models a server without PKCE: discovery omits S256 and codes need no verifier.
func TestNoS256(t *testing.T) {
	h := newHarness(t, Config{NoS256: true})
	_, body := h.get(t, "", "/.well-known/smart-configuration")
	var disc map[string]any
	if err := json.Unmarshal(body, &disc); err != nil {
		t.Fatal(err)
	}
	if _, ok := disc["code_challenge_methods_supported"]; ok {
		t.Errorf("code_challenge_methods_supported present: %v", disc["code_challenge_methods_supported"])
	}
	facts := readFacts(t, testPatientFile)
	q := h.authorizeQuery("", fullScope)
	q.Del("code_challenge")
	q.Del("code_challenge_method")
	loc, err := SignIn(context.Background(), h.hc, h.authorizeURL(q), facts.patientID, true)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := h.exchange(t, loc.Query().Get("code"), ""); status != http.StatusOK {
		t.Errorf("exchange without PKCE: %d", status)
	}
}

// TestIDToken verifies the id_token signature with the published JWKS.
func TestIDToken(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	verifier, challenge := pkcePair("idtoken")
	q := h.authorizeQuery(challenge, fullScope)
	q.Set("nonce", "n-0S6_WzA2Mj")
	loc, err := SignIn(context.Background(), h.hc, h.authorizeURL(q), facts.patientID, true)
	if err != nil {
		t.Fatal(err)
	}
	_, tok := h.exchange(t, loc.Query().Get("code"), verifier)
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token has %d parts", len(parts))
	}
	_, body := h.get(t, "", h.ts.URL+"/auth/jwks")
	var jwks struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	if err := json.Unmarshal(body, &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, body)
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss, Sub, Aud, Nonce, FHIRUser string
		Exp                            int64
	}
	_ = json.Unmarshal(payload, &claims)
	if claims.Iss != h.fhirBase() || claims.Sub != facts.patientID || claims.Aud != DefaultClientID ||
		claims.Nonce != "n-0S6_WzA2Mj" || claims.FHIRUser != h.fhirBase()+"/Patient/"+facts.patientID ||
		claims.Exp <= h.clock.Now().Unix() {
		t.Errorf("claims %+v", claims)
	}
}

// TestSignInThroughRedirects drives a connect URL that redirects (like the Lighthouse) to the
// authorize endpoint.
func TestSignInThroughRedirects(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	_, challenge := pkcePair("redirects")
	target := h.authorizeURL(h.authorizeQuery(challenge, fullScope))
	gateway := http.NewServeMux()
	gateway.HandleFunc("/v1/connect/demo", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	})
	gw := newHTTPTestServer(t, gateway)
	loc, err := SignIn(context.Background(), nil, gw.URL+"/v1/connect/demo", facts.patientID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), testRedirect+"?") || loc.Query().Get("code") == "" {
		t.Errorf("SignIn returned %s", redactURL(loc))
	}
	// An error page ends the chain with an error.
	if _, err := SignIn(context.Background(), nil, h.ts.URL+"/auth/authorize?client_id=nobody", facts.patientID, true); err == nil {
		t.Error("SignIn to an error page succeeded")
	}
}
