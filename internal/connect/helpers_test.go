package connect_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
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

	"github.com/zalando/go-keyring"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/connect"
	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// The sandbox data and the id_token key are loaded once per test binary (both immutable).
var (
	dataOnce sync.Once
	dataSet  *sandbox.Data
	dataErr  error
	rsaKey   *rsa.PrivateKey
)

func sharedData(t *testing.T) (*sandbox.Data, *rsa.PrivateKey) {
	t.Helper()
	dataOnce.Do(func() {
		dataSet, dataErr = sandbox.LoadData("", time.Time{})
		if dataErr == nil {
			rsaKey, dataErr = rsa.GenerateKey(rand.Reader, 2048)
		}
	})
	if dataErr != nil {
		t.Fatalf("load sandbox data: %v", dataErr)
	}
	return dataSet, rsaKey
}

// memKeyring is an in-memory go-keyring backend (each test its own; go-keyring's global mock
// is never used, so the system keyring stays reachable for the real-keyring test). failSet makes
// Set fail for keys with the given prefix, with a go-keyring style error.
type memKeyring struct {
	mu      sync.Mutex
	m       map[string]string
	failSet map[string]error // key prefix -> error
	failGet error
}

func newMemKeyring() *memKeyring {
	return &memKeyring{m: map[string]string{}, failSet: map[string]error{}}
}

func (k *memKeyring) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failGet != nil {
		return "", k.failGet
	}
	v, ok := k.m[service+"/"+user]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (k *memKeyring) Set(service, user, pass string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for p, err := range k.failSet {
		if strings.HasPrefix(user, p) {
			return err
		}
	}
	k.m[service+"/"+user] = pass
	return nil
}

func (k *memKeyring) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.m[service+"/"+user]; !ok {
		return keyring.ErrNotFound
	}
	delete(k.m, service+"/"+user)
	return nil
}

func (k *memKeyring) DeleteAll(service string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for key := range k.m {
		if strings.HasPrefix(key, service+"/") {
			delete(k.m, key)
		}
	}
	return nil
}

// keys lists the stored keys (without the service) that start with prefix.
func (k *memKeyring) keys(prefix string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key := range k.m {
		_, user, _ := strings.Cut(key, "/")
		if strings.HasPrefix(user, prefix) {
			out = append(out, user)
		}
	}
	return out
}

