// Package lighthouse is the app's client for the Lighthouse, the auth gateway between SMART on
// FHIR providers and this installation (API: docs/lighthouse-api.yaml). It registers the
// installation, reads the provider catalog (cached, revalidated with ETag), starts a connect
// (checking the per-provider user limit) and swaps codes and refresh tokens for confidential
// providers. Errors the Lighthouse answers are *Error values whose message the UI shows as is.
//
// The installation secret goes only into the Authorization header of requests to the base URL:
// the client refuses redirects to another origin and plain http to a non-loopback host.
package lighthouse

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Problem types the Lighthouse answers (Error.Type). user_limit_near only appears as a Warning.
const (
	TypeInstallationUnknown    = "installation_unknown"
	TypeInstallationAuthFailed = "installation_auth_failed"
	// TypeInstallationRevoked: the Lighthouse operator suspended this installation. Every call
	// answers it (errors.Is(err, ErrInstallationRevoked)) until the operator lifts it.
	TypeInstallationRevoked     = "installation_revoked"
	TypeUserLimitReached        = "user_limit_reached"
	TypeUserLimitNear           = "user_limit_near"
	TypeProviderUnknown         = "provider_unknown"
	TypeProviderNotConfidential = "provider_not_confidential"
	TypeStateInvalid            = "state_invalid"
	TypeTicketInvalid           = "ticket_invalid"
	TypeBadRequest              = "bad_request"
	TypeRateLimited             = "rate_limited"
	TypeProviderError           = "provider_error"
	// TypeUnexpectedResponse is set by the client for an answer that is not a problem document
	// (a proxy's error page, say).
	TypeUnexpectedResponse = "unexpected_response"
)

// upstreamHeader marks a token swap response relayed from the provider (see gateway.UpstreamHeader).
const upstreamHeader = "X-Lighthouse-Upstream"

const maxResponse = 4 << 20

// Error is a problem the Lighthouse answered. Error() is Detail: a sentence for the user.
type Error struct {
	Type         string `json:"type"`
	Title        string `json:"title"`
	Status       int    `json:"status"`
	Detail       string `json:"detail"`
	Limit        int    `json:"limit,omitempty"`         // user_limit_reached
	ProviderName string `json:"provider_name,omitempty"` // user_limit_reached
	// RetryAfter is the Retry-After of a rate_limited answer.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	switch {
	case e.Detail != "":
		return e.Detail
	case e.Title != "":
		return e.Title
	}
	return fmt.Sprintf("The Lighthouse answered HTTP %d.", e.Status)
}

// RevokedMessage is the message of an installation_revoked error, in the words the app shows.
const RevokedMessage = "The Lighthouse operator has suspended this installation, so Fasten cannot connect providers " +
	"or renew their sign-ins through it. Your records on this computer stay available, and you can still import files. " +
	"Contact the operator of this Lighthouse to lift the suspension."

// ErrInstallationRevoked matches, with errors.Is, the *Error a revoked installation gets.
var ErrInstallationRevoked = errors.New("installation revoked")

// Is makes errors.Is(err, ErrInstallationRevoked) true for an installation_revoked problem.
func (e *Error) Is(target error) bool {
	return target == ErrInstallationRevoked && e.Type == TypeInstallationRevoked
}

// IsType reports whether err is (or wraps) an *Error of the given type.
func IsType(err error, typ string) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == typ
}

// Registration is what POST /v1/installations returns. The secret must go to the OS keyring.
type Registration struct {
	InstallationID     string `json:"installation_id"`
	InstallationSecret string `json:"installation_secret"`
}

// Provider is one catalog entry.
type Provider struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	FHIRBase string `json:"fhir_base"`
	// AuthorizeURL and TokenURL are empty when the Lighthouse could not run the provider's
	// discovery; the app may run SMART discovery on FHIRBase itself.
	AuthorizeURL string `json:"authorize_url"`
	TokenURL     string `json:"token_url"`
	Scopes       string `json:"scopes"`
	ClientID     string `json:"client_id"`
	Confidential bool   `json:"confidential"`
	UserLimit    int    `json:"user_limit"`
	// RedirectURI is the Lighthouse callback, the redirect_uri of the code exchange.
	RedirectURI string `json:"redirect_uri"`
}

// ConnectRequest starts a connect. State is the app's own state (at least 128 random bits,
// URL-safe); CodeChallenge the S256 PKCE challenge; RedirectPort the port of the loopback callback
// listener; UserKey is UserKey(secret, local user id); Scope empty means the provider's default.
type ConnectRequest struct {
	State               string `json:"state"`
	CodeChallenge       string `json:"code_challenge"`
	CodeChallengeMethod string `json:"code_challenge_method"` // "" means S256
	RedirectPort        int    `json:"redirect_port"`
	UserKey             string `json:"user_key"`
	Scope               string `json:"scope,omitempty"`
}

