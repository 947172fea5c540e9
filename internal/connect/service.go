// Package connect is the app side of the Lighthouse and of signing in to providers: the
// installation's registration (issue 4), the settings that go with it, the provider catalog, the
// connect flow (SMART standalone launch through the Lighthouse, loopback callback, tokens in the
// OS keyring, the provider source), disconnect, and the token managers the syncer uses.
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
//
// The installation secret is kept in the keyring together with the installation ID and the
// Lighthouse URL it was issued for, and is sent only to that Lighthouse.
package connect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// KeyringService is the keyring service name the app keeps its secrets under.
const KeyringService = "fasten-desktop"

// InstallationSecretKey is the keyring key of an installation's secret. It carries the
// installation ID so that two data directories on one machine (two settings files) never
// overwrite each other's secret.
func InstallationSecretKey(installationID string) string {
	return "installation-secret-" + installationID
}

// keyringProbeKey is read (and never written) to learn whether the keyring can be used.
const keyringProbeKey = "keyring-check"

// tokenKeyPrefix starts the keyring key of each provider source's tokens.
const tokenKeyPrefix = "source-token-"

// DefaultProfile is the local user id the Lighthouse user key is derived from when no person is
// known: "profile:default" (no People service, or the reconnect of a source without a person).
// Otherwise the key is derived from the person's id: "profile:<id>".
const DefaultProfile = "default"

// Publisher receives events (source.status). The events package implements it; nil drops them.
type Publisher interface {
	Publish(topic string, data any)
}

// Options are the Service's dependencies.
type Options struct {
	Store  *records.Store // required
	Config *config.Store  // required
	// Keyring keeps the installation secret and the tokens: the OS keyring
	// (secrets.NewKeyring(KeyringService)). Required; there is no fallback store. Tests pass a
	// fake explicitly.
	Keyring secrets.Store
	// LighthouseOverride is the --lighthouse-url flag or FASTEN_LIGHTHOUSE_URL ("" when neither
	// is given). It wins over the settings file until the user changes the URL in Settings.
	LighthouseOverride string
	Log                *slog.Logger
	// HTTPClient talks to providers (discovery, token endpoint, FHIR); nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	// LighthouseHTTPClient talks to the Lighthouse; nil means a client with a 30 s timeout.
	LighthouseHTTPClient *http.Client
	// OnConnected is called once a connect created (or reconnected) a source, e.g. to start its
	// first sync. May be set later with SetOnConnected.
	OnConnected func(sourceID int64)
	// Events receives source.status events. May be set later with SetPublisher.
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
	store   *records.Store
	cfg     *config.Store
	keyring secrets.Store
	log     *slog.Logger
	hc      *http.Client
	lhHC    *http.Client
	timeout time.Duration
	now     func() time.Time

	ctx    context.Context // ends on Close: every pending sign-in stops
	cancel context.CancelFunc

	mu          sync.Mutex
	override    string // flag/env Lighthouse URL; cleared by a Settings change
	reg         *registration
	lhClients   map[string]*lighthouse.Client // by URL, or URL + installation id
	attempts    map[string]*attempt
	managers    map[int64]*managerEntry
	onConnected func(int64)
	events      Publisher
	people      *people.Service
}

// New returns a Service. It does no I/O: the keyring and the network are used only when a
// request needs them, so importing files works without either.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Config == nil {
		return nil, errors.New("connect: Store and Config are required")
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
	if o.LighthouseHTTPClient == nil {
		o.LighthouseHTTPClient = &http.Client{Timeout: 30 * time.Second}
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
		cfg:         o.Config,
		keyring:     o.Keyring,
		log:         o.Log,
		hc:          o.HTTPClient,
		lhHC:        o.LighthouseHTTPClient,
		timeout:     o.CallbackTimeout,
		now:         o.Now,
		ctx:         ctx,
		cancel:      cancel,
		override:    strings.TrimSpace(o.LighthouseOverride),
		lhClients:   map[string]*lighthouse.Client{},
		attempts:    map[string]*attempt{},
		managers:    map[int64]*managerEntry{},
		onConnected: o.OnConnected,
		events:      o.Events,
		people:      o.People,
	}, nil
}

// SetOnConnected sets the function called with the source id after a successful connect.
func (s *Service) SetOnConnected(fn func(sourceID int64)) {
	s.mu.Lock()
	s.onConnected = fn
	s.mu.Unlock()
}

// SetPublisher sets where source.status events go.
func (s *Service) SetPublisher(p Publisher) {
	s.mu.Lock()
	s.events = p
	s.mu.Unlock()
}

