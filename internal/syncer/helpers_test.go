package syncer

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// The sandbox data and the id_token key are loaded once per test binary (both are immutable).
var (
	dataOnce sync.Once
	dataSet  *sandbox.Data
	dataErr  error
	keyOnce  sync.Once
	testKey  *rsa.PrivateKey
)

func testData(t testing.TB) *sandbox.Data {
	t.Helper()
	dataOnce.Do(func() { dataSet, dataErr = sandbox.LoadData("", time.Time{}) })
	if dataErr != nil {
		t.Fatalf("load sandbox data: %v", dataErr)
	}
	return dataSet
}

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

// testPatient is a mid-sized Synthea patient (193 resources).
const testPatient = "f7ae627c-3c71-41fe-b8c0-d3d9c336d449" // patient-1037e006-....json

const fullScope = "launch/patient openid fhirUser offline_access patient/*.rs"

// provider is a sandbox on loopback.
type provider struct {
	srv *sandbox.Server
	ts  *httptest.Server
}

func newProvider(t testing.TB, cfg sandbox.Config) *provider {
	t.Helper()
	cfg.Data = testData(t)
	cfg.SigningKey = signingKey(t)
	srv, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	if err := srv.SetBaseURL(ts.URL); err != nil {
		t.Fatal(err)
	}
	return &provider{srv: srv, ts: ts}
}

func (p *provider) fhirBase() string { return p.srv.FHIRBase() }

// signIn plays the user: discovery, authorize (sandbox.SignIn) and the code exchange.
func (p *provider) signIn(t testing.TB, patient, scope string) *smart.Token {
	t.Helper()
	ctx := context.Background()
	hc := p.ts.Client()
	srv, err := smart.Discover(ctx, hc, p.fhirBase())
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "http://127.0.0.1:5555/callback"
	pk, state := smart.NewPKCE(), smart.NewState()
	authURL := smart.AuthCodeURL(srv, sandbox.DefaultClientID, redirect, scope, state, pk)
	loc, err := sandbox.SignIn(ctx, hc, authURL, patient, true)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Query().Get("state") != state {
		t.Fatalf("state mismatch")
	}
	tok, err := smart.Exchange(ctx, hc, srv.TokenEndpoint, sandbox.DefaultClientID, loc.Query().Get("code"), pk.Verifier, redirect)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// memTokens is an in-memory smart.TokenStore.
type memTokens struct {
	mu  sync.Mutex
	tok *smart.Token
}

func (m *memTokens) Load(context.Context) (*smart.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tok == nil {
		return nil, smart.ErrNoToken
	}
	c := *m.tok
	return &c, nil
}

func (m *memTokens) Save(_ context.Context, t *smart.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *t
	m.tok = &c
	return nil
}

// env is a record store plus the token stores of its provider sources.
type env struct {
	t     testing.TB
	db    *db.DB
	store *records.Store
	mu    sync.Mutex
	toks  map[int64]*memTokens
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return openEnv(t, filepath.Join(t.TempDir(), "fasten.db"))
}

func openEnv(t testing.TB, path string) *env {
	t.Helper()
	d, err := db.Open(context.Background(), path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &env{t: t, db: d, store: records.New(d), toks: map[int64]*memTokens{}}
}

// connect creates a provider source for tok's patient at p and keeps its token.
func (e *env) connect(p *provider, name string, tok *smart.Token) int64 {
	e.t.Helper()
	var id int64
	err := e.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = e.store.CreateSource(context.Background(), tx, records.NewSource{
			Kind: records.KindProvider, Name: name, PatientID: tok.Patient, ProviderID: "demo",
			FHIRBase: p.fhirBase(), Scopes: tok.Scope, TokenURL: p.srv.BaseURL() + "/auth/token",
			ClientID: sandbox.DefaultClientID, TokenKey: "test",
		})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.toks[id] = &memTokens{tok: tok}
	e.mu.Unlock()
	return id
}

func (e *env) tokens(ctx context.Context, src records.Source) (*smart.TokenManager, error) {
	e.mu.Lock()
	ts := e.toks[src.ID]
	e.mu.Unlock()
	if ts == nil {
		return nil, smart.ErrNoToken
	}
	return smart.NewTokenManager(ts, smart.DirectRefresher(http.DefaultClient, src.TokenURL, src.ClientID),
		smart.WithFHIRBase(*src.FHIRBase), smart.WithLogger(slog.New(slog.DiscardHandler))), nil
}

// config is a syncer configuration for tests: no real waiting (Sleep records and returns).
func (e *env) config(ev *events) Config {
	c := Config{
		Store:  e.store,
		DB:     e.db,
		Tokens: e.tokens,
		Log:    slog.New(slog.DiscardHandler),
		Sleep:  func(ctx context.Context, d time.Duration) error { return ctx.Err() },
	}
	if ev != nil {
		c.Events = ev
	}
	return c
}

func (e *env) source(id int64) records.Source {
	e.t.Helper()
	src, err := e.store.GetSource(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return src
}

func (e *env) counts(id int64) map[string]int {
	e.t.Helper()
	c, err := e.store.Counts(context.Background(), records.Filter{SourceID: id})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func runOne(t testing.TB, s *Syncer, id int64) RunResult {
	t.Helper()
	res, err := s.RunOnce(context.Background(), []int64{id})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	return res[0]
}

func mustOK(t testing.TB, r RunResult) {
	t.Helper()
	if r.Status != RunOK {
		t.Fatalf("sync %s: %v (warnings %q)", r.Status, r.Err, r.Warnings)
	}
}

// events records published events; fn, when set, sees each one as it is published.
type events struct {
	mu  sync.Mutex
	all []event
	fn  func(topic string, data map[string]any)
}

type event struct {
	topic string
	data  map[string]any
}

func (ev *events) Publish(topic string, data any) {
	m, _ := data.(map[string]any)
	ev.mu.Lock()
	ev.all = append(ev.all, event{topic, maps.Clone(m)})
	fn := ev.fn
	ev.mu.Unlock()
	if fn != nil {
		fn(topic, m)
	}
}

func (ev *events) topics(topic string) []map[string]any {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []map[string]any
	for _, e := range ev.all {
		if e.topic == topic {
			out = append(out, e.data)
		}
	}
	return out
}

// fhirRequests returns the logged FHIR API requests (not metadata, discovery or auth).
func fhirRequests(p *provider) []sandbox.LoggedRequest {
	var out []sandbox.LoggedRequest
	for _, r := range p.srv.Requests() {
		if len(r.Path) > 6 && r.Path[:6] == "/fhir/" && r.Path != "/fhir/metadata" && r.Path[:min(len(r.Path), 17)] != "/fhir/.well-known" {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

var errTest = errors.New("test error")
