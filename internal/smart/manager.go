package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// TokenStore loads and saves the current token of one source (the caller backs it with the
// keyring; see NewSecretTokenStore).
type TokenStore interface {
	Load(ctx context.Context) (*Token, error)
	Save(ctx context.Context, t *Token) error
}

// RefreshFunc performs a refresh-token grant and returns the provider's new token set. It is
// DirectRefresher for public clients, or a call through the Lighthouse for confidential ones
// (parse its body with ParseRefreshResponse). An invalid_grant answer must be returned as an error
// matching ErrInvalidGrant (an *OAuthError does).
type RefreshFunc func(ctx context.Context, refreshToken string) (*Token, error)

var (
	// ErrNoToken: the store holds no token for the source.
	ErrNoToken = errors.New("this source has no saved sign-in")
	// ErrNoRefreshToken: the access token expired (or was rejected) and there is no refresh token
	// to renew it: the user must sign in again.
	ErrNoRefreshToken = errors.New("the sign-in expired and cannot be renewed without signing in again")
)

// TokenManager hands out a valid access token for one source and refreshes it: at most one refresh
// at a time (every concurrent caller shares its result), the rotated token saved to the store before
// it is used, invalid_grant returned to every waiter.
type TokenManager struct {
	store          TokenStore
	refresh        RefreshFunc
	skew           time.Duration
	refreshTimeout time.Duration
	now            func() time.Time
	log            *slog.Logger
	fhirBase       *url.URL

	mu      sync.Mutex
	cur     *Token  // last token loaded or refreshed; nil before the first load
	unsaved bool    // cur was refreshed but could not be saved to the store yet
	flight  *flight // the load/refresh in progress, if any
}

type flight struct {
	done      chan struct{}
	tok       *Token
	refreshed bool
	err       error
}

// ManagerOption configures a TokenManager.
type ManagerOption func(*TokenManager)

// WithSkew sets how long before expiry Token refreshes (default 60 s).
func WithSkew(d time.Duration) ManagerOption { return func(m *TokenManager) { m.skew = max(d, 0) } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) ManagerOption { return func(m *TokenManager) { m.now = now } }

// WithLogger sets the logger (default slog.Default()). Token values are never logged.
func WithLogger(l *slog.Logger) ManagerOption { return func(m *TokenManager) { m.log = l } }

// WithRefreshTimeout bounds one load/refresh/save round (default 60 s). The round runs detached
// from the caller's context so that a caller giving up cannot lose a rotated refresh token between
// the provider's answer and the save.
func WithRefreshTimeout(d time.Duration) ManagerOption {
	return func(m *TokenManager) {
		if d > 0 {
			m.refreshTimeout = d
		}
	}
}

// WithFHIRBase limits Transport to requests under the FHIR base URL (same scheme and host, path
// below the base path); other requests (a redirect to another host, say) are sent without the
// token. Recommended; without it Transport authorizes every request.
func WithFHIRBase(fhirBase string) ManagerOption {
	return func(m *TokenManager) {
		if u, err := url.Parse(strings.TrimRight(fhirBase, "/")); err == nil && u.Host != "" {
			m.fhirBase = u
		}
	}
}

