// Package gateway is the reference Lighthouse: the public auth gateway between SMART on FHIR
// providers and Fasten Desktop installations, implementing the open Lighthouse API
// (docs/lighthouse-api.yaml). It registers installations, serves the provider catalog, enforces
// the per-provider user limit of each installation, carries the OAuth round trip without storing
// any of it (sealed tickets and states), redirects the browser only to the app's loopback
// listener, and swaps codes for confidential clients while storing and logging no tokens.
//
// State lives in SQLite (a file path) or PostgreSQL (a postgres:// DSN, shared by any number of
// gateway processes).
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config configures a Gateway.
type Config struct {
	// DB is a SQLite file path, or a postgres:// (postgresql://) DSN.
	DB string
	// Providers is the catalog (see LoadProviders).
	Providers []Provider
	// PublicURL is the gateway's externally visible base URL, e.g. https://lighthouse.example.org.
	// Providers redirect to {PublicURL}/v1/callback/{provider}; the browser is sent to
	// {PublicURL}/v1/connect/{provider}.
	PublicURL string
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// HTTPClient makes SMART discovery and token requests; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RegisterLimit registrations per client IP in any RegisterWindow (defaults 10 per hour).
	RegisterLimit  int
	RegisterWindow time.Duration
	// ClientIPHeader, when set (e.g. "X-Forwarded-For"), names the header a trusted reverse proxy
	// sets with the client IP; its rightmost value keys the registration rate limit. Leave it
	// empty when clients connect directly.
	ClientIPHeader string
	// DiscoveryTTL is how long SMART discovery results are cached (default one hour).
	DiscoveryTTL time.Duration
	// Mailer sends the outbox's notifications (see Run); nil leaves them queued.
	Mailer Mailer
	// OutboxInterval is how often Run looks for due notifications (default 10 s).
	OutboxInterval time.Duration
	// SeparateMetrics leaves GET /metrics out of Handler: the operator serves MetricsHandler on a
	// private address instead.
	SeparateMetrics bool
}

// Gateway is a Lighthouse server. Create it with New, serve Handler, and Close it when done.
type Gateway struct {
	log        *slog.Logger
	store      *store
	sealer     *sealer
	metrics    *metrics
	mailer     Mailer
	sepMetric  bool
	outboxPoll time.Duration
	providers  map[string]*Provider
	order      []*Provider
	public     string // PublicURL without a trailing slash
	now        func() time.Time
	disc       *discovery
	tokenHC    *http.Client
	limiter    *rateLimiter // successful registrations per client
	failures   *rateLimiter // refused registration attempts per client, counted apart (issue 14 item 9)
	ipHeader   string
}

// New opens (and migrates) the database, loads or creates the ticket keys, and returns a
// gateway ready to serve.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := validateProviders(cfg.Providers); err != nil {
		return nil, fmt.Errorf("providers: %w", err)
	}
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" || pub.RawQuery != "" || pub.Fragment != "" || pub.User != nil {
		return nil, fmt.Errorf("public URL %q must be an absolute http(s) URL without query or fragment", cfg.PublicURL)
	}
	g := &Gateway{
		log:        cfg.Logger,
		providers:  map[string]*Provider{},
		public:     strings.TrimRight(cfg.PublicURL, "/"),
		now:        cfg.Now,
		ipHeader:   cfg.ClientIPHeader,
		metrics:    newMetrics(),
		mailer:     cfg.Mailer,
		sepMetric:  cfg.SeparateMetrics,
		outboxPoll: cfg.OutboxInterval,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	for i := range cfg.Providers {
		p := cfg.Providers[i]
		g.providers[p.ID] = &p
		g.order = append(g.order, &p)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	// Token requests carry the client secret: never follow a redirect with them.
	tokenHC := *hc
	tokenHC.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	g.tokenHC = &tokenHC
	ttl := cfg.DiscoveryTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	g.disc = newDiscovery(hc, g.now, ttl)
	limit, window := cfg.RegisterLimit, cfg.RegisterWindow
	if limit <= 0 {
		limit = 10
	}
	if window <= 0 {
		window = time.Hour
	}
	g.limiter = newRateLimiter(limit, window)
	g.failures = newRateLimiter(failedRegistrationsPerWindow, window)

	g.store, err = openStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	g.sealer, err = newSealer(ctx, g.store, g.now)
	if err != nil {
		g.store.Close()
		return nil, err
	}
	return g, nil
}

// Close closes the database.
func (g *Gateway) Close() error { return g.store.Close() }

// Handler returns the HTTP handler serving the Lighthouse API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/installations", g.register)
	mux.HandleFunc("GET /v1/providers", g.authenticated(g.catalog))
	mux.HandleFunc("POST /v1/connect/{provider}", g.authenticatedOr(g.connect, g.metrics.connectRefused))
	mux.HandleFunc("GET /v1/connect/{provider}", g.connectRedirect)
	mux.HandleFunc("GET /v1/callback/{provider}", g.callback)
	mux.HandleFunc("POST /v1/token/{provider}", g.authenticated(g.token))
	mux.HandleFunc("DELETE /v1/users/{provider}/{user_key}", g.authenticated(g.forgetUser))
	g.health(mux)
	if !g.sepMetric {
		mux.Handle("GET /metrics", g.metrics.handler())
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(http.StatusNotFound, TypeNotFound, "There is no such Lighthouse endpoint."))
	})
	return g.logRequests(mux)
}

