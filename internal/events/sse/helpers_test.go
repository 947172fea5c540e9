package sse

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// wallClock is a settable Now (ticket expiry).
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

// serveRoutes serves routes under httpkit.Prefix the way the API server does.
func serveRoutes(routes []httpkit.Route) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.HandleFunc(r.Method+" "+httpkit.Prefix+r.Path, r.Handler)
	}
	return mux
}

type env struct {
	t       *testing.T
	bus     *events.Bus
	stream  *Stream
	clock   *wallClock
	handler http.Handler // the stream's routes, no guard (an authenticated request)
	stop    func()
}

// newEnv starts a stream on a fresh bus and runs it until the test ends (or stop).
func newEnv(t *testing.T, mutate ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, bus: events.NewBus(events.BusOptions{}), clock: &wallClock{}}
	opt := Options{Bus: e.bus, Now: e.clock.Now, Heartbeat: time.Hour}
	for _, m := range mutate {
		m(&opt)
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	e.stream = s
	e.handler = serveRoutes(s.Routes())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
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
	return e
}

func (e *env) do(method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, httpkit.Prefix+path, strings.NewReader(body))
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

// guarded serves the env's routes behind the real serve-mode guard, wired as serve mode wires
// it (the stream's ticket check in Open).
func guarded(t *testing.T, e *env) (*httptest.Server, string) {
	t.Helper()
	token, err := guard.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	h, err := guard.Wrap(e.handler, guard.Config{
		Token: token, Port: port,
		Open: func(r *http.Request) bool {
			return r.URL.Path == httpkit.Prefix+"/health" || e.stream.TicketRequest(r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, token
}

func seqOf(t *testing.T, id string) int {
	t.Helper()
	_, n, ok := strings.Cut(id, "-")
	v, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Fatalf("event id %q", id)
	}
	return v
}
