package smart_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// fakeProvider is a small SMART on FHIR server: discovery, a token endpoint that checks PKCE and
// rotates refresh tokens, and a FHIR endpoint that enforces the bearer token.
type fakeProvider struct {
	srv *httptest.Server

	mu       sync.Mutex
	codes    map[string]codeGrant
	refresh  map[string]bool // refresh tokens currently valid
	access   map[string]bool // access tokens currently valid
	issued   []string        // every token value issued (to look for leaks)
	lastForm map[string][]string
	lastAuth string

	// behaviour switches
	rotate        bool   // issue a new refresh token on every refresh and revoke the old one
	omitExpiresIn bool   // no expires_in in responses
	omitPatient   bool   // no patient in the code-exchange response
	tokenType     string // default "Bearer"
	grantedScope  string // default: the requested scope
	expiresIn     int    // default 3600
	holdRefresh   chan struct{}
	onAccess      func(token string) // called when the FHIR endpoint accepts a token

	refreshCalls atomic.Int32
	fhirCalls    atomic.Int32
}

type codeGrant struct {
	challenge, redirectURI, clientID, scope string
}

func newFakeProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{codes: map[string]codeGrant{}, refresh: map[string]bool{}, access: map[string]bool{}, rotate: true}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"issuer":                           p.srv.URL + "/fhir",
			"authorization_endpoint":           p.srv.URL + "/auth/authorize",
			"token_endpoint":                   p.srv.URL + "/auth/token",
			"capabilities":                     []string{"launch-standalone", "client-public", "permission-v2", "permission-offline", "context-standalone-patient"},
			"code_challenge_methods_supported": []string{"S256"},
			"scopes_supported":                 []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"},
		})
	})
	mux.HandleFunc("POST /auth/token", p.token)
	// The authorization endpoint consents at once (the user is always "signed in").
	mux.HandleFunc("GET /auth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("aud") != p.fhirBase() {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		redirect, err := url.Parse(q.Get("redirect_uri"))
		if err != nil {
			http.Error(w, "bad redirect_uri", http.StatusBadRequest)
			return
		}
		code := p.authorize(q.Get("code_challenge"), q.Get("redirect_uri"), q.Get("client_id"), q.Get("scope"))
		v := redirect.Query()
		v.Set("code", code)
		v.Set("state", q.Get("state"))
		v.Set("iss", p.fhirBase())
		redirect.RawQuery = v.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	})
	mux.HandleFunc("GET /fhir/", func(w http.ResponseWriter, r *http.Request) {
		p.fhirCalls.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		valid := ok && p.access[tok]
		onAccess := p.onAccess
		p.mu.Unlock()
		if !valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if onAccess != nil {
			onAccess(tok)
		}
		writeJSON(w, 200, map[string]any{"resourceType": "Patient", "id": "p1"})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// configure changes the behaviour switches under the lock the handlers read them with.
func (p *fakeProvider) configure(f func(p *fakeProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *fakeProvider) fhirBase() string { return p.srv.URL + "/fhir" }
func (p *fakeProvider) tokenURL() string { return p.srv.URL + "/auth/token" }

func randomToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// authorize registers a code as the authorization endpoint would after the user consented.
func (p *fakeProvider) authorize(challenge, redirectURI, clientID, scope string) string {
	code := randomToken("code-")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[code] = codeGrant{challenge: challenge, redirectURI: redirectURI, clientID: clientID, scope: scope}
	p.issued = append(p.issued, code)
	return code
}

// seed makes a valid token pair and returns it.
func (p *fakeProvider) seed() (access, refresh string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	access, refresh = randomToken("at-"), randomToken("rt-")
	p.access[access], p.refresh[refresh] = true, true
	p.issued = append(p.issued, access, refresh)
	return access, refresh
}

func (p *fakeProvider) revokeAccess(access string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.access, access)
}

func (p *fakeProvider) secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (p *fakeProvider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "bad form")
		return
	}
	p.mu.Lock()
	p.lastForm = r.PostForm
	p.lastAuth = r.Header.Get("Authorization")
	rotate, omitExpiresIn, omitPatient, tokenType, grantedScope, expiresIn, hold :=
		p.rotate, p.omitExpiresIn, p.omitPatient, p.tokenType, p.grantedScope, p.expiresIn, p.holdRefresh
	p.mu.Unlock()
	f := r.PostForm
	resp := map[string]any{}
	switch f.Get("grant_type") {
	case "authorization_code":
		p.mu.Lock()
		g, ok := p.codes[f.Get("code")]
		delete(p.codes, f.Get("code")) // single use
		p.mu.Unlock()
		switch {
		case !ok:
			oauthError(w, "invalid_grant", "unknown code "+f.Get("code"))
			return
		case smart.S256Challenge(f.Get("code_verifier")) != g.challenge:
			oauthError(w, "invalid_grant", "PKCE verification failed for verifier "+f.Get("code_verifier"))
			return
		case f.Get("redirect_uri") != g.redirectURI || f.Get("client_id") != g.clientID:
			oauthError(w, "invalid_grant", "redirect_uri or client_id mismatch")
			return
		}
		resp["scope"] = g.scope
		if grantedScope != "" {
			resp["scope"] = grantedScope
		}
		if !omitPatient {
			resp["patient"] = "p1"
		}
		resp["refresh_token"] = p.newRefresh()
	case "refresh_token":
		p.refreshCalls.Add(1)
		if hold != nil {
			<-hold
		}
		rt := f.Get("refresh_token")
		p.mu.Lock()
		valid := p.refresh[rt]
		if valid && rotate {
			delete(p.refresh, rt)
		}
		p.mu.Unlock()
		if !valid {
			oauthError(w, "invalid_grant", "refresh token "+rt+" is not valid")
			return
		}
		if rotate {
			resp["refresh_token"] = p.newRefresh()
		}
	default:
		oauthError(w, "unsupported_grant_type", "")
		return
	}
	at := randomToken("at-")
	p.mu.Lock()
	p.access[at] = true
	p.issued = append(p.issued, at)
	p.mu.Unlock()
	resp["access_token"] = at
	resp["token_type"] = "Bearer"
	if tokenType != "" {
		resp["token_type"] = tokenType
	}
	if !omitExpiresIn {
		resp["expires_in"] = 3600
		if expiresIn != 0 {
			resp["expires_in"] = expiresIn
		}
	}
	writeJSON(w, 200, resp)
}

func (p *fakeProvider) newRefresh() string {
	rt := randomToken("rt-")
	p.mu.Lock()
	p.refresh[rt] = true
	p.issued = append(p.issued, rt)
	p.mu.Unlock()
	return rt
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// assertNoSecrets fails if err's text (in every fmt verb) contains any of the values.
func assertNoSecrets(t *testing.T, err error, values ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err)} {
		for _, v := range values {
			if v != "" && strings.Contains(text, v) {
				t.Errorf("error text contains a secret value: %q", text)
			}
		}
	}
}
