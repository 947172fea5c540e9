package syncer

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// stampLayout writes times as fixed-width RFC 3339 UTC text, so that they also sort as text.
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

func parseStamp(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// dueAt is when a source whose last attempt was at last becomes due (the zero time: now).
func dueAt(last time.Time, interval time.Duration) time.Time {
	if last.IsZero() {
		return time.Time{}
	}
	return last.Add(interval)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// isDue reports whether a source whose last attempt was at last is due at now.
func isDue(now, last time.Time, interval time.Duration) bool {
	return !dueAt(last, interval).After(now)
}

// runStore is the syncer's own table, sync_runs (one row per attempt), in the record database.
type runStore struct{ db *db.DB }

// lastAttempts returns, per source, the start of its latest run that ended ok or failed
// (cancelled and interrupted runs do not count).
func (rs runStore) lastAttempts(ctx context.Context) (map[int64]string, error) {
	rows, err := rs.db.Read.QueryContext(ctx, `SELECT source_id, max(started_at) FROM sync_runs
		WHERE status IN ('ok', 'failed') GROUP BY source_id`)
	if err != nil {
		return nil, fmt.Errorf("read the last sync runs: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var at string
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = at
	}
	return out, rows.Err()
}

type dueInfo struct {
	id   int64
	last time.Time // last completed attempt
}

// dueList reads every syncable source with its last completed attempt: last_sync or the start of
// its latest run that ended ok or failed (cancelled and interrupted runs do not count, so a sync
// cut short by a quit or crash is due again at the next start).
func (s *Syncer) dueList(ctx context.Context) ([]dueInfo, error) {
	srcs, err := s.cfg.Store.SyncableSources(ctx)
	if err != nil {
		return nil, err
	}
	lastRuns, err := s.runs.lastAttempts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]dueInfo, 0, len(srcs))
	for _, src := range srcs {
		d := dueInfo{id: src.ID}
		for _, t := range []time.Time{parseStamp(src.LastSync), parseStamp(lastRuns[src.ID])} {
			if t.After(d.last) {
				d.last = t
			}
		}
		out = append(out, d)
	}
	s.mu.Lock()
	for i := range out {
		if t := s.lastTry[out[i].id]; t.After(out[i].last) {
			out[i].last = t
		}
	}
	s.mu.Unlock()
	return out, nil
}

// scheduleDue enqueues the due sources and returns when the next one becomes due (zero: none).
func (s *Syncer) scheduleDue(ctx context.Context, trigger Trigger) (time.Time, error) {
	list, err := s.dueList(ctx)
	if err != nil {
		return time.Time{}, err
	}
	now := s.cfg.Now()
	var next time.Time
	for _, d := range list {
		if isDue(now, d.last, s.every()) {
			// A job of this source may end between dueList and here: then its attempt counts.
			still := func() bool { return isDue(now, maxTime(d.last, s.lastTry[d.id]), s.every()) }
			if _, err := s.enqueueIf(ctx, d.id, trigger, still); err != nil && ctx.Err() == nil {
				s.log.Debug("due source not queued", "source_id", d.id, "err", err)
			}
			continue
		}
		if at := dueAt(d.last, s.every()); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, nil
}

// MarkInterrupted turns runs still marked running (the process stopped in the middle) into
// interrupted runs. Run calls it at start; the one-shot command line calls it before RunOnce.
func (s *Syncer) MarkInterrupted(ctx context.Context) (int64, error) {
	var n int64
	err := s.runs.db.WriteTx(ctx, func(tx *sql.Tx) error {
		s.mu.Lock()
		busy := make([]any, 0, len(s.jobs))
		for id := range s.jobs {
			busy = append(busy, id)
		}
		s.mu.Unlock()
		q := `UPDATE sync_runs SET status = 'interrupted', finished_at = coalesce(finished_at, ?),
			error = coalesce(error, 'The app stopped before this sync finished.') WHERE status = 'running'`
		args := []any{stamp(s.cfg.Now())}
		if len(busy) > 0 {
			q += ` AND source_id NOT IN (?` + strings.Repeat(",?", len(busy)-1) + `)`
			args = append(args, busy...)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return db.Explain(err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

func (s *Syncer) insertRun(ctx context.Context, sourceID int64, trigger Trigger, start time.Time) (int64, error) {
	var id int64
	err := s.runs.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO sync_runs(source_id, trigger_kind, started_at, status) VALUES (?,?,?,'running')`,
			sourceID, string(trigger), stamp(start))
		if err != nil {
			return db.Explain(err)
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record the sync run: %w", err)
	}
	return id, nil
}

func finishRunTx(ctx context.Context, tx *sql.Tx, runID int64, end time.Time, res *RunResult) error {
	var errText any
	if res.Error != "" {
		errText = res.Error
	} else if len(res.Warnings) > 0 {
		errText = warningText(res.Warnings)
	}
	_, err := tx.ExecContext(ctx, `UPDATE sync_runs SET finished_at = ?, status = ?, added = ?, updated = ?, unchanged = ?,
		requests = ?, error = ? WHERE id = ?`,
		stamp(end), res.Status, res.Added, res.Updated, res.Unchanged, res.Requests, errText, runID)
	return db.Explain(err)
}

// warningText joins warnings into one message for the run's error column and last_error.
func warningText(ws []string) string {
	const maxShown = 5
	shown := ws
	if len(shown) > maxShown {
		shown = shown[:maxShown]
	}
	msg := "Synced with warnings: " + strings.Join(shown, " ")
	if len(ws) > maxShown {
		msg += fmt.Sprintf(" (%d more)", len(ws)-maxShown)
	}
	return msg
}

// Run is one sync run as the history shows it.
type Run struct {
	ID         int64   `json:"id"`
	SourceID   int64   `json:"source_id"`
	Trigger    string  `json:"trigger"`
	StartedAt  string  `json:"started_at"`
	FinishedAt *string `json:"finished_at"`
	Status     string  `json:"status"`
	Added      int     `json:"added"`
	Updated    int     `json:"updated"`
	Unchanged  int     `json:"unchanged"`
	Requests   int     `json:"requests"`
	// Error is why the run failed (or was cut short); Warnings what went wrong in a run that still
	// ended ok (a resource type the provider refused, say).
	Error    *string `json:"error"`
	Warnings *string `json:"warnings"`
}

// Runs returns a source's sync history, newest first, at most limit runs (default 50, max 500).
func (s *Syncer) Runs(ctx context.Context, sourceID int64, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	rows, err := s.runs.db.Read.QueryContext(ctx, `SELECT id, source_id, trigger_kind, started_at, finished_at, status,
		added, updated, unchanged, requests, error FROM sync_runs WHERE source_id = ? ORDER BY started_at DESC, id DESC LIMIT ?`, sourceID, limit)
	if err != nil {
		return nil, fmt.Errorf("read sync history: %w", err)
	}
	defer rows.Close()
	out := []Run{}
	for rows.Next() {
		var r Run
		var msg *string
		if err := rows.Scan(&r.ID, &r.SourceID, &r.Trigger, &r.StartedAt, &r.FinishedAt, &r.Status,
			&r.Added, &r.Updated, &r.Unchanged, &r.Requests, &msg); err != nil {
			return nil, err
		}
		if r.Status == RunOK {
			r.Warnings = msg
		} else {
			r.Error = msg
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// syncState is the JSON kept in sources.sync_state.
type syncState struct {
	V    int    `json:"v"`
	Mode string `json:"mode"` // everything | search
	// Since is the $everything cursor; Types the search cursor per resource type. Both are server
	// times (Bundle.meta.lastUpdated of the first page of the last successful sync).
	Since  string            `json:"since,omitempty"`
	Types  map[string]string `json:"types,omitempty"`
	FullAt string            `json:"full_at,omitempty"` // local time of the last complete full sync
	// EverythingRefused: the server lists $everything but refused it; search until the next full sync.
	EverythingRefused bool `json:"everything_refused,omitempty"`
}

const (
	modeEverything = "everything"
	modeSearch     = "search"
)

func loadState(raw string) *syncState {
	if raw == "" {
		return nil
	}
	var st syncState
	if json.Unmarshal([]byte(raw), &st) != nil || st.V != 1 {
		return nil // unknown or damaged: a full sync rebuilds it
	}
	return &st
}

func (st *syncState) encode() string {
	b, _ := json.Marshal(st)
	return string(b)
}

// sourceStatusTx sets status, last_error and (when ok) last_sync and sync_state.
func (s *Syncer) sourceStatusTx(ctx context.Context, tx *sql.Tx, id int64, status, lastErr string, lastSync *time.Time, state *syncState) error {
	u := records.SourceUpdate{Status: &status, LastError: &lastErr}
	if lastSync != nil {
		v := stamp(*lastSync)
		u.LastSync = &v
	}
	if state != nil {
		v := state.encode()
		u.SyncState = &v
	}
	return s.cfg.Store.UpdateSourceTx(ctx, tx, id, u)
}
