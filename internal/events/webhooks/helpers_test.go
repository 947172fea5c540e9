package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// --- clocks -----------------------------------------------------------------------------------

// wallClock is a settable Now for the hub (leases).
type wallClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *wallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *wallClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// --- hub environment --------------------------------------------------------------------------

type env struct {
	t       *testing.T
	bus     *events.Bus
	hub     *Hub
	db      *db.DB
	secrets *secretstest.Memory
	clock   *wallClock
	handler http.Handler // the API with the hub's routes, no guard (an authenticated request)
	stop    func()
	cfg     Config
}

// serveRoutes serves routes under httpkit.Prefix the way the API server does.
func serveRoutes(routes []httpkit.Route) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.HandleFunc(r.Method+" "+httpkit.Prefix+r.Path, r.Handler)
	}
	return mux
}

func openDB(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newEnv starts a hub on a fresh database with quick retries.
func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, bus: events.NewBus(events.BusOptions{}), db: openDB(t), secrets: secretstest.New(), clock: &wallClock{}}
	e.cfg = Config{
		Bus: e.bus, DB: e.db, Secrets: e.secrets, Now: e.clock.Now,
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxAttempts: 3,
		DeliveryTimeout: 5 * time.Second,
	}
	for _, m := range mutate {
		m(&e.cfg)
	}
	e.start()
	return e
}

// start (re)opens the hub on the env's database and secrets and runs it.
func (e *env) start() {
	t := e.t
	t.Helper()
	h, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.hub = h
	e.handler = serveRoutes(h.Routes())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
}

// hubPost sends a form to POST /api/v1/hub as an authenticated request.
func (e *env) hubPost(form url.Values) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest("POST", httpkit.Prefix+"/hub", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	var out map[string]any
	json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func (e *env) do(method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, httpkit.Prefix+path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

// sub returns the subscription for callback (zero when there is none).
func (e *env) sub(callback string) Subscription {
	for _, s := range e.hub.Subscriptions() {
		if s.Callback == callback {
			return s
		}
	}
	return Subscription{}
}

// waitSub waits (event-driven, with a deadline) until cond holds for callback's subscription.
func (e *env) waitSub(callback string, what string, cond func(Subscription) bool) Subscription {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := e.hub.changed()
		if s := e.sub(callback); cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			e.t.Fatalf("timed out waiting for %s: %+v", what, e.sub(callback))
		}
	}
}

func (e *env) waitState(callback, state string) Subscription {
	e.t.Helper()
	return e.waitSub(callback, "state "+state, func(s Subscription) bool { return s.State == state })
}

// waitSaved waits until the database row of subscription id has state.
func (e *env) waitSaved(id, state string) {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := e.hub.changed()
		var got string
		e.db.Read.QueryRow(`SELECT state FROM hub_subscriptions WHERE id = ?`, id).Scan(&got)
		if got == state {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			e.t.Fatalf("saved state %q, want %q", got, state)
		}
	}
}

func subscribeForm(callback, events, secret string, extra ...string) url.Values {
	f := url.Values{"hub.mode": {"subscribe"}, "hub.callback": {callback}, "hub.events": {events}, "hub.secret": {secret}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

// --- a subscriber -----------------------------------------------------------------------------

type delivery struct {
	body   []byte
	sig    string
	valid  bool // the signature verifies with the subscriber's own secret
	header http.Header
}

// subscriber is a WebSub subscriber on a loopback httptest server.
type hook struct {
	srv    *httptest.Server
	secret string
	url    string

	mu       sync.Mutex
	verify   func(q url.Values) (int, string) // answer to intent verification
	post     func() int                       // status for deliveries
	checks   []url.Values                     // verification requests seen
	denied   chan url.Values
	posts    int
	got      chan delivery
	verified chan url.Values
}

func newSubscriber(t testing.TB, secret string) *hook {
	t.Helper()
	s := &hook{secret: secret, got: make(chan delivery, 1024), verified: make(chan url.Values, 64), denied: make(chan url.Values, 8)}
	s.verify = func(q url.Values) (int, string) { return 200, q.Get("hub.challenge") }
	s.post = func() int { return 204 }
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.url = s.srv.URL + "/hook"
	return s
}

func (s *hook) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case "GET":
		q := r.URL.Query()
		s.mu.Lock()
		if q.Get("hub.mode") == "denied" {
			s.mu.Unlock()
			s.denied <- q
			return
		}
		s.checks = append(s.checks, q)
		fn := s.verify
		s.mu.Unlock()
		s.verified <- q
		status, body := fn(q)
		if status >= 300 && status < 400 {
			w.Header().Set("Location", body)
			body = ""
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(status)
		io.WriteString(w, body)
	case "POST":
		b, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("X-Hub-Signature")
		s.mu.Lock()
		s.posts++
		fn := s.post
		s.mu.Unlock()
		status := fn()
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		s.got <- delivery{body: b, sig: sig, valid: VerifySignature([]byte(s.secret), b, sig), header: r.Header.Clone()}
	}
}

func (s *hook) setVerify(fn func(url.Values) (int, string)) {
	s.mu.Lock()
	s.verify = fn
	s.mu.Unlock()
}

func (s *hook) setPost(fn func() int) {
	s.mu.Lock()
	s.post = fn
	s.mu.Unlock()
}

func (s *hook) checkCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.checks)
}

func (s *hook) postCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts
}

func (s *hook) next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-s.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
		return delivery{}
	}
}

func (s *hook) nextVerify(t testing.TB) url.Values {
	t.Helper()
	select {
	case q := <-s.verified:
		return q
	case <-time.After(10 * time.Second):
		t.Fatal("no verification request")
		return nil
	}
}

// activate subscribes s for events and waits until the subscription is active.
func (e *env) activate(s *hook, events string, extra ...string) Subscription {
	e.t.Helper()
	code, body := e.hubPost(subscribeForm(s.url, events, s.secret, extra...))
	if code != http.StatusAccepted {
		e.t.Fatalf("subscribe: %d %v", code, body)
	}
	return e.waitState(s.url, StateActive)
}

func decodeEvent(t testing.TB, b []byte) (events.Event, map[string]any) {
	t.Helper()
	var ev events.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("delivery is not an event: %v: %s", err, b)
	}
	var data map[string]any
	json.Unmarshal(ev.Data, &data)
	return ev, data
}
