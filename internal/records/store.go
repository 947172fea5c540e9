// Package records is the record store: sources (a file import or a provider connection), the
// FHIR resources they hold with their index fields, codes and full-text index, and the queries the
// API serves (lists, timeline, search, counts, summary, export). Writes go through a Writer bound
// to one write transaction, so an import or a sync page is all-or-nothing.
package records

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Source kinds and statuses.
const (
	KindManual   = "manual"
	KindProvider = "provider"

	StatusOK              = "ok"
	StatusConnected       = "connected"
	StatusReconnectNeeded = "reconnect_needed"
	StatusError           = "error"
)

// ErrNotFound is returned when a source or resource does not exist.
var ErrNotFound error = &httpkit.Kind{Status: http.StatusNotFound, Code: "not_found", Text: "not found"}

// Store reads and writes records.
type Store struct {
	db  *db.DB
	now func() time.Time

	mu      sync.Mutex
	writers map[*sql.Tx][]*Writer // the Writers of each open WriteTx, finished before it commits

	// Reads kept until the next write (kept.go): a person's doctors and clinics (directory.go)
	// and the people list (people.go).
	directories *kept[int64, map[string][]string]
	people      *kept[ProfileQuery, []Profile]
}

// New returns a Store on d.
func New(d *db.DB) *Store {
	return &Store{db: d, now: time.Now, writers: map[*sql.Tx][]*Writer{},
		directories: newKept[int64, map[string][]string](64), people: newKept[ProfileQuery, []Profile](8)}
}