// MetricsHandler serves GET /metrics (and the health checks) alone, for a private address.
func (g *Gateway) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.handler())
	g.health(mux)
	return mux
}

func (g *Gateway) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := g.store.ping(ctx); err != nil {
			g.log.WarnContext(r.Context(), "not ready", slog.String("error", err.Error()))
			writeProblem(w, newProblem(http.StatusServiceUnavailable, TypeUnavailable, "The Lighthouse cannot reach its database."))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// --- logging ---

type ctxKey struct{}

// requestInfo collects, during a request, what the access log may show.
type requestInfo struct {
	installation string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logRequests logs method, path (never the query: it holds tickets, codes and states), status,
// duration and the installation ID; and sets headers every response carries.
func (g *Gateway) logRequests(mux *http.ServeMux) http.Handler {
	var next http.Handler = mux
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := mux.Handler(r)
		info := &requestInfo{}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, info)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		elapsed := time.Since(start)
		if route == "/" {
			route = "unmatched"
		}
		g.metrics.observe(route, r.Method, sw.status, elapsed)
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
		}
		// The path is logged as the route pattern when it carries a user key (DELETE /v1/users).
		path := r.URL.Path
		if strings.Contains(route, "{user_key}") {
			_, path, _ = strings.Cut(route, " ")
		}
		g.log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("path", path),
			slog.Int("status", sw.status),
			slog.Duration("duration", elapsed),
			slog.String("client", clientKey(r, g.ipHeader)),
			slog.String("installation_id", info.installation))
	})
}

func setLogInstallation(r *http.Request, id string) {
	if info, ok := r.Context().Value(ctxKey{}).(*requestInfo); ok {
		info.installation = id
	}
}

// internalError logs err (which must hold no secret) and answers 500.
func (g *Gateway) internalError(w http.ResponseWriter, r *http.Request, err error) {
	g.log.ErrorContext(r.Context(), "internal error", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	writeProblem(w, newProblem(http.StatusInternalServerError, TypeInternal, "The Lighthouse had an internal error. Try again later."))
}

// --- installation auth ---

type installationKey struct{}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// authenticated wraps h so it runs only for a request from a registered installation that proves
// it holds the installation secret (X-Installation-Id plus Authorization: Bearer).
func (g *Gateway) authenticated(h func(http.ResponseWriter, *http.Request, installation)) http.HandlerFunc {
	return g.authenticatedOr(h, nil)
}

// authenticatedOr is authenticated, calling refused (when not nil) with the problem type of a
// request it turns away.
func (g *Gateway) authenticatedOr(h func(http.ResponseWriter, *http.Request, installation), refused func(typ string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		refuse := func(p *problem) {
			if refused != nil {
				refused(p.Type)
			}
			writeProblem(w, p)
		}
		id := r.Header.Get("X-Installation-Id")
		if id == "" || len(id) > 128 {
			refuse(newProblem(http.StatusUnauthorized, TypeInstallationUnknown,
				"This request carries no valid installation ID. Register this installation with the Lighthouse in Settings."))
			return
		}
		secret, ok := bearer(r.Header.Get("Authorization"))
		in, err := g.store.installation(r.Context(), id)
		if errors.Is(err, errNotFound) {
			refuse(newProblem(http.StatusUnauthorized, TypeInstallationUnknown,
				"The Lighthouse does not know this installation. Register it again in Settings."))
			return
		}
		if err != nil {
			if refused != nil {
				refused(TypeInternal)
			}
			g.internalError(w, r, err)
			return
		}
		if !ok || subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(in.SecretHash)) != 1 {
			refuse(newProblem(http.StatusUnauthorized, TypeInstallationAuthFailed,
				"The Lighthouse could not verify this installation's secret. Register this installation again in Settings."))
			return
		}
		setLogInstallation(r, in.ID)
		if in.Revoked {
			refuse(revokedProblem())
			return
		}
		if now := g.now(); now.Sub(in.LastSeen) >= lastSeenGranularity {
			if err := g.store.touchInstallation(r.Context(), in.ID, now); err != nil {
				g.log.WarnContext(r.Context(), "could not record last seen", slog.String("error", err.Error()))
			}
		}
		h(w, r, in)
	}
}

