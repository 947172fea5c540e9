package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkConnect measures the connect-redirect path over real loopback HTTP: per operation one
// POST /v1/connect/{provider} (installation auth + user-limit admission), one browser
// GET /v1/connect/{provider}?ticket= (302 to the provider) and one GET /v1/callback/{provider}
// (302 to the app's loopback listener), from 8 concurrent clients, on SQLite and on PostgreSQL
// (FASTEN_TEST_POSTGRES_DSN). "known-user" reconnects 16 admitted users (the common case: a read
// admits them); "new-user" admits a new user key on every operation (a write transaction).
// Reported: req/s over all three requests, p50/p99 latency per request, p99 of the POST alone.
//
//	go test -run XXX -bench Connect -benchtime 2000x ./internal/lighthouse/gateway/
func BenchmarkConnect(b *testing.B) {
	for _, be := range backends {
		for _, mode := range []string{"known-user", "new-user"} {
			b.Run(be.name+"/"+mode, func(b *testing.B) { benchConnect(b, be.dsn(b), mode == "new-user") })
		}
	}
}

func benchConnect(b *testing.B, dsn string, newUsers bool) {
	ps := []Provider{{ID: "bench", Name: "Bench Hospital", FHIRBase: "https://fhir.example.org/r4", ClientID: "fasten-desktop",
		Scopes: "launch/patient openid fhirUser offline_access patient/*.read", UserLimit: 1 << 30,
		AuthorizeURL: "https://fhir.example.org/authorize", TokenURL: "https://fhir.example.org/token"}}
	e := newEnv(b, dsn, ps, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) })
	inst := e.register("Bench", "bench@example.org")
	_, challenge := pkce(b)

	hc := &http.Client{
		Transport:     &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	var seq atomic.Int64
	const knownUsers = 16

	// one connect-redirect round: returns the three request latencies
	round := func(key string) ([3]time.Duration, error) {
		var lat [3]time.Duration
		body, _ := json.Marshal(connectRequest{State: fmt.Sprintf("bench-state-%016d-%08d", seq.Add(1), 0),
			CodeChallenge: challenge, CodeChallengeMethod: "S256", RedirectPort: 50000, UserKey: key})
		req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/connect/bench", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Installation-Id", inst.id)
		req.Header.Set("Authorization", "Bearer "+inst.secret)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return lat, err
		}
		var cr connectResponse
		err = json.NewDecoder(resp.Body).Decode(&cr)
		resp.Body.Close()
		lat[0] = time.Since(t0)
		if resp.StatusCode != http.StatusOK || err != nil {
			return lat, fmt.Errorf("connect: %d %v", resp.StatusCode, err)
		}
		t1 := time.Now()
		resp, err = hc.Get(cr.AuthorizeURL)
		if err != nil {
			return lat, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat[1] = time.Since(t1)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			return lat, fmt.Errorf("ticket: %d %v", resp.StatusCode, err)
		}
		cb := e.url + "/v1/callback/bench?" + url.Values{"code": {"bench-code"}, "state": {loc.Query().Get("state")}}.Encode()
		t2 := time.Now()
		resp, err = hc.Get(cb)
		if err != nil {
			return lat, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat[2] = time.Since(t2)
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "http://127.0.0.1:50000/callback?") {
			return lat, fmt.Errorf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return lat, nil
	}
	for i := 0; i < knownUsers; i++ { // admit the known users and warm the connections
		if _, err := round(userKey(i)); err != nil {
			b.Fatal(err)
		}
	}

	var mu sync.Mutex
	var all, posts []time.Duration
	var failed atomic.Bool
	b.SetParallelism(4) // 4 x GOMAXPROCS clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine, myPosts []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			key := userKey(int(n % knownUsers))
			if newUsers {
				key = fmt.Sprintf("bench-user-%016d", n)
			}
			lat, err := round(key)
			if err != nil {
				if !failed.Swap(true) {
					b.Error(err)
				}
				return
			}
			mine = append(mine, lat[:]...)
			myPosts = append(myPosts, lat[0])
		}
		mu.Lock()
		all = append(all, mine...)
		posts = append(posts, myPosts...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	slices.Sort(posts)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(all, 0.50), "p50-ms")
	b.ReportMetric(pct(all, 0.99), "p99-ms")
	b.ReportMetric(pct(posts, 0.99), "post-p99-ms")
}
