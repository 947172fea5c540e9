package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Form field names of the login + consent page (POST /auth/authorize).
const (
	FieldRequestID = "request_id" // hidden: the pending authorization request
	FieldPatient   = "patient"    // the Patient id to sign in as
	FieldDecision  = "decision"   // "allow" or "deny"
)

// RequestIDHeader carries the pending request handle on the login page response too, so a test
// client need not parse HTML.
const RequestIDHeader = "X-Sandbox-Request-Id"

const pendingTTL = 10 * time.Minute

type authState struct {
	mu         sync.Mutex
	pending    map[string]*authRequest  // by handle
	codes      map[string]*codeGrant    // by sha256 of the code
	access     map[string]*accessGrant  // by sha256 of the token
	refresh    map[string]*refreshGrant // by sha256 of the token
	tokenCalls map[string]int
}

func newAuthState() *authState {
	return &authState{
		pending:    map[string]*authRequest{},
		codes:      map[string]*codeGrant{},
		access:     map[string]*accessGrant{},
		refresh:    map[string]*refreshGrant{},
		tokenCalls: map[string]int{},
	}
}

type authRequest struct {
	client                               *Client
	redirectURI, state, challenge, nonce string
	requested, granted                   []string
	loginHint                            string
	expires                              time.Time
}

type codeGrant struct {
	clientID, redirectURI, challenge, patient, nonce string
	scopes                                           []string
	expires                                          time.Time
	used                                             bool
}

type accessGrant struct {
	clientID, patient string
	scopes            scopeSet
	expires           time.Time
	family            string // hash of the code the grant descends from
}

type refreshGrant struct {
	clientID, patient string
	scopes            []string
	family            string
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TokenCalls returns the number of token-endpoint requests by grant_type since the start (or
// the last ResetRequests): keys "authorization_code", "refresh_token" and "other".
func (s *Server) TokenCalls() map[string]int {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return maps.Clone(s.auth.tokenCalls)
}

// ExpireAccessTokens invalidates every access token issued so far: the next FHIR call with one
// gets 401 invalid_token and the client must refresh. Refresh tokens stay valid.
func (s *Server) ExpireAccessTokens() {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	clear(s.auth.access)
}

// RevokeRefreshTokens invalidates every refresh token issued so far (their use answers
// invalid_grant). Tokens issued later work. See also Faults.RefreshInvalidGrant.
func (s *Server) RevokeRefreshTokens() {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	clear(s.auth.refresh)
}

func (s *Server) client(id string) *Client {
	for i := range s.cfg.Clients {
		if s.cfg.Clients[i].ID == id {
			return &s.cfg.Clients[i]
		}
	}
	return nil
}

// singleParams returns an error description when a parameter that must appear at most once
// is repeated (RFC 6749 section 3.1).
func repeatedParam(v url.Values, names ...string) string {
	for _, n := range names {
		if len(v[n]) > 1 {
			return n + " is repeated"
		}
	}
	return ""
}

var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "aud",
	"code_challenge", "code_challenge_method", "nonce", "login_hint"}

// handleAuthorize serves the login + consent page (GET) and takes the user's decision (POST).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.authorizeStart(w, r)
	case http.MethodPost:
		s.authorizeDecision(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
	}
}

