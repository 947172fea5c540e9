package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// DefaultLifetime is the lifetime given to an access token whose response has no usable
// expires_in (SECURITY.md: such a token is treated as short-lived). With the TokenManager's default
// 60 s skew it is refreshed after 4 minutes.
const DefaultLifetime = 5 * time.Minute

// Token is one source's token set, as stored in the keyring (JSON) by the caller.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Scope is the granted scope. Empty means the server did not say (RFC 6749 §5.1: as requested).
	Scope string `json:"scope,omitempty"`
	// Patient is the FHIR id of the patient in context.
	Patient string `json:"patient,omitempty"`
	IDToken string `json:"id_token,omitempty"`
}

// String hides the token values (so %v and %+v are safe to log).
func (t Token) String() string {
	return fmt.Sprintf("Token{TokenType:%s, ExpiresAt:%s, Scope:%q, Patient:%q, AccessToken:%s, RefreshToken:%s, IDToken:%s}",
		t.TokenType, t.ExpiresAt.Format(time.RFC3339), t.Scope, t.Patient,
		redacted(t.AccessToken), redacted(t.RefreshToken), redacted(t.IDToken))
}

// GoString hides the token values from %#v.
func (t Token) GoString() string { return t.String() }

// LogValue hides the token values from log/slog.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("token_type", t.TokenType),
		slog.Time("expires_at", t.ExpiresAt),
		slog.String("scope", t.Scope),
		slog.String("patient", t.Patient),
		slog.Bool("has_refresh_token", t.RefreshToken != ""),
	)
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[redacted]"
}

// GrantedTypes returns the resource types the granted scope allows reading (see GrantedTypes).
func (t *Token) GrantedTypes() []string { return GrantedTypes(t.Scope) }

// ExpiresWithin reports whether the access token expires within d of now (a zero ExpiresAt counts
// as expired).
func (t *Token) ExpiresWithin(d time.Duration, now time.Time) bool {
	return t.ExpiresAt.IsZero() || !now.Add(d).Before(t.ExpiresAt)
}

func (t *Token) clone() *Token {
	c := *t
	return &c
}

// Errors of the token endpoint and of token responses.
var (
	// ErrInvalidGrant: the provider rejected the code or the refresh token (expired, used, revoked,
	// or a PKCE verifier mismatch). On refresh, the source needs a new sign-in (reconnect_needed).
	ErrInvalidGrant = errors.New("the provider rejected the sign-in grant")
	// ErrNoPatient: a code-exchange response without a patient id (a standalone patient launch
	// must return one).
	ErrNoPatient = errors.New("the provider did not say which patient's records were shared")
	// ErrNotBearer: the token type is not Bearer.
	ErrNotBearer = errors.New("the provider issued a token type this app cannot use")
	// ErrBadTokenResponse: the token response is not a usable token response.
	ErrBadTokenResponse = errors.New("the provider's token response could not be used")
)

// OAuthError is an OAuth 2.0 error response from a token endpoint (RFC 6749 §5.2).
// Description is the provider's text, shortened and with any value this client sent removed.
type OAuthError struct {
	Code        string
	Description string
	Status      int // HTTP status, when known
}

func (e *OAuthError) Error() string {
	msg := "the provider refused the request"
	switch e.Code {
	case "invalid_grant":
		msg = "the provider rejected the sign-in (the code or refresh token is invalid, expired or already used)"
	case "invalid_client", "unauthorized_client":
		msg = "the provider does not accept this app's client registration"
	case "invalid_scope":
		msg = "the provider refused the requested permissions"
	case "access_denied":
		msg = "the provider denied access"
	case "temporarily_unavailable", "server_error":
		msg = "the provider's sign-in service is unavailable; try again later"
	}
	if e.Description != "" {
		return fmt.Sprintf("%s (%s: %s)", msg, e.Code, e.Description)
	}
	return fmt.Sprintf("%s (%s)", msg, e.Code)
}

// Is makes errors.Is(err, ErrInvalidGrant) true for an invalid_grant response.
func (e *OAuthError) Is(target error) bool {
	return target == ErrInvalidGrant && e.Code == "invalid_grant"
}

// NeedsReconnect reports whether err means the source's grant is gone and the user must sign in
// again (invalid_grant, or no refresh token to renew an expired access token). The caller marks the
// source reconnect_needed and keeps every record.
func NeedsReconnect(err error) bool {
	return errors.Is(err, ErrInvalidGrant) || errors.Is(err, ErrNoRefreshToken)
}