func (s *Service) publish(topic string, data any) {
	s.mu.Lock()
	p := s.events
	s.mu.Unlock()
	if p != nil {
		p.Publish(topic, data)
	}
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

// --- Lighthouse URL and registration ------------------------------------------------------

// URL sources in Settings.
const (
	URLFromFlag     = "flag"     // --lighthouse-url or FASTEN_LIGHTHOUSE_URL
	URLFromSettings = "settings" // the settings file
	URLFromDefault  = "default"  // the public Lighthouse
)

func normURL(u string) string { return strings.TrimRight(strings.TrimSpace(u), "/") }

// lighthouseURL returns the Lighthouse in use and where that choice came from.
func (s *Service) lighthouseURL(c config.Config) (string, string) {
	s.mu.Lock()
	o := s.override
	s.mu.Unlock()
	switch {
	case o != "":
		return normURL(o), URLFromFlag
	case c.LighthouseURL != "":
		return normURL(c.LighthouseURL), URLFromSettings
	}
	return config.DefaultLighthouseURL, URLFromDefault
}

// LighthouseURL is the Lighthouse in use now (flag/env, else the settings file, else the public
// one; a change in Settings applies at once).
func (s *Service) LighthouseURL() (string, error) {
	c, err := s.cfg.Load()
	if err != nil {
		return "", err
	}
	u, _ := s.lighthouseURL(c)
	return u, nil
}

// CheckLighthouseURL accepts an absolute https URL, or http on a loopback host, without user
// info, query or fragment (the rules of the Lighthouse client).
func CheckLighthouseURL(raw string) error {
	u, err := url.Parse(normURL(raw))
	bad := errors.New("The Lighthouse address must be a full address such as https://lighthouse.example.org.")
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("The Lighthouse address must start with https:// (plain http is allowed only for 127.0.0.1, [::1] or localhost).")
	}
	return bad
}

// registration is the installation as far as the Lighthouse in use is concerned.
type registration struct {
	id     string
	url    string
	secret string
}

// storedSecret is the keyring value under InstallationSecretKey(id): the secret bound to the
// installation and Lighthouse it was issued for.
type storedSecret struct {
	V              int    `json:"v"`
	InstallationID string `json:"installation_id"`
	LighthouseURL  string `json:"lighthouse_url"`
	Secret         string `json:"secret"`
}

// registeredHere reports whether the settings hold an installation issued by the Lighthouse url.
func registeredHere(c config.Config, lhURL string) bool {
	return c.InstallationID != "" && normURL(c.LighthouseURL) == normURL(lhURL)
}

// registration returns the installation registered with the Lighthouse in use, reading its
// secret from the keyring once.
func (s *Service) registration(ctx context.Context) (registration, error) {
	c, err := s.cfg.Load()
	if err != nil {
		return registration{}, err
	}
	lhURL, _ := s.lighthouseURL(c)
	if !registeredHere(c, lhURL) {
		return registration{}, errNotRegistered
	}
	s.mu.Lock()
	if r := s.reg; r != nil && r.id == c.InstallationID && r.url == lhURL {
		s.mu.Unlock()
		return *r, nil
	}
	s.mu.Unlock()
	b, err := s.keyring.Get(ctx, InstallationSecretKey(c.InstallationID))
	if errors.Is(err, secrets.ErrNotFound) {
		return registration{}, &problem{Status: http.StatusConflict, Code: codeNotRegistered,
			Message: "This installation's secret is missing from the system keyring. Register this installation again in Settings to connect providers."}
	}
	if err != nil {
		return registration{}, err
	}
	var st storedSecret
	if json.Unmarshal(b, &st) != nil || st.Secret == "" {
		return registration{}, &problem{Status: http.StatusConflict, Code: codeNotRegistered,
			Message: "This installation's secret in the system keyring is damaged. Register this installation again in Settings to connect providers."}
	}
	if st.InstallationID != c.InstallationID || normURL(st.LighthouseURL) != lhURL {
		return registration{}, &problem{Status: http.StatusConflict, Code: codeNotRegistered,
			Message: "The installation secret in the system keyring belongs to another registration. Register this installation again in Settings to connect providers."}
	}
	r := registration{id: c.InstallationID, url: lhURL, secret: st.Secret}
	s.mu.Lock()
	s.reg = &r
	s.mu.Unlock()
	return r, nil
}

// forgetRegistration drops the cached secret and clients (after a registration change).
func (s *Service) forgetRegistration() {
	s.mu.Lock()
	s.reg = nil
	clear(s.lhClients)
	s.mu.Unlock()
}