func revokedProblem() *problem {
	return newProblem(http.StatusForbidden, TypeInstallationRevoked,
		"The operator of this Lighthouse has suspended this installation, so it cannot connect providers or renew their sign-ins through it. Records already on this computer stay available. Contact the Lighthouse operator to lift the suspension.")
}

// revoked reports whether the installation named inside a ticket or state is revoked, answering
// the browser when it is (or when the lookup fails).
func (g *Gateway) revokedInstallation(w http.ResponseWriter, r *http.Request, id string) bool {
	in, err := g.store.installation(r.Context(), id)
	switch {
	case errors.Is(err, errNotFound):
		writeBrowserProblem(w, r, newProblem(http.StatusUnauthorized, TypeInstallationUnknown,
			"The Lighthouse does not know this installation. Register it again in Fasten's Settings."))
		return true
	case err != nil:
		g.internalError(w, r, err)
		return true
	case in.Revoked:
		writeBrowserProblem(w, r, revokedProblem())
		return true
	}
	return false
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != "" && len(token) <= 512
}

// --- request bodies ---

const maxBody = 64 << 10

// decodeJSON reads one JSON object into v; unknown members are ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *problem {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newProblem(http.StatusRequestEntityTooLarge, TypeBadRequest, "The request body is too large.")
		}
		return newProblem(http.StatusBadRequest, TypeBadRequest, "The request body is not a valid JSON object.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return newProblem(http.StatusBadRequest, TypeBadRequest, "The request body has data after the JSON object.")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// --- POST /v1/installations ---

type registerRequest struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type registerResponse struct {
	InstallationID     string `json:"installation_id"`
	InstallationSecret string `json:"installation_secret"`
}

// failedRegistrationsPerWindow bounds the invalid registration attempts one client may make per
// registration window; they are counted apart from successful registrations, so mistakes never
// use up the allowance of a valid registration.
const failedRegistrationsPerWindow = 60

func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	client := clientKey(r, g.ipHeader)
	limited := func(wait time.Duration, what string) {
		p := newProblem(http.StatusTooManyRequests, TypeRateLimited, fmt.Sprintf(
			"Too many %s from this network. Try again in %s.", what, humanDuration(wait)))
		p.retryAfter = wait
		writeProblem(w, p)
	}
	refuse := func(p *problem) {
		if ok, wait := g.failures.allow(client, g.now()); !ok {
			g.metrics.registration("rate_limited")
			limited(wait, "invalid registrations were sent")
			return
		}
		g.metrics.registration("invalid")
		writeProblem(w, p)
	}
	var req registerRequest
	if p := decodeJSON(w, r, &req); p != nil {
		refuse(p)
		return
	}
	name, email, p := validateRegistration(req)
	if p != nil {
		refuse(p)
		return
	}
	if ok, wait := g.limiter.allow(client, g.now()); !ok {
		g.metrics.registration("rate_limited")
		limited(wait, "installations were registered")
		return
	}
	idBytes := make([]byte, 16)
	if _, err := rand.Read(idBytes); err != nil {
		g.internalError(w, r, err)
		return
	}
	secret, err := randomString(32)
	if err != nil {
		g.internalError(w, r, err)
		return
	}
	in := installation{ID: hex.EncodeToString(idBytes), SecretHash: hashSecret(secret), Name: name, Email: email, CreatedAt: g.now()}
	if err := g.store.createInstallation(r.Context(), in); err != nil {
		g.metrics.registration("error")
		g.internalError(w, r, err)
		return
	}
	g.metrics.registration("created")
	setLogInstallation(r, in.ID)
	writeJSON(w, http.StatusCreated, registerResponse{InstallationID: in.ID, InstallationSecret: secret})
}

