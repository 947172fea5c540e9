package syncer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// Publisher receives the syncer's events (the events bus implements it).
type Publisher interface {
	Publish(topic string, data any)
}

// TokenFunc returns the TokenManager of a provider source (built from its keyring entry).
type TokenFunc func(ctx context.Context, src records.Source) (*smart.TokenManager, error)

// Trigger says why a sync ran (sync_runs.trigger_kind).
type Trigger string

// Triggers.
const (
	TriggerSchedule Trigger = "schedule"
	TriggerStartup  Trigger = "startup"
	TriggerManual   Trigger = "manual"
	TriggerConnect  Trigger = "connect"
)

// Run statuses (sync_runs.status).
const (
	RunRunning     = "running"
	RunOK          = "ok"
	RunFailed      = "failed"
	RunCancelled   = "cancelled"
	RunInterrupted = "interrupted"
)

// Defaults of Config.
const (
	DefaultInterval       = 12 * time.Hour
	DefaultConcurrency    = 3
	DefaultPageSize       = 200
	DefaultMaxBody        = 64 << 20
	DefaultRequestTimeout = 2 * time.Minute
	DefaultMaxRetries     = 4
	DefaultMaxRetryAfter  = 10 * time.Minute
	DefaultFullSyncEvery  = 7 * 24 * time.Hour
	DefaultMaxRefReads    = 2000
	// recheckEvery bounds how long Run sleeps between due checks (wall-clock jumps, sleep/resume).
	recheckEvery = time.Minute
)

