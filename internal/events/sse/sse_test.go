package sse

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// sseBlock is one SSE message: its fields, or a comment.
type sseBlock struct {
	id, event, data, comment string
}

func readBlock(t *testing.T, r *bufio.Reader) (sseBlock, error) {
	t.Helper()
	var b sseBlock
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return b, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return b, nil
		}
		switch {
		case strings.HasPrefix(line, ":"):
			b.comment += strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "id: "):
			b.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			b.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			b.data = line[6:]
		}
	}
}

// openStream starts GET /events and returns a reader positioned after the opening comment (so the
// stream is subscribed to the bus).
func openStream(t *testing.T, ctx context.Context, url string, hdr http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET events: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	first, err := readBlock(t, r)
	if err != nil || first.comment != "connected" {
		t.Fatalf("opening block %+v %v", first, err)
	}
	return resp, r
}

func TestSSEStream(t *testing.T) {
	e := newEnv(t, func(c *Options) { c.Heartbeat = 20 * time.Millisecond })
	exited := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.ServeHTTP(w, r)
		exited <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, r := openStream(t, ctx, srv.URL+httpkit.Prefix+"/events", nil)
	defer resp.Body.Close()

	sent := []string{events.TopicImportDone, events.TopicResourcesChanged, events.TopicSourceStatus}
	for i, topic := range sent {
		e.bus.Publish(topic, map[string]int{"n": i})
	}
	last := 0
	pings := 0
	for i := 0; i < len(sent); {
		b, err := readBlock(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if b.comment == "ping" {
			pings++
			continue
		}
		var ev events.Event
		if err := json.Unmarshal([]byte(b.data), &ev); err != nil {
			t.Fatalf("data %q: %v", b.data, err)
		}
		var d struct{ N int }
		json.Unmarshal(ev.Data, &d)
		if b.event != sent[i] || ev.Event != sent[i] || ev.ID != b.id || d.N != i {
			t.Fatalf("message %d: %+v", i, b)
		}
		if n := seqOf(t, b.id); n <= last {
			t.Fatalf("id %s not after %d", b.id, last)
		} else {
			last = n
		}
		i++
	}
	// The heartbeat is a comment.
	for pings == 0 {
		b, err := readBlock(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if b.comment == "ping" && b.event == "" && b.data == "" {
			pings++
		}
	}
	// Cancelling the request ends the handler.
	cancel()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end when the request was cancelled")
	}

	// A topic filter, and an unknown topic refused.
	resp2, r2 := openStream(t, context.Background(), srv.URL+httpkit.Prefix+"/events?topics=sync.done", nil)
	defer resp2.Body.Close()
	e.bus.Publish(events.TopicImportDone, 1)
	e.bus.Publish(events.TopicSyncDone, events.SyncDone{SourceID: 5})
	for {
		b, err := readBlock(t, r2)
		if err != nil {
			t.Fatal(err)
		}
		if b.comment != "" {
			continue
		}
		if b.event != events.TopicSyncDone {
			t.Fatalf("filtered stream sent %s", b.event)
		}
		break
	}
	if w := e.do("GET", "/events?topics=nope", ""); w.Code != 400 {
		t.Fatalf("unknown topic: %d", w.Code)
	}
	// Stopping the stream (Run returns) ends it.
	e.stop()
	for {
		if _, err := readBlock(t, r2); err != nil {
			break
		}
	}
}

func TestEventsTicket(t *testing.T) {
	e := newEnv(t)
	srv, token := guarded(t, e)
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	eventsURL := srv.URL + httpkit.Prefix + "/events"

	newTicket := func() Ticket {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+httpkit.Prefix+"/events/ticket", nil)
		req.Header = bearer.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tk Ticket
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tk) != nil {
			t.Fatalf("ticket: %d", resp.StatusCode)
		}
		return tk
	}
	status := func(url string, hdr http.Header) int {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The bearer token works; nothing else does by default.
	if got := status(eventsURL, bearer); got != 200 {
		t.Fatalf("with the token: %d", got)
	}
	if got := status(eventsURL, nil); got != 401 {
		t.Fatalf("without anything: %d", got)
	}
	if got := status(eventsURL+"?token="+token, nil); got != 401 {
		t.Fatalf("token in the query: %d", got)
	}
	// Asking for a ticket needs the token.
	resp, err := http.Post(srv.URL+httpkit.Prefix+"/events/ticket", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("ticket without the token: %d", resp.StatusCode)
	}

	tk := newTicket()
	raw, err := base64.RawURLEncoding.DecodeString(tk.Ticket)
	if err != nil || len(raw) < 16 {
		t.Fatalf("ticket %q carries fewer than 128 bits", tk.Ticket)
	}
	if d := time.Until(tk.ExpiresAt); d <= 0 || d > 61*time.Second {
		t.Fatalf("ticket expires in %v", d)
	}
	// Not a key to other endpoints (and not used up by trying).
	if got := status(srv.URL+httpkit.Prefix+"/hub/subscriptions?ticket="+tk.Ticket, nil); got != 401 {
		t.Fatalf("ticket on another endpoint: %d", got)
	}
	// A foreign Origin is refused (and does not use the ticket up).
	if got := status(eventsURL+"?ticket="+tk.Ticket, http.Header{"Origin": {"http://evil.test"}}); got != 403 {
		t.Fatalf("foreign origin: %d", got)
	}
	// The stream opens with the ticket from the app's own origin and carries events.
	ctx, cancel := context.WithCancel(context.Background())
	resp, r := openStream(t, ctx, eventsURL+"?ticket="+tk.Ticket, http.Header{"Origin": {srv.URL}})
	e.bus.Publish(events.TopicSyncStarted, events.SyncStarted{SourceID: 2})
	for {
		b, err := readBlock(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if b.event == events.TopicSyncStarted {
			break
		}
	}
	cancel()
	resp.Body.Close()
	// Single use.
	if got := status(eventsURL+"?ticket="+tk.Ticket, nil); got != 401 {
		t.Fatalf("ticket used twice: %d", got)
	}
	// Expiry.
	tk2 := newTicket()
	e.clock.Advance(61 * time.Second)
	if got := status(eventsURL+"?ticket="+tk2.Ticket, nil); got != 401 {
		t.Fatalf("expired ticket: %d", got)
	}
	if got := status(eventsURL+"?ticket=not-a-ticket", nil); got != 401 {
		t.Fatalf("made-up ticket: %d", got)
	}
}

// TestTicketRequestChecks covers what the guard does not: the Host binding, Origin, method, path.
func TestTicketRequestChecks(t *testing.T) {
	e := newEnv(t)
	mk := func(method, path, host, origin string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		r.Host = host
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	cases := []struct {
		name                       string
		method, path, host, origin string
		want                       bool
	}{
		{"ok", "GET", "/events", "127.0.0.1:9300", "", true},
		{"own origin", "GET", "/events", "127.0.0.1:9300", "http://127.0.0.1:9300", true},
		{"foreign origin", "GET", "/events", "127.0.0.1:9300", "http://evil.test", false},
		{"other local origin", "GET", "/events", "127.0.0.1:9300", "http://127.0.0.1:8080", false},
		{"other host", "GET", "/events", "localhost:9300", "", false},
		{"POST", "POST", "/events", "127.0.0.1:9300", "", false},
		{"other path", "GET", "/sources", "127.0.0.1:9300", "", false},
	}
	for _, c := range cases {
		tk := e.stream.NewTicket("127.0.0.1:9300")
		r := mk(c.method, httpkit.Prefix+c.path+"?ticket="+tk.Ticket, c.host, c.origin)
		if got := e.stream.TicketRequest(r); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
