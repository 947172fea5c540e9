package syncer

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strings"
	"sync"

	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

// sleeps records the waits the syncer asks for; real makes them actually wait.
type sleeps struct {
	mu   sync.Mutex
	all  []time.Duration
	real bool
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.all = append(s.all, d)
	s.mu.Unlock()
	if s.real {
		return sleep(ctx, d)
	}
	return ctx.Err()
}

func (s *sleeps) list() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.all...)
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, status := range []int{429, 503} {
		p := newProvider(t, sandbox.Config{})
		e := newEnv(t)
		id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
		sl := &sleeps{real: true}
		cfg := e.config(nil)
		cfg.Sleep = sl.sleep
		s := New(cfg)
		f := sandbox.Faults{RetryAfter: time.Second, PathPrefix: "/Patient/" + testPatient + "/$everything"}
		if status == 429 {
			f.TooManyRequests = 2
		} else {
			f.ServerErrors, f.ServerErrorStatus = 2, 503
		}
		p.srv.SetFaults(f)
		r := runOne(t, s, id)
		mustOK(t, r)
		want, _ := p.srv.Patient(testPatient)
		if total(e.counts(id)) != want.Resources {
			t.Errorf("%d: %d stored, want %d", status, total(e.counts(id)), want.Resources)
		}
		if got := sl.list(); len(got) != 2 || got[0] != time.Second || got[1] != time.Second {
			t.Errorf("%d: waits %v, want [1s 1s] (Retry-After)", status, got)
		}
		// The sandbox saw each retry at least Retry-After after the refused request.
		reqs := fhirRequests(p)
		faults := 0
		for i, lr := range reqs {
			if lr.Status != status {
				continue
			}
			faults++
			if i+1 >= len(reqs) {
				t.Fatalf("%d: no request after the refused one", status)
			}
			if gap := reqs[i+1].Time.Sub(lr.Time); gap < time.Second {
				t.Errorf("%d: retried after %v, Retry-After was 1s", status, gap)
			}
		}
		if faults != 2 {
			t.Errorf("%d: the sandbox answered %d refusals, want 2", status, faults)
		}
	}
}

func TestBackoffWithoutRetryAfter(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	sl := &sleeps{}
	cfg := e.config(nil)
	cfg.Sleep = sl.sleep
	cfg.BackoffBase = 100 * time.Millisecond
	cfg.BackoffMax = 300 * time.Millisecond
	s := New(cfg)
	p.srv.SetFaults(sandbox.Faults{TooManyRequests: 2, OmitRetryAfter: true, ServerErrors: 2, ServerErrorStatus: 500})
	r := runOne(t, s, id)
	mustOK(t, r)
	got := sl.list()
	// Capped exponential backoff with equal jitter: [d/2, d] for d = 100, 200, 300 (cap), 300 ms.
	caps := []time.Duration{100, 200, 300, 300}
	if len(got) != len(caps) {
		t.Fatalf("waits %v, want %d", got, len(caps))
	}
	for i, c := range caps {
		c *= time.Millisecond
		if got[i] < c/2 || got[i] > c {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, got[i], c/2, c)
		}
	}
	if r.Requests < 4+2 {
		t.Errorf("requests %d do not count the retries", r.Requests)
	}
}

func TestServerErrorsRecoveredOrReported(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	ev := &events{}
	s := New(e.config(ev))
	want, _ := p.srv.Patient(testPatient)

	// A burst of 500s shorter than the retry budget (4): recovered.
	p.srv.SetFaults(sandbox.Faults{ServerErrors: 4})
	r := runOne(t, s, id)
	mustOK(t, r)
	if total(e.counts(id)) != want.Resources {
		t.Fatalf("%d stored, want %d", total(e.counts(id)), want.Resources)
	}

	// A provider that keeps failing: the run fails, the source shows the error, records stay.
	p.srv.SetFaults(sandbox.Faults{ServerErrors: 1000, ServerErrorStatus: 502})
	r = runOne(t, s, id)
	if r.Status != RunFailed || r.Err == nil || !strings.Contains(r.Error, "HTTP 502") || !strings.Contains(r.Error, "5 attempts") {
		t.Fatalf("persistent 502: %s %q", r.Status, r.Error)
	}
	src := e.source(id)
	if src.Status != records.StatusError || src.LastError == nil || *src.LastError != r.Error {
		t.Errorf("source: %s %v", src.Status, src.LastError)
	}
	if total(e.counts(id)) != want.Resources {
		t.Errorf("records lost: %d", total(e.counts(id)))
	}
	if fails := ev.topics("sync.failed"); len(fails) != 1 || fails[0]["error"] != r.Error {
		t.Errorf("sync.failed events: %v", fails)
	}
	if st := ev.topics("source.status"); len(st) == 0 || st[len(st)-1]["status"] != records.StatusError {
		t.Errorf("source.status events: %v", st)
	}
	// It stays syncable (the next scheduled run retries) and recovers.
	p.srv.SetFaults(sandbox.Faults{})
	if err := s.SyncSource(id); err != nil {
		t.Errorf("SyncSource after a failure: %v", err)
	}
	r = runOne(t, s, id)
	mustOK(t, r)
	if src := e.source(id); src.Status != records.StatusConnected || src.LastError != nil {
		t.Errorf("after recovery: %s %v", src.Status, src.LastError)
	}
	runs, err := s.Runs(context.Background(), id, 0)
	if err != nil || len(runs) != 3 || runs[0].Status != RunOK || runs[1].Status != RunFailed || runs[2].Status != RunOK ||
		runs[1].Error == nil || runs[1].FinishedAt == nil {
		t.Errorf("history: %+v %v", runs, err)
	}
}

