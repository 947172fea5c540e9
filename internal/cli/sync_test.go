package cli

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

type syncTestTokens struct {
	mu  sync.Mutex
	tok *smart.Token
}

func (m *syncTestTokens) Load(context.Context) (*smart.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *m.tok
	return &c, nil
}

func (m *syncTestTokens) Save(_ context.Context, t *smart.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *t
	m.tok = &c
	return nil
}

// sandboxToken signs in to a sandbox as patient and returns the token.
func syncTestSignIn(t *testing.T, srv *sandbox.Server, hc *http.Client, patient string) *smart.Token {
	t.Helper()
	ctx := context.Background()
	d, err := smart.Discover(ctx, hc, srv.FHIRBase())
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "http://127.0.0.1:5555/callback"
	pk, state := smart.NewPKCE(), smart.NewState()
	loc, err := sandbox.SignIn(ctx, hc, smart.AuthCodeURL(d, sandbox.DefaultClientID, redirect, smart.Scopes(d, nil), state, pk), patient, true)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := smart.Exchange(ctx, hc, d.TokenEndpoint, sandbox.DefaultClientID, loc.Query().Get("code"), pk.Verifier, redirect)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSyncCommand(t *testing.T) {
	ctx := context.Background()
	srv, err := sandbox.New(sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	srv.SetBaseURL(ts.URL)
	patient := srv.Patients()[0]

	b, err := backend.Open(ctx, backend.Options{DataDir: t.TempDir(), Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Nothing connected yet.
	var out strings.Builder
	if err := runSync(ctx, &out, b, syncer.Config{}, 0); err != nil || out.String() != "No provider is connected; nothing to sync.\n" {
		t.Fatalf("no sources: %v %q", err, out.String())
	}

	tok := syncTestSignIn(t, srv, ts.Client(), patient.ID)
	var id int64
	err = b.DB.WriteTx(ctx, func(tx *sql.Tx) error {
		id, err = b.Store.CreateSource(ctx, tx, records.NewSource{
			Kind: records.KindProvider, Name: "Demo Hospital", PatientID: tok.Patient, FHIRBase: srv.FHIRBase(),
			Scopes: tok.Scope, TokenURL: ts.URL + "/auth/token", ClientID: sandbox.DefaultClientID, TokenKey: "k",
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	store := &syncTestTokens{tok: tok}
	factory := func(ctx context.Context, src records.Source) (*smart.TokenManager, error) {
		return smart.NewTokenManager(store, smart.DirectRefresher(ts.Client(), src.TokenURL, src.ClientID),
			smart.WithFHIRBase(*src.FHIRBase), smart.WithLogger(slog.New(slog.DiscardHandler))), nil
	}

	cfg := syncer.Config{Tokens: factory, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }}

	// No token factory wired: an honest failure, no change to the source.
	out.Reset()
	err = runSync(ctx, &out, b, syncer.Config{}, 0)
	if err == nil || out.String() != "Demo Hospital (source 1): cannot sync: the token store is not configured\n" {
		t.Errorf("without a factory: %v %q", err, out.String())
	}

	out.Reset()
	if err := runSync(ctx, &out, b, cfg, id); err != nil {
		t.Fatalf("sync: %v\n%s", err, out.String())
	}
	want := "Demo Hospital (source 1): " + strconv.Itoa(patient.Resources) + " added, 0 updated, 0 unchanged\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if c, _ := b.Store.Counts(ctx, records.Filter{SourceID: id}); syncTestTotal(c) != patient.Resources {
		t.Errorf("stored %v", c)
	}

	// A provider that keeps failing: a line with the reason and a failure exit.
	srv.SetFaults(sandbox.Faults{ServerErrors: 1000})
	out.Reset()
	s := strings.Builder{}
	err = runSync(ctx, &s, b, cfg, 0)
	if err == nil || !strings.HasPrefix(s.String(), "Demo Hospital (source 1): failed: ") || !strings.Contains(s.String(), "HTTP 500") {
		t.Errorf("failing provider: %v %q", err, s.String())
	}
	srv.SetFaults(sandbox.Faults{})

	// An unknown source and a wrong argument.
	out.Reset()
	if err := runSync(ctx, &out, b, cfg, 99); err == nil || !strings.Contains(out.String(), "(source 99): failed: source 99: not found") {
		t.Errorf("unknown source: %v %q", err, out.String())
	}
	var stdout, stderr strings.Builder
	if code := Main([]string{"sync", "--data-dir", t.TempDir(), "extra"}, Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}); code != 2 {
		t.Errorf("extra argument: exit %d %s", code, stderr.String())
	}
}

func syncTestTotal(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
