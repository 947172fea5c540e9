package syncer

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestDue(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		last time.Time
		due  bool
	}{
		{"never synced", time.Time{}, true},
		{"synced 13 h ago", now.Add(-13 * time.Hour), true},
		{"synced exactly 12 h ago", now.Add(-12 * time.Hour), true},
		{"synced 11 h 59 min ago", now.Add(-12*time.Hour + time.Minute), false},
		{"clock went back", now.Add(time.Hour), false},
	} {
		if got := isDue(now, tc.last, 12*time.Hour); got != tc.due {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.due)
		}
	}
}

// addSource creates a source directly (no provider behind it).
func (e *env) addSource(n records.NewSource, lastSync *time.Time) int64 {
	e.t.Helper()
	var id int64
	err := e.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		if n.Kind == "" {
			n.Kind = records.KindProvider
		}
		if n.Kind == records.KindProvider {
			n.PatientID, n.FHIRBase = "p1", "http://127.0.0.1:1/fhir"
		}
		if id, err = e.store.CreateSource(context.Background(), tx, n); err != nil {
			return err
		}
		if lastSync != nil {
			v := stamp(*lastSync)
			return e.store.UpdateSourceTx(context.Background(), tx, id, records.SourceUpdate{LastSync: &v})
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// triggers returns the trigger of each run of a source, oldest first.
func (e *env) triggers(id int64) []string {
	e.t.Helper()
	rows, err := e.db.Read.Query(`SELECT trigger_kind FROM sync_runs WHERE source_id = ? AND status != 'running' ORDER BY id`, id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSchedulerStartupAndInterval(t *testing.T) {
	e := newEnv(t)
	clock := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	t0 := clock.Now()
	old, recent := t0.Add(-13*time.Hour), t0.Add(-time.Hour)
	a := e.addSource(records.NewSource{Name: "A"}, &old)
	b := e.addSource(records.NewSource{Name: "B"}, &recent)
	c := e.addSource(records.NewSource{Name: "C"}, nil)
	d := e.addSource(records.NewSource{Name: "D", Status: records.StatusReconnectNeeded}, nil)
	m := e.addSource(records.NewSource{Kind: records.KindManual, Name: "file"}, nil)

	cfg := e.config(nil)
	cfg.Now = clock.Now
	cfg.Tokens = func(context.Context, records.Source) (*smart.TokenManager, error) { return nil, errTest }
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	waitFor(t, "start-up syncs of A and C", func() bool {
		return len(e.triggers(a)) == 1 && len(e.triggers(c)) == 1 && !s.Syncing(a) && !s.Syncing(c)
	})
	for _, id := range []int64{b, d, m} {
		if got := e.triggers(id); len(got) != 0 {
			t.Errorf("source %d synced at start-up: %v", id, got)
		}
	}
	if got := e.triggers(a); got[0] != string(TriggerStartup) {
		t.Errorf("trigger %v", got)
	}
	// The failed attempt counts: A is due again only 12 h after it, and shows the error.
	if src := e.source(a); src.Status != records.StatusError || src.LastError == nil {
		t.Errorf("A after a failed sync: %s %v", src.Status, src.LastError)
	}

	// 11 h later B (synced 1 h before start) is due; A and C are not.
	clock.Advance(11*time.Hour + time.Minute)
	s.poke()
	waitFor(t, "the scheduled sync of B", func() bool { return len(e.triggers(b)) == 1 && !s.Syncing(b) })
	if got := e.triggers(b); got[0] != string(TriggerSchedule) {
		t.Errorf("B trigger %v", got)
	}
	if len(e.triggers(a)) != 1 || len(e.triggers(c)) != 1 {
		t.Errorf("A or C synced again too early: %v %v", e.triggers(a), e.triggers(c))
	}

	// 12 h after start A and C are due again.
	clock.Advance(time.Hour)
	s.poke()
	waitFor(t, "the scheduled syncs of A and C", func() bool {
		return len(e.triggers(a)) == 2 && len(e.triggers(c)) == 2 && !s.Syncing(a) && !s.Syncing(c)
	})
	if got := e.triggers(a); !equalStrings(got, []string{"startup", "schedule"}) {
		t.Errorf("A triggers %v", got)
	}
	if len(e.triggers(b)) != 1 || len(e.triggers(d)) != 0 {
		t.Errorf("B %v D %v", e.triggers(b), e.triggers(d))
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

func TestInterruptedRunsMarkedAtStart(t *testing.T) {
	e := newEnv(t)
	recent := time.Now()
	id := e.addSource(records.NewSource{Name: "A"}, &recent)
	if _, err := e.db.Write.Exec(`INSERT INTO sync_runs(source_id, trigger_kind, started_at) VALUES (?, 'schedule', ?)`, id, stamp(recent)); err != nil {
		t.Fatal(err)
	}
	s := New(e.config(nil))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	waitFor(t, "the interrupted run", func() bool {
		var st string
		e.db.Read.QueryRow(`SELECT status FROM sync_runs WHERE source_id = ?`, id).Scan(&st)
		return st == RunInterrupted
	})
	cancel()
	<-runErr
	runs, _ := s.Runs(context.Background(), id, 0)
	if len(runs) != 1 || runs[0].Error == nil || runs[0].FinishedAt == nil {
		t.Errorf("%+v", runs)
	}
}

// blockingTokens is a Tokens func that waits for release, counting how many wait at once.
type blockingTokens struct {
	entered chan int64
	release chan struct{}
	active  atomic.Int32
	maxSeen atomic.Int32
	calls   atomic.Int32
}

func newBlockingTokens() *blockingTokens {
	return &blockingTokens{entered: make(chan int64, 100), release: make(chan struct{})}
}

func (b *blockingTokens) tokens(ctx context.Context, src records.Source) (*smart.TokenManager, error) {
	b.calls.Add(1)
	n := b.active.Add(1)
	defer b.active.Add(-1)
	for {
		m := b.maxSeen.Load()
		if n <= m || b.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	b.entered <- src.ID
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, errTest
}

func TestCoalescing(t *testing.T) {
	e := newEnv(t)
	id := e.addSource(records.NewSource{Name: "A"}, nil)
	bt := newBlockingTokens()
	cfg := e.config(nil)
	cfg.Tokens = bt.tokens
	s := New(cfg)

	queued, err := s.enqueue(context.Background(), id, TriggerManual)
	if err != nil || !queued || !s.Syncing(id) {
		t.Fatalf("first request: queued %v err %v syncing %v", queued, err, s.Syncing(id))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	<-bt.entered
	// While it runs, more requests are folded into the running job.
	for range 3 {
		if queued, err := s.enqueue(context.Background(), id, TriggerManual); err != nil || queued {
			t.Errorf("request while running: queued %v err %v", queued, err)
		}
	}
	if ids, err := s.SyncAll(); err != nil || len(ids) != 1 {
		t.Errorf("SyncAll: %v %v", ids, err)
	}
	once := make(chan []RunResult, 1)
	go func() {
		res, _ := s.RunOnce(context.Background(), []int64{id})
		once <- res
	}()
	waitFor(t, "RunOnce to join the running job", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.jobs[id] != nil && s.jobs[id].waiters == 1
	})
	close(bt.release)
	res := <-once
	if len(res) != 1 || res[0].RunID == 0 || !errors.Is(res[0].Err, errTest) {
		t.Fatalf("RunOnce result: %+v", res)
	}
	waitFor(t, "the job to end", func() bool { return !s.Syncing(id) })
	if n := bt.calls.Load(); n != 1 {
		t.Errorf("%d jobs ran, want 1", n)
	}
	runs, _ := s.Runs(context.Background(), id, 0)
	if len(runs) != 1 || runs[0].ID != res[0].RunID {
		t.Errorf("runs %+v", runs)
	}
	cancel()
	<-runErr
}

func TestConcurrencyLimit(t *testing.T) {
	e := newEnv(t)
	var ids []int64
	for _, n := range []string{"A", "B", "C", "D", "E"} {
		ids = append(ids, e.addSource(records.NewSource{Name: n}, nil))
	}
	bt := newBlockingTokens()
	cfg := e.config(nil)
	cfg.Tokens = bt.tokens
	cfg.Concurrency = 2
	s := New(cfg)
	out := make(chan []RunResult, 1)
	go func() {
		res, err := s.RunOnce(context.Background(), nil)
		if err != nil {
			t.Error(err)
		}
		out <- res
	}()
	<-bt.entered
	<-bt.entered
	waitFor(t, "every job to be registered", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.jobs) == 5
	})
	if n := len(s.sem); n != 2 {
		t.Errorf("%d slots taken, want 2", n)
	}
	for _, id := range ids {
		if !s.Syncing(id) {
			t.Errorf("source %d not shown as syncing while queued", id)
		}
	}
	close(bt.release)
	res := <-out
	if len(res) != 5 || bt.calls.Load() != 5 {
		t.Fatalf("%d results, %d calls", len(res), bt.calls.Load())
	}
	for i, r := range res {
		if r.SourceID != ids[i] {
			t.Errorf("result %d is source %d, want %d", i, r.SourceID, ids[i])
		}
	}
	if m := bt.maxSeen.Load(); m != 2 {
		t.Errorf("%d jobs ran at once, want at most 2", m)
	}
}

func TestNoTokenStore(t *testing.T) {
	e := newEnv(t)
	id := e.addSource(records.NewSource{Name: "A"}, nil)
	cfg := e.config(nil)
	cfg.Tokens = nil
	r := runOne(t, New(cfg), id)
	if !errors.Is(r.Err, ErrNoTokens) || r.Error != "cannot sync: the token store is not configured" {
		t.Errorf("%v", r.Err)
	}
	if src := e.source(id); src.Status != records.StatusConnected || src.LastError != nil {
		t.Errorf("the source status changed: %s %v", src.Status, src.LastError)
	}
	if got := e.triggers(id); len(got) != 0 {
		t.Errorf("runs recorded: %v", got)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	a := e.addSource(records.NewSource{Name: "A"}, nil)
	b := e.addSource(records.NewSource{Name: "B"}, nil)
	bt := newBlockingTokens()
	cfg := e.config(nil)
	cfg.Tokens = bt.tokens
	s := New(cfg)
	if s.Cancel(a) {
		t.Error("Cancel of an idle source reported a job")
	}
	// A queued job is dropped.
	if err := s.SyncSource(b); err != nil {
		t.Fatal(err)
	}
	if !s.Cancel(b) || s.Syncing(b) {
		t.Errorf("queued job not cancelled")
	}
	// A running job ends as cancelled, with its run recorded so.
	out := make(chan []RunResult, 1)
	go func() {
		res, _ := s.RunOnce(context.Background(), []int64{a})
		out <- res
	}()
	<-bt.entered
	if !s.Cancel(a) {
		t.Fatal("no running job to cancel")
	}
	res := <-out
	if res[0].Status != RunCancelled {
		t.Errorf("status %s %v", res[0].Status, res[0].Err)
	}
	runs, _ := s.Runs(context.Background(), a, 0)
	if len(runs) != 1 || runs[0].Status != RunCancelled {
		t.Errorf("runs %+v", runs)
	}
	if bt.calls.Load() != 1 {
		t.Errorf("%d jobs ran", bt.calls.Load())
	}
}

// TestSetIntervalAppliesAtOnce: shortening the interval while Run waits makes a source that is
// now due sync without waiting for the old schedule.
func TestSetIntervalAppliesAtOnce(t *testing.T) {
	e := newEnv(t)
	s := New(Config{Store: e.store, DB: e.db, Interval: 24 * time.Hour})
	if s.every() != 24*time.Hour {
		t.Fatalf("interval %v", s.every())
	}
	s.SetInterval(time.Hour)
	if s.every() != time.Hour {
		t.Fatalf("interval %v after SetInterval", s.every())
	}
	s.SetInterval(0) // ignored
	if s.every() != time.Hour {
		t.Fatalf("zero interval applied: %v", s.every())
	}
	select {
	case <-s.wake:
	default:
		t.Fatal("SetInterval did not wake the scheduler")
	}
}

// Pause (a restore) stops the running sync and waits for it, refuses new syncs until resumed,
// and after resume syncs start again.
func TestPause(t *testing.T) {
	e := newEnv(t)
	a := e.addSource(records.NewSource{Name: "A"}, nil)
	bt := newBlockingTokens()
	cfg := e.config(nil)
	cfg.Tokens = bt.tokens
	s := New(cfg)
	out := make(chan []RunResult, 1)
	go func() {
		res, _ := s.RunOnce(context.Background(), []int64{a})
		out <- res
	}()
	<-bt.entered
	resume, err := s.Pause(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Pause returned: the running sync has ended, its run recorded as cancelled.
	if s.Syncing(a) {
		t.Error("still syncing after Pause")
	}
	if runs, _ := s.Runs(context.Background(), a, 0); len(runs) != 1 || runs[0].Status != RunCancelled {
		t.Errorf("runs right after Pause: %+v", runs)
	}
	if res := <-out; res[0].Status != RunCancelled {
		t.Errorf("running sync ended %s", res[0].Status)
	}
	if err := s.SyncSource(a); !errors.Is(err, ErrPaused) {
		t.Errorf("SyncSource while paused: %v", err)
	}
	if res, _ := s.RunOnce(context.Background(), []int64{a}); res[0].Status != RunFailed || !errors.Is(res[0].Err, ErrPaused) {
		t.Errorf("RunOnce while paused: %+v", res[0])
	}
	resume()
	resume() // a second call changes nothing
	if err := s.SyncSource(a); err != nil {
		t.Errorf("SyncSource after resume: %v", err)
	}
	if !s.Syncing(a) {
		t.Error("not queued after resume")
	}
}
