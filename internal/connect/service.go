// Package connect is the app side of signing in to providers: the provider catalog, the connect
// flow (SMART standalone launch through the Lighthouse, loopback callback, tokens in the OS
// keyring, the provider source), disconnect and reconnect, and the token managers the syncer
// uses (Tokens). The installation's registration with the Lighthouse, which the flow signs in
// through, is internal/installation.
//
// It follows ../shared/docs/SECURITY.md "Signing in to a provider" point by point:
//   - the browser is opened by the caller (the window's BrowserOpenURL, or the page in serve mode)
//     at the Lighthouse's authorize_url; nothing signs in inside the app's own webview;
//   - one loopback listener per pending sign-in (internal/callback: 127.0.0.1 only, one valid
//     callback, then closed; 10 minute timeout), bound to a fresh state (256 bits) and a PKCE S256
//     verifier (32 bytes); a provider whose discovery lacks S256 is refused;
//   - the code goes only to the token endpoint discovered when the sign-in started (mix-up), and a
//     returned iss is compared; confidential providers swap the code through the Lighthouse;
//   - tokens go only to the keyring (a fresh key per source), never to SQLite, logs, URLs or error
//     text; a source is created only once its tokens are saved, and the tokens are removed again
//     if the source cannot be created.
package connect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// tokenKeyPrefix starts the keyring key of each provider source's tokens.
const tokenKeyPrefix = "source-token-"

// DefaultProfile is the local user id the Lighthouse user key is derived from when no person is
// known: "profile:default" (no People service, or the reconnect of a source without a person).
// Otherwise the key is derived from the person's id: "profile:<id>".
const DefaultProfile = "default"

// Publisher receives events (source.status, resources.changed). *events.Bus implements it; nil
// drops them.
type Publisher interface {
	Publish(topic string, data any)
}

// Options are the Service's dependencies.
type Options struct {
	Store *records.Store // required
	// Installation is the registration the flow signs in through (required).
	Installation *installation.Service
	// Tokens keeps and refreshes the sources' tokens (required; NewTokens). The syncer uses the
	// same one, so a source has one token manager in the process.
	Tokens *Tokens
	// Keyring keeps the tokens: the same store as Tokens' (required).
	Keyring secrets.Store
	Log     *slog.Logger
	// HTTPClient talks to providers (discovery, token endpoint, FHIR); nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	// OnConnected is called once a connect created (or reconnected) a source, e.g. to start its
	// first sync; nil: nothing starts (ConnectStatus.SyncStarted stays false).
	OnConnected func(sourceID int64)
	// Events receives source.status and resources.changed events; nil drops them.
	Events Publisher
	// CallbackTimeout is how long a pending sign-in waits for the browser (default 10 minutes).
	CallbackTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// People decides whose a new provider source is (internal/people). nil: sources are not
	// given a person unless one is chosen, and a sign-in without a chosen person uses the user
	// key of DefaultProfile.
	People *people.Service
}

// Service is the connect service. It is safe for concurrent use.
type Service struct {
	store       *records.Store
	inst        *installation.Service
	tokens      *Tokens
	keyring     secrets.Store
	log         *slog.Logger
	hc          *http.Client
	timeout     time.Duration
	now         func() time.Time
	onConnected func(int64)
	events      Publisher
	people      *people.Service

	ctx    context.Context // ends on Close: every pending sign-in stops
	cancel context.CancelFunc

	mu       sync.Mutex
	attempts map[string]*attempt
}

// New returns a Service. It does no I/O: the keyring and the network are used only when a
// request needs them, so importing files works without either.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Installation == nil || o.Tokens == nil {
		return nil, errors.New("connect: Store, Installation and Tokens are required")
	}
	if o.Keyring == nil {
		return nil, errors.New("connect: a keyring is required (secrets.NewKeyring)")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.CallbackTimeout <= 0 {
		o.CallbackTimeout = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		store:       o.Store,
		inst:        o.Installation,
		tokens:      o.Tokens,
		keyring:     o.Keyring,
		log:         o.Log,
		hc:          o.HTTPClient,
		timeout:     o.CallbackTimeout,
		now:         o.Now,
		onConnected: o.OnConnected,
		events:      o.Events,
		people:      o.People,
		ctx:         ctx,
		cancel:      cancel,
		attempts:    map[string]*attempt{},
	}, nil
}

func (s *Service) publish(topic string, data any) {
	if s.events != nil {
		s.events.Publish(topic, data)
	}
}

// TokenManagerFor is Tokens.ManagerFor of the service's Tokens (the syncer's token source).
func (s *Service) TokenManagerFor(ctx context.Context, src records.Source) (*smart.TokenManager, error) {
	return s.tokens.ManagerFor(ctx, src)
}

// Close cancels every pending sign-in (their listeners close) and waits briefly for them to end.
func (s *Service) Close() error {
	s.cancel()
	s.mu.Lock()
	var pending []*attempt
	for _, a := range s.attempts {
		pending = append(pending, a)
	}
	s.mu.Unlock()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for _, a := range pending {
		a.listener.Close()
		select {
		case <-a.done:
		case <-t.C:
			return nil
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- errors shown to the user ---------------------------------------------------------------
// Every refusal carries its HTTP status and stable code (httpkit.Coded): the routes answer with
// httpkit.Fail, and a failed sign-in's status shows the same code and sentence.

// problem is a refusal with a status, a stable code and a sentence for the user.
func problem(status int, code, msg string) error {
	return &httpkit.StatusError{Status: status, Code: code, Msg: msg}
}

// providerError gives a provider's discovery failure its status and code (502): no S256
// (provider_insecure), unreadable or insecure discovery (provider_unavailable).
func providerError(err error) error {
	var nos *smart.NoS256Error
	switch {
	case errors.As(err, &nos):
		return &httpkit.StatusError{Status: http.StatusBadGateway, Code: "provider_insecure", Msg: capitalise(nos.Error()) + ".", Err: err}
	case errors.Is(err, smart.ErrDiscovery), errors.Is(err, smart.ErrInsecureURL):
		return &httpkit.StatusError{Status: http.StatusBadGateway, Code: "provider_unavailable", Err: err,
			Msg: "The provider's sign-in settings could not be read, so connecting is not possible right now: " + err.Error()}
	}
	return err
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
