package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- backends ---

type backend struct {
	name string
	dsn  func(t testing.TB) string
}

var backends = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "lighthouse.db") }},
	{"postgres", postgresDSN},
}

// forEachBackend runs f once on a fresh SQLite file and once on a fresh PostgreSQL schema (skipped
// when FASTEN_TEST_POSTGRES_DSN is unset).
func forEachBackend(t *testing.T, f func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.dsn(t)) })
	}
}

// postgresDSN returns a DSN for a fresh schema in the database named by FASTEN_TEST_POSTGRES_DSN
// (start one with .ci/postgres.sh); the schema is dropped when the test ends.
func postgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("FASTEN_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("FASTEN_TEST_POSTGRES_DSN is not set: start PostgreSQL with `.ci/postgres.sh` and export the DSN it prints to run the PostgreSQL tests")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	schema := "lh_test_" + randHex(t, 6)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// --- clock and logs ---

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *testClock { return &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --- fake provider ---

// fakeProvider is a SMART authorization server: discovery, an authorize endpoint that logs the
// user in at once and redirects back with a code, and a token endpoint that checks HTTP Basic.
type fakeProvider struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu         sync.Mutex
	authorizes []url.Values
	tokenForms []url.Values
	challenges map[string]string // code -> code_challenge
	// tokenStatus and tokenBody are what the token endpoint answers on success.
	tokenStatus int
	tokenBody   string
	tokenType   string // Content-Type of the token answer; "" means JSON
}

// setTokenReply sets what the token endpoint answers after checking the client credentials.
func (fp *fakeProvider) setTokenReply(status int, contentType, body string) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.tokenStatus, fp.tokenType, fp.tokenBody = status, contentType, body
}

func newFakeProvider(t testing.TB, clientID, clientSecret string) *fakeProvider {
	fp := &fakeProvider{clientID: clientID, clientSecret: clientSecret, challenges: map[string]string{},
		tokenStatus: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"authorization_endpoint":           fp.srv.URL + "/oauth/authorize",
			"token_endpoint":                   fp.srv.URL + "/oauth/token",
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		code := "code-" + randHex(t, 8)
		fp.mu.Lock()
		fp.authorizes = append(fp.authorizes, q)
		fp.challenges[code] = q.Get("code_challenge")
		fp.mu.Unlock()
		target, _ := url.Parse(q.Get("redirect_uri"))
		back := url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {fp.srv.URL + "/fhir"}}
		target.RawQuery = back.Encode()
		http.Redirect(w, r, target.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		// RFC 6749 section 2.3.1: client ID and secret are form-encoded inside Basic.
		id, secret, ok := r.BasicAuth()
		id, err1 := url.QueryUnescape(id)
		secret, err2 := url.QueryUnescape(secret)
		ok = ok && err1 == nil && err2 == nil
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		fp.mu.Lock()
		fp.tokenForms = append(fp.tokenForms, r.PostForm)
		challenge, known := fp.challenges[r.PostForm.Get("code")]
		status, body, ctype := fp.tokenStatus, fp.tokenBody, fp.tokenType
		fp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		if !ok || id != fp.clientID || secret != fp.clientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		if r.PostForm.Get("grant_type") == "authorization_code" {
			sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
			if !known || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":"invalid_grant","error_description":"bad code or verifier"}`)
				return
			}
		}
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	fp.srv = httptest.NewServer(mux)
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakeProvider) fhirBase() string { return fp.srv.URL + "/fhir" }

// --- gateway under test ---

type env struct {
	t     testing.TB
	g     *Gateway
	srv   *httptest.Server
	url   string
	clock *testClock
	logs  *syncBuffer
}

type envOption func(*Config)

// newEnv starts a gateway on dsn behind a loopback httptest server whose URL is the public URL.
func newEnv(t testing.TB, dsn string, providers []Provider, opts ...envOption) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	e := &env{t: t, srv: srv, url: "http://" + srv.Listener.Addr().String(), clock: newClock(), logs: &syncBuffer{}}
	cfg := Config{
		DB: dsn, Providers: providers, PublicURL: e.url, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	g, err := New(context.Background(), cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("New: %v", err)
	}
	e.g = g
	srv.Config.Handler = g.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func demoProviders(fhirBase string) []Provider {
	return []Provider{
		{ID: "demo", Name: "Demo Hospital", FHIRBase: fhirBase, ClientID: "fasten-desktop",
			Scopes: "launch/patient openid fhirUser offline_access patient/*.read", UserLimit: 10},
		{ID: "small", Name: "Small Clinic", FHIRBase: fhirBase, ClientID: "fasten-small",
			Scopes: "launch/patient openid offline_access patient/*.read", UserLimit: 3,
			AuthorizeURL: "https://small.example.org/authorize", TokenURL: "https://small.example.org/token"},
	}
}

// noRedirect is the test's "browser": it does not follow redirects so every hop is checked.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problem(t testing.TB) problem {
	t.Helper()
	var p problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status {
		t.Errorf("problem status %d != HTTP status %d", p.Status, r.status)
	}
	return p
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func send(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// call makes an API request as installation inst (zero value: anonymous).
func (e *env) call(method, path string, inst creds, body any, hdr ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if inst.id != "" {
		req.Header.Set("X-Installation-Id", inst.id)
	}
	if inst.secret != "" {
		req.Header.Set("Authorization", "Bearer "+inst.secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return send(e.t, req)
}

// raw POSTs body as is.
func (e *env) raw(path, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(e.t, req)
}

// browse is a GET by the browser.
func (e *env) browse(rawURL string, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return send(e.t, req)
}

type creds struct{ id, secret string }

func (e *env) register(name, email string) creds {
	e.t.Helper()
	r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": name, "email": email})
	if r.status != http.StatusCreated {
		e.t.Fatalf("register: %d %s", r.status, r.body)
	}
	var out registerResponse
	r.decode(e.t, &out)
	return creds{out.InstallationID, out.InstallationSecret}
}

// pkce returns a verifier and its S256 challenge.
func pkce(t testing.TB) (verifier, challenge string) {
	verifier = base64.RawURLEncoding.EncodeToString([]byte(randHex(t, 16)))
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func connectBody(t testing.TB, userKey string, port int) connectRequest {
	_, challenge := pkce(t)
	return connectRequest{
		State: "app-state-" + randHex(t, 16), CodeChallenge: challenge, CodeChallengeMethod: "S256",
		RedirectPort: port, UserKey: userKey,
	}
}

func (e *env) connect(inst creds, provider string, req connectRequest) reply {
	e.t.Helper()
	return e.call(http.MethodPost, "/v1/connect/"+provider, inst, req)
}

func userKey(i int) string { return fmt.Sprintf("user-key-%04d-%s", i, strings.Repeat("0", 8)) }

var base64RawURL = base64.RawURLEncoding

// newTCPServer serves srv on 127.0.0.1 and a free port until the test ends.
func newTCPServer(t testing.TB, srv *http.Server) int {
	t.Helper()
	ts := httptest.NewUnstartedServer(srv.Handler)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().(*net.TCPAddr).Port
}

// newTestServer serves h on loopback until the test ends and returns its URL.
func newTestServer(t testing.TB, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// lineWriter delivers each complete line written to it on lines.
type lineWriter struct {
	mu    sync.Mutex
	buf   []byte
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 1000)} }

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		select {
		case l.lines <- string(l.buf[:i]):
		default:
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