// WriteTx runs fn in one write transaction (the database's single writer). Store methods that
// take a *sql.Tx run inside it; a caller with tables of its own (sync runs, webhooks) may write
// those in the same transaction, but never names the record tables itself. Writers made in it
// (NewWriter) are finished (their counts stored) after fn and before the commit.
func (s *Store) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		s.mu.Lock()
		s.writers[tx] = []*Writer{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.writers, tx)
			s.mu.Unlock()
		}()
		if err := fn(tx); err != nil {
			return err
		}
		s.mu.Lock()
		ws := s.writers[tx]
		s.mu.Unlock()
		for _, w := range ws {
			if err := w.Finish(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// Optimize refreshes the query planner's statistics (after a large import or sync).
func (s *Store) Optimize(ctx context.Context) error { return s.db.Optimize(ctx) }

// Stamp is the store's clock as stored in updated_at columns (RFC 3339, UTC).
func (s *Store) Stamp() string { return s.stamp() }

// SetClock replaces time.Now (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

func (s *Store) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

// Source is a place records come from.
type Source struct {
	ID            int64          `json:"id"`
	Kind          string         `json:"kind"`
	Name          string         `json:"name"`
	Status        string         `json:"status"`
	Syncing       bool           `json:"syncing"`
	ProfileID     *int64         `json:"profile_id"`
	PatientID     *string        `json:"patient_id"`
	ProviderID    *string        `json:"provider_id"`
	FHIRBase      *string        `json:"fhir_base"`
	Scopes        *string        `json:"scopes"`
	LastSync      *string        `json:"last_sync"`
	LastError     *string        `json:"last_error"`
	CreatedAt     string         `json:"created_at"`
	UpdatedAt     string         `json:"updated_at"`
	ResourceCount int            `json:"resource_count"`
	Counts        map[string]int `json:"counts,omitempty"`
	// Self: the person's own entries ("Entered by me"); only their records can be changed.
	Self        bool   `json:"self"`
	ContentHash string `json:"-"`
	SyncState   string `json:"-"`
	// Provider sources: the token endpoint recorded at connect (refreshes go only there), the
	// OAuth client id, whether refreshes go through the Lighthouse, and the keyring key of the
	// tokens. Never secrets themselves.
	TokenURL     string `json:"-"`
	ClientID     string `json:"-"`
	Confidential bool   `json:"confidential"`
	TokenKey     string `json:"-"`
}

// NewSource describes a source to create.
type NewSource struct {
	Kind         string
	Name         string
	Status       string
	ProfileID    *int64
	PatientID    string
	ProviderID   string
	FHIRBase     string
	Scopes       string
	ContentHash  string
	TokenURL     string
	ClientID     string
	Confidential bool
	TokenKey     string
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateSource inserts a source inside tx.
func (s *Store) CreateSource(ctx context.Context, tx *sql.Tx, n NewSource) (int64, error) {
	if n.Kind != KindManual && n.Kind != KindProvider {
		return 0, fmt.Errorf("source kind %q", n.Kind)
	}
	if n.Status == "" {
		n.Status = StatusOK
		if n.Kind == KindProvider {
			n.Status = StatusConnected
		}
	}
	now := s.stamp()
	res, err := tx.ExecContext(ctx, `INSERT INTO sources(kind, name, status, profile_id, patient_id, provider_id, fhir_base, scopes, content_hash,
		token_url, client_id, confidential, token_key, created_at, updated_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		n.Kind, n.Name, n.Status, n.ProfileID, nullStr(n.PatientID), nullStr(n.ProviderID), nullStr(n.FHIRBase), nullStr(n.Scopes), nullStr(n.ContentHash),
		nullStr(n.TokenURL), nullStr(n.ClientID), n.Confidential, nullStr(n.TokenKey), now, now)
	if err != nil {
		return 0, fmt.Errorf("create source: %w", db.Explain(err))
	}
	return res.LastInsertId()
}

const sourceCols = `s.id, s.kind, s.name, s.status, s.profile_id, s.patient_id, s.provider_id, s.fhir_base, s.scopes,
	s.last_sync, s.last_error, s.created_at, s.updated_at, coalesce(s.content_hash,''), coalesce(s.sync_state,''),
	coalesce(s.token_url,''), coalesce(s.client_id,''), s.confidential, coalesce(s.token_key,''),
	(SELECT coalesce(sum(c.n), 0) FROM resource_counts c WHERE c.source_id = s.id AND c.profile_id = -1)`

type rowScanner interface{ Scan(...any) error }

func scanSource(r rowScanner) (Source, error) {
	var src Source
	err := r.Scan(&src.ID, &src.Kind, &src.Name, &src.Status, &src.ProfileID, &src.PatientID, &src.ProviderID,
		&src.FHIRBase, &src.Scopes, &src.LastSync, &src.LastError, &src.CreatedAt, &src.UpdatedAt,
		&src.ContentHash, &src.SyncState, &src.TokenURL, &src.ClientID, &src.Confidential, &src.TokenKey, &src.ResourceCount)
	src.Self = IsSelfSource(src)
	return src, err
}

// Filter narrows queries to one source and/or one person.
type Filter struct {
	SourceID  int64
	ProfileID int64
}

func (f Filter) where(alias string, args *[]any) string {
	var parts []string
	if f.SourceID != 0 {
		parts = append(parts, alias+"source_id = ?")
		*args = append(*args, f.SourceID)
	}
	if f.ProfileID != 0 {
		parts = append(parts, alias+"profile_id = ?")
		*args = append(*args, f.ProfileID)
	}
	if len(parts) == 0 {
		return ""
	}
	return " AND " + strings.Join(parts, " AND ")
}

// ListSources returns every source, newest first; with a profile, the sources that belong to the
// person or hold any of the person's records.
func (s *Store) ListSources(ctx context.Context, profileID int64) ([]Source, error) {
	q := `SELECT ` + sourceCols + ` FROM sources s`
	var args []any
	if profileID != 0 {
		q += ` WHERE s.profile_id = ? OR EXISTS (SELECT 1 FROM resource_counts c WHERE c.source_id = s.id AND c.profile_id = ? AND c.n > 0)`
		args = append(args, profileID, profileID)
	}
	q += ` ORDER BY s.id DESC`
	rows, err := s.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	defer rows.Close()
	out := []Source{}
	for rows.Next() {
		src, err := scanSource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// GetSource returns one source with its counts by type.
func (s *Store) GetSource(ctx context.Context, id int64) (Source, error) {
	src, err := scanSource(s.db.Read.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM sources s WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return src, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return src, err
	}
	src.Counts, err = s.Counts(ctx, Filter{SourceID: id})
	return src, err
}

// GetSourceTx reads a source inside a write transaction (no counts).
func (s *Store) GetSourceTx(ctx context.Context, tx *sql.Tx, id int64) (Source, error) {
	src, err := scanSource(tx.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM sources s WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return src, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return src, err
}

// FindManualSourceByHash returns the manual source holding content with this hash, if any.
func (s *Store) FindManualSourceByHash(ctx context.Context, tx *sql.Tx, hash string) (int64, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM sources WHERE kind = 'manual' AND content_hash = ? ORDER BY id LIMIT 1`, hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

// RenameSource changes a source's display name.
func (s *Store) RenameSource(ctx context.Context, id int64, name string) (Source, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return Source{}, fmt.Errorf("a source name must be 1 to 200 characters")
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sources SET name = ?, updated_at = ? WHERE id = ?`, name, s.stamp(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %d: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return Source{}, err
	}
	return s.GetSource(ctx, id)
}

// UpdateSource applies fn's changes to the mutable fields of a source (sync state, status, ...).
type SourceUpdate struct {
	Status       *string
	LastSync     *string
	LastError    *string // "" clears
	SyncState    *string
	Scopes       *string
	PatientID    *string
	ProfileID    *int64
	ClearProfile bool
}

// UpdateSource writes the given fields.
func (s *Store) UpdateSource(ctx context.Context, id int64, u SourceUpdate) error {
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error { return s.UpdateSourceTx(ctx, tx, id, u) })
}

// UpdateSourceTx is UpdateSource inside an existing transaction.
func (s *Store) UpdateSourceTx(ctx context.Context, tx *sql.Tx, id int64, u SourceUpdate) error {
	sets := []string{"updated_at = ?"}
	args := []any{s.stamp()}
	add := func(col string, v any) { sets = append(sets, col+" = ?"); args = append(args, v) }
	if u.Status != nil {
		add("status", *u.Status)
	}
	if u.LastSync != nil {
		add("last_sync", *u.LastSync)
	}
	if u.LastError != nil {
		add("last_error", nullStr(*u.LastError))
	}
	if u.SyncState != nil {
		add("sync_state", nullStr(*u.SyncState))
	}
	if u.Scopes != nil {
		add("scopes", nullStr(*u.Scopes))
	}
	if u.PatientID != nil {
		add("patient_id", nullStr(*u.PatientID))
	}
	if u.ProfileID != nil {
		add("profile_id", *u.ProfileID)
	}
	if u.ClearProfile {
		add("profile_id", nil)
	}
	args = append(args, id)
	res, err := tx.ExecContext(ctx, `UPDATE sources SET `+strings.Join(sets, ", ")+` WHERE id = ?`, args...)
	if err != nil {
		return fmt.Errorf("update source %d: %w", id, db.Explain(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteSource removes a source and every record in it in one transaction, and says what went.
func (s *Store) DeleteSource(ctx context.Context, id int64) (map[string]int, error) {
	var counts map[string]int
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		counts, err = countsQ(ctx, tx, Filter{SourceID: id})
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE id = ?`, id)
		if err != nil {
			return db.Explain(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %d: %w", id, ErrNotFound)
		}
		return nil
	})
	return counts, err
}

// DeleteResourcesOfSource removes a source's records but keeps the source (disconnect + delete).
func (s *Store) DeleteResourcesOfSource(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE source_id = ?`, id)
		if err != nil {
			return db.Explain(err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Counts returns resource counts by type.
func (s *Store) Counts(ctx context.Context, f Filter) (map[string]int, error) {
	c, err := countsQ(ctx, s.db.Read, f)
	if err == nil && f.ProfileID != 0 && f.SourceID == 0 {
		err = s.addPersonDirectoryCounts(ctx, f.ProfileID, c) // directory.go
	}
	return c, err
}

func countsQ(ctx context.Context, q querier, f Filter) (map[string]int, error) {
	// resource_counts is kept by the record Writer and by triggers on deletes and moves
	// (migrations 5, 6): no scan of the records. Everyone's counts are the -1 rows.
	profile := int64(everyoneCounts)
	if f.ProfileID != 0 {
		profile = f.ProfileID
	}
	where := []string{"profile_id = ?"}
	args := []any{profile}
	if f.SourceID != 0 {
		where = append(where, "source_id = ?")
		args = append(args, f.SourceID)
	}
	query := `SELECT type, sum(n) FROM resource_counts WHERE ` + strings.Join(where, " AND ")
	rows, err := q.QueryContext(ctx, query+` GROUP BY type HAVING sum(n) > 0`, args...)
	if err != nil {
		return nil, fmt.Errorf("count resources: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, rows.Err()
}

// Row is one resource ready to store.
type Row struct {
	Type, ID  string
	Raw       string
	Hash      []byte // Hash(Raw); nil: the Writer computes it
	Index     fhir.Index
	ProfileID *int64
}

// Outcome of a Put.
type Outcome int

// Put outcomes.
const (
	Added Outcome = iota
	Updated
	Unchanged
)

// Writer stores resources of one source inside one write transaction. It keeps the full-text
// index and the per-type counts of what it writes itself (no trigger fires for its inserts:
// migration 6), so Finish must run before the transaction commits.
type Writer struct {
	tx       *sql.Tx
	sourceID int64
	fresh    bool // the source is new in this transaction: no lookup needed
	now      string
	lookup   *sql.Stmt
	insert   *sql.Stmt
	update   *sql.Stmt
	profile  *sql.Stmt
	seen     *sql.Stmt
	delCodes *sql.Stmt
	addCode  *sql.Stmt
	ftsAdd   *sql.Stmt
	ftsDel   *sql.Stmt
	counts   map[countKey]int // records added, by person and type, not yet in resource_counts
}

type countKey struct {
	profile int64 // 0: nobody
	typ     string
}

// NewWriter prepares a Writer in a transaction of Store.WriteTx (which finishes it before the
// commit). fresh must only be true when the source was created in tx and the caller guarantees
// every (type, id) is written once.
func (s *Store) NewWriter(ctx context.Context, tx *sql.Tx, sourceID int64, fresh bool) (*Writer, error) {
	w := &Writer{tx: tx, sourceID: sourceID, fresh: fresh, now: s.stamp(), counts: map[countKey]int{}}
	s.mu.Lock()
	ws, ok := s.writers[tx]
	if ok {
		s.writers[tx] = append(ws, w)
	}
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("records: a Writer needs a transaction of Store.WriteTx")
	}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	w.lookup = prep(`SELECT id, hash, profile_id, title, search_text FROM resources WHERE source_id = ? AND type = ? AND fhir_id = ?`)
	w.insert = prep(`INSERT INTO resources(source_id, type, fhir_id, version, last_updated, sort_date, title, status, category, code,
		patient_ref, profile_id, search_text, hash, raw, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	// Without profile_id: an update that names no counted column fires no trigger (migration 6).
	w.update = prep(`UPDATE resources SET version=?, last_updated=?, sort_date=?, title=?, status=?, category=?, code=?,
		patient_ref=?, search_text=?, hash=?, raw=?, missing_since=NULL, updated_at=? WHERE id=?`)
	w.profile = prep(`UPDATE resources SET profile_id = ? WHERE id = ?`) // its count trigger moves the count
	w.seen = prep(`UPDATE resources SET missing_since = NULL WHERE id = ? AND missing_since IS NOT NULL`)
	w.delCodes = prep(`DELETE FROM resource_codes WHERE resource_id = ?`)
	w.addCode = prep(`INSERT OR IGNORE INTO resource_codes(resource_id, system, code) VALUES (?,?,?)`)
	w.ftsAdd = prep(`INSERT INTO resources_fts(rowid, title, search_text) VALUES (?,?,?)`)
	w.ftsDel = prep(`INSERT INTO resources_fts(resources_fts, rowid, title, search_text) VALUES ('delete',?,?,?)`)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("prepare writer: %w", db.Explain(err))
	}
	return w, nil
}

// Close releases the prepared statements.
func (w *Writer) Close() {
	for _, st := range []*sql.Stmt{w.lookup, w.insert, w.update, w.profile, w.seen, w.delCodes, w.addCode, w.ftsAdd, w.ftsDel} {
		if st != nil {
			st.Close()
		}
	}
}

// Finish adds the counts of the records written so far to resource_counts: the person's row
// and everyone's (profile_id -1, migration 6). Store.WriteTx calls it before the commit; calling
// it earlier is allowed.
func (w *Writer) Finish(ctx context.Context) error {
	if len(w.counts) == 0 {
		return nil
	}
	st, err := w.tx.PrepareContext(ctx, `INSERT INTO resource_counts(source_id, profile_id, type, n) VALUES (?,?,?,?)
		ON CONFLICT (source_id, profile_id, type) DO UPDATE SET n = n + excluded.n`)
	if err != nil {
		return fmt.Errorf("store counts: %w", db.Explain(err))
	}
	defer st.Close()
	everyone := map[string]int{}
	for k, n := range w.counts {
		if _, err := st.ExecContext(ctx, w.sourceID, k.profile, k.typ, n); err != nil {
			return fmt.Errorf("store counts: %w", db.Explain(err))
		}
		everyone[k.typ] += n
	}
	for typ, n := range everyone {
		if _, err := st.ExecContext(ctx, w.sourceID, everyoneCounts, typ, n); err != nil {
			return fmt.Errorf("store counts: %w", db.Explain(err))
		}
	}
	clear(w.counts)
	return nil
}

// everyoneCounts is the profile_id of resource_counts' rows for everyone (each source's sum of
// all its people and of nobody, migration 6); 0 is nobody.
const everyoneCounts = -1

// Hash is the content hash stored with a resource.
func Hash(raw string) []byte {
	h := sha256.Sum256([]byte(raw))
	return h[:]
}

func profileOf(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// Put inserts or updates one resource; an identical stored copy is left alone. r.Hash is used
// when set (the caller may hash on another goroutine), else the hash is computed here.
func (w *Writer) Put(ctx context.Context, r Row) (Outcome, error) {
	hash := r.Hash
	if hash == nil {
		hash = Hash(r.Raw)
	}
	ix := &r.Index
	if !w.fresh {
		var id int64
		var old []byte
		var oldProfile *int64
		var oldTitle, oldText string
		err := w.lookup.QueryRowContext(ctx, w.sourceID, r.Type, r.ID).Scan(&id, &old, &oldProfile, &oldTitle, &oldText)
		switch {
		case err == nil:
			if string(old) == string(hash) {
				if _, err := w.seen.ExecContext(ctx, id); err != nil {
					return 0, db.Explain(err)
				}
				return Unchanged, nil
			}
			if _, err := w.update.ExecContext(ctx, nullStr(ix.VersionID), nullStr(ix.LastUpdated), ix.Date, ix.Title,
				nullStr(ix.Status), nullStr(ix.Category), nullStr(ix.Code), nullStr(ix.Patient),
				ix.Text, hash, r.Raw, w.now, id); err != nil {
				return 0, fmt.Errorf("update %s/%s: %w", r.Type, r.ID, db.Explain(err))
			}
			if profileOf(oldProfile) != profileOf(r.ProfileID) {
				if _, err := w.profile.ExecContext(ctx, r.ProfileID, id); err != nil {
					return 0, fmt.Errorf("update %s/%s: %w", r.Type, r.ID, db.Explain(err))
				}
			}
			if oldTitle != ix.Title || oldText != ix.Text {
				if _, err := w.ftsDel.ExecContext(ctx, id, oldTitle, oldText); err != nil {
					return 0, fmt.Errorf("update %s/%s: search index: %w", r.Type, r.ID, db.Explain(err))
				}
				if _, err := w.ftsAdd.ExecContext(ctx, id, ix.Title, ix.Text); err != nil {
					return 0, fmt.Errorf("update %s/%s: search index: %w", r.Type, r.ID, db.Explain(err))
				}
			}
			if _, err := w.delCodes.ExecContext(ctx, id); err != nil {
				return 0, db.Explain(err)
			}
			return Updated, w.codes(ctx, id, ix.Code, ix.Codes)
		case !errors.Is(err, sql.ErrNoRows):
			return 0, db.Explain(err)
		}
	}
	res, err := w.insert.ExecContext(ctx, w.sourceID, r.Type, r.ID, nullStr(ix.VersionID), nullStr(ix.LastUpdated), ix.Date,
		ix.Title, nullStr(ix.Status), nullStr(ix.Category), nullStr(ix.Code), nullStr(ix.Patient), r.ProfileID, ix.Text,
		hash, r.Raw, w.now, w.now)
	if err != nil {
		return 0, fmt.Errorf("store %s/%s: %w", r.Type, r.ID, db.Explain(err))
	}
	id, _ := res.LastInsertId()
	if _, err := w.ftsAdd.ExecContext(ctx, id, ix.Title, ix.Text); err != nil {
		return 0, fmt.Errorf("store %s/%s: search index: %w", r.Type, r.ID, db.Explain(err))
	}
	w.counts[countKey{profileOf(r.ProfileID), r.Type}]++
	return Added, w.codes(ctx, id, ix.Code, ix.Codes)
}

// codes stores the codings of a record besides its primary one (resources.code: migration 6).
func (w *Writer) codes(ctx context.Context, id int64, primary string, codes []fhir.Coding) error {
	for _, c := range codes {
		if c.System+"|"+c.Code == primary {
			continue
		}
		if _, err := w.addCode.ExecContext(ctx, id, c.System, c.Code); err != nil {
			return fmt.Errorf("store codes: %w", db.Explain(err))
		}
	}
	return nil
}

// Item is one resource as the API returns it.
type Item struct {
	SourceID    int64           `json:"source_id"`
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Version     *string         `json:"version"`
	Date        *string         `json:"date"`
	LastUpdated *string         `json:"last_updated"`
	Title       string          `json:"title"`
	Patient     *string         `json:"patient"`
	ProfileID   *int64          `json:"profile_id"`
	Missing     bool            `json:"missing,omitempty"`
	Resource    json.RawMessage `json:"resource"`
	rowID       int64
	sortKey     string
	category    string // the dashboard's results: vital-signs, laboratory, ...
}

const itemCols = `r.id, r.source_id, r.type, r.fhir_id, r.version, r.sort_date, r.last_updated, r.title, r.patient_ref, r.profile_id, r.missing_since IS NOT NULL, r.raw`

func scanItem(rs rowScanner) (Item, error) {
	var it Item
	var date string
	var raw string
	err := rs.Scan(&it.rowID, &it.SourceID, &it.Type, &it.ID, &it.Version, &date, &it.LastUpdated, &it.Title, &it.Patient, &it.ProfileID, &it.Missing, &raw)
	if err != nil {
		return it, err
	}
	it.sortKey = date
	if date != "" {
		it.Date = &date
	}
	it.Resource = json.RawMessage(raw)
	return it, nil
}

func collect(rows *sql.Rows) ([]Item, error) {
	defer rows.Close()
	out := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}