func (s *Server) authorizeStart(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := repeatedParam(q, "client_id", "redirect_uri"); msg != "" {
		s.errorPage(w, http.StatusBadRequest, "Invalid request", msg+".")
		return
	}
	client := s.client(q.Get("client_id"))
	if client == nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown application",
			"The client_id is missing or not registered with this provider.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !client.allowsRedirect(redirectURI) {
		s.errorPage(w, http.StatusBadRequest, "Invalid redirect URI",
			"The redirect_uri is missing or not registered for this application.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		s.redirectError(w, r, redirectURI, state, code, desc, http.StatusFound)
	}
	if msg := repeatedParam(q, authorizeParams...); msg != "" {
		fail("invalid_request", msg)
		return
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if state == "" {
		fail("invalid_request", "state is required")
		return
	}
	if aud := strings.TrimRight(q.Get("aud"), "/"); aud != s.fhirBase(r) {
		fail("invalid_request", "aud must be the FHIR base URL of this server")
		return
	}
	challenge := q.Get("code_challenge")
	if s.cfg.NoS256 {
		challenge = ""
	} else {
		switch m := q.Get("code_challenge_method"); {
		case challenge == "":
			fail("invalid_request", "code_challenge is required (PKCE)")
			return
		case m != "S256":
			fail("invalid_request", "code_challenge_method must be S256")
			return
		case len(challenge) != 43 || !isUnreserved(challenge):
			fail("invalid_request", "code_challenge is not a base64url SHA-256 digest")
			return
		}
	}
	requested := strings.Fields(q.Get("scope"))
	if len(requested) == 0 {
		fail("invalid_scope", "scope is required")
		return
	}
	now := s.now()
	req := &authRequest{
		client: client, redirectURI: redirectURI, state: state, challenge: challenge,
		nonce: q.Get("nonce"), requested: requested, granted: s.grantScopes(requested),
		loginHint: q.Get("login_hint"), expires: now.Add(pendingTTL),
	}
	handle := randomToken()
	s.auth.mu.Lock()
	for k, p := range s.auth.pending {
		if now.After(p.expires) {
			delete(s.auth.pending, k)
		}
	}
	s.auth.pending[handle] = req
	s.auth.mu.Unlock()
	s.loginPage(w, r, http.StatusOK, handle, req, req.loginHint, "")
}

func (s *Server) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	handle := r.PostForm.Get(FieldRequestID)
	now := s.now()
	s.auth.mu.Lock()
	req := s.auth.pending[handle]
	if req != nil && now.After(req.expires) {
		delete(s.auth.pending, handle)
		req = nil
	}
	s.auth.mu.Unlock()
	if req == nil {
		s.errorPage(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in request is unknown, already used or expired. Start again from the application.")
		return
	}
	decision := r.PostForm.Get(FieldDecision)
	patientID := r.PostForm.Get(FieldPatient)
	switch decision {
	case "deny":
	case "allow":
		if _, ok := s.Patient(patientID); !ok {
			s.loginPage(w, r, http.StatusBadRequest, handle, req, "", "Choose a patient to sign in as.")
			return
		}
	default:
		s.loginPage(w, r, http.StatusBadRequest, handle, req, patientID, "Choose Allow or Deny.")
		return
	}
	s.auth.mu.Lock()
	if s.auth.pending[handle] != req { // a concurrent decision won
		s.auth.mu.Unlock()
		s.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in request was already used.")
		return
	}
	delete(s.auth.pending, handle)
	if decision == "deny" {
		s.auth.mu.Unlock()
		s.redirectError(w, r, req.redirectURI, req.state, "access_denied", "the user denied access", http.StatusSeeOther)
		return
	}
	code := randomToken()
	for k, c := range s.auth.codes {
		if now.After(c.expires.Add(s.cfg.CodeTTL)) {
			delete(s.auth.codes, k)
		}
	}
	s.auth.codes[hashSecret(code)] = &codeGrant{
		clientID: req.client.ID, redirectURI: req.redirectURI, challenge: req.challenge,
		patient: patientID, nonce: req.nonce, scopes: req.granted, expires: now.Add(s.cfg.CodeTTL),
	}
	s.auth.mu.Unlock()
	s.redirect(w, r, req.redirectURI, url.Values{"code": {code}, "state": {req.state}}, http.StatusSeeOther)
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, desc string, status int) {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	s.redirect(w, r, redirectURI, v, status)
}

// redirect sends the browser to redirectURI with params and iss added to its query.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, status int) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "Invalid redirect URI", "The redirect_uri cannot be parsed.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	q.Set("iss", s.fhirBase(r))
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), status)
}

func isUnreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

type oauthError struct {
	status     int
	code, desc string
	basicRealm bool
}

func (s *Server) writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.basicRealm {
		w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
	}
	writeJSONResponse(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handleToken is the token endpoint: authorization_code (with PKCE) and refresh_token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "use POST"})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		s.countToken("other")
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request",
			desc: "the body must be application/x-www-form-urlencoded"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.countToken("other")
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "the form cannot be read"})
		return
	}
	form := r.PostForm
	gt := form.Get("grant_type")
	ri.grantType = gt
	switch gt {
	case "authorization_code", "refresh_token":
		s.countToken(gt)
	default:
		s.countToken("other")
	}
	if msg := repeatedParam(form, "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token",
		"client_id", "client_secret", "scope"); msg != "" {
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: msg})
		return
	}
	client, oerr := s.authenticateClient(r, form)
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	switch gt {
	case "authorization_code":
		s.exchangeCode(w, r, client, form)
	case "refresh_token":
		s.exchangeRefresh(w, r, client, form)
	case "":
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "grant_type is required"})
	default:
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type",
			desc: "only authorization_code and refresh_token are supported"})
	}
}

