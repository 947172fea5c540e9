package smart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

const (
	clientID    = "fasten-desktop"
	redirectURI = "https://lighthouse.example/v1/callback/demo"
)

func TestExchange(t *testing.T) {
	requested := "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Condition.rs"
	tests := []struct {
		name    string
		setup   func(p *fakeProvider)
		mangle  func(code, verifier string) (string, string) // what the app sends
		check   func(t *testing.T, tok *smart.Token, before, after time.Time)
		wantErr error
	}{
		{name: "success", check: func(t *testing.T, tok *smart.Token, before, after time.Time) {
			if tok.TokenType != "Bearer" || tok.Patient != "p1" || tok.RefreshToken == "" || tok.AccessToken == "" || tok.Scope != requested {
				t.Errorf("token %v", tok)
			}
			if tok.ExpiresAt.Before(before.Add(time.Hour)) || tok.ExpiresAt.After(after.Add(time.Hour)) {
				t.Errorf("ExpiresAt %v, want now + expires_in (3600 s)", tok.ExpiresAt)
			}
		}},
		{name: "PKCE verifier mismatch", mangle: func(code, _ string) (string, string) {
			return code, smart.NewPKCE().Verifier
		}, wantErr: smart.ErrInvalidGrant},
		{name: "code replayed", mangle: func(code, v string) (string, string) { return code + "x", v }, wantErr: smart.ErrInvalidGrant},
		{name: "no patient", setup: func(p *fakeProvider) { p.omitPatient = true }, wantErr: smart.ErrNoPatient},
		{name: "not bearer", setup: func(p *fakeProvider) { p.tokenType = "MAC" }, wantErr: smart.ErrNotBearer},
		{name: "bearer in lower case", setup: func(p *fakeProvider) { p.tokenType = "bearer" }, check: func(t *testing.T, tok *smart.Token, _, _ time.Time) {
			if tok.TokenType != "Bearer" {
				t.Errorf("TokenType %q", tok.TokenType)
			}
		}},
		{name: "no expires_in is short-lived", setup: func(p *fakeProvider) { p.omitExpiresIn = true }, check: func(t *testing.T, tok *smart.Token, before, after time.Time) {
			if tok.ExpiresAt.Before(before.Add(smart.DefaultLifetime)) || tok.ExpiresAt.After(after.Add(smart.DefaultLifetime)) {
				t.Errorf("ExpiresAt %v, want now + %v", tok.ExpiresAt, smart.DefaultLifetime)
			}
		}},
		{name: "narrower scope is kept", setup: func(p *fakeProvider) {
			p.grantedScope = "launch/patient openid fhirUser patient/Observation.rs"
		}, check: func(t *testing.T, tok *smart.Token, _, _ time.Time) {
			if tok.Scope != "launch/patient openid fhirUser patient/Observation.rs" {
				t.Errorf("Scope %q", tok.Scope)
			}
			if got := tok.GrantedTypes(); !slices.Equal(got, []string{"Observation"}) {
				t.Errorf("GrantedTypes %q", got)
			}
			if got := smart.MissingScopes(requested, tok.Scope); !slices.Equal(got, []string{"offline_access", "patient/Condition.rs"}) {
				t.Errorf("MissingScopes %q", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProvider(t)
			if tc.setup != nil {
				p.configure(tc.setup)
			}
			pk := smart.NewPKCE()
			code := p.authorize(pk.Challenge, redirectURI, clientID, requested)
			sendCode, sendVerifier := code, pk.Verifier
			if tc.mangle != nil {
				sendCode, sendVerifier = tc.mangle(code, pk.Verifier)
				p.mu.Lock()
				p.issued = append(p.issued, sendCode, sendVerifier)
				p.mu.Unlock()
			}
			before := time.Now()
			tok, err := smart.Exchange(context.Background(), p.srv.Client(), p.tokenURL(), clientID, sendCode, sendVerifier, redirectURI)
			after := time.Now()
			assertNoSecrets(t, err, append(p.secrets(), pk.Verifier)...)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Exchange: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			// A public client: client_id and the verifier in the body, no client authentication.
			p.mu.Lock()
			form, auth := p.lastForm, p.lastAuth
			p.mu.Unlock()
			if auth != "" || form["client_secret"] != nil || form["client_id"][0] != clientID ||
				form["code_verifier"][0] != pk.Verifier || form["redirect_uri"][0] != redirectURI || form["grant_type"][0] != "authorization_code" {
				t.Errorf("token request: auth %q, form %v", auth, form)
			}
			tc.check(t, tok, before, after)
		})
	}
}

func TestExchangePKCEMismatchIsSurfaced(t *testing.T) {
	p := newFakeProvider(t)
	pk := smart.NewPKCE()
	code := p.authorize(pk.Challenge, redirectURI, clientID, "openid")
	wrong := smart.NewPKCE().Verifier
	_, err := smart.Exchange(context.Background(), p.srv.Client(), p.tokenURL(), clientID, code, wrong, redirectURI)
	var oe *smart.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" || oe.Status != http.StatusBadRequest {
		t.Fatalf("Exchange with a wrong verifier: %v, want an *OAuthError invalid_grant (400)", err)
	}
	// The provider's description is shown, with the verifier it echoed removed.
	if !strings.Contains(oe.Description, "PKCE verification failed") || strings.Contains(err.Error(), wrong) {
		t.Errorf("description %q", oe.Description)
	}
}

func TestExchangeHTTPErrorDoesNotLeakBody(t *testing.T) {
	var code string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "<html>crash while handling code=%s</html>", r.PostForm.Get("code"))
	}))
	defer srv.Close()
	code = smart.NewState()
	_, err := smart.Exchange(context.Background(), srv.Client(), srv.URL+"/token", clientID, code, smart.NewPKCE().Verifier, redirectURI)
	if !errors.Is(err, smart.ErrBadTokenResponse) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Exchange against a failing endpoint: %v", err)
	}
	assertNoSecrets(t, err, code)
}