// Exchange swaps an authorization code for tokens at tokenURL as a public client: client_id in the
// form body (AuthStyleInParams, no secret) and the PKCE code_verifier. redirectURI must be the one
// the authorization request used (for the Lighthouse flow, the Lighthouse's callback URL). The code
// goes only to tokenURL, which the caller takes from what it recorded with the sign-in's state.
//
// The response is checked like ParseTokenResponse (Bearer, access token, patient present,
// expires_in or DefaultLifetime). Errors never contain the code, verifier or tokens.
func Exchange(ctx context.Context, hc *http.Client, tokenURL, clientID, code, verifier, redirectURI string) (*Token, error) {
	if _, err := checkURL(tokenURL); err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	cfg := oauth2.Config{
		ClientID:    clientID,
		RedirectURL: redirectURI,
		Endpoint:    oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	ot, err := cfg.Exchange(withClient(ctx, hc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", tokenEndpointError(err, code, verifier))
	}
	t, err := fromOAuth2(ot, time.Now(), true)
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	return t, nil
}

// ParseTokenResponse checks a raw token-endpoint response body of a code exchange (the confidential
// path: the Lighthouse returns the provider's response as is). An OAuth error body becomes an
// *OAuthError. Checks: access_token present; token_type Bearer (any case); patient present
// (ErrNoPatient); expires_in (a number or numeric string) sets ExpiresAt = now + expires_in, and a
// missing, zero or unreadable expires_in gives now + DefaultLifetime. A granted scope narrower than
// the request is kept in Token.Scope (see GrantedTypes, MissingScopes), not an error.
func ParseTokenResponse(body []byte, now time.Time) (*Token, error) {
	return parseTokenBody(body, now, true)
}

// ParseRefreshResponse is ParseTokenResponse for a refresh-token grant: patient may be absent
// (refresh responses often omit launch context; the TokenManager keeps the previous one).
func ParseRefreshResponse(body []byte, now time.Time) (*Token, error) {
	return parseTokenBody(body, now, false)
}

type tokenFields struct {
	accessToken, refreshToken, tokenType, scope, patient, idToken string
	expiresIn                                                     any
}

func parseTokenBody(body []byte, now time.Time, requirePatient bool) (*Token, error) {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadTokenResponse)
	}
	str := func(k string) string {
		s, _ := raw[k].(string)
		return s
	}
	if code := str("error"); code != "" {
		return nil, &OAuthError{Code: sanitize(code, 64), Description: sanitize(str("error_description"), 300)}
	}
	return buildToken(tokenFields{
		accessToken:  str("access_token"),
		refreshToken: str("refresh_token"),
		tokenType:    str("token_type"),
		scope:        str("scope"),
		patient:      str("patient"),
		idToken:      str("id_token"),
		expiresIn:    raw["expires_in"],
	}, now, requirePatient)
}

func fromOAuth2(ot *oauth2.Token, now time.Time, requirePatient bool) (*Token, error) {
	str := func(k string) string {
		switch v := ot.Extra(k).(type) {
		case string:
			return v
		default:
			return ""
		}
	}
	var exp any = ot.Extra("expires_in")
	if ot.ExpiresIn > 0 {
		exp = float64(ot.ExpiresIn)
	}
	return buildToken(tokenFields{
		accessToken:  ot.AccessToken,
		refreshToken: ot.RefreshToken,
		tokenType:    ot.TokenType,
		scope:        str("scope"),
		patient:      str("patient"),
		idToken:      str("id_token"),
		expiresIn:    exp,
	}, now, requirePatient)
}

func buildToken(f tokenFields, now time.Time, requirePatient bool) (*Token, error) {
	if f.accessToken == "" {
		return nil, fmt.Errorf("%w: no access_token", ErrBadTokenResponse)
	}
	if !strings.EqualFold(f.tokenType, "bearer") {
		return nil, fmt.Errorf("%w (token_type %q)", ErrNotBearer, sanitize(f.tokenType, 32))
	}
	if requirePatient && strings.TrimSpace(f.patient) == "" {
		return nil, ErrNoPatient
	}
	lifetime := DefaultLifetime
	if secs, ok := seconds(f.expiresIn); ok {
		lifetime = time.Duration(secs) * time.Second
	}
	return &Token{
		AccessToken:  f.accessToken,
		RefreshToken: f.refreshToken,
		TokenType:    "Bearer",
		ExpiresAt:    now.Add(lifetime).UTC(),
		Scope:        strings.Join(strings.Fields(f.scope), " "),
		Patient:      strings.TrimSpace(f.patient),
		IDToken:      f.idToken,
	}, nil
}

// seconds reads a positive expires_in given as a JSON number or a numeric string. Values over ten
// years are capped there.
func seconds(v any) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return 0, false
		}
		f = g
	case string:
		g, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		f = g
	default:
		return 0, false
	}
	if math.IsNaN(f) || f < 1 {
		return 0, false
	}
	return int64(min(f, 10*365*24*3600)), true
}

// tokenEndpointError turns what oauth2 returns into an error free of the values this client sent
// (sent) and of the response body.
func tokenEndpointError(err error, sent ...string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		statusText := ""
		if re.Response != nil {
			status = re.Response.StatusCode
			statusText = re.Response.Status
		}
		if re.ErrorCode != "" {
			return &OAuthError{
				Code:        sanitize(redact(re.ErrorCode, sent), 64),
				Description: sanitize(redact(re.ErrorDescription, sent), 300),
				Status:      status,
			}
		}
		return fmt.Errorf("%w: the token endpoint answered HTTP %s", ErrBadTokenResponse, statusText)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := redact(err.Error(), sent)
	if strings.HasPrefix(msg, "oauth2: ") {
		// "server response missing access_token", "cannot parse json: ...".
		return fmt.Errorf("%w: %s", ErrBadTokenResponse, sanitize(strings.TrimPrefix(msg, "oauth2: "), 200))
	}
	// Transport errors (*url.Error: method, token endpoint URL, cause); the form body is not in them.
	if msg != err.Error() {
		return errors.New(sanitize(msg, 300))
	}
	return err
}

// redact replaces every non-empty value of sent in s.
func redact(s string, sent []string) string {
	for _, v := range sent {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// sanitize drops control characters and shortens s to at most n runes.
func sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// withClient makes oauth2 use hc (or a client with a 30 s timeout).
func withClient(ctx context.Context, hc *http.Client) context.Context {
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}