func (s *Server) countToken(kind string) {
	s.auth.mu.Lock()
	s.auth.tokenCalls[kind]++
	s.auth.mu.Unlock()
}

// authenticateClient applies RFC 6749 section 2.3: confidential clients prove their secret
// with HTTP Basic or client_secret_post (not both); public clients send client_id and no secret.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*Client, *oauthError) {
	invalid := func(basic bool) *oauthError {
		return &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			desc: "client authentication failed", basicRealm: basic}
	}
	var id, secret string
	basicID, basicSecret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(basicID)
		secret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, invalid(true)
		}
		if form.Has("client_secret") {
			return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_request",
				desc: "use one client authentication method"}
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_request",
				desc: "client_id does not match the authenticated client"}
		}
	} else {
		id = form.Get("client_id")
		secret = form.Get("client_secret")
	}
	c := s.client(id)
	if c == nil {
		return nil, invalid(basic)
	}
	if c.Secret == "" {
		if basic || form.Has("client_secret") {
			return nil, invalid(basic)
		}
		return c, nil
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return nil, invalid(basic)
	}
	return c, nil
}

func invalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	code := form.Get("code")
	if code == "" {
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "code is required"})
		return
	}
	family := hashSecret(code)
	now := s.now()
	s.auth.mu.Lock()
	g := s.auth.codes[family]
	var oerr *oauthError
	switch {
	case g == nil:
		oerr = invalidGrant("the authorization code is unknown")
	case g.used:
		// RFC 6749 section 4.1.2: a replayed code revokes what it produced.
		s.auth.revokeFamily(family)
		oerr = invalidGrant("the authorization code was already used")
	case !now.Before(g.expires):
		oerr = invalidGrant("the authorization code expired")
	case g.clientID != client.ID:
		oerr = invalidGrant("the authorization code was issued to another client")
	case form.Get("redirect_uri") != g.redirectURI:
		oerr = invalidGrant("redirect_uri does not match the authorization request")
	case g.challenge != "" && !verifyPKCE(form.Get("code_verifier"), g.challenge):
		oerr = invalidGrant("code_verifier does not match the code_challenge")
	}
	if g != nil {
		g.used = true // single use, even when this attempt fails
	}
	s.auth.mu.Unlock()
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	s.issueTokens(w, r, client.ID, g.patient, g.scopes, g.nonce, family)
}

func verifyPKCE(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || !isUnreserved(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func (s *Server) exchangeRefresh(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	rt := form.Get("refresh_token")
	if rt == "" {
		s.writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "refresh_token is required"})
		return
	}
	if s.Faults().RefreshInvalidGrant {
		infoFrom(r.Context()).fault = "invalid_grant"
		s.writeOAuthError(w, invalidGrant("the refresh token was revoked"))
		return
	}
	h := hashSecret(rt)
	s.auth.mu.Lock()
	g := s.auth.refresh[h]
	var oerr *oauthError
	switch {
	case g == nil:
		oerr = invalidGrant("the refresh token is unknown, rotated or revoked")
	case g.clientID != client.ID:
		oerr = invalidGrant("the refresh token was issued to another client")
	}
	scopes := []string(nil)
	if oerr == nil {
		scopes = g.scopes
		if req := strings.Fields(form.Get("scope")); len(req) > 0 {
			for _, sc := range req {
				if !slices.Contains(g.scopes, sc) {
					oerr = &oauthError{status: http.StatusBadRequest, code: "invalid_scope",
						desc: "a refresh may only narrow the granted scopes"}
					break
				}
			}
			scopes = req
		}
	}
	if oerr == nil {
		delete(s.auth.refresh, h) // rotation: the old refresh token is spent
	}
	s.auth.mu.Unlock()
	if oerr != nil {
		s.writeOAuthError(w, oerr)
		return
	}
	s.issueTokens(w, r, client.ID, g.patient, scopes, "", g.family)
}

