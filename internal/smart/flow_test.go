package smart_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/fastenhealth/fasten-desktop/internal/callback"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// TestDirectSignInFlow wires the three packages as the connect flow will: discovery, PKCE and
// state, the loopback listener whose Handle exchanges the code and saves the token in the keyring
// (go-keyring's mock; not parallel), a browser (an HTTP client) that follows the redirects, then a
// FHIR read through the TokenManager's transport.
func TestDirectSignInFlow(t *testing.T) {
	keyring.MockInit()
	ctx := context.Background()
	p := newFakeProvider(t)
	srv, err := smart.Discover(ctx, p.srv.Client(), p.fhirBase())
	if err != nil {
		t.Fatal(err)
	}
	pk, state := smart.NewPKCE(), smart.NewState()
	store := smart.NewSecretTokenStore(secrets.NewKeyring("fasten-desktop-test"), "source/demo/token")

	var redirectURI string
	l, err := callback.Listen(ctx, callback.Options{
		ExpectedState: state,
		Logger:        slog.New(slog.DiscardHandler),
		Handle: func(ctx context.Context, r callback.Result) error {
			if err := smart.CheckIssuer(srv, r.Iss); err != nil {
				return err
			}
			tok, err := smart.Exchange(ctx, p.srv.Client(), srv.TokenEndpoint, clientID, r.Code, pk.Verifier, redirectURI)
			if err != nil {
				return err
			}
			return store.Save(ctx, tok)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	redirectURI = l.RedirectURI()
	scope := smart.Scopes(srv, []string{"Patient", "Observation"})
	authURL := smart.AuthCodeURL(srv, clientID, redirectURI, scope, state, pk)

	browser := &http.Client{Timeout: 10 * time.Second}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/done" || !strings.Contains(string(page), "You&#39;re connected") {
		t.Fatalf("browser ended on %d %s:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if _, err := l.Wait(ctx); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	tok, err := store.Load(ctx)
	if err != nil || tok.Patient != "p1" || tok.Scope != scope || tok.RefreshToken == "" {
		t.Fatalf("stored token: %v, %v", tok, err)
	}

	m := smart.NewTokenManager(store, smart.DirectRefresher(p.srv.Client(), srv.TokenEndpoint, clientID),
		smart.WithFHIRBase(srv.FHIRBase), smart.WithLogger(slog.New(slog.DiscardHandler)))
	fhir := &http.Client{Transport: m.Transport(p.srv.Client().Transport)}
	p.revokeAccess(tok.AccessToken) // force the 401 -> refresh -> retry path once
	if code, err := get(t, fhir, srv.FHIRBase+"/Patient/"+tok.Patient); err != nil || code != 200 {
		t.Fatalf("first FHIR read: %d %v", code, err)
	}
	if n := p.refreshCalls.Load(); n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
}
