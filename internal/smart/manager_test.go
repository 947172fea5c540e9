package smart_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// memStore is a TokenStore in memory that records every save.
type memStore struct {
	mu      sync.Mutex
	tok     *smart.Token
	saves   []smart.Token
	loads   int
	saveErr error
}

func (s *memStore) Load(ctx context.Context) (*smart.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if s.tok == nil {
		return nil, smart.ErrNoToken
	}
	c := *s.tok
	return &c, nil
}

func (s *memStore) Save(ctx context.Context, t *smart.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveErr != nil {
		return s.saveErr
	}
	c := *t
	s.tok = &c
	s.saves = append(s.saves, c)
	return nil
}

func (s *memStore) current() smart.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.tok
}

func (s *memStore) setSaveErr(err error) {
	s.mu.Lock()
	s.saveErr = err
	s.mu.Unlock()
}

// seededManager returns a provider, a store holding a valid token pair issued by it, and a manager.
func seededManager(t *testing.T, p *fakeProvider, expiresIn time.Duration, opts ...smart.ManagerOption) (*memStore, *smart.TokenManager, string) {
	t.Helper()
	at, rt := p.seed()
	store := &memStore{tok: &smart.Token{AccessToken: at, RefreshToken: rt, TokenType: "Bearer", ExpiresAt: time.Now().Add(expiresIn), Patient: "p1", Scope: "openid patient/*.rs"}}
	opts = append([]smart.ManagerOption{smart.WithFHIRBase(p.fhirBase()), smart.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	m := smart.NewTokenManager(store, smart.DirectRefresher(p.srv.Client(), p.tokenURL(), clientID), opts...)
	return store, m, at
}

func (p *fakeProvider) fhirClient(m *smart.TokenManager) *http.Client {
	return &http.Client{Transport: m.Transport(p.srv.Client().Transport)}
}

func get(t *testing.T, c *http.Client, u string) (int, error) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestTransportAddsBearer(t *testing.T) {
	p := newFakeProvider(t)
	_, m, _ := seededManager(t, p, time.Hour)
	code, err := get(t, p.fhirClient(m), p.fhirBase()+"/Patient/p1")
	if err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	if n := p.refreshCalls.Load(); n != 0 {
		t.Errorf("%d refresh calls for a valid token", n)
	}
}

// TestRotatedRefreshTokenSavedBeforeUse: when the FHIR server first sees the new access token, the
// store already holds the new (rotated) refresh token, and the provider no longer accepts the old one.
func TestRotatedRefreshTokenSavedBeforeUse(t *testing.T) {
	p := newFakeProvider(t)
	store, m, oldAT := seededManager(t, p, time.Hour)
	oldRT := store.current().RefreshToken
	var checked atomic.Bool
	p.configure(func(p *fakeProvider) {
		p.onAccess = func(tok string) {
			if tok == oldAT {
				return
			}
			saved := store.current()
			if saved.AccessToken != tok || saved.RefreshToken == oldRT || saved.RefreshToken == "" {
				t.Errorf("new access token used before the rotated token was saved")
			}
			checked.Store(true)
		}
	})
	p.revokeAccess(oldAT) // the provider expired the access token early: 401, refresh, retry
	code, err := get(t, p.fhirClient(m), p.fhirBase()+"/Patient/p1")
	if err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	if !checked.Load() {
		t.Fatal("the retried request did not reach the FHIR server with a new token")
	}
	if n := p.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
	saved := store.current()
	if saved.Patient != "p1" || saved.Scope != "openid patient/*.rs" {
		t.Errorf("launch context lost on refresh: %v", saved)
	}
	// The old refresh token is dead at the provider: had it been kept, the next refresh would fail.
	if _, err := smart.DirectRefresher(p.srv.Client(), p.tokenURL(), clientID)(context.Background(), oldRT); !errors.Is(err, smart.ErrInvalidGrant) {
		t.Errorf("old refresh token still accepted: %v", err)
	}
	if _, err := m.Refresh(context.Background(), saved.AccessToken); err != nil {
		t.Errorf("second refresh with the saved rotated token: %v", err)
	}
}

func TestRefreshWithoutRotationKeepsRefreshToken(t *testing.T) {
	p := newFakeProvider(t)
	p.configure(func(p *fakeProvider) { p.rotate = false })
	store, m, oldAT := seededManager(t, p, time.Hour)
	rt := store.current().RefreshToken
	tok, err := m.Refresh(context.Background(), oldAT)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == oldAT || tok.RefreshToken != rt || store.current().RefreshToken != rt {
		t.Errorf("after a refresh without refresh_token: got %v, store %v", tok, store.current())
	}
}

func TestConcurrent401sCauseOneRefresh(t *testing.T) {
	for _, n := range []int{2, 10} {
		t.Run(fmt.Sprintf("%d requests", n), func(t *testing.T) {
			p := newFakeProvider(t)
			_, m, oldAT := seededManager(t, p, time.Hour)
			c := p.fhirClient(m)
			if code, err := get(t, c, p.fhirBase()+"/Patient/p1"); err != nil || code != 200 {
				t.Fatalf("warm-up GET: %d %v", code, err)
			}
			p.revokeAccess(oldAT)
			// The token endpoint holds the refresh until every request has had its 401.
			hold, release := holdChannel(t)
			p.configure(func(p *fakeProvider) { p.holdRefresh = hold })
			var wg sync.WaitGroup
			codes := make(chan int, n)
			errs := make(chan error, n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code, err := get(t, c, p.fhirBase()+"/Patient/p1")
					codes <- code
					errs <- err
				}()
			}
			// warm-up (1) + n requests with the revoked token must reach the server before release.
			deadline := time.Now().Add(10 * time.Second)
			for p.fhirCalls.Load() < int32(1+n) {
				if time.Now().After(deadline) {
					t.Fatal("requests did not arrive")
				}
				time.Sleep(time.Millisecond)
			}
			release()
			wg.Wait()
			close(codes)
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			for code := range codes {
				if code != 200 {
					t.Errorf("status %d after refresh", code)
				}
			}
			if got := p.refreshCalls.Load(); got != 1 {
				t.Errorf("%d concurrent 401s caused %d refresh calls, want 1", n, got)
			}
		})
	}
}

func TestInvalidGrantReachesEveryWaiter(t *testing.T) {
	p := newFakeProvider(t)
	store, m, oldAT := seededManager(t, p, time.Hour)
	// The provider forgot the refresh token (revoked by the user in the portal).
	p.mu.Lock()
	p.refresh = map[string]bool{}
	p.mu.Unlock()
	p.revokeAccess(oldAT)
	hold, release := holdChannel(t)
	p.configure(func(p *fakeProvider) { p.holdRefresh = hold })
	c := p.fhirClient(m)
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := get(t, c, p.fhirBase()+"/Patient/p1")
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.fhirCalls.Load() < n || p.refreshCalls.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("requests did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	for range n {
		err := <-errs
		if !errors.Is(err, smart.ErrInvalidGrant) || !smart.NeedsReconnect(err) {
			t.Errorf("waiter got %v, want ErrInvalidGrant", err)
		}
		assertNoSecrets(t, err, p.secrets()...)
	}
	if got := store.current(); got.AccessToken != oldAT {
		t.Error("the stored token was changed after invalid_grant")
	}
}

func TestTokenRefreshesWithinSkew(t *testing.T) {
	p := newFakeProvider(t)
	now := time.Now()
	store, m, oldAT := seededManager(t, p, 30*time.Second, smart.WithClock(func() time.Time { return now }), smart.WithSkew(time.Minute))
	tok, err := m.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == oldAT || p.refreshCalls.Load() != 1 || store.current().AccessToken != tok.AccessToken {
		t.Fatalf("token expiring within the skew was not refreshed: calls %d", p.refreshCalls.Load())
	}
	for range 3 {
		again, err := m.Token(context.Background())
		if err != nil || again.AccessToken != tok.AccessToken {
			t.Fatalf("Token again: %v", err)
		}
	}
	if p.refreshCalls.Load() != 1 {
		t.Errorf("%d refresh calls, want 1", p.refreshCalls.Load())
	}
}

func TestShortLivedTokenWithoutRefreshToken(t *testing.T) {
	now := time.Now()
	store := &memStore{tok: &smart.Token{AccessToken: "AT-no-rt", TokenType: "Bearer", ExpiresAt: now.Add(30 * time.Second)}}
	calls := 0
	refresh := func(context.Context, string) (*smart.Token, error) {
		calls++
		return nil, errors.New("must not be called")
	}
	clock := now
	m := smart.NewTokenManager(store, refresh, smart.WithClock(func() time.Time { return clock }))
	if tok, err := m.Token(context.Background()); err != nil || tok.AccessToken != "AT-no-rt" {
		t.Fatalf("Token before expiry: %v, %v", tok, err)
	}
	clock = now.Add(time.Minute)
	if _, err := m.Token(context.Background()); !errors.Is(err, smart.ErrNoRefreshToken) || !smart.NeedsReconnect(err) {
		t.Fatalf("Token after expiry: %v, want ErrNoRefreshToken", err)
	}
	if _, err := m.Refresh(context.Background(), "AT-no-rt"); !errors.Is(err, smart.ErrNoRefreshToken) {
		t.Fatalf("Refresh: %v", err)
	}
	if calls != 0 {
		t.Errorf("refresh called %d times without a refresh token", calls)
	}
}

func TestNoTokenStored(t *testing.T) {
	m := smart.NewTokenManager(&memStore{}, nil)
	if _, err := m.Token(context.Background()); !errors.Is(err, smart.ErrNoToken) {
		t.Fatalf("Token: %v", err)
	}
}

// TestSaveFailureKeepsRotatedTokenInMemory: the keyring refuses the save (locked): the refresh
// reports it, the old token stays in the store, the new one is used from memory and saved later.
func TestSaveFailureKeepsRotatedTokenInMemory(t *testing.T) {
	p := newFakeProvider(t)
	store, m, oldAT := seededManager(t, p, time.Hour)
	lockedErr := &secrets.Error{Kind: secrets.ErrLocked, Op: "set"}
	store.setSaveErr(lockedErr)
	_, err := m.Refresh(context.Background(), oldAT)
	if !errors.Is(err, secrets.ErrLocked) {
		t.Fatalf("Refresh with a locked keyring: %v, want ErrLocked", err)
	}
	assertNoSecrets(t, err, p.secrets()...)
	if store.current().AccessToken != oldAT {
		t.Fatal("store changed although the save failed")
	}
	tok, err := m.Token(context.Background())
	if err != nil || tok.AccessToken == oldAT {
		t.Fatalf("Token after a failed save: %v, %v (want the refreshed token from memory)", tok, err)
	}
	store.setSaveErr(nil)
	// The next round (a 401 on the in-memory token, say) saves it first.
	p.revokeAccess(tok.AccessToken)
	if code, err := get(t, p.fhirClient(m), p.fhirBase()+"/Patient/p1"); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	store.mu.Lock()
	saves := append([]smart.Token(nil), store.saves...)
	store.mu.Unlock()
	if len(saves) < 2 || saves[0].AccessToken != tok.AccessToken {
		t.Errorf("the in-memory token was not saved on the next round: %d saves", len(saves))
	}
}

// TestAnotherProcessRefreshedFirst: the store holds a newer token than this manager's (the
// headless sync command refreshed it): a 401 uses the stored token without a refresh.
func TestAnotherProcessRefreshedFirst(t *testing.T) {
	p := newFakeProvider(t)
	store, m, oldAT := seededManager(t, p, time.Hour)
	if _, err := m.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	other := smart.NewTokenManager(store, smart.DirectRefresher(p.srv.Client(), p.tokenURL(), clientID))
	newer, err := other.Refresh(context.Background(), oldAT)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Refresh(context.Background(), oldAT)
	if err != nil || got.AccessToken != newer.AccessToken {
		t.Fatalf("Refresh after another process refreshed: %v, %v", got, err)
	}
	if n := p.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
}

func TestTransportScope(t *testing.T) {
	p := newFakeProvider(t)
	_, m, oldAT := seededManager(t, p, time.Hour)
	var seen []string
	rt := m.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.String()+" "+r.Header.Get("Authorization"))
		return &http.Response{StatusCode: 401, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}))
	c := &http.Client{Transport: rt}
	// Another host, and a path outside the FHIR base: no token.
	for _, u := range []string{"https://elsewhere.example/fhir/Patient", strings.Replace(p.fhirBase(), "/fhir", "/other", 1)} {
		if _, err := get(t, c, u); err != nil {
			t.Fatal(err)
		}
	}
	// A POST with a body that gets 401 is not retried (the body may be consumed) and not refreshed.
	resp, err := c.Post(p.fhirBase()+"/Observation", "application/fhir+json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || p.refreshCalls.Load() != 0 {
		t.Errorf("POST: status %d, refresh calls %d", resp.StatusCode, p.refreshCalls.Load())
	}
	want := []string{
		"https://elsewhere.example/fhir/Patient ",
		strings.Replace(p.fhirBase(), "/fhir", "/other", 1) + " ",
		p.fhirBase() + "/Observation Bearer " + oldAT,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

// holdChannel returns a channel the fake token endpoint waits on, and its release function (also
// run at cleanup, so a failing test does not leave a handler blocked).
func holdChannel(t *testing.T) (chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return ch, release
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWithKeyringStore runs a refresh through the keyring-backed store (go-keyring's mock), with a
// 4 KB refresh token. Not parallel: the mock is global state in go-keyring.
func TestWithKeyringStore(t *testing.T) {
	keyring.MockInit()
	ctx := context.Background()
	kr := secrets.NewKeyring("fasten-desktop-test")
	store := smart.NewSecretTokenStore(kr, "source/1/token")
	if _, err := store.Load(ctx); !errors.Is(err, smart.ErrNoToken) || !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Load of a missing token: %v", err)
	}
	p := newFakeProvider(t)
	at, _ := p.seed()
	bigRT := strings.Repeat("r", 4096)
	p.mu.Lock()
	p.refresh[bigRT] = true
	p.mu.Unlock()
	if err := store.Save(ctx, &smart.Token{AccessToken: at, RefreshToken: bigRT, TokenType: "Bearer", ExpiresAt: time.Now().Add(time.Hour), Patient: "p1"}); err != nil {
		t.Fatal(err)
	}
	m := smart.NewTokenManager(store, smart.DirectRefresher(p.srv.Client(), p.tokenURL(), clientID))
	tok, err := m.Refresh(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := store.Load(ctx)
	if err != nil || loaded.AccessToken != tok.AccessToken || loaded.RefreshToken == bigRT || loaded.Patient != "p1" {
		t.Fatalf("keyring after refresh: %v, %v", loaded, err)
	}
}