func (a *authState) revokeFamily(family string) {
	for k, g := range a.access {
		if g.family == family {
			delete(a.access, k)
		}
	}
	for k, g := range a.refresh {
		if g.family == family {
			delete(a.refresh, k)
		}
	}
}

// issueTokens writes a successful token response.
func (s *Server) issueTokens(w http.ResponseWriter, r *http.Request, clientID, patient string, scopes []string, nonce, family string) {
	ss := newScopeSet(scopes)
	now := s.now()
	resp := map[string]any{
		"access_token": randomToken(),
		"token_type":   "Bearer",
		"scope":        strings.Join(scopes, " "),
	}
	if !s.cfg.OmitExpiresIn {
		resp["expires_in"] = int(s.cfg.AccessTokenTTL / time.Second)
	}
	if !s.cfg.OmitPatient && (ss.has("launch/patient") || ss.hasPatientScope()) {
		resp["patient"] = patient
		resp["need_patient_banner"] = false
	}
	if ss.has("openid") && (ss.has("fhirUser") || ss.has("profile")) {
		tok, err := s.idToken(r, clientID, patient, nonce, now)
		if err != nil {
			s.log.Error("sandbox id_token", "err", err)
			s.writeOAuthError(w, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "cannot sign the id_token"})
			return
		}
		resp["id_token"] = tok
	}
	var refresh string
	if ss.has("offline_access") {
		refresh = randomToken()
		resp["refresh_token"] = refresh
	}
	s.auth.mu.Lock()
	for k, g := range s.auth.access {
		if now.After(g.expires) {
			delete(s.auth.access, k)
		}
	}
	s.auth.access[hashSecret(resp["access_token"].(string))] = &accessGrant{
		clientID: clientID, patient: patient, scopes: ss, expires: now.Add(s.cfg.AccessTokenTTL), family: family,
	}
	if refresh != "" {
		s.auth.refresh[hashSecret(refresh)] = &refreshGrant{clientID: clientID, patient: patient, scopes: scopes, family: family}
	}
	s.auth.mu.Unlock()
	writeJSONResponse(w, http.StatusOK, resp)
}

// bearerGrant returns the grant behind the request's bearer token, or an error description
// for WWW-Authenticate ("" when no token was sent).
func (s *Server) bearerGrant(r *http.Request) (*accessGrant, string) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, ""
	}
	now := s.now()
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	g := s.auth.access[hashSecret(strings.TrimSpace(tok))]
	if g == nil {
		return nil, "the access token is unknown or revoked"
	}
	if !now.Before(g.expires) {
		return nil, "the access token expired"
	}
	return g, ""
}

// handleSMARTConfig serves /fhir/.well-known/smart-configuration.
func (s *Server) handleSMARTConfig(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SMARTv1Only {
		s.writeOutcome(w, http.StatusNotFound, "not-found", "this server has no SMART v2 discovery document")
		return
	}
	base := s.base(r)
	caps := []string{
		"launch-standalone", "client-public", "client-confidential-symmetric",
		"context-standalone-patient", "permission-offline", "permission-patient",
		"permission-v1", "permission-v2", "sso-openid-connect",
	}
	doc := map[string]any{
		"issuer":                                s.fhirBase(r),
		"jwks_uri":                              base + "/auth/jwks",
		"authorization_endpoint":                base + "/auth/authorize",
		"token_endpoint":                        base + "/auth/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"response_types_supported":              []string{"code"},
		"scopes_supported":                      s.supportedScopes(),
		"capabilities":                          caps,
	}
	if !s.cfg.NoS256 {
		doc["code_challenge_methods_supported"] = []string{"S256"}
	}
	writeJSONResponse(w, http.StatusOK, doc)
}

// handleOpenIDConfig serves the OpenID Connect discovery document for the id_token issuer.
func (s *Server) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	writeJSONResponse(w, http.StatusOK, map[string]any{
		"issuer":                                s.fhirBase(r),
		"authorization_endpoint":                base + "/auth/authorize",
		"token_endpoint":                        base + "/auth/token",
		"jwks_uri":                              base + "/auth/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      s.supportedScopes(),
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"},
	})
}