// NewTokenManager returns a TokenManager over store and refresh.
func NewTokenManager(store TokenStore, refresh RefreshFunc, opts ...ManagerOption) *TokenManager {
	m := &TokenManager{
		store:          store,
		refresh:        refresh,
		skew:           60 * time.Second,
		refreshTimeout: 60 * time.Second,
		now:            time.Now,
		log:            slog.Default(),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Token returns a token whose access token is valid for longer than the skew, loading it from the
// store on first use and refreshing it when it expires within the skew. A token without a refresh
// token is returned while it has not expired, then ErrNoRefreshToken.
func (m *TokenManager) Token(ctx context.Context) (*Token, error) {
	return m.get(ctx, false, "")
}

// Refresh is called after the provider rejected staleAccessToken (HTTP 401). If the current token
// already differs from it (another caller refreshed, or another process saved a newer one to the
// store), that token is returned without a refresh; otherwise exactly one refresh runs, however many
// goroutines ask at once, and all of them get its result. An empty staleAccessToken means the
// current access token.
func (m *TokenManager) Refresh(ctx context.Context, staleAccessToken string) (*Token, error) {
	if staleAccessToken == "" {
		m.mu.Lock()
		if m.cur != nil {
			staleAccessToken = m.cur.AccessToken
		}
		m.mu.Unlock()
	}
	return m.get(ctx, true, staleAccessToken)
}

// good reports whether t satisfies a caller: for Token, valid beyond the skew; for Refresh, a
// different access token than the stale one.
func (m *TokenManager) good(t *Token, force bool, stale string) bool {
	if force {
		return t.AccessToken != stale
	}
	return !t.ExpiresWithin(m.skew, m.now())
}

func (m *TokenManager) get(ctx context.Context, force bool, stale string) (*Token, error) {
	for range 3 {
		m.mu.Lock()
		if m.cur != nil && m.good(m.cur, force, stale) {
			t := m.cur.clone()
			m.mu.Unlock()
			return t, nil
		}
		if f := m.flight; f != nil {
			m.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil {
				return nil, f.err
			}
			if f.refreshed || m.good(f.tok, force, stale) {
				return f.tok.clone(), nil
			}
			continue // the finished round was a load that does not satisfy us: start our own
		}
		f := &flight{done: make(chan struct{})}
		m.flight = f
		m.mu.Unlock()

		go m.run(ctx, f, force, stale)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		return f.tok.clone(), nil
	}
	return nil, errors.New("smart: the token changed repeatedly while waiting for it")
}

// run performs one round (load, maybe refresh, save) and publishes its result. Only one round runs
// at a time, so m.cur and m.unsaved are written by one goroutine; m.mu guards the reads elsewhere.
func (m *TokenManager) run(ctx context.Context, f *flight, force bool, stale string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.refreshTimeout)
	defer cancel()
	tok, refreshed, err := m.round(rctx, force, stale)
	m.mu.Lock()
	f.tok, f.refreshed, f.err = tok, refreshed, err
	m.flight = nil
	m.mu.Unlock()
	close(f.done)
}

func (m *TokenManager) round(ctx context.Context, force bool, stale string) (*Token, bool, error) {
	m.mu.Lock()
	cur, unsaved := m.cur, m.unsaved
	m.mu.Unlock()

	if unsaved {
		// A refreshed token could not be saved last time: try again, and keep using it either way
		// (the provider may already have invalidated the refresh token in the store).
		if err := m.store.Save(ctx, cur); err != nil {
			m.log.Warn("refreshed sign-in still not saved to the keyring", "err", err)
		} else {
			m.setCurrent(cur, false)
		}
	} else {
		loaded, err := m.store.Load(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("load token: %w", err)
		}
		cur = loaded
		m.setCurrent(cur, false)
	}

	if m.good(cur, force, stale) {
		return cur, false, nil
	}
	if cur.RefreshToken == "" {
		if !force && !cur.ExpiresWithin(0, m.now()) {
			return cur, false, nil
		}
		return nil, false, ErrNoRefreshToken
	}

	if m.refresh == nil {
		return nil, false, ErrNoRefreshToken
	}
	nt, err := m.refresh(ctx, cur.RefreshToken)
	if err != nil {
		if errors.Is(err, ErrInvalidGrant) && !m.unsavedNow() {
			// Another process sharing the keyring may have rotated the refresh token first.
			if other, lerr := m.store.Load(ctx); lerr == nil && other.RefreshToken != cur.RefreshToken && other.AccessToken != stale {
				m.setCurrent(other, false)
				m.log.Info("sign-in was renewed by another process")
				return other, true, nil
			}
		}
		return nil, false, fmt.Errorf("refresh token: %w", err)
	}
	merged := merge(cur, nt)
	if err := m.store.Save(ctx, merged); err != nil {
		// The old refresh token stays in the store (it was never overwritten) and the new one is
		// kept in memory and saved again on the next round.
		m.setCurrent(merged, true)
		return nil, false, fmt.Errorf("save refreshed token: %w", err)
	}
	m.setCurrent(merged, false)
	m.log.Info("sign-in renewed",
		"rotated", merged.RefreshToken != cur.RefreshToken,
		"expires_in", merged.ExpiresAt.Sub(m.now()).Round(time.Second).String())
	return merged, true, nil
}

func (m *TokenManager) setCurrent(t *Token, unsaved bool) {
	m.mu.Lock()
	m.cur, m.unsaved = t, unsaved
	m.mu.Unlock()
}

func (m *TokenManager) unsavedNow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unsaved
}