// Config holds the syncer's dependencies and settings. Store is required; zero values take the
// defaults above.
type Config struct {
	Store *records.Store
	// DB is the database that holds the syncer's own sync_runs table (the store's database).
	DB *db.DB
	// Tokens builds a source's TokenManager. Nil: every job fails with "the token store is not
	// configured" and the source's status is left alone.
	Tokens TokenFunc
	// HTTP supplies the base transport (its Transport; nil means http.DefaultTransport). Each job
	// wraps it with the TokenManager's Transport. Its Timeout is not used: see RequestTimeout.
	HTTP   *http.Client
	Events Publisher // may be nil
	Log    *slog.Logger
	Now    func() time.Time

	Interval    time.Duration // a source is due when its last attempt is this old; default 12 h
	Concurrency int           // sources synced at once; default 3
	PageSize    int           // _count; default 200
	MaxBody     int64         // cap of one response body; default 64 MiB

	// Sleep waits d or until ctx ends (backoff, Retry-After); injectable for tests.
	Sleep func(ctx context.Context, d time.Duration) error

	RequestTimeout time.Duration // one HTTP request, body included; default 2 min
	MaxRetries     int           // retries of one request on 429/5xx/timeouts; default 4 (-1: none)
	MaxRetryAfter  time.Duration // cap on Retry-After; default 10 min
	BackoffBase    time.Duration // first backoff without Retry-After; default 1 s (doubles, capped at BackoffMax)
	BackoffMax     time.Duration // default 1 min
	FullSyncEvery  time.Duration // a full (non-incremental) sync at least this often; default 7 days
	MaxRefReads    int           // referenced resources read one by one per run; default 2000
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Minute
	}
	if c.FullSyncEvery <= 0 {
		c.FullSyncEvery = DefaultFullSyncEvery
	}
	if c.MaxRefReads <= 0 {
		c.MaxRefReads = DefaultMaxRefReads
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Errors of Enqueue and RunOnce.
var (
	// ErrNotProvider: the source is a file import; there is nothing to sync.
	ErrNotProvider error = &httpkit.Kind{Status: http.StatusConflict, Code: "conflict", Text: "this source is a file import; there is nothing to sync"}
	// ErrReconnectNeeded is matched by the error of a source whose sign-in is gone.
	ErrReconnectNeeded error = &httpkit.Kind{Status: http.StatusConflict, Code: "reconnect_needed", Text: "the provider needs a new sign-in"}
	// ErrNoTokens: Config.Tokens is nil.
	ErrNoTokens = errors.New("cannot sync: the token store is not configured")
)

// ReconnectError says which provider needs a new sign-in. It matches ErrReconnectNeeded.
type ReconnectError struct{ Provider string }

func (e *ReconnectError) Error() string {
	return "Sign in to " + e.Provider + " again to resume syncing."
}

// Is makes errors.Is(err, ErrReconnectNeeded) true.
func (e *ReconnectError) Is(target error) bool { return target == ErrReconnectNeeded }

// HTTPStatus and ErrorCode answer a sync request for such a source (httpkit.Coded).
func (e *ReconnectError) HTTPStatus() int   { return http.StatusConflict }
func (e *ReconnectError) ErrorCode() string { return "reconnect_needed" }

// RunResult is the outcome of one sync of one source.
type RunResult struct {
	SourceID int64   `json:"source_id"`
	Name     string  `json:"name"`
	RunID    int64   `json:"run_id,omitempty"`
	Trigger  Trigger `json:"trigger"`
	Status   string  `json:"status"` // ok, failed, cancelled
	Full     bool    `json:"full"`   // no cursor was used (first sync or the periodic full sync)
	Mode     string  `json:"mode"`   // everything or search
	// Added, Updated, Unchanged count resources written; Missing the resources newly marked
	// missing (full syncs only); Counts the resources received by type.
	Added     int            `json:"added"`
	Updated   int            `json:"updated"`
	Unchanged int            `json:"unchanged"`
	Missing   int            `json:"missing"`
	Counts    map[string]int `json:"counts"`
	Requests  int            `json:"requests"` // HTTP requests to the FHIR server, retries included
	Warnings  []string       `json:"warnings,omitempty"`
	Err       error          `json:"-"`
	Error     string         `json:"error,omitempty"`
	// Time is the run's duration. HTTPWait sums, over requests, the time from sending a request to
	// having read its body (it overlaps with storing, as the next page is fetched while one is
	// written); Blocked is the part of Time the job had nothing to do but wait for the provider.
	Time     time.Duration `json:"-"`
	HTTPWait time.Duration `json:"-"`
	Blocked  time.Duration `json:"-"`
}

// Syncer is the sync supervisor. Its methods are safe for concurrent use.
type Syncer struct {
	cfg  Config
	log  *slog.Logger
	runs runStore
	sem  chan struct{} // one token per running job (Config.Concurrency)

	mu       sync.Mutex
	jobs     map[int64]*job // queued or running, by source id
	pending  []*job         // enqueued, waiting for Run to dispatch them
	lastTry  map[int64]time.Time
	wake     chan struct{}
	wg       sync.WaitGroup // jobs started by Run
	paused   int            // Pause calls not yet resumed: nothing new is queued or started
	runStart sync.Once
	interval atomic.Int64 // Config.Interval, changeable at run time (SetInterval)
}

// SetInterval changes how often sources are synced, at once: the schedule is checked again.
func (s *Syncer) SetInterval(d time.Duration) {
	if d <= 0 {
		return
	}
	s.interval.Store(int64(d))
	s.poke()
}

// every is the current sync interval.
func (s *Syncer) every() time.Duration { return time.Duration(s.interval.Load()) }

type job struct {
	sourceID   int64
	trigger    Trigger
	dispatched bool
	waiters    int                // RunOnce calls that joined this job (guarded by Syncer.mu)
	cancel     context.CancelFunc // set once it runs (guarded by Syncer.mu)
	cancelReq  bool               // Cancel was called before it ran (guarded by Syncer.mu)
	done       chan struct{}
	res        RunResult
}

// New returns a Syncer. It panics when cfg.Store is nil (a wiring bug).
func New(cfg Config) *Syncer {
	if cfg.Store == nil || cfg.DB == nil {
		panic("syncer: Config.Store or Config.DB is nil")
	}
	cfg.defaults()
	s := &Syncer{
		cfg:     cfg,
		log:     cfg.Log,
		sem:     make(chan struct{}, cfg.Concurrency),
		jobs:    map[int64]*job{},
		lastTry: map[int64]time.Time{},
		wake:    make(chan struct{}, 1),
		runs:    runStore{db: cfg.DB},
	}
	s.interval.Store(int64(cfg.Interval))
	return s
}

func (s *Syncer) publish(topic string, data any) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(topic, data)
	}
}

