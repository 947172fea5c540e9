package sandbox

import (
	"context"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultClientID is the public client registered when Config.Clients is empty. It accepts any
// loopback redirect URI (http://127.0.0.1:<port>/... or http://[::1]:<port>/...).
const DefaultClientID = "fasten-desktop"

// Config configures a Server. The zero value is usable: Synthea data from the shared folder,
// the DefaultClientID public client, SMART v2 discovery, S256 PKCE, 1 h access tokens.
type Config struct {
	// BaseURL is where the handler is reachable, e.g. "http://127.0.0.1:9400" (no trailing
	// slash needed). The FHIR base is BaseURL+"/fhir". May be set later with SetBaseURL; while
	// unset, "http://"+Host of each request is used.
	BaseURL string

	// Data is the loaded data set to serve (shared, never modified). When nil, New loads it
	// from DataDir (default: the shared synthea-r4 folder) with BaseTime.
	Data     *Data
	DataDir  string
	BaseTime time.Time // meta.lastUpdated of loaded resources; default DefaultBaseTime

	// Now is the clock for meta.lastUpdated of changed resources, code and token expiry.
	// Default time.Now.
	Now func() time.Time

	// Clients are the registered OAuth clients. Default: one public DefaultClientID client
	// that allows loopback redirects.
	Clients []Client

	AccessTokenTTL time.Duration // default 1 h; expires_in of token responses
	CodeTTL        time.Duration // authorization code lifetime, default 60 s

	// Discovery and protocol switches for negative tests.
	SMARTv1Only  bool // no .well-known/smart-configuration (404); oauth-uris extension in metadata; v1 scopes only
	NoS256       bool // discovery omits S256 and the server ignores PKCE (a non-compliant server)
	NoEverything bool // CapabilityStatement omits Patient/$everything and the operation answers 400
	// OmitPatient leaves `patient` out of token responses; OmitExpiresIn leaves out expires_in.
	OmitPatient   bool
	OmitExpiresIn bool

	// WithholdTypes narrows every grant: resource scopes for these types are not granted and
	// wildcard scopes (patient/*.rs) are granted as one scope per served type minus these.
	WithholdTypes []string
	// GrantScopes, when set, sees the scopes about to be granted and returns the ones to grant.
	GrantScopes func(granted []string) []string

	// SigningKey signs id_tokens (RS256). Default: a 2048-bit key generated on first use.
	SigningKey *rsa.PrivateKey

	Logger            *slog.Logger // default: discard
	MaxLoggedRequests int          // request log cap (oldest dropped), default 10,000
}

// Client is a registered OAuth client.
type Client struct {
	ID string
	// Secret makes the client confidential (client_secret_basic or client_secret_post); empty
	// means a public client, which must not send a secret.
	Secret string
	// RedirectURIs are compared exactly with redirect_uri.
	RedirectURIs []string
	// AllowLoopbackRedirects also accepts any http://127.0.0.1:<port>/<path> or
	// http://[::1]:<port>/<path> redirect URI (RFC 8252 section 7.3).
	AllowLoopbackRedirects bool
}

func (c *Client) allowsRedirect(raw string) bool {
	if raw == "" {
		return false
	}
	if slices.Contains(c.RedirectURIs, raw) {
		return true
	}
	if !c.AllowLoopbackRedirects {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	h := u.Hostname()
	return (h == "127.0.0.1" || h == "::1") && u.Port() != ""
}

// Server is the sandbox provider. All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	store  *store
	data   *Data
	auth   *authState
	faults faultState
	reqlog requestLog
	keys   signer

	baseMu  sync.RWMutex
	baseURL string
}

// New loads the data (unless cfg.Data is given) and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 60 * time.Second
	}
	if cfg.MaxLoggedRequests <= 0 {
		cfg.MaxLoggedRequests = 10000
	}
	if len(cfg.Clients) == 0 {
		cfg.Clients = []Client{{ID: DefaultClientID, AllowLoopbackRedirects: true}}
	}
	seen := map[string]bool{}
	for _, c := range cfg.Clients {
		if c.ID == "" || seen[c.ID] {
			return nil, fmt.Errorf("sandbox: empty or duplicate client id %q", c.ID)
		}
		seen[c.ID] = true
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := cfg.Data
	if d == nil {
		var err error
		if d, err = LoadData(cfg.DataDir, cfg.BaseTime); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	} else if !cfg.BaseTime.IsZero() && !cfg.BaseTime.Equal(d.baseTime) {
		return nil, fmt.Errorf("sandbox: Config.BaseTime differs from the base time of Config.Data")
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		now:   cfg.Now,
		data:  d,
		store: newStore(d, cfg.Now),
		auth:  newAuthState(),
	}
	s.reqlog.max = cfg.MaxLoggedRequests
	s.keys.key = cfg.SigningKey
	if cfg.BaseURL != "" {
		if err := s.SetBaseURL(cfg.BaseURL); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SetBaseURL sets the external base URL (scheme://host[:port][/path]); see Config.BaseURL.
func (s *Server) SetBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("sandbox: bad base URL %q", base)
	}
	s.baseMu.Lock()
	s.baseURL = strings.TrimRight(base, "/")
	s.baseMu.Unlock()
	return nil
}

// BaseURL returns the configured base URL ("" before SetBaseURL).
func (s *Server) BaseURL() string {
	s.baseMu.RLock()
	defer s.baseMu.RUnlock()
	return s.baseURL
}

// FHIRBase returns BaseURL()+"/fhir".
func (s *Server) FHIRBase() string { return s.BaseURL() + "/fhir" }

// base returns the base URL for r: the configured one, else derived from the Host header.
func (s *Server) base(r *http.Request) string {
	if b := s.BaseURL(); b != "" {
		return b
	}
	return "http://" + r.Host
}

func (s *Server) fhirBase(r *http.Request) string { return s.base(r) + "/fhir" }

// Data returns the data set the server was built from.
func (s *Server) Data() *Data { return s.data }

// Handler returns the HTTP handler serving every endpoint (see the package documentation).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

type ctxKey struct{}

// reqInfo lets handlers annotate the request log entry.
type reqInfo struct {
	fault     string
	grantType string
}

func infoFrom(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	clock := s.now()
	ri := &reqInfo{}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
	sw := &statusWriter{ResponseWriter: w}
	s.route(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	s.reqlog.add(LoggedRequest{
		Time: start, ClockTime: clock, Method: r.Method, Path: r.URL.Path,
		Query: redactQuery(r.URL.Query()), Status: sw.status, Fault: ri.fault, GrantType: ri.grantType,
		UserAgent: r.UserAgent(),
	})
	s.log.Debug("sandbox request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
		"fault", ri.fault, "duration", time.Since(start))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if bu, err := url.Parse(s.BaseURL()); err == nil && bu.Path != "" && bu.Path != "/" {
		rest, ok := strings.CutPrefix(p, strings.TrimRight(bu.Path, "/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		p = rest
	}
	switch {
	case p == "/auth/authorize":
		s.handleAuthorize(w, r)
	case p == "/auth/token":
		s.handleToken(w, r)
	case p == "/auth/jwks":
		s.handleJWKS(w, r)
	case p == "/fhir/.well-known/smart-configuration":
		s.handleSMARTConfig(w, r)
	case p == "/fhir/.well-known/openid-configuration":
		s.handleOpenIDConfig(w, r)
	case p == "/fhir/metadata":
		s.handleMetadata(w, r)
	case strings.HasPrefix(p, "/fhir/"):
		s.handleAPI(w, r, strings.TrimPrefix(p, "/fhir"))
	case p == "/" || p == "":
		s.handleIndex(w, r)
	default:
		http.NotFound(w, r)
	}
}