// merge builds the token to keep after a refresh: a response without a refresh_token keeps the old
// one (no rotation), and patient, scope and id_token absent from it are carried over.
func merge(old, nt *Token) *Token {
	t := nt.clone()
	if t.RefreshToken == "" {
		t.RefreshToken = old.RefreshToken
	}
	if t.Patient == "" {
		t.Patient = old.Patient
	}
	if t.Scope == "" {
		t.Scope = old.Scope
	}
	if t.IDToken == "" {
		t.IDToken = old.IDToken
	}
	return t
}

// DirectRefresher returns a RefreshFunc that sends the refresh-token grant straight to the
// provider's token endpoint as a public client (client_id in the body, no secret), with oauth2.
func DirectRefresher(hc *http.Client, tokenURL, clientID string) RefreshFunc {
	return func(ctx context.Context, refreshToken string) (*Token, error) {
		if _, err := checkURL(tokenURL); err != nil {
			return nil, fmt.Errorf("token endpoint: %w", err)
		}
		cfg := oauth2.Config{
			ClientID: clientID,
			Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		}
		ot, err := cfg.TokenSource(withClient(ctx, hc), &oauth2.Token{RefreshToken: refreshToken}).Token()
		if err != nil {
			return nil, tokenEndpointError(err, refreshToken)
		}
		return fromOAuth2(ot, time.Now(), false)
	}
}

// Transport returns a RoundTripper that sends each request with "Authorization: Bearer <access
// token>" and, when a request without a body gets 401, refreshes once (single-flight) and retries
// once. base nil means http.DefaultTransport. Errors from Token/Refresh (ErrInvalidGrant, ...) are
// returned as the request's error (reachable with errors.Is through *url.Error).
func (m *TokenManager) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{m: m, base: base}
}

type transport struct {
	m    *TokenManager
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.m.authorizes(req.URL) {
		return t.base.RoundTrip(req)
	}
	ctx := req.Context()
	tok, err := t.m.Token(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(authorized(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.Body != http.NoBody) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	nt, err := t.m.Refresh(ctx, tok.AccessToken)
	if err != nil {
		return nil, err
	}
	return t.base.RoundTrip(authorized(req, nt))
}

func authorized(req *http.Request, tok *Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (m *TokenManager) authorizes(u *url.URL) bool {
	b := m.fhirBase
	if b == nil {
		return true
	}
	if !strings.EqualFold(u.Scheme, b.Scheme) || !strings.EqualFold(u.Host, b.Host) {
		return false
	}
	return u.Path == b.Path || strings.HasPrefix(u.Path, strings.TrimRight(b.Path, "/")+"/")
}

// NewSecretTokenStore keeps one source's token as JSON under key in a secrets.Store (the keyring).
// Load of a missing key returns an error matching both ErrNoToken and secrets.ErrNotFound.
func NewSecretTokenStore(s secrets.Store, key string) TokenStore {
	return &secretTokenStore{s: s, key: key}
}

type secretTokenStore struct {
	s   secrets.Store
	key string
}

func (s *secretTokenStore) Load(ctx context.Context) (*Token, error) {
	b, err := s.s.Get(ctx, s.key)
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	if err != nil {
		return nil, err
	}
	var t Token
	if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("%w: %w", ErrNoToken, secrets.ErrCorrupt)
	}
	return &t, nil
}

func (s *secretTokenStore) Save(ctx context.Context, t *Token) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.s.Set(ctx, s.key, b)
}