// syncBuffer is a log sink safe for concurrent writers.
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

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Publish(topic string, data any) {
	b, _ := json.Marshal(data)
	r.mu.Lock()
	r.events = append(r.events, topic+" "+string(b))
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// Provider ids of the test Lighthouse.
const (
	demo             = "demo"
	demoConfidential = "demo-confidential"
	small            = "small" // a user limit of 1
	smallName        = "Small Clinic"
	hospitalName     = "Demo Hospital (test)"
)

type envOptions struct {
	sandbox  sandbox.Config // switches (NoS256, OmitPatient, ...)
	keyring  secrets.Store  // nil: a fresh in-memory one
	timeout  time.Duration  // callback timeout
	override string         // LighthouseOverride; "" = the test gateway through the config file
	people   bool           // wire internal/people (patient matching, per-person user keys)
}

// env is the app's connect service over a real SQLite file, with a records API, a reference
// Lighthouse and the demo hospital, all on loopback.
type env struct {
	t          *testing.T
	hospital   *sandbox.Server
	hospitalTS *httptest.Server
	gatewayTS  *httptest.Server
	gatewayDB  string // the reference gateway's SQLite file
	lhURL      string
	inst       *installation.Service
	tokens     *connect.Tokens
	svc        *connect.Service
	store      *records.Store
	db         *db.DB
	dbPath     string
	cfg        *config.Store
	api        *httptest.Server
	kr         secrets.Store
	mem        *memKeyring // nil with an injected keyring
	logs       *syncBuffer
	events     *recorder
	people     *people.Service // nil unless envOptions.people
	connected  chan int64
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	data, key := sharedData(t)
	e := &env{t: t, logs: &syncBuffer{}, events: &recorder{}, connected: make(chan int64, 10)}
	dir := t.TempDir()

	// The demo hospital.
	sc := o.sandbox
	sc.Data, sc.SigningKey = data, key
	sc.Clients = []sandbox.Client{
		{ID: sandbox.DefaultClientID, AllowLoopbackRedirects: true},
		{ID: sandbox.DefaultClientID + "-confidential", Secret: "confidential-client-secret-for-tests", AllowLoopbackRedirects: true},
	}
	var err error
	e.hospital, err = sandbox.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	e.hospitalTS = httptest.NewServer(e.hospital.Handler())
	t.Cleanup(e.hospitalTS.Close)
	if err := e.hospital.SetBaseURL(e.hospitalTS.URL); err != nil {
		t.Fatal(err)
	}
	fhirBase := e.hospital.FHIRBase()

	// The Lighthouse (its public URL is needed before it is built).
	var gw http.Handler
	e.gatewayTS = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r) }))
	t.Cleanup(e.gatewayTS.Close)
	e.lhURL = e.gatewayTS.URL
	scopes := "launch/patient openid fhirUser offline_access patient/*.rs"
	e.gatewayDB = filepath.Join(dir, "lighthouse.db")
	g, err := gateway.New(context.Background(), gateway.Config{
		DB:            e.gatewayDB,
		PublicURL:     e.lhURL,
		RegisterLimit: 1000,
		Providers: []gateway.Provider{
			{ID: demo, Name: hospitalName, FHIRBase: fhirBase, ClientID: sandbox.DefaultClientID, Scopes: scopes, UserLimit: 10},
			{ID: demoConfidential, Name: hospitalName + ", confidential", FHIRBase: fhirBase, ClientID: sandbox.DefaultClientID + "-confidential",
				ClientSecret: "confidential-client-secret-for-tests", Scopes: scopes, UserLimit: 10},
			{ID: small, Name: smallName, FHIRBase: fhirBase, ClientID: sandbox.DefaultClientID, Scopes: scopes, UserLimit: 1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	gw = g.Handler()

	// The app.
	e.dbPath = filepath.Join(dir, "fasten.db")
	e.db, err = db.Open(context.Background(), e.dbPath, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.store = records.New(e.db)
	e.cfg = config.NewStore(filepath.Join(dir, "settings.json"))
	if o.override == "" {
		if _, err := e.cfg.Update(func(c *config.Config) error { c.LighthouseURL = e.lhURL; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	e.kr = o.keyring
	if e.kr == nil {
		e.mem = newMemKeyring()
		e.kr = secrets.NewKeyring("fasten-desktop-test", secrets.WithProvider(e.mem))
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.inst, err = installation.New(installation.Options{Config: e.cfg, Keyring: e.kr, LighthouseOverride: o.override, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if o.people {
		// As the backend wires it: a deleted or merged person's user keys are forgotten.
		e.people = people.New(people.Options{Store: e.store, Log: log,
			ForgetUsers: func(ctx context.Context, profileID int64, providers []string) {
				for _, p := range providers {
					if err := e.inst.ForgetUser(ctx, p, profileID); err != nil {
						t.Errorf("forget %s: %v", p, err)
					}
				}
			}})
	}
	e.tokens, err = connect.NewTokens(connect.TokensOptions{Keyring: e.kr, Installation: e.inst, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = connect.New(connect.Options{
		People:          e.people,
		Store:           e.store,
		Installation:    e.inst,
		Tokens:          e.tokens,
		Keyring:         e.kr,
		Log:             log,
		OnConnected:     func(id int64) { e.connected <- id },
		Events:          e.events,
		CallbackTimeout: o.timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	srv := api.New(api.Config{Store: e.store, Importer: importer.New(e.store, log, importer.Limits{}), Log: log, Version: "test", SpoolDir: t.TempDir()})
	srv.Add(e.inst.Routes()...)
	srv.Add(e.svc.Routes()...)
	e.api = httptest.NewServer(srv.Handler())
	t.Cleanup(e.api.Close)
	return e
}

// call sends a JSON request to the app's API and decodes the answer into out (if not nil).
func (e *env) call(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.api.URL+api.Prefix+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e *env) register() installation.Installation {
	e.t.Helper()
	var in installation.Installation
	if code := e.call("POST", "/installation", map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"}, &in); code != http.StatusCreated {
		e.t.Fatalf("register: HTTP %d", code)
	}
	return in
}

func (e *env) startConnect(provider, profile string) connect.Started {
	e.t.Helper()
	body := map[string]string{"provider": provider}
	if profile != "" {
		body["profile"] = profile
	}
	var raw json.RawMessage
	code := e.call("POST", "/connect", body, &raw)
	if code != http.StatusOK {
		e.t.Fatalf("POST /connect %s: HTTP %d %s", provider, code, raw)
	}
	var st connect.Started
	json.Unmarshal(raw, &st)
	return st
}

func (e *env) status(id string) connect.ConnectStatus {
	e.t.Helper()
	var st connect.ConnectStatus
	if code := e.call("GET", "/connect/"+id, nil, &st); code != http.StatusOK {
		e.t.Fatalf("GET /connect/%s: HTTP %d", id, code)
	}
	return st
}

// waitStatus polls the connect until it leaves pending.
func (e *env) waitStatus(id string) connect.ConnectStatus {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.status(id)
		if st.Status != connect.StatusPending {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("connect %s still pending", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noFollow is a browser that stops at every redirect.
var noFollow = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// portal plays the browser at the provider: from the authorize URL through the login page as
// patient (Allow or Deny) and the Lighthouse's callback, up to the redirect to the app's loopback
// listener, which it returns without following.
func (e *env) portal(authorizeURL, patient string, allow bool) *url.URL {
	e.t.Helper()
	back, err := sandbox.SignIn(context.Background(), noFollow, authorizeURL, patient, allow)
	if err != nil {
		e.t.Fatalf("sign in at the demo hospital: %v", err)
	}
	if !strings.HasPrefix(back.String(), e.lhURL+"/v1/callback/") {
		e.t.Fatalf("the provider sent the browser to %s, not the Lighthouse", back.Redacted())
	}
	return e.follow(back.String())
}

// follow GETs u without following and returns the redirect target.
func (e *env) follow(u string) *url.URL {
	e.t.Helper()
	resp, err := noFollow.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		e.t.Fatalf("%s answered %d without a redirect: %s", strings.SplitN(u, "?", 2)[0], resp.StatusCode, body)
	}
	return loc
}

// deliver hands the callback to the app's listener like a browser: it follows to the result page
// and returns its status and text.
func deliver(t *testing.T, u string) (int, string, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("deliver the callback: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, string(b)
}

// patient returns a sandbox patient with a name.
func (e *env) patient() sandbox.PatientInfo {
	for _, p := range e.hospital.Patients() {
		if p.Name != "" && p.Resources > 20 {
			return p
		}
	}
	e.t.Fatal("no sandbox patient")
	return sandbox.PatientInfo{}
}

// connectPatient runs a whole connect and returns the final status.
func (e *env) connectPatient(provider string, p sandbox.PatientInfo) connect.ConnectStatus {
	e.t.Helper()
	st := e.startConnect(provider, "")
	cb := e.portal(st.AuthorizeURL, p.ID, true)
	code, path, page := deliver(e.t, cb.String())
	if code != http.StatusOK || path != "/done" || !strings.Contains(page, "You&#39;re connected") {
		e.t.Fatalf("result page %d %s:\n%s", code, path, page)
	}
	fin := e.waitStatus(st.ConnectID)
	if fin.Status != connect.StatusConnected || fin.SourceID == nil {
		e.t.Fatalf("connect ended %+v", fin)
	}
	return fin
}

func (e *env) source(id int64) records.Source {
	e.t.Helper()
	src, err := e.store.GetSource(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return src
}

func (e *env) sourceCount() int {
	e.t.Helper()
	srcs, err := e.store.ListSources(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(srcs)
}

// fhirGet reads path under the source's FHIR base with its token manager.
func (e *env) fhirGet(src records.Source, path string) (int, []byte, error) {
	tm, err := e.svc.TokenManagerFor(context.Background(), src)
	if err != nil {
		return 0, nil, err
	}
	hc := &http.Client{Transport: tm.Transport(nil), Timeout: 30 * time.Second}
	resp, err := hc.Get(*src.FHIRBase + "/" + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// dbBytes returns the SQLite database file and its WAL, as stored on disk.
func (e *env) dbBytes() []byte {
	e.t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-journal", "-shm"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			e.t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		e.t.Fatal("the database file is empty")
	}
	return all
}

// dialable reports whether something accepts TCP connections at addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitClosed polls until nothing listens at addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for dialable(addr) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener at %s is still open", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tokenCalls(h *sandbox.Server, grant string) int { return h.TokenCalls()[grant] }

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s = %q, want it to contain %q", what, got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
