// Package gateway is the reference Lighthouse: the public auth gateway between SMART on FHIR
// providers and Fasten Desktop installations, implementing the open Lighthouse API
// (docs/lighthouse-api.yaml). It registers installations, serves the provider catalog, enforces
// the per-provider user limit of each installation, carries the OAuth round trip without storing
// any of it (signed tickets and states), redirects the browser only to the app's loopback
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
}

// Gateway is a Lighthouse server. Create it with New, serve Handler, and Close it when done.
type Gateway struct {
	log       *slog.Logger
	store     *store
	signer    signer
	providers map[string]*Provider
	order     []*Provider
	public    string // PublicURL without a trailing slash
	now       func() time.Time
	disc      *discovery
	tokenHC   *http.Client
	limiter   *rateLimiter
	ipHeader  string
}

// New opens (and migrates) the database, loads or creates the ticket signing key, and returns a
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
		log:       cfg.Logger,
		providers: map[string]*Provider{},
		public:    strings.TrimRight(cfg.PublicURL, "/"),
		now:       cfg.Now,
		ipHeader:  cfg.ClientIPHeader,
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

	g.store, err = openStore(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	key, err := g.store.signingKey(ctx)
	if err != nil {
		g.store.Close()
		return nil, err
	}
	g.signer = signer{key: key}
	return g, nil
}

// Close closes the database.
func (g *Gateway) Close() error { return g.store.Close() }

// Handler returns the HTTP handler serving the Lighthouse API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/installations", g.register)
	mux.HandleFunc("GET /v1/providers", g.authenticated(g.catalog))
	mux.HandleFunc("POST /v1/connect/{provider}", g.authenticated(g.connect))
	mux.HandleFunc("GET /v1/connect/{provider}", g.connectRedirect)
	mux.HandleFunc("GET /v1/callback/{provider}", g.callback)
	mux.HandleFunc("POST /v1/token/{provider}", g.authenticated(g.token))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(http.StatusNotFound, TypeNotFound, "There is no such Lighthouse endpoint."))
	})
	return g.logRequests(mux)
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
func (g *Gateway) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
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
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
		}
		g.log.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)),
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
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Installation-Id")
		if id == "" || len(id) > 128 {
			writeProblem(w, newProblem(http.StatusUnauthorized, TypeInstallationUnknown,
				"This request carries no valid installation ID. Register this installation with the Lighthouse in Settings."))
			return
		}
		secret, ok := bearer(r.Header.Get("Authorization"))
		in, err := g.store.installation(r.Context(), id)
		if errors.Is(err, errNotFound) {
			writeProblem(w, newProblem(http.StatusUnauthorized, TypeInstallationUnknown,
				"The Lighthouse does not know this installation. Register it again in Settings."))
			return
		}
		if err != nil {
			g.internalError(w, r, err)
			return
		}
		if !ok || subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(in.SecretHash)) != 1 {
			writeProblem(w, newProblem(http.StatusUnauthorized, TypeInstallationAuthFailed,
				"The Lighthouse could not verify this installation's secret. Register this installation again in Settings."))
			return
		}
		setLogInstallation(r, in.ID)
		h(w, r, in)
	}
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

func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	if ok, wait := g.limiter.allow(clientKey(r, g.ipHeader), g.now()); !ok {
		p := newProblem(http.StatusTooManyRequests, TypeRateLimited, fmt.Sprintf(
			"Too many installations were registered from this network. Try again in %s.", humanDuration(wait)))
		p.retryAfter = wait
		writeProblem(w, p)
		return
	}
	var req registerRequest
	if p := decodeJSON(w, r, &req); p != nil {
		writeProblem(w, p)
		return
	}
	name, email, p := validateRegistration(req)
	if p != nil {
		writeProblem(w, p)
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
		g.internalError(w, r, err)
		return
	}
	setLogInstallation(r, in.ID)
	writeJSON(w, http.StatusCreated, registerResponse{InstallationID: in.ID, InstallationSecret: secret})
}