func validateRegistration(req registerRequest) (name, email string, p *problem) {
	name = strings.TrimFunc(req.Name, invisible)
	if n := utf8.RuneCountInString(name); n < 1 || n > 200 || !utf8.ValidString(name) || strings.IndexFunc(req.Name, badNameRune) >= 0 {
		return "", "", newProblem(http.StatusBadRequest, TypeBadRequest,
			"Enter the administrator's name (1 to 200 characters, with letters, and no control or text-direction characters).")
	}
	email = strings.TrimSpace(req.Email)
	if !plausibleEmail(email) {
		return "", "", newProblem(http.StatusBadRequest, TypeBadRequest, "Enter a valid email address for the administrator, like name@example.org.")
	}
	return name, email, nil
}

// invisible reports runes that show nothing: white space, separators and format characters
// (zero-width spaces, the byte order mark, joiners). A name made only of them is empty.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.In(r, unicode.Z, unicode.Cf)
}

// badNameRune reports runes a name may not hold anywhere: control characters, line and paragraph
// separators, and the bidirectional controls that reorder how the name (and what follows it in
// an email or a listing) is shown.
func badNameRune(r rune) bool {
	switch {
	case unicode.IsControl(r), unicode.In(r, unicode.Zl, unicode.Zp):
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	}
	return false
}

// plausibleEmail accepts a bare address local@host where host is a dotted DNS name (letters,
// digits and hyphens per label, internationalised letters allowed; not an address literal and
// not an all-numeric top label), at most 254 bytes.
func plausibleEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>") || strings.IndexFunc(s, badNameRune) >= 0 {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return false
	}
	return dottedHostName(domain)
}

// dottedHostName reports whether s is a DNS host name with at least two labels.
func dottedHostName(s string) bool {
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(labels) < 2 || len(s) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || utf8.RuneCountInString(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
		for _, r := range l {
			if !(r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') ||
				(r > 0x7f && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)))) {
				return false
			}
		}
	}
	top := labels[len(labels)-1]
	return strings.IndexFunc(top, func(r rune) bool { return !('0' <= r && r <= '9') }) >= 0
}

func humanDuration(d time.Duration) string {
	switch m := int((d + time.Minute - 1) / time.Minute); {
	case m <= 1:
		return "a minute"
	default:
		return strconv.Itoa(m) + " minutes"
	}
}

// --- GET /v1/providers ---

type catalogEntry struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	FHIRBase     string `json:"fhir_base"`
	AuthorizeURL string `json:"authorize_url"`
	TokenURL     string `json:"token_url"`
	Scopes       string `json:"scopes"`
	ClientID     string `json:"client_id"`
	Confidential bool   `json:"confidential"`
	UserLimit    int    `json:"user_limit"`
	RedirectURI  string `json:"redirect_uri"`
}

func (g *Gateway) redirectURI(p *Provider) string { return g.public + "/v1/callback/" + p.ID }

func (g *Gateway) catalog(w http.ResponseWriter, r *http.Request, _ installation) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	var match []*Provider
	for _, p := range g.order {
		if q == "" || strings.Contains(strings.ToLower(p.Name), q) || strings.Contains(p.ID, q) {
			match = append(match, p)
		}
	}
	entries := make([]catalogEntry, len(match))
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range match {
		entries[i] = catalogEntry{
			ID: p.ID, Name: p.Name, FHIRBase: p.FHIRBase, Scopes: p.Scopes, ClientID: p.ClientID,
			Confidential: p.Confidential(), UserLimit: p.UserLimit, RedirectURI: g.redirectURI(p),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A provider whose discovery fails is listed with empty endpoints: the app may run
			// discovery itself, and the connect redirect reports provider_error.
			if ep, err := g.disc.endpoints(ctx, p); err == nil {
				entries[i].AuthorizeURL, entries[i].TokenURL = ep.Authorize, ep.Token
			}
		}()
	}
	wg.Wait()
	body, err := json.Marshal(entries)
	if err != nil {
		g.internalError(w, r, err)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization, X-Installation-Id")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.Write(body)
}

