package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// BenchmarkHub100Subscribers measures deliveries from the bus to 100 loopback subscribers (each
// its own httptest server, signature checked), with W events in flight at most:
//   - window=1: one event at a time, so latency is the hub's added latency without queueing
//     (subs=1 shows the floor: one signed POST over loopback);
//   - window=64: a sustained stream, for throughput.
//
// Reported: events/s (each delivered to all 100), deliveries/s, and the Publish-to-handler latency
// p50/p99 in microseconds. Run: go test -run '^$' -bench Hub100 -benchtime 300x ./internal/events/webhooks/
func BenchmarkHub100Subscribers(b *testing.B) {
	for _, c := range []struct{ subs, window int }{{1, 1}, {100, 1}, {100, 64}} {
		b.Run(fmt.Sprintf("subs=%d/window=%d", c.subs, c.window), func(b *testing.B) { benchHub(b, c.subs, c.window) })
	}
}

func benchHub(b *testing.B, n, window int) {
	bus := events.NewBus(events.BusOptions{})
	h, err := New(context.Background(), Config{Bus: bus, DB: openDB(b), Secrets: secretstest.New(), QueueSize: 1024})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	handler := serveRoutes(h.Routes())

	var (
		mu        sync.Mutex
		latencies []time.Duration
		perEvent  = map[string]int{}
		complete  = make(chan struct{}, 1<<16)
		bad       int
	)
	for i := range n {
		secret := fmt.Sprintf("bench-secret-%03d-0123456789abcdef", i)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" {
				io.WriteString(w, r.URL.Query().Get("hub.challenge"))
				return
			}
			body, _ := io.ReadAll(r.Body)
			now := time.Now()
			var ev events.Event
			json.Unmarshal(body, &ev)
			ok := VerifySignature([]byte(secret), body, r.Header.Get("X-Hub-Signature"))
			w.WriteHeader(204)
			mu.Lock()
			latencies = append(latencies, now.Sub(ev.Timestamp))
			if !ok {
				bad++
			}
			perEvent[ev.ID]++
			if perEvent[ev.ID] == n {
				delete(perEvent, ev.ID)
				complete <- struct{}{}
			}
			mu.Unlock()
		}))
		defer ts.Close()
		form := url.Values{"hub.mode": {"subscribe"}, "hub.callback": {ts.URL + "/hook"}, "hub.events": {"resources.changed"}, "hub.secret": {secret}}
		r := httptest.NewRequest("POST", httpkit.Prefix+"/hub", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code != 202 {
			b.Fatalf("subscribe: %d %s", w.Code, w.Body)
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		ch := h.changed()
		active := 0
		for _, s := range h.Subscriptions() {
			if s.State == StateActive {
				active++
			}
		}
		if active == n {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			b.Fatalf("%d of %d subscriptions active", active, n)
		}
	}

	b.ResetTimer()
	start := time.Now()
	inFlight := 0
	for i := range b.N {
		if inFlight == window {
			<-complete
			inFlight--
		}
		bus.Publish(events.TopicResourcesChanged, events.ResourcesChanged{SourceID: 1, Added: i, Counts: map[string]int{"Observation": i}})
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		<-complete
	}
	elapsed := time.Since(start)
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	if bad > 0 {
		b.Fatalf("%d deliveries with a bad signature", bad)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