// ConnectResponse tells the app where to open the browser. Warning is set when the installation
// uses 80% or more of its users for the provider.
type ConnectResponse struct {
	AuthorizeURL string    `json:"authorize_url"`
	RedirectURI  string    `json:"redirect_uri"`
	ExpiresAt    time.Time `json:"expires_at"`
	Warning      *Warning  `json:"warning,omitempty"`
}

// Warning is a non-fatal notice; Detail is for the user.
type Warning struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
	Count  int    `json:"count"`
	Limit  int    `json:"limit"`
}

// TokenRequest is a token swap for a confidential provider: GrantType "authorization_code" with
// Code, CodeVerifier and RedirectURI (the catalog's redirect_uri), or "refresh_token" with
// RefreshToken (and optionally Scope).
type TokenRequest struct {
	GrantType    string `json:"grant_type"`
	Code         string `json:"code,omitempty"`
	CodeVerifier string `json:"code_verifier,omitempty"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// UserKey derives the pseudonymous key that identifies a local user to the Lighthouse:
// hex(HMAC-SHA256(key = installation secret, "fasten-desktop/user-key/v1:" + localID)). It is
// stable per user and installation and meaningless to the gateway.
func UserKey(installationSecret, localID string) string {
	m := hmac.New(sha256.New, []byte(installationSecret))
	m.Write([]byte("fasten-desktop/user-key/v1:" + localID))
	return hex.EncodeToString(m.Sum(nil))
}

// Client talks to one Lighthouse. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	baseErr error
	hc      *http.Client
	id      string
	secret  string
	cache   *catalogCache
}

type catalogCache struct {
	mu      sync.Mutex
	entries map[string]catalogEntry // by query
}

type catalogEntry struct {
	etag      string
	providers []Provider
}

// New returns a client for the Lighthouse at baseURL (e.g. https://lighthouse.fastenhealth.com).
// hc nil means a client with a 30 s timeout. The base URL must be https, or http on a loopback
// host; a bad URL is reported by every call.
func New(baseURL string, hc *http.Client) *Client {
	c := &Client{cache: &catalogCache{entries: map[string]catalogEntry{}}}
	c.base, c.baseErr = parseBase(baseURL)
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	own := *hc
	if c.base != nil {
		base := c.base
		next := hc.CheckRedirect
		own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != base.Scheme || req.URL.Host != base.Host {
				return fmt.Errorf("refusing a redirect from the Lighthouse to another host (%s)", req.URL.Host)
			}
			if next != nil {
				return next(req, via)
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		}
	}
	c.hc = &own
	return c
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the Lighthouse URL %q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("the Lighthouse URL %q must use https (plain http is allowed only on 127.0.0.1, [::1] or localhost)", raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WithInstallation returns a copy of c that authenticates as the installation. The copy has its
// own catalog cache.
func (c *Client) WithInstallation(id, secret string) *Client {
	cp := *c
	cp.id, cp.secret = id, secret
	cp.cache = &catalogCache{entries: map[string]catalogEntry{}}
	return &cp
}

// InstallationID returns the installation the client authenticates as ("" if none).
func (c *Client) InstallationID() string { return c.id }

// BaseURL returns the Lighthouse base URL.
func (c *Client) BaseURL() string {
	if c.base == nil {
		return ""
	}
	return c.base.String()
}

// Register registers a new installation with the administrator's name and email.
func (c *Client) Register(ctx context.Context, name, email string) (Registration, error) {
	var reg Registration
	resp, err := c.do(ctx, http.MethodPost, "/v1/installations", nil, map[string]string{"name": name, "email": email}, false, nil)
	if err != nil {
		return reg, err
	}
	defer resp.Body.Close()
	if err := expect(resp, http.StatusCreated, &reg); err != nil {
		return reg, err
	}
	if reg.InstallationID == "" || reg.InstallationSecret == "" {
		return reg, &Error{Type: TypeUnexpectedResponse, Status: resp.StatusCode, Detail: "The Lighthouse answered the registration without an installation ID or secret."}
	}
	return reg, nil
}

// Providers returns the catalog, filtered by q when q is not empty. Results are cached per q and
// revalidated with If-None-Match on every call.
func (c *Client) Providers(ctx context.Context, q string) ([]Provider, error) {
	c.cache.mu.Lock()
	cached, ok := c.cache.entries[q]
	c.cache.mu.Unlock()
	hdr := http.Header{}
	if ok && cached.etag != "" {
		hdr.Set("If-None-Match", cached.etag)
	}
	query := url.Values{}
	if q != "" {
		query.Set("q", q)
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/providers", query, nil, true, hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && ok {
		return append([]Provider(nil), cached.providers...), nil
	}
	var ps []Provider
	if err := expect(resp, http.StatusOK, &ps); err != nil {
		return nil, err
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		c.cache.mu.Lock()
		c.cache.entries[q] = catalogEntry{etag: etag, providers: ps}
		c.cache.mu.Unlock()
	}
	return append([]Provider(nil), ps...), nil
}

// Connect asks the Lighthouse to admit req.UserKey for the provider (the per-provider user limit)
// and returns the URL to open in the system browser. Over the limit the error is an *Error of
// type user_limit_reached with Limit and ProviderName.
func (c *Client) Connect(ctx context.Context, providerID string, req ConnectRequest) (ConnectResponse, error) {
	var out ConnectResponse
	if req.CodeChallengeMethod == "" {
		req.CodeChallengeMethod = "S256"
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/connect/"+url.PathEscape(providerID), nil, req, true, nil)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := expect(resp, http.StatusOK, &out); err != nil {
		return out, err
	}
	if _, err := url.Parse(out.AuthorizeURL); err != nil || out.AuthorizeURL == "" {
		return out, &Error{Type: TypeUnexpectedResponse, Status: resp.StatusCode, Detail: "The Lighthouse answered the connect request without a usable authorize URL."}
	}
	return out, nil
}

// SwapToken has the Lighthouse perform a token request for a confidential provider, adding the
// client secret. It returns the provider's HTTP status and its body (the token response JSON or
// an OAuth error) unchanged. A problem the Lighthouse itself answers is an *Error.
func (c *Client) SwapToken(ctx context.Context, providerID string, req TokenRequest) (status int, body []byte, err error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/token/"+url.PathEscape(providerID), nil, req, true, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.Header.Get(upstreamHeader) != "provider" {
		return 0, nil, problemFrom(resp)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("the Lighthouse at %s could not be read: %w", c.base.Host, err)
	}
	return resp.StatusCode, body, nil
}

// Forget tells the Lighthouse that userKey (UserKey(secret, local id)) no longer uses the
// provider, which frees its slot in the provider's user limit. It is idempotent: forgetting a key
// the Lighthouse never saw, or twice, succeeds. Call it when a person is deleted, when the last
// source of a person at that provider is disconnected, and with the old key of a merged person.
func (c *Client) Forget(ctx context.Context, providerID, userKey string) error {
	if providerID == "" || userKey == "" {
		return errors.New("forget: provider and user key are required")
	}
	resp, err := c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(providerID)+"/"+url.PathEscape(userKey), nil, nil, true, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return problemFrom(resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

// do sends one request to the base URL. Only here does the secret leave the client.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, auth bool, hdr http.Header) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	if auth && (c.id == "" || c.secret == "") {
		return nil, &Error{Type: TypeInstallationUnknown, Status: 0,
			Detail: "This installation is not registered with the Lighthouse yet. Register it in Settings to connect providers."}
	}
	// The base URL has no query or fragment (parseBase), so the request URL is a concatenation;
	// path segments are already escaped by the callers.
	target := c.base.String() + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("X-Installation-Id", c.id)
		req.Header.Set("Authorization", "Bearer "+c.secret)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, by host, below
		}
		return nil, fmt.Errorf("the Lighthouse at %s could not be reached: %w", c.base.Host, err)
	}
	return resp, nil
}

// expect decodes a JSON body of the wanted status into v, or returns the problem answered.
func expect(resp *http.Response, want int, v any) error {
	if resp.StatusCode != want {
		return problemFrom(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(v); err != nil {
		return &Error{Type: TypeUnexpectedResponse, Status: resp.StatusCode, Detail: "The Lighthouse sent an answer that could not be read."}
	}
	return nil
}

// problemFrom turns an error response into an *Error.
func problemFrom(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if mt == "application/problem+json" || mt == "application/json" {
		if json.Unmarshal(body, e) == nil && e.Type != "" {
			e.Status = resp.StatusCode
			if e.Type == TypeInstallationRevoked {
				e.Detail = RevokedMessage // the same plain words whatever gateway answered
			}
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				e.RetryAfter = time.Duration(s) * time.Second
			}
			return e
		}
	}
	return &Error{Type: TypeUnexpectedResponse, Status: resp.StatusCode,
		Detail: fmt.Sprintf("The Lighthouse answered with an unexpected HTTP %d %s.", resp.StatusCode, http.StatusText(resp.StatusCode))}
}