// etagMatches implements If-None-Match's weak comparison.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// --- POST /v1/connect/{provider} ---

type connectRequest struct {
	State               string `json:"state"`
	CodeChallenge       string `json:"code_challenge"`
	CodeChallengeMethod string `json:"code_challenge_method"`
	RedirectPort        int    `json:"redirect_port"`
	UserKey             string `json:"user_key"`
	Scope               string `json:"scope"`
}

type connectWarning struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
	Count  int    `json:"count"`
	Limit  int    `json:"limit"`
}

type connectResponse struct {
	AuthorizeURL string          `json:"authorize_url"`
	RedirectURI  string          `json:"redirect_uri"`
	ExpiresAt    time.Time       `json:"expires_at"`
	Warning      *connectWarning `json:"warning,omitempty"`
}

func (g *Gateway) provider(r *http.Request) (*Provider, *problem) {
	id := r.PathValue("provider")
	if p, ok := g.providers[id]; ok {
		return p, nil
	}
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return nil, newProblem(http.StatusNotFound, TypeProviderUnknown, fmt.Sprintf("This Lighthouse does not offer the provider %q.", id))
}

func (g *Gateway) connect(w http.ResponseWriter, r *http.Request, in installation) {
	p, prob := g.provider(r)
	if prob != nil {
		g.metrics.connectRefused(TypeProviderUnknown)
		writeProblem(w, prob)
		return
	}
	var req connectRequest
	if prob := decodeJSON(w, r, &req); prob != nil {
		g.metrics.connectRefused(TypeBadRequest)
		writeProblem(w, prob)
		return
	}
	if prob := validateConnect(&req); prob != nil {
		g.metrics.connectRefused(TypeBadRequest)
		writeProblem(w, prob)
		return
	}
	scope := req.Scope
	if scope == "" {
		scope = p.Scopes
	}
	now := g.now()
	res, err := g.store.admit(r.Context(), admission{
		InstallationID: in.ID, AdminEmail: in.Email, ProviderID: p.ID, UserKey: req.UserKey, Limit: p.UserLimit, Now: now,
	})
	if err != nil {
		g.metrics.connectRefused(TypeInternal)
		g.internalError(w, r, err)
		return
	}
	if !res.Admitted {
		g.metrics.connectRefused(TypeUserLimitReached)
		prob := newProblem(http.StatusForbidden, TypeUserLimitReached,
			fmt.Sprintf("This installation has reached the limit of %d users for %s.", p.UserLimit, p.Name))
		prob.Limit, prob.ProviderName = p.UserLimit, p.Name
		writeProblem(w, prob)
		return
	}
	g.metrics.connectAdmitted()
	expires := now.Add(flowTTL).Truncate(time.Second)
	ticket, err := g.sealer.seal(r.Context(), purposeTicket, flowClaims{
		Installation: in.ID, Provider: p.ID, AppState: req.State, Port: req.RedirectPort,
		Challenge: req.CodeChallenge, Scope: scope, Expires: expires.Unix(),
	})
	if err != nil {
		g.internalError(w, r, err)
		return
	}
	resp := connectResponse{
		AuthorizeURL: g.public + "/v1/connect/" + p.ID + "?ticket=" + url.QueryEscape(ticket),
		RedirectURI:  g.redirectURI(p),
		ExpiresAt:    expires.UTC(),
	}
	if nearLimit(res.Count, p.UserLimit) {
		resp.Warning = &connectWarning{
			Type: TypeUserLimitNear, Count: res.Count, Limit: p.UserLimit,
			Detail: fmt.Sprintf("This installation uses %d of its %d users for %s.", res.Count, p.UserLimit, p.Name),
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func validateConnect(req *connectRequest) *problem {
	bad := func(detail string) *problem { return newProblem(http.StatusBadRequest, TypeBadRequest, detail) }
	switch {
	case len(req.State) < 22 || len(req.State) > 512 || !unreserved(req.State):
		return bad("The state must be 22 to 512 URL-safe characters (at least 128 random bits).")
	case req.CodeChallengeMethod != "S256":
		return bad("Only the PKCE code challenge method S256 is supported.")
	case len(req.CodeChallenge) < 43 || len(req.CodeChallenge) > 128 || !unreserved(req.CodeChallenge):
		return bad("The PKCE code challenge must be 43 to 128 URL-safe characters.")
	case !validPort(req.RedirectPort):
		return bad("The redirect port must be between 1024 and 65535.")
	case len(req.UserKey) < 16 || len(req.UserKey) > 128 || !unreserved(req.UserKey):
		return bad("The user key must be 16 to 128 URL-safe characters.")
	case len(req.Scope) > 2048 || strings.IndexFunc(req.Scope, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return bad("The scope must be printable ASCII, at most 2048 characters.")
	}
	req.Scope = strings.Join(strings.Fields(req.Scope), " ")
	return nil
}

// unreserved reports whether s holds only RFC 3986 unreserved characters.
func unreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// --- browser endpoints: GET /v1/connect/{provider}?ticket= and GET /v1/callback/{provider} ---

// redirectParams are query parameters that could name a redirect target. The browser endpoints
// take the target only from values the gateway sealed, and refuse requests that carry any of
// these, so a crafted link cannot even look like it steers the redirect.
var redirectParams = []string{"redirect_uri", "redirect_url", "redirect_port", "port", "host", "hostname", "scheme", "return_to"}

// browserQuery parses the query of a browser request, refusing redirect-like parameters and
// repeated values of the parameters the endpoint reads.
func browserQuery(r *http.Request, single ...string) (url.Values, *problem) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, TypeBadRequest, "The link is malformed.")
	}
	for _, k := range redirectParams {
		if _, ok := q[k]; ok {
			return nil, newProblem(http.StatusBadRequest, TypeBadRequest, fmt.Sprintf("The parameter %q is not accepted here: the Lighthouse redirects only where the app asked.", k))
		}
	}
	for _, k := range single {
		if len(q[k]) > 1 {
			return nil, newProblem(http.StatusBadRequest, TypeBadRequest, fmt.Sprintf("The parameter %q appears more than once.", k))
		}
	}
	return q, nil
}

func noStoreRedirect(w http.ResponseWriter, location string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	// No body: http.Redirect would repeat the target (code and state) in an HTML link.
	h.Set("Location", location)
	w.WriteHeader(http.StatusFound)
}

func (g *Gateway) connectRedirect(w http.ResponseWriter, r *http.Request) {
	q, prob := browserQuery(r, "ticket")
	if prob != nil {
		writeBrowserProblem(w, r, prob)
		return
	}
	p, prob := g.provider(r)
	if prob != nil {
		writeBrowserProblem(w, r, prob)
		return
	}
	c, err := g.sealer.open(r.Context(), purposeTicket, q.Get("ticket"), p.ID)
	if err != nil {
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeTicketInvalid,
			"This connect link is invalid or has expired. Start connecting the provider again from Fasten."))
		return
	}
	setLogInstallation(r, c.Installation)
	if g.revokedInstallation(w, r, c.Installation) {
		return
	}
	if first, err := g.store.useOnce(r.Context(), ticketUseID(c), time.Unix(c.Expires, 0)); err != nil {
		g.internalError(w, r, err)
		return
	} else if !first {
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeTicketInvalid,
			"This connect link was already used. Start connecting the provider again from Fasten."))
		return
	}
	ep, err := g.disc.endpoints(r.Context(), p)
	if err != nil {
		g.log.WarnContext(r.Context(), "provider discovery failed", slog.String("provider", p.ID), slog.String("error", err.Error()))
		writeBrowserProblem(w, r, newProblem(http.StatusBadGateway, TypeProviderError,
			fmt.Sprintf("%s could not be reached to start the sign-in. Try again later.", p.Name)))
		return
	}
	state, err := g.sealer.seal(r.Context(), purposeState, flowClaims{
		Installation: c.Installation, Provider: p.ID, AppState: c.AppState, Port: c.Port,
		Expires: g.now().Add(flowTTL).Unix(),
	})
	if err != nil {
		g.internalError(w, r, err)
		return
	}
	target, err := url.Parse(ep.Authorize)
	if err != nil {
		g.internalError(w, r, fmt.Errorf("provider %s authorize URL: %w", p.ID, err))
		return
	}
	aq := target.Query()
	aq.Set("response_type", "code")
	aq.Set("client_id", p.ClientID)
	aq.Set("redirect_uri", g.redirectURI(p))
	aq.Set("scope", c.Scope)
	aq.Set("aud", p.FHIRBase)
	aq.Set("state", state)
	aq.Set("code_challenge", c.Challenge)
	aq.Set("code_challenge_method", "S256")
	target.RawQuery = aq.Encode()
	noStoreRedirect(w, target.String())
}