func TestExpiredAccessTokenRefreshedMidSync(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	tok := p.signIn(t, testPatient, fullScope)
	id := e.connect(p, "Demo Hospital", tok)
	var once sync.Once
	ev := &events{fn: func(topic string, _ map[string]any) {
		if topic == "sync.progress" {
			once.Do(p.srv.ExpireAccessTokens)
		}
	}}
	cfg := e.config(ev)
	cfg.PageSize = 10
	s := New(cfg)
	p.srv.ResetRequests()
	r := runOne(t, s, id)
	mustOK(t, r)
	want, _ := p.srv.Patient(testPatient)
	if !maps.Equal(e.counts(id), want.Counts) {
		t.Errorf("counts %v, want %v", e.counts(id), want.Counts)
	}
	if n := p.srv.TokenCalls()["refresh_token"]; n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	n401 := 0
	for _, lr := range fhirRequests(p) {
		if lr.Status == http.StatusUnauthorized {
			n401++
		}
	}
	if n401 != 1 {
		t.Errorf("%d requests answered 401, want 1 (then refreshed)", n401)
	}
	if cur, _ := e.toks[id].Load(context.Background()); cur.AccessToken == tok.AccessToken || cur.RefreshToken == tok.RefreshToken {
		t.Errorf("the rotated token was not saved")
	}
}

func TestRefreshRejectedNeedsReconnect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reject func(*sandbox.Server)
	}{
		{"revoked refresh token", func(s *sandbox.Server) { s.RevokeRefreshTokens() }},
		{"invalid_grant fault", func(s *sandbox.Server) { s.SetFaults(sandbox.Faults{RefreshInvalidGrant: true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, sandbox.Config{})
			e := newEnv(t)
			tok := p.signIn(t, testPatient, fullScope)
			id := e.connect(p, "Demo Hospital", tok)
			ev := &events{}
			s := New(e.config(ev))
			mustOK(t, runOne(t, s, id))
			before := e.counts(id)

			p.srv.ExpireAccessTokens()
			tc.reject(p.srv)
			r := runOne(t, s, id)
			if r.Status != RunFailed || !errors.Is(r.Err, ErrReconnectNeeded) {
				t.Fatalf("result %s %v, want reconnect needed", r.Status, r.Err)
			}
			const msg = "Sign in to Demo Hospital again to resume syncing."
			src := e.source(id)
			if src.Status != records.StatusReconnectNeeded || src.LastError == nil || *src.LastError != msg {
				t.Errorf("source: %s %v, want reconnect_needed %q", src.Status, src.LastError, msg)
			}
			if !maps.Equal(e.counts(id), before) {
				t.Errorf("records changed: %v, want %v", e.counts(id), before)
			}
			for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
				if strings.Contains(r.Error, secret) || strings.Contains(*src.LastError, secret) {
					t.Errorf("a token leaked into the error")
				}
			}
			if st := ev.topics("source.status"); len(st) != 1 || st[0]["status"] != records.StatusReconnectNeeded {
				t.Errorf("source.status events: %v", st)
			}
			// No more syncs until the user signs in again.
			if err := s.SyncSource(id); !errors.Is(err, ErrReconnectNeeded) {
				t.Errorf("SyncSource: %v", err)
			}
			p.srv.ResetRequests()
			if r := runOne(t, s, id); r.Status != RunFailed || !errors.Is(r.Err, ErrReconnectNeeded) || len(p.srv.Requests()) != 0 {
				t.Errorf("RunOnce on a reconnect_needed source: %s %v, %d requests", r.Status, r.Err, len(p.srv.Requests()))
			}
		})
	}
}

func TestUnauthorizedTwiceNeedsReconnect(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	s := New(e.config(nil))
	p.srv.SetFaults(sandbox.Faults{Unauthorized: 2})
	r := runOne(t, s, id)
	if !errors.Is(r.Err, ErrReconnectNeeded) || p.srv.TokenCalls()["refresh_token"] != 1 {
		t.Errorf("401 after one refresh: %v, %d refreshes", r.Err, p.srv.TokenCalls()["refresh_token"])
	}
}

func TestRequestTimeout(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	cfg := e.config(nil)
	cfg.RequestTimeout = 50 * time.Millisecond
	cfg.MaxRetries = 1
	s := New(cfg)
	p.srv.SetFaults(sandbox.Faults{Latency: time.Minute})
	r := runOne(t, s, id)
	if r.Status != RunFailed || !strings.Contains(r.Error, "did not answer within 50ms (2 attempts)") {
		t.Fatalf("hanging provider: %s %q", r.Status, r.Error)
	}
	if src := e.source(id); src.Status != records.StatusError {
		t.Errorf("status %s", src.Status)
	}
}

