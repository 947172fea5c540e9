// Package installation is this installation's standing with the Lighthouse (issue 4): the
// Lighthouse address in use (flag or environment, else the settings file, else the public one),
// the registration (installation ID and administrator in the settings file, the installation
// secret in the OS keyring, bound to the installation ID and the Lighthouse URL it was issued for
// and sent only to that Lighthouse), and the settings routes that go with it (/installation,
// /settings).
//
// The connect flow (internal/connect) asks it for a Session: the authenticated Lighthouse client
// of the registration in use and the per-person user keys derived from its secret. The secret
// itself never leaves this package.
package installation

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// KeyringService is the keyring service name the app keeps its secrets under.
const KeyringService = "fasten-desktop"

// SecretKey is the keyring key of an installation's secret. It carries the installation ID so
// that two data directories on one machine (two settings files) never overwrite each other's
// secret.
func SecretKey(installationID string) string {
	return "installation-secret-" + installationID
}

// keyringProbeKey is read (and never written) to learn whether the keyring can be used.
const keyringProbeKey = "keyring-check"

// Options are the Service's dependencies.
type Options struct {
	Config *config.Store // required
	// Keyring keeps the installation secret: the OS keyring (secrets.NewKeyring(KeyringService)).
	// Required; there is no fallback store. Tests pass a fake explicitly.
	Keyring secrets.Store
	// LighthouseOverride is the --lighthouse-url flag or FASTEN_LIGHTHOUSE_URL ("" when neither
	// is given). It wins over the settings file until the user changes the URL in Settings.
	LighthouseOverride string
	Log                *slog.Logger
	// HTTPClient talks to the Lighthouse; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service is the installation service. It is safe for concurrent use. It does no I/O when
// built: the keyring and the network are used only when a request needs them.
type Service struct {
	cfg     *config.Store
	keyring secrets.Store
	log     *slog.Logger
	hc      *http.Client
	now     func() time.Time

	mu       sync.Mutex
	override string // flag/env Lighthouse URL; cleared by a Settings change
	reg      *registration
	clients  map[string]*lighthouse.Client // by URL, or URL + installation id
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Config == nil {
		return nil, errors.New("installation: Config is required")
	}
	if o.Keyring == nil {
		return nil, errors.New("installation: a keyring is required (secrets.NewKeyring)")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{
		cfg:      o.Config,
		keyring:  o.Keyring,
		log:      o.Log,
		hc:       o.HTTPClient,
		now:      o.Now,
		override: strings.TrimSpace(o.LighthouseOverride),
		clients:  map[string]*lighthouse.Client{},
	}, nil
}

// --- Lighthouse URL ---------------------------------------------------------------------------

// URL sources in Settings.
const (
	URLFromFlag     = "flag"     // --lighthouse-url or FASTEN_LIGHTHOUSE_URL
	URLFromSettings = "settings" // the settings file
	URLFromDefault  = "default"  // the public Lighthouse
)

// NormURL trims blanks and trailing slashes: the form URLs are compared in.
func NormURL(u string) string { return strings.TrimRight(strings.TrimSpace(u), "/") }

// lighthouseURL returns the Lighthouse in use and where that choice came from.
func (s *Service) lighthouseURL(c config.Config) (string, string) {
	s.mu.Lock()
	o := s.override
	s.mu.Unlock()
	switch {
	case o != "":
		return NormURL(o), URLFromFlag
	case c.LighthouseURL != "":
		return NormURL(c.LighthouseURL), URLFromSettings
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
	u, err := url.Parse(NormURL(raw))
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

// --- registration -----------------------------------------------------------------------------

// registration is the installation as far as the Lighthouse in use is concerned.
type registration struct {
	id     string
	url    string
	secret string
}

// storedSecret is the keyring value under SecretKey(id): the secret bound to the installation
// and Lighthouse it was issued for.
type storedSecret struct {
	V              int    `json:"v"`
	InstallationID string `json:"installation_id"`
	LighthouseURL  string `json:"lighthouse_url"`
	Secret         string `json:"secret"`
}

// registeredHere reports whether the settings hold an installation issued by the Lighthouse url.
func registeredHere(c config.Config, lhURL string) bool {
	return c.InstallationID != "" && NormURL(c.LighthouseURL) == NormURL(lhURL)
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
		return registration{}, ErrNotRegistered
	}
	s.mu.Lock()
	if r := s.reg; r != nil && r.id == c.InstallationID && r.url == lhURL {
		s.mu.Unlock()
		return *r, nil
	}
	s.mu.Unlock()
	b, err := s.keyring.Get(ctx, SecretKey(c.InstallationID))
	if errors.Is(err, secrets.ErrNotFound) {
		return registration{}, problem(http.StatusConflict, CodeNotRegistered,
			"This installation's secret is missing from the system keyring. Register this installation again in Settings to connect providers.")
	}
	if err != nil {
		return registration{}, KeyringError(err)
	}
	var st storedSecret
	if json.Unmarshal(b, &st) != nil || st.Secret == "" {
		return registration{}, problem(http.StatusConflict, CodeNotRegistered,
			"This installation's secret in the system keyring is damaged. Register this installation again in Settings to connect providers.")
	}
	if st.InstallationID != c.InstallationID || NormURL(st.LighthouseURL) != lhURL {
		return registration{}, problem(http.StatusConflict, CodeNotRegistered,
			"The installation secret in the system keyring belongs to another registration. Register this installation again in Settings to connect providers.")
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
	clear(s.clients)
	s.mu.Unlock()
}

// lighthouseClient returns the client for the Lighthouse at lhURL; authenticated when reg is
// set. Clients are cached so that the catalog's ETag cache survives between requests.
func (s *Service) lighthouseClient(lhURL string, reg *registration) (*lighthouse.Client, error) {
	if err := CheckLighthouseURL(lhURL); err != nil {
		return nil, problem(http.StatusBadRequest, "invalid_lighthouse_url", err.Error()+" Change it in Settings.")
	}
	key := lhURL
	if reg != nil {
		key += "\x00" + reg.id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	c := lighthouse.New(lhURL, s.hc)
	if reg != nil {
		c = c.WithInstallation(reg.id, reg.secret)
	}
	s.clients[key] = c
	return c, nil
}

// Session is the installation registered with the Lighthouse in use, as the connect flow needs
// it: the authenticated client and the user keys derived from the installation secret (which
// the Session does not show).
type Session struct {
	Client         *lighthouse.Client
	InstallationID string
	secret         string
}

// UserKey is the pseudonymous key of a local person (profile) for the Lighthouse:
// lighthouse.UserKey(installation secret, "profile:"+profile).
func (s Session) UserKey(profile string) string {
	return lighthouse.UserKey(s.secret, "profile:"+profile)
}

// Session returns the registration with the Lighthouse in use, or ErrNotRegistered (or a 409
// not_registered that says what is wrong with the secret in the keyring).
func (s *Service) Session(ctx context.Context) (Session, error) {
	reg, err := s.registration(ctx)
	if err != nil {
		return Session{}, err
	}
	c, err := s.lighthouseClient(reg.url, &reg)
	if err != nil {
		return Session{}, err
	}
	return Session{Client: c, InstallationID: reg.id, secret: reg.secret}, nil
}

// ForgetUser tells the Lighthouse that a local person no longer uses a provider, so their user
// key stops counting against the provider's limit (a person deleted or merged away, a provider
// disconnected). Not registered: nothing to forget.
func (s *Service) ForgetUser(ctx context.Context, providerID string, profileID int64) error {
	sess, err := s.Session(ctx)
	if errors.Is(err, ErrNotRegistered) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := sess.Client.Forget(ctx, providerID, sess.UserKey(strconv.FormatInt(profileID, 10))); err != nil {
		return LighthouseError(sess.Client, err)
	}
	return nil
}