func validateRegistration(req registerRequest) (name, email string, p *problem) {
	name = strings.TrimSpace(req.Name)
	if n := utf8.RuneCountInString(name); n < 1 || n > 200 || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", "", newProblem(http.StatusBadRequest, TypeBadRequest, "Enter the administrator's name (1 to 200 characters).")
	}
	email = strings.TrimSpace(req.Email)
	if !plausibleEmail(email) {
		return "", "", newProblem(http.StatusBadRequest, TypeBadRequest, "Enter a valid email address for the administrator, like name@example.org.")
	}
	return name, email, nil
}

// plausibleEmail accepts a bare address local@domain with a dotted domain, at most 254 bytes.
func plausibleEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>") {
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
	dot := strings.LastIndexByte(domain, '.')
	return dot > 0 && dot < len(domain)-1 && !strings.Contains(domain, "..")
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
		writeProblem(w, prob)
		return
	}
	var req connectRequest
	if prob := decodeJSON(w, r, &req); prob != nil {
		writeProblem(w, prob)
		return
	}
	if prob := validateConnect(&req); prob != nil {
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
		g.internalError(w, r, err)
		return
	}
	if !res.Admitted {
		prob := newProblem(http.StatusForbidden, TypeUserLimitReached,
			fmt.Sprintf("This installation has reached the limit of %d users for %s.", p.UserLimit, p.Name))
		prob.Limit, prob.ProviderName = p.UserLimit, p.Name
		writeProblem(w, prob)
		return
	}
	expires := now.Add(flowTTL).Truncate(time.Second)
	ticket, err := g.signer.sign(purposeTicket, flowClaims{
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
// take the target only from values the gateway signed, and refuse requests that carry any of
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
	c, err := g.signer.verify(purposeTicket, q.Get("ticket"), p.ID, g.now())
	if err != nil {
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeTicketInvalid,
			"This connect link is invalid or has expired. Start connecting the provider again from Fasten."))
		return
	}
	setLogInstallation(r, c.Installation)
	ep, err := g.disc.endpoints(r.Context(), p)
	if err != nil {
		g.log.WarnContext(r.Context(), "provider discovery failed", slog.String("provider", p.ID), slog.String("error", err.Error()))
		writeBrowserProblem(w, r, newProblem(http.StatusBadGateway, TypeProviderError,
			fmt.Sprintf("%s could not be reached to start the sign-in. Try again later.", p.Name)))
		return
	}
	state, err := g.signer.sign(purposeState, flowClaims{
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
		writeBrowserProblem(w, r, prob)
		return
	}
	p, prob := g.provider(r)
	if prob != nil {
		writeBrowserProblem(w, r, prob)
		return
	}
	c, err := g.signer.verify(purposeState, q.Get("state"), p.ID, g.now())
	if err != nil {
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeStateInvalid,
			"This sign-in response is invalid or has expired. Start connecting the provider again from Fasten."))
		return
	}
	setLogInstallation(r, c.Installation)
	code, oauthErr := q.Get("code"), q.Get("error")
	if (code == "" && oauthErr == "") || len(code) > 4096 || len(oauthErr) > 256 || len(q.Get("error_description")) > 2048 || len(q.Get("iss")) > 2048 {
		writeBrowserProblem(w, r, newProblem(http.StatusBadRequest, TypeBadRequest,
			"The provider's response carries neither a code nor an error. Start connecting the provider again from Fasten."))
		return
	}
	// The target is built from the signed state only: a fixed scheme and host, and the port the
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
	bad := func(d string) { writeProblem(w, newProblem(http.StatusBadRequest, TypeBadRequest, d)) }
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
	h := w.Header()
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set(UpstreamHeader, "provider")
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// UpstreamHeader marks a token swap response relayed unchanged from the provider (status and
// body), as opposed to a problem the gateway itself answers.
const UpstreamHeader = "X-Lighthouse-Upstream"