// TestHangingProviderDoesNotBlockOthers: with Run, a source whose provider never answers keeps
// its job (and one slot) while another source syncs to the end; stopping Run cancels the hung one.
func TestHangingProviderDoesNotBlockOthers(t *testing.T) {
	slow := newProvider(t, sandbox.Config{})
	fast := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	slowID := e.connect(slow, "Slow Hospital", slow.signIn(t, testPatient, fullScope))
	fastID := e.connect(fast, "Fast Hospital", fast.signIn(t, testPatient, fullScope))
	slow.srv.SetFaults(sandbox.Faults{Latency: time.Hour})
	done := make(chan int64, 4)
	ev := &events{fn: func(topic string, d map[string]any) {
		if topic == "sync.done" || topic == "sync.failed" {
			done <- d["source_id"].(int64)
		}
	}}
	cfg := e.config(ev)
	cfg.RequestTimeout = time.Hour
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	select {
	case got := <-done:
		if got != fastID {
			t.Fatalf("source %d finished first, want the fast one (%d)", got, fastID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fast source did not finish while the slow one hangs")
	}
	if !s.Syncing(slowID) || s.Syncing(fastID) {
		t.Errorf("syncing: slow %v fast %v", s.Syncing(slowID), s.Syncing(fastID))
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	runs, _ := s.Runs(context.Background(), slowID, 0)
	if len(runs) != 1 || runs[0].Status != RunCancelled {
		t.Errorf("slow source runs: %+v", runs)
	}
	if src := e.source(slowID); src.Status != records.StatusConnected {
		t.Errorf("a cancelled sync changed the status to %s", src.Status)
	}
}

func TestOversizedPage(t *testing.T) {
	t.Run("per type", func(t *testing.T) {
		p := newProvider(t, sandbox.Config{NoEverything: true})
		e := newEnv(t)
		id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
		cfg := e.config(nil)
		cfg.MaxBody = 32 << 10
		cfg.PageSize = 50
		s := New(cfg)
		r := runOne(t, s, id)
		mustOK(t, r)
		want, _ := p.srv.Patient(testPatient)
		got := e.counts(id)
		var refused []string
		for _, w := range r.Warnings {
			if strings.Contains(w, "larger than the 32 KiB limit") {
				typ, _, _ := strings.Cut(w, ":")
				refused = append(refused, typ)
			}
		}
		if len(refused) == 0 {
			t.Fatalf("no type refused as too large: %q", r.Warnings)
		}
		for typ, n := range want.Counts {
			isRefused := false
			for _, x := range refused {
				isRefused = isRefused || x == typ
			}
			switch {
			case isRefused && got[typ] != 0:
				t.Errorf("%s was refused but %d stored", typ, got[typ])
			case !isRefused && got[typ] != n:
				t.Errorf("%s: %d stored, want %d", typ, got[typ], n)
			}
		}
		st := loadState(e.source(id).SyncState)
		for _, typ := range refused {
			if _, ok := st.Types[typ]; ok {
				t.Errorf("%s kept a cursor although it failed", typ)
			}
		}
		if src := e.source(id); src.Status != records.StatusConnected || src.LastError == nil || !strings.Contains(*src.LastError, "larger than") {
			t.Errorf("source: %s %v", src.Status, src.LastError)
		}
	})
	t.Run("everything", func(t *testing.T) {
		p := newProvider(t, sandbox.Config{})
		e := newEnv(t)
		id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
		cfg := e.config(nil)
		cfg.MaxBody = 32 << 10
		cfg.PageSize = 100
		r := runOne(t, New(cfg), id)
		if r.Status != RunFailed || !strings.Contains(r.Error, "larger than the 32 KiB limit") {
			t.Errorf("%s %q", r.Status, r.Error)
		}
	})
}

func TestRetryAfterParsing(t *testing.T) {
	cfg := Config{Store: nil, Now: func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }}
	cfg.defaults()
	f := &fetcher{cfg: &cfg}
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		retry, date string
		want        time.Duration
	}{
		{"", "", 0},
		{"3", "", 3 * time.Second},
		{"0", "", 0},
		{"-5", "", 0},
		{"100000", "", 10 * time.Minute},
		{"soon", "", 0},
		{date(base.Add(90 * time.Second)), "", 90 * time.Second},
		{date(base.Add(90 * time.Second)), date(base.Add(60 * time.Second)), 30 * time.Second},
		{date(base.Add(-time.Hour)), "", 0},
		{date(base.Add(24 * time.Hour)), "", 10 * time.Minute},
	} {
		h := http.Header{}
		if tc.retry != "" {
			h.Set("Retry-After", tc.retry)
		}
		if tc.date != "" {
			h.Set("Date", tc.date)
		}
		if got := f.retryAfter(h); got != tc.want {
			t.Errorf("Retry-After %q Date %q: %v, want %v", tc.retry, tc.date, got, tc.want)
		}
	}
}