func TestExchangeRefusesInsecureTokenEndpoint(t *testing.T) {
	_, err := smart.Exchange(context.Background(), nil, "http://ehr.example.com/token", clientID, "c", "v", redirectURI)
	if !errors.Is(err, smart.ErrInsecureURL) {
		t.Fatalf("Exchange to plain http: %v", err)
	}
}

func TestParseTokenResponse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		refresh bool
		want    *smart.Token
		wantErr error
	}{
		{name: "complete", body: `{"access_token":"AT","refresh_token":"RT","token_type":"Bearer","expires_in":300,"scope":"openid  patient/Observation.rs","patient":"p1","id_token":"ID"}`,
			want: &smart.Token{AccessToken: "AT", RefreshToken: "RT", TokenType: "Bearer", ExpiresAt: now.Add(300 * time.Second), Scope: "openid patient/Observation.rs", Patient: "p1", IDToken: "ID"}},
		{name: "expires_in as a string", body: `{"access_token":"AT","token_type":"bearer","expires_in":"120","patient":"p1"}`,
			want: &smart.Token{AccessToken: "AT", TokenType: "Bearer", ExpiresAt: now.Add(120 * time.Second), Patient: "p1"}},
		{name: "no expires_in", body: `{"access_token":"AT","token_type":"Bearer","patient":"p1"}`,
			want: &smart.Token{AccessToken: "AT", TokenType: "Bearer", ExpiresAt: now.Add(smart.DefaultLifetime), Patient: "p1"}},
		{name: "expires_in zero", body: `{"access_token":"AT","token_type":"Bearer","patient":"p1","expires_in":0}`,
			want: &smart.Token{AccessToken: "AT", TokenType: "Bearer", ExpiresAt: now.Add(smart.DefaultLifetime), Patient: "p1"}},
		{name: "no patient", body: `{"access_token":"AT","token_type":"Bearer"}`, wantErr: smart.ErrNoPatient},
		{name: "no patient on refresh is fine", refresh: true, body: `{"access_token":"AT","token_type":"Bearer","expires_in":60}`,
			want: &smart.Token{AccessToken: "AT", TokenType: "Bearer", ExpiresAt: now.Add(time.Minute)}},
		{name: "no access token", body: `{"token_type":"Bearer","patient":"p1"}`, wantErr: smart.ErrBadTokenResponse},
		{name: "no token type", body: `{"access_token":"AT","patient":"p1"}`, wantErr: smart.ErrNotBearer},
		{name: "OAuth error", body: `{"error":"invalid_grant","error_description":"code expired"}`, wantErr: smart.ErrInvalidGrant},
		{name: "not JSON", body: `<html>`, wantErr: smart.ErrBadTokenResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parse := smart.ParseTokenResponse
			if tc.refresh {
				parse = smart.ParseRefreshResponse
			}
			got, err := parse([]byte(tc.body), now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				assertNoSecrets(t, err, "AT", "RT")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestOAuthErrorText(t *testing.T) {
	_, err := smart.ParseTokenResponse([]byte(`{"error":"invalid_grant","error_description":"refresh token expired"}`), time.Now())
	if !smart.NeedsReconnect(err) {
		t.Fatalf("NeedsReconnect(%v) = false", err)
	}
	if want := "the provider rejected the sign-in (the code or refresh token is invalid, expired or already used) (invalid_grant: refresh token expired)"; err.Error() != want {
		t.Errorf("text %q", err.Error())
	}
	_, err = smart.ParseTokenResponse([]byte(`{"error":"invalid_client"}`), time.Now())
	if errors.Is(err, smart.ErrInvalidGrant) || smart.NeedsReconnect(err) {
		t.Errorf("invalid_client matched ErrInvalidGrant")
	}
}

func TestTokenFormattingHidesValues(t *testing.T) {
	tok := smart.Token{AccessToken: "ACCESS-SECRET-1", RefreshToken: "REFRESH-SECRET-2", IDToken: "ID-SECRET-3", TokenType: "Bearer", Patient: "p1", Scope: "openid", ExpiresAt: time.Now()}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "token", tok, "ptr", &tok)
	texts := []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, &tok, &tok, tok), logs.String()}
	for _, s := range texts {
		for _, secret := range []string{"ACCESS-SECRET-1", "REFRESH-SECRET-2", "ID-SECRET-3"} {
			if strings.Contains(s, secret) {
				t.Errorf("formatted token shows %s: %s", secret, s)
			}
		}
	}
	if !strings.Contains(logs.String(), `"patient":"p1"`) {
		t.Errorf("log lacks the non-secret fields: %s", logs.String())
	}
	// JSON is the storage format (for the keyring): it round-trips every field.
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	var back smart.Token
	if err := json.Unmarshal(b, &back); err != nil || !back.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("round trip: %v", err)
	}
	back.ExpiresAt = tok.ExpiresAt
	if back != tok {
		t.Errorf("round trip changed the token")
	}
}