// lighthouseClient returns the client for the Lighthouse in use; authenticated when reg is set.
// Clients are cached so that the catalog's ETag cache survives between requests.
func (s *Service) lighthouseClient(lhURL string, reg *registration) (*lighthouse.Client, error) {
	if err := CheckLighthouseURL(lhURL); err != nil {
		return nil, &problem{Status: http.StatusBadRequest, Code: "invalid_lighthouse_url", Message: err.Error() + " Change it in Settings."}
	}
	key := lhURL
	if reg != nil {
		key += "\x00" + reg.id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.lhClients[key]; ok {
		return c, nil
	}
	c := lighthouse.New(lhURL, s.lhHC)
	if reg != nil {
		c = c.WithInstallation(reg.id, reg.secret)
	}
	s.lhClients[key] = c
	return c, nil
}

// client returns the authenticated client of the installation registered with the Lighthouse in
// use, or errNotRegistered.
func (s *Service) client(ctx context.Context) (*lighthouse.Client, error) {
	reg, err := s.registration(ctx)
	if err != nil {
		return nil, err
	}
	return s.lighthouseClient(reg.url, &reg)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- errors shown to the user ---------------------------------------------------------------

const (
	codeNotRegistered = "not_registered"
)

var errNotRegistered = &problem{Status: http.StatusConflict, Code: codeNotRegistered, Message: "Register this installation to connect providers."}

// problem is an error with an HTTP status, a stable code and a sentence for the user.
type problem struct {
	Status  int
	Code    string
	Message string
	Err     error // the cause, for logs and errors.Is
}

func (p *problem) Error() string { return p.Message }
func (p *problem) Unwrap() error { return p.Err }

// unreachableError says the Lighthouse could not be reached (network, DNS, refused, timeout).
type unreachableError struct {
	host string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("Fasten could not reach the Lighthouse at %s. Check your internet connection and the Lighthouse address in Settings, then try again.", e.host)
}
func (e *unreachableError) Unwrap() error { return e.err }

// lighthouseErr keeps the Lighthouse's own problems (shown word for word) and turns transport
// failures into an unreachableError.
func lighthouseErr(c *lighthouse.Client, err error) error {
	if err == nil {
		return nil
	}
	var le *lighthouse.Error
	if errors.As(err, &le) || errors.Is(err, context.Canceled) {
		return err
	}
	host := c.BaseURL()
	if u, perr := url.Parse(host); perr == nil && u.Host != "" {
		host = u.Host
	}
	return &unreachableError{host: host, err: err}
}

// describe maps an error to what the API answers: status, code and a sentence for the user.
func describe(err error) (int, string, string) {
	var p *problem
	var le *lighthouse.Error
	var ue *unreachableError
	var nos *smart.NoS256Error
	var oe *smart.OAuthError
	switch {
	case errors.As(err, &p):
		return p.Status, p.Code, p.Message
	case errors.Is(err, secrets.ErrLocked): // ErrTimeout matches too
		return http.StatusServiceUnavailable, "keyring_locked", err.Error()
	case errors.Is(err, secrets.ErrUnavailable):
		return http.StatusServiceUnavailable, "keyring_unavailable", err.Error()
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrCorrupt), errors.Is(err, secrets.ErrTooLarge):
		return http.StatusServiceUnavailable, "keyring_error", err.Error()
	case errors.As(err, &ue):
		return http.StatusBadGateway, "lighthouse_unreachable", ue.Error()
	case errors.As(err, &le):
		switch le.Type {
		case lighthouse.TypeUserLimitReached:
			return http.StatusForbidden, "user_limit_reached", le.Error()
		case lighthouse.TypeInstallationUnknown, lighthouse.TypeInstallationAuthFailed:
			return http.StatusConflict, "installation_rejected", le.Error()
		case lighthouse.TypeProviderUnknown:
			return http.StatusNotFound, "provider_unknown", le.Error()
		case lighthouse.TypeRateLimited:
			return http.StatusTooManyRequests, "rate_limited", le.Error()
		case lighthouse.TypeBadRequest:
			return http.StatusBadRequest, "lighthouse_refused", le.Error()
		}
		return http.StatusBadGateway, "lighthouse_error", le.Error()
	case errors.As(err, &nos):
		return http.StatusBadGateway, "provider_insecure", capitalise(nos.Error()) + "."
	case errors.Is(err, smart.ErrDiscovery), errors.Is(err, smart.ErrInsecureURL):
		return http.StatusBadGateway, "provider_unavailable", "The provider's sign-in settings could not be read, so connecting is not possible right now: " + err.Error()
	case errors.As(err, &oe):
		return http.StatusBadGateway, "provider_refused", capitalise(oe.Error()) + "."
	case errors.Is(err, context.Canceled):
		return 499, "cancelled", "The request was cancelled."
	}
	return http.StatusInternalServerError, "internal", "Something went wrong on our side: " + err.Error()
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
