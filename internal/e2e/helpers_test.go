// Package e2e_test runs the assembled backend (internal/backend.Open, with its syncer and webhook
// hub running) behind the serve-mode guard on loopback, and drives it only through HTTP like a
// browser page, a script and a webhook subscriber would: the end-to-end acceptance of live events
// and webhooks (issue 8) on top of imports, connect and background sync.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
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

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// waitFor bounds every wait of these tests.
const waitFor = 60 * time.Second

// app is the backend as `fasten-desktop serve` runs it: the guard in front (token, Host, Origin,
// media types), the background services running.
type app struct {
	t     *testing.T
	b     *backend.Backend
	url   string // http://127.0.0.1:PORT
	token string
}

// startApp opens a backend on a fresh data folder and serves it on loopback like serve mode does
// (internal/cli/serve.go). lighthouse may be "" (no provider connects then). Cleanup stops the
// services, then the server, then closes the backend.
func startApp(t *testing.T, lighthouse string) *app {
	t.Helper()
	b, err := backend.Open(context.Background(), backend.Options{
		DataDir: t.TempDir(), LighthouseURL: lighthouse, Version: "e2e", Keyring: secretstest.New(),
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := guard.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	h, err := guard.Wrap(b.Handler(nil), guard.Config{
		Token: token,
		Port:  port,
		Open: func(r *http.Request) bool {
			return r.URL.Path == api.Prefix+"/health" || !strings.HasPrefix(r.URL.Path, "/api/") || b.Stream.TicketRequest(r)
		},
		FormPaths: []string{api.Prefix + "/hub"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = h
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("backend.Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("backend.Run did not stop")
		}
		ts.Close()
		if err := b.Close(); err != nil {
			t.Errorf("close the backend: %v", err)
		}
	})
	return &app{t: t, b: b, url: "http://127.0.0.1:" + fmt.Sprint(port), token: token}
}

// request sends a request to the API with the token (unless withToken is false).
func (a *app) request(method, path, contentType string, body io.Reader, withToken bool) (*http.Response, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+api.Prefix+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// call sends JSON (body may be nil) with the token, checks the status and decodes into out.
func (a *app) call(method, path string, body any, want int, out any) {
	a.t.Helper()
	var rd io.Reader
	ct := ""
	if body != nil {
		b, _ := json.Marshal(body)
		rd, ct = bytes.NewReader(b), "application/json"
	}
	resp, b := a.request(method, path, ct, rd, true)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// importFile uploads one file through POST /imports and returns the raw JSON answer.
func (a *app) importFile(path string) []byte {
	a.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", filepath.Base(path))
	f, err := os.Open(path)
	if err != nil {
		a.t.Fatal(err)
	}
	io.Copy(fw, f)
	f.Close()
	mw.Close()
	resp, b := a.request("POST", "/imports", mw.FormDataContentType(), &buf, true)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("POST /imports: HTTP %d: %s", resp.StatusCode, b)
	}
	return b
}

// subscription is what GET /hub/subscriptions lists.
type subscription struct {
	ID        string   `json:"id"`
	Callback  string   `json:"callback"`
	Events    []string `json:"events"`
	State     string   `json:"state"`
	Delivered int64    `json:"delivered"`
	LastError string   `json:"last_error"`
}

func (a *app) subscriptions() []subscription {
	a.t.Helper()
	var subs []subscription
	a.call("GET", "/hub/subscriptions", nil, http.StatusOK, &subs)
	return subs
}

// subscribe asks the hub for a subscription (form-encoded, with the token) and waits until the
// subscriber confirmed it and it is active.
func (a *app) subscribe(s *subscriber, events string) subscription {
	a.t.Helper()
	form := url.Values{
		"hub.mode": {"subscribe"}, "hub.callback": {s.callback}, "hub.events": {events},
		"hub.secret": {string(s.secret)}, "hub.lease_seconds": {"3600"},
	}
	resp, b := a.request("POST", "/hub", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), true)
	var ack struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &ack) != nil || ack.ID == "" || ack.State != "pending" {
		a.t.Fatalf("subscribe: HTTP %d %s", resp.StatusCode, b)
	}
	deadline := time.Now().Add(waitFor)
	for {
		for _, sub := range a.subscriptions() {
			if sub.ID != ack.ID {
				continue
			}
			switch sub.State {
			case "active":
				return sub
			case "pending":
			default:
				a.t.Fatalf("subscription %s is %s: %s", sub.ID, sub.State, sub.LastError)
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("subscription %s still not active", ack.ID)
		}
		select {
		case <-s.verified:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// delivery is one signed POST the subscriber accepted.
type delivery struct {
	Body      []byte
	Signature string
	Received  time.Time
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// subscriber is a webhook receiver on loopback, written the way docs/webhooks.md tells users to:
// it echoes hub.challenge and checks X-Hub-Signature (HMAC-SHA256 of the raw body with its own
// secret, compared in constant time) before it believes a delivery.
type subscriber struct {
	t        *testing.T
	secret   []byte
	callback string
	srv      *httptest.Server
	verified chan string // hub.mode of each intent verification answered
	got      chan delivery

	mu       sync.Mutex
	rejected int // deliveries whose signature did not match
	intents  []url.Values
}

func newSubscriber(t *testing.T) *subscriber {
	t.Helper()
	s := &subscriber{t: t, secret: []byte(randomHex(24)), verified: make(chan string, 16), got: make(chan delivery, 1024)}
	path := "/hook/" + randomHex(16)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query()
			s.mu.Lock()
			s.intents = append(s.intents, q)
			s.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			io.WriteString(w, q.Get("hub.challenge"))
			select {
			case s.verified <- q.Get("hub.mode"):
			default:
			}
		case http.MethodPost:
			body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
			sig := r.Header.Get("X-Hub-Signature")
			if err != nil || !validSignature(s.secret, body, sig) {
				s.mu.Lock()
				s.rejected++
				s.mu.Unlock()
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			d := delivery{Body: body, Signature: sig, Received: time.Now()}
			if err := json.Unmarshal(body, &d); err != nil {
				http.Error(w, "not an event", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			s.got <- d
		default:
			http.Error(w, "method", http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(s.srv.Close)
	s.callback = s.srv.URL + path
	return s
}

// validSignature is the subscriber's check: "sha256=" + hex HMAC-SHA256(secret, body), nothing else.
func validSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// next waits for the next accepted delivery of topic (other topics are skipped) for which match
// (if not nil) is true.
func (s *subscriber) next(topic string, match func(delivery) bool) delivery {
	s.t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case d := <-s.got:
			if d.Event == topic && (match == nil || match(d)) {
				return d
			}
		case <-timer.C:
			s.mu.Lock()
			rejected := s.rejected
			s.mu.Unlock()
			s.t.Fatalf("no %s delivery within %v (%d rejected for a bad signature)", topic, waitFor, rejected)
		}
	}
}

func (s *subscriber) rejectedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sseEvent is one event read from GET /events.
type sseEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// openEvents opens the live event stream like the frontend in serve mode (fetch() with the
// bearer header) and returns a channel of its events; it ends with the test.
func (a *app) openEvents(t *testing.T) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", a.url+api.Prefix+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("GET /events: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 1024)
	r := bufio.NewReader(resp.Body)
	// The stream is subscribed to the bus once its opening comment arrived.
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("read the stream's opening: %v", err)
		}
		if strings.TrimSpace(line) == ": connected" {
			break
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		var topic string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				topic = line[7:]
			case strings.HasPrefix(line, "data: "):
				var ev sseEvent
				if json.Unmarshal([]byte(line[6:]), &ev) == nil && ev.Event == topic {
					out <- ev
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return out
}

// nextSSE waits for the next event of topic on a stream.
func nextSSE(t *testing.T, ch <-chan sseEvent, topic string) sseEvent {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream ended before %s", topic)
			}
			if ev.Event == topic {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %s on the event stream within %v", topic, waitFor)
		}
	}
}