func (s *Syncer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Syncing reports whether a sync of the source is queued or running.
func (s *Syncer) Syncing(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.jobs[id]
	return ok
}

// syncable checks that src can be synced now.
func syncable(src records.Source) error {
	if src.Kind != records.KindProvider {
		return ErrNotProvider
	}
	if src.Status == records.StatusReconnectNeeded {
		return &ReconnectError{Provider: src.Name}
	}
	return nil
}

// SyncSource asks for a manual sync of one source and returns at once (Run performs it). It fails
// for an unknown source (records.ErrNotFound), a file source (ErrNotProvider) and a source that
// needs a new sign-in (ErrReconnectNeeded). A request for a source already queued or running is
// coalesced into that job.
func (s *Syncer) SyncSource(id int64) error {
	return s.Enqueue(context.Background(), id, TriggerManual)
}

// Enqueue is SyncSource with a trigger (TriggerConnect after a new connection).
func (s *Syncer) Enqueue(ctx context.Context, id int64, trigger Trigger) error {
	_, err := s.enqueue(ctx, id, trigger)
	return err
}

func (s *Syncer) enqueue(ctx context.Context, id int64, trigger Trigger) (bool, error) {
	return s.enqueueIf(ctx, id, trigger, nil)
}

// enqueueIf is enqueue; when still is not nil it is asked again under the lock (a job of the
// source may have ended since the caller looked) and nothing is queued when it says no.
func (s *Syncer) enqueueIf(ctx context.Context, id int64, trigger Trigger, still func() bool) (bool, error) {
	src, err := s.cfg.Store.GetSource(ctx, id)
	if err != nil {
		return false, err
	}
	if err := syncable(src); err != nil {
		return false, err
	}
	s.mu.Lock()
	if s.paused > 0 {
		s.mu.Unlock()
		return false, ErrPaused
	}
	if _, ok := s.jobs[id]; ok || (still != nil && !still()) {
		s.mu.Unlock()
		return false, nil
	}
	j := &job{sourceID: id, trigger: trigger, done: make(chan struct{})}
	s.jobs[id] = j
	s.pending = append(s.pending, j)
	s.mu.Unlock()
	s.poke()
	return true, nil
}

// SyncAll asks for a manual sync of every syncable provider source and returns at once with their
// ids (those already queued or running included).
func (s *Syncer) SyncAll() ([]int64, error) {
	return s.enqueueAll(context.Background(), TriggerManual)
}

// enqueueAll enqueues every syncable source.
func (s *Syncer) enqueueAll(ctx context.Context, trigger Trigger) ([]int64, error) {
	srcs, err := s.syncableSources(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, src := range srcs {
		if _, err := s.enqueue(ctx, src.ID, trigger); err != nil {
			if errors.Is(err, records.ErrNotFound) || errors.Is(err, ErrReconnectNeeded) {
				continue // changed under us
			}
			return ids, err
		}
		ids = append(ids, src.ID)
	}
	return ids, nil
}

func (s *Syncer) syncableSources(ctx context.Context) ([]records.Source, error) {
	all, err := s.cfg.Store.ListSources(ctx, 0)
	if err != nil {
		return nil, err
	}
	var out []records.Source
	for _, src := range all {
		if syncable(src) == nil && (src.Status == records.StatusConnected || src.Status == records.StatusError) {
			out = append(out, src)
		}
	}
	slices.SortFunc(out, func(a, b records.Source) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Run supervises syncing until ctx ends: it marks runs left "running" by a crash as interrupted,
// syncs the due sources, then keeps syncing sources as they become due or are asked for. It returns
// nil once ctx has ended and every job it started has stopped (their runs recorded as cancelled).
// Run must be called at most once.
func (s *Syncer) Run(ctx context.Context) error {
	first := false
	s.runStart.Do(func() { first = true })
	if !first {
		return errors.New("syncer: Run called twice")
	}
	if n, err := s.MarkInterrupted(ctx); err != nil {
		s.log.Warn("could not mark interrupted syncs", "err", err)
	} else if n > 0 {
		s.log.Info("syncs interrupted by the last shutdown", "runs", n)
	}
	trigger := TriggerStartup
	for {
		next, err := s.scheduleDue(ctx, trigger)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("could not check which sources are due", "err", err)
		}
		trigger = TriggerSchedule
		s.dispatch(ctx)
		wait := recheckEvery
		if !next.IsZero() {
			wait = min(max(next.Sub(s.cfg.Now()), 0), recheckEvery)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.wg.Wait()
			s.dropPending()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// dispatch starts the pending jobs (each waits for a concurrency slot).
func (s *Syncer) dispatch(ctx context.Context) {
	s.mu.Lock()
	pend := s.pending
	s.pending = nil
	for _, j := range pend {
		j.dispatched = true
	}
	s.mu.Unlock()
	for _, j := range pend {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.execute(ctx, j)
		}()
	}
}

// dropPending forgets jobs that were never dispatched (Run is stopping).
func (s *Syncer) dropPending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.pending {
		j.res = RunResult{SourceID: j.sourceID, Trigger: j.trigger, Status: RunCancelled, Err: context.Canceled, Error: "cancelled"}
		delete(s.jobs, j.sourceID)
		close(j.done)
	}
	s.pending = nil
}

// execute runs one job in a concurrency slot and publishes its result.
func (s *Syncer) execute(ctx context.Context, j *job) {
	defer func() {
		s.release(j)
		close(j.done)
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	j.cancel = cancel
	if j.cancelReq {
		cancel()
	}
	s.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		j.res = RunResult{SourceID: j.sourceID, Trigger: j.trigger, Status: RunCancelled, Err: ctx.Err(), Error: "cancelled"}
		return
	}
	defer func() { <-s.sem }()
	if ctx.Err() != nil {
		j.res = RunResult{SourceID: j.sourceID, Trigger: j.trigger, Status: RunCancelled, Err: ctx.Err(), Error: "cancelled"}
		return
	}
	j.res = s.syncOne(ctx, j)
	if j.res.Added+j.res.Updated > 0 {
		// Refresh the planner's statistics after new records (bounded; only costs speed if it fails).
		if err := s.cfg.Store.Optimize(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not refresh query statistics", "err", err)
		}
	}
}

// Cancel stops the queued or running sync of a source (before it is deleted or disconnected, say)
// and reports whether there was one. A running sync ends as cancelled: the pages already written
// stay, the cursor is not moved. It does not wait for the job to end.
func (s *Syncer) Cancel(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return false
	}
	if !j.dispatched {
		s.pending = slices.DeleteFunc(s.pending, func(p *job) bool { return p == j })
		delete(s.jobs, id)
		j.res = RunResult{SourceID: id, Trigger: j.trigger, Status: RunCancelled, Err: context.Canceled, Error: "cancelled"}
		close(j.done)
		return true
	}
	if j.cancel != nil {
		j.cancel()
	} else {
		j.cancelReq = true
	}
	return true
}

// ErrPaused refuses a sync while syncing is paused (a restore is replacing the records).
var ErrPaused = &httpkit.Kind{Status: http.StatusConflict, Code: "paused", Text: "syncing is paused while a backup is restored; try again in a moment"}

// Pause cancels every queued and running sync, waits until the running ones have ended (their
// runs recorded as cancelled), and refuses new ones (ErrPaused) until resume is called. A
// restore replaces the records under it. Pauses nest; resume may be called once.
func (s *Syncer) Pause(ctx context.Context) (resume func(), err error) {
	s.mu.Lock()
	s.paused++
	var running []*job
	for _, j := range s.jobs {
		running = append(running, j)
	}
	s.mu.Unlock()
	var once sync.Once
	resume = func() {
		once.Do(func() {
			s.mu.Lock()
			s.paused--
			s.mu.Unlock()
			s.poke()
		})
	}
	for _, j := range running {
		s.Cancel(j.sourceID)
	}
	for _, j := range running {
		select {
		case <-j.done:
		case <-ctx.Done():
			resume()
			return nil, ctx.Err()
		}
	}
	return resume, nil
}

// release ends j's claim on its source (Syncing turns false; a new request starts a new job).
// It is called before the result's events are published, and again (harmlessly) at the end.
func (s *Syncer) release(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs[j.sourceID] == j {
		delete(s.jobs, j.sourceID)
		s.lastTry[j.sourceID] = s.cfg.Now()
	}
}

// RunOnce syncs the given sources (none: every syncable provider source) now and waits for the
// results, in the order of ids (of source id without ids). A source already being synced is not
// synced twice: its running job's result is returned. The error is for failures to start at all
// (listing the sources); each source's own failure is in its RunResult.
func (s *Syncer) RunOnce(ctx context.Context, ids []int64) ([]RunResult, error) {
	if len(ids) == 0 {
		srcs, err := s.syncableSources(ctx)
		if err != nil {
			return nil, err
		}
		for _, src := range srcs {
			ids = append(ids, src.ID)
		}
	}
	results := make([]RunResult, len(ids))
	jobs := make([]*job, len(ids))
	mine := make([]bool, len(ids))
	for i, id := range ids {
		src, err := s.cfg.Store.GetSource(ctx, id)
		if err == nil {
			err = syncable(src)
		}
		if err != nil {
			results[i] = RunResult{SourceID: id, Name: src.Name, Trigger: TriggerManual, Status: RunFailed, Err: err, Error: message(err)}
			continue
		}
		s.mu.Lock()
		j, ok := s.jobs[id]
		start := false
		switch {
		case s.paused > 0:
			s.mu.Unlock()
			results[i] = RunResult{SourceID: id, Name: src.Name, Trigger: TriggerManual, Status: RunFailed, Err: ErrPaused, Error: message(ErrPaused)}
			continue
		case !ok:
			j = &job{sourceID: id, trigger: TriggerManual, done: make(chan struct{}), dispatched: true}
			s.jobs[id] = j
			start = true
		case !j.dispatched:
			// Queued for Run, which has not taken it yet (or is not running): run it here.
			j.dispatched = true
			s.pending = slices.DeleteFunc(s.pending, func(p *job) bool { return p == j })
			start = true
		default:
			j.waiters++
		}
		s.mu.Unlock()
		if start {
			go s.execute(ctx, j)
		}
		jobs[i], mine[i] = j, start
	}
	for i, j := range jobs {
		if j == nil {
			continue
		}
		select {
		case <-j.done:
			results[i] = j.res
		case <-ctx.Done():
			if mine[i] {
				// Our own jobs see ctx too and finish as cancelled: wait so nothing runs on.
				<-j.done
				results[i] = j.res
				continue
			}
			results[i] = RunResult{SourceID: j.sourceID, Trigger: j.trigger, Status: RunCancelled, Err: ctx.Err(), Error: "cancelled"}
		}
	}
	return results, nil
}

// message is the user-facing text of an error.
func message(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprint(err)
}