func (g *Gateway) callback(w http.ResponseWriter, r *http.Request) {
	q, prob := browserQuery(r, "state", "code", "error", "error_description", "iss")
	if prob != nil {
		g.metrics.callback(TypeBadRequest)
		writeBrowserProblem(w, r, prob)
		return
	}
	p, prob := g.provider(r)
	if prob != nil {
		g.metrics.callback(TypeProviderUnknown)
		writeBrowserProblem(w, r, prob)
		return
	}
	c, err := g.sealer.open(r.Context(), purposeState, q.Get("state"), p.ID)
	if err != nil {
		g.metrics.callback(TypeStateInvalid)
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeStateInvalid,
			"This sign-in response is invalid or has expired. Start connecting the provider again from Fasten."))
		return
	}
	setLogInstallation(r, c.Installation)
	code, oauthErr := q.Get("code"), q.Get("error")
	if (code == "" && oauthErr == "") || len(code) > 4096 || len(oauthErr) > 256 || len(q.Get("error_description")) > 2048 || len(q.Get("iss")) > 2048 {
		g.metrics.callback(TypeBadRequest)
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeBadRequest,
			"The provider's response carries neither a code nor an error. Start connecting the provider again from Fasten."))
		return
	}
	if g.revokedInstallation(w, r, c.Installation) {
		g.metrics.callback("revoked")
		return
	}
	// The state is not single-use (the ticket is): replaying a callback only sends the
	// replayer's own browser to its own loopback address, and the provider's code works once.
	if oauthErr != "" {
		g.metrics.callback("provider_error")
	} else {
		g.metrics.callback("code")
	}
	// The target is built from the sealed state only: a fixed scheme and host, and the port the
	// app asked for at POST /v1/connect.
	var b strings.Builder
	b.WriteString("http://127.0.0.1:")
	b.WriteString(strconv.Itoa(c.Port))
	b.WriteString("/callback?")
	param := func(k, v string) {
		if b.String()[b.Len()-1] != '?' {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	if oauthErr != "" {
		param("error", oauthErr)
		if d := q.Get("error_description"); d != "" {
			param("error_description", d)
		}
	} else {
		param("code", code)
	}
	param("state", c.AppState)
	if iss := q.Get("iss"); iss != "" {
		param("iss", iss)
	}
	noStoreRedirect(w, b.String())
}

// --- POST /v1/token/{provider} ---

type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	Code         string `json:"code"`
	CodeVerifier string `json:"code_verifier"`
	RedirectURI  string `json:"redirect_uri"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// maxTokenResponse caps the provider's token response the gateway relays.
const maxTokenResponse = 1 << 20

func (g *Gateway) token(w http.ResponseWriter, r *http.Request, _ installation) {
	p, prob := g.provider(r)
	if prob != nil {
		writeProblem(w, prob)
		return
	}
	if !p.Confidential() {
		writeProblem(w, newProblem(http.StatusBadRequest, TypeProviderNotConfidential,
			fmt.Sprintf("%s is a public client: exchange codes and refresh tokens with the provider directly.", p.Name)))
		return
	}
	var req tokenRequest
	if prob := decodeJSON(w, r, &req); prob != nil {
		writeProblem(w, prob)
		return
	}
	form := url.Values{}
	bad := func(d string) {
		g.metrics.tokenSwap("bad_request")
		writeProblem(w, newProblem(http.StatusBadRequest, TypeBadRequest, d))
	}
	switch req.GrantType {
	case "authorization_code":
		if req.Code == "" || req.CodeVerifier == "" {
			bad("An authorization_code request needs code and code_verifier.")
			return
		}
		if req.RedirectURI != "" && req.RedirectURI != g.redirectURI(p) {
			bad("The redirect_uri must be the Lighthouse callback for this provider: " + g.redirectURI(p))
			return
		}
		form.Set("grant_type", "authorization_code")
		form.Set("code", req.Code)
		form.Set("code_verifier", req.CodeVerifier)
		form.Set("redirect_uri", g.redirectURI(p))
	case "refresh_token":
		if req.RefreshToken == "" {
			bad("A refresh_token request needs refresh_token.")
			return
		}
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", req.RefreshToken)
		if req.Scope != "" {
			form.Set("scope", req.Scope)
		}
	default:
		bad(`The grant_type must be "authorization_code" or "refresh_token".`)
		return
	}
	providerDown := func() {
		g.metrics.tokenSwap("provider_unreachable")
		writeProblem(w, newProblem(http.StatusBadGateway, TypeProviderError,
			fmt.Sprintf("%s could not be reached to complete the sign-in. Try again later.", p.Name)))
	}
	ep, err := g.disc.endpoints(r.Context(), p)
	if err != nil {
		g.log.WarnContext(r.Context(), "provider discovery failed", slog.String("provider", p.ID), slog.String("error", err.Error()))
		providerDown()
		return
	}
	preq, err := http.NewRequestWithContext(r.Context(), http.MethodPost, ep.Token, strings.NewReader(form.Encode()))
	if err != nil {
		g.internalError(w, r, fmt.Errorf("provider %s token URL: %w", p.ID, err))
		return
	}
	preq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	preq.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: the client ID and secret are form-encoded, then sent as Basic.
	preq.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
	resp, err := g.tokenHC.Do(preq)
	if err != nil {
		// The error of a failed request names the token URL, never the body or the credentials.
		g.log.WarnContext(r.Context(), "provider token request failed", slog.String("provider", p.ID), slog.String("error", err.Error()))
		providerDown()
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil || len(body) > maxTokenResponse || (resp.StatusCode >= 300 && resp.StatusCode < 400) {
		g.log.WarnContext(r.Context(), "provider token response unusable", slog.String("provider", p.ID), slog.Int("provider_status", resp.StatusCode))
		providerDown()
		return
	}
	// Only JSON is relayed, always as application/json from this origin: a provider's HTML or
	// text error page would otherwise be served by the gateway (issue 14 item 18).
	if !json.Valid(body) {
		g.log.WarnContext(r.Context(), "provider token response is not JSON", slog.String("provider", p.ID), slog.Int("provider_status", resp.StatusCode))
		g.metrics.tokenSwap("provider_not_json")
		writeProblem(w, newProblem(http.StatusBadGateway, TypeProviderError,
			fmt.Sprintf("%s answered the sign-in with something other than JSON (HTTP %d). Try again later.", p.Name, resp.StatusCode)))
		return
	}
	if resp.StatusCode/100 == 2 {
		g.metrics.tokenSwap("ok")
	} else {
		g.metrics.tokenSwap("provider_refused")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set(UpstreamHeader, "provider")
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// UpstreamHeader marks a token swap response relayed unchanged from the provider (status and
// body), as opposed to a problem the gateway itself answers.
const UpstreamHeader = "X-Lighthouse-Upstream"

// --- DELETE /v1/users/{provider}/{user_key} ---

// forgetUser frees the slot of a user key: the app calls it when the person is deleted, when
// their last source at the provider is disconnected, and for the old key of a merged person. It
// answers 204 whether or not the key was known (idempotent).
func (g *Gateway) forgetUser(w http.ResponseWriter, r *http.Request, in installation) {
	p, prob := g.provider(r)
	if prob != nil {
		writeProblem(w, prob)
		return
	}
	key := r.PathValue("user_key")
	if len(key) < 16 || len(key) > 128 || !unreserved(key) {
		writeProblem(w, newProblem(http.StatusBadRequest, TypeBadRequest, "The user key must be 16 to 128 URL-safe characters."))
		return
	}
	known, err := g.store.forget(r.Context(), in.ID, p.ID, key)
	if err != nil {
		g.internalError(w, r, err)
		return
	}
	if known {
		g.metrics.forget("forgotten")
	} else {
		g.metrics.forget("unknown")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
