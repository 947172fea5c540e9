package gateway

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	// The PostgreSQL driver "pgx" is registered by the headless build (internal/cli/postgres.go).
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// migrationLockID is the PostgreSQL advisory lock key that serialises migrations when several
// gateway processes start on one database at once.
const migrationLockID int64 = 0x6c69676874686f75 // "lighthou"

const tsLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(tsLayout) }

var errNotFound = errors.New("not found")

// store is the gateway's database: SQLite (one writer connection plus a small read pool on the
// same file) or PostgreSQL (one pool, shared by every gateway process on that database). The SQL
// text is the same for both; the only dialect difference is the row lock in admit.
type store struct {
	dialect dialect
	read    *sql.DB
	write   *sql.DB
}

// isPostgresDSN reports whether dsn names a PostgreSQL database rather than a SQLite file.
func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func openStore(ctx context.Context, dsn string) (*store, error) {
	s := &store{}
	if isPostgresDSN(dsn) {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(20)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s.dialect, s.read, s.write = dialectPostgres, db, db
	} else {
		if dsn == "" {
			return nil, errors.New("no database path")
		}
		if strings.ContainsAny(dsn, "?#") {
			return nil, fmt.Errorf("database path %q must not contain '?' or '#'", dsn)
		}
		if err := privateFile(dsn); err != nil {
			return nil, err
		}
		// WAL with synchronous=FULL: a committed admission survives a power cut.
		const pragmas = "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
			"&_pragma=foreign_keys(1)&_txlock=immediate"
		w, err := sql.Open("sqlite", dsn+pragmas)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		w.SetMaxOpenConns(1) // one writer: admissions are serialised in process, BEGIN IMMEDIATE across processes
		r, err := sql.Open("sqlite", dsn+pragmas)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		r.SetMaxOpenConns(4)
		s.dialect, s.read, s.write = dialectSQLite, r, w
	}
	if err := s.write.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.dialect == dialectSQLite {
		// SQLite creates the -wal and -shm files with the mode of the database file; tighten any
		// left from an earlier, looser version.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Chmod(dsn+suffix, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.Close()
				return nil, fmt.Errorf("database file: %w", err)
			}
		}
	}
	return s, nil
}

// privateFile makes sure the SQLite database at path, which holds the ticket key and the
// administrators' emails, is readable by its owner only whatever the umask: missing parent
// folders are created 0700, a missing file is created 0600, an existing one is set to 0600.
func privateFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("database folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	return nil
}

func (s *store) Close() error {
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		text, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(text)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the embedded migrations that are not applied yet, all in one transaction. On
// PostgreSQL an advisory transaction lock makes concurrent starts wait for each other; on SQLite
// BEGIN IMMEDIATE does the same.
func (s *store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
			m.version, m.name, formatTime(time.Now())); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

type installation struct {
	ID         string
	SecretHash string // hex SHA-256
	Name       string
	Email      string
	CreatedAt  time.Time
	Revoked    bool
	LastSeen   time.Time // zero: never; updated at most once per lastSeenGranularity
}

func (s *store) createInstallation(ctx context.Context, in installation) error {
	_, err := s.write.ExecContext(ctx,
		"INSERT INTO installations (id, secret_hash, name, email, created_at) VALUES ($1, $2, $3, $4, $5)",
		in.ID, in.SecretHash, in.Name, in.Email, formatTime(in.CreatedAt))
	if err != nil {
		return fmt.Errorf("create installation: %w", err)
	}
	return nil
}

func (s *store) installation(ctx context.Context, id string) (installation, error) {
	in := installation{ID: id}
	var revoked, lastSeen sql.NullString
	err := s.read.QueryRowContext(ctx,
		"SELECT secret_hash, name, email, revoked_at, last_seen FROM installations WHERE id = $1", id).Scan(&in.SecretHash, &in.Name, &in.Email, &revoked, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return in, errNotFound
	}
	if err != nil {
		return in, fmt.Errorf("look up installation: %w", err)
	}
	in.Revoked = revoked.Valid
	if lastSeen.Valid {
		in.LastSeen, _ = time.Parse(tsLayout, lastSeen.String)
	}
	return in, nil
}

// touchInstallation records that the installation made a request at now, at most once per
// lastSeenGranularity (callers check in.LastSeen first; the WHERE makes racing instances write once).
func (s *store) touchInstallation(ctx context.Context, id string, now time.Time) error {
	_, err := s.write.ExecContext(ctx, `UPDATE installations SET last_seen = $2
		WHERE id = $1 AND (last_seen IS NULL OR last_seen < $3)`, id, formatTime(now), formatTime(now.Add(-lastSeenGranularity)))
	if err != nil {
		return fmt.Errorf("touch installation: %w", err)
	}
	return nil
}

// setRevoked revokes (at now) or unrevokes an installation; errNotFound when there is none.
func (s *store) setRevoked(ctx context.Context, id string, revoke bool, now time.Time) error {
	var r sql.Result
	var err error
	if revoke {
		r, err = s.write.ExecContext(ctx, "UPDATE installations SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", id, formatTime(now))
	} else {
		r, err = s.write.ExecContext(ctx, "UPDATE installations SET revoked_at = NULL WHERE id = $1", id)
	}
	if err != nil {
		return fmt.Errorf("revoke installation: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("revoke installation: %w", err)
	} else if n == 0 {
		return errNotFound
	}
	return nil
}

// forget removes userKey from (installation, provider) and lowers the count; it reports whether
// the key was known. The counter row is locked as in admit, so a forget and an admission never
// interleave.
func (s *store) forget(ctx context.Context, installationID, providerID, userKey string) (bool, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("forget: %w", err)
	}
	defer tx.Rollback()
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	var count int
	err = tx.QueryRowContext(ctx, `SELECT user_count FROM user_counters WHERE installation_id = $1 AND provider_id = $2`+lock,
		installationID, providerID).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("forget: lock counter: %w", err)
	}
	r, err := tx.ExecContext(ctx, `DELETE FROM user_keys WHERE installation_id = $1 AND provider_id = $2 AND user_key = $3`,
		installationID, providerID, userKey)
	if err != nil {
		return false, fmt.Errorf("forget: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("forget: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE user_counters SET user_count = user_count - 1
		WHERE installation_id = $1 AND provider_id = $2 AND user_count > 0`, installationID, providerID); err != nil {
		return false, fmt.Errorf("forget: count: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("forget: commit: %w", err)
	}
	return true, nil
}

// providerUsage is one (installation, provider) counter, for the operator.
type providerUsage struct {
	ProviderID string
	Count      int
	Limit      int // the limit last checked; 0 when unknown
}

// installationSummary is one row of `lighthouse admin installations`.
type installationSummary struct {
	installation
	Usage []providerUsage
}

func (s *store) installations(ctx context.Context) ([]installationSummary, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, name, email, created_at, revoked_at, last_seen FROM installations ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	var out []installationSummary
	byID := map[string]int{}
	for rows.Next() {
		var in installationSummary
		var created string
		var revoked, lastSeen sql.NullString
		if err := rows.Scan(&in.ID, &in.Name, &in.Email, &created, &revoked, &lastSeen); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list installations: %w", err)
		}
		in.CreatedAt, _ = time.Parse(tsLayout, created)
		in.Revoked = revoked.Valid
		if lastSeen.Valid {
			in.LastSeen, _ = time.Parse(tsLayout, lastSeen.String)
		}
		byID[in.ID] = len(out)
		out = append(out, in)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	rows, err = s.read.QueryContext(ctx, `SELECT installation_id, provider_id, user_count, user_limit FROM user_counters ORDER BY installation_id, provider_id`)
	if err != nil {
		return nil, fmt.Errorf("list usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var u providerUsage
		if err := rows.Scan(&id, &u.ProviderID, &u.Count, &u.Limit); err != nil {
			return nil, fmt.Errorf("list usage: %w", err)
		}
		if i, ok := byID[id]; ok {
			out[i].Usage = append(out[i].Usage, u)
		}
	}
	return out, rows.Err()
}

// --- ticket keys and single use ---

type ticketKeyRow struct {
	ID      string
	Key     []byte
	Created time.Time
	Retired time.Time
}

// ensureTicketKey creates the first ticket key when there is none. Instances starting at once
// on one database insert the same ID, so only one row results.
func (s *store) ensureTicketKey(ctx context.Context, now time.Time) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO ticket_keys (id, key, created_at) VALUES ('k1', $1, $2)
		ON CONFLICT (id) DO NOTHING`, base64.RawURLEncoding.EncodeToString(key), formatTime(now)); err != nil {
		return fmt.Errorf("store ticket key: %w", err)
	}
	return nil
}

// ticketKeys returns every key not yet past its retirement window.
func (s *store) ticketKeys(ctx context.Context) ([]ticketKeyRow, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, key, created_at, retired_at FROM ticket_keys`)
	if err != nil {
		return nil, fmt.Errorf("read ticket keys: %w", err)
	}
	defer rows.Close()
	var out []ticketKeyRow
	for rows.Next() {
		var r ticketKeyRow
		var enc, created string
		var retired sql.NullString
		if err := rows.Scan(&r.ID, &enc, &created, &retired); err != nil {
			return nil, fmt.Errorf("read ticket keys: %w", err)
		}
		var err error
		if r.Key, err = base64.RawURLEncoding.DecodeString(enc); err != nil || len(r.Key) != 32 {
			return nil, fmt.Errorf("the stored ticket key %s is malformed", r.ID)
		}
		r.Created, _ = time.Parse(tsLayout, created)
		if retired.Valid {
			r.Retired, _ = time.Parse(tsLayout, retired.String)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// rotateTicketKey retires the current key(s) at now and adds a new current key; keys retired more
// than a day ago are deleted. It returns the new key's ID.
func (s *store) rotateTicketKey(ctx context.Context, now time.Time) (string, error) {
	key := make([]byte, 32)
	idb := make([]byte, 6)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if _, err := rand.Read(idb); err != nil {
		return "", err
	}
	id := hex.EncodeToString(idb)
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE ticket_keys SET retired_at = $1 WHERE retired_at IS NULL", formatTime(now)); err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM ticket_keys WHERE retired_at < $1", formatTime(now.Add(-24*time.Hour))); err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	// created_at is after every existing key's, so this key is the newest even on a skewed clock.
	var newest sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT MAX(created_at) FROM ticket_keys").Scan(&newest); err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	created := formatTime(now)
	if newest.Valid && newest.String >= created {
		t, _ := time.Parse(tsLayout, newest.String)
		created = formatTime(t.Add(time.Millisecond))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ticket_keys (id, key, created_at) VALUES ($1, $2, $3)",
		id, base64.RawURLEncoding.EncodeToString(key), created); err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("rotate key: commit: %w", err)
	}
	return id, nil
}

// useOnce records that the token with id (valid until expires) was used; it reports false when it
// was used before, on any instance sharing the database.
func (s *store) useOnce(ctx context.Context, id string, expires time.Time) (bool, error) {
	r, err := s.write.ExecContext(ctx, "INSERT INTO used_tickets (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
		id, formatTime(expires))
	if err != nil {
		return false, fmt.Errorf("use ticket: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use ticket: %w", err)
	}
	return n == 1, nil
}

// purgeUsedTickets deletes the used-ticket records that expired before now.
func (s *store) purgeUsedTickets(ctx context.Context, now time.Time) error {
	if _, err := s.write.ExecContext(ctx, "DELETE FROM used_tickets WHERE expires_at < $1", formatTime(now)); err != nil {
		return fmt.Errorf("purge used tickets: %w", err)
	}
	return nil
}

// ping checks the database answers.
func (s *store) ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// admission is one connect attempt to be counted against a provider's user limit.
type admission struct {
	InstallationID string
	AdminEmail     string
	ProviderID     string
	UserKey        string
	Limit          int
	Now            time.Time
}

type admitResult struct {
	Admitted bool
	Count    int  // distinct user keys admitted for (installation, provider), after this attempt
	Notified bool // this attempt wrote the user_limit_near row to the outbox
}

// lastSeenGranularity: a known user key whose last_seen is younger than this is admitted by a
// read alone, without a write transaction.
const lastSeenGranularity = time.Hour

// nearLimit reports whether count is at or above 80% of limit.
func nearLimit(count, limit int) bool { return count*5 >= limit*4 }

// admit admits a.UserKey for (installation, provider) when it is already known or when fewer than
// a.Limit distinct keys are known, atomically: the per-(installation, provider) counter row is
// locked (FOR UPDATE on PostgreSQL; the database write lock taken by BEGIN IMMEDIATE on SQLite)
// for the whole check-and-insert, so concurrent requests on any number of gateway processes
// sharing the database never admit more than the limit.
func (s *store) admit(ctx context.Context, a admission) (admitResult, error) {
	if res, ok, err := s.admitKnown(ctx, a); err != nil || ok {
		return res, err
	}
	now := formatTime(a.Now)
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return admitResult{}, fmt.Errorf("admit: %w", err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `INSERT INTO user_counters (installation_id, provider_id, user_count, near_notified_limit)
		VALUES ($1, $2, 0, 0) ON CONFLICT (installation_id, provider_id) DO NOTHING`, a.InstallationID, a.ProviderID); err != nil {
		return admitResult{}, fmt.Errorf("admit: counter: %w", err)
	}
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	var count, nearNotified, reachedNotified int
	if err := tx.QueryRowContext(ctx, `SELECT user_count, near_notified_limit, reached_notified_limit FROM user_counters
		WHERE installation_id = $1 AND provider_id = $2`+lock, a.InstallationID, a.ProviderID).Scan(&count, &nearNotified, &reachedNotified); err != nil {
		return admitResult{}, fmt.Errorf("admit: lock counter: %w", err)
	}
	r, err := tx.ExecContext(ctx, `UPDATE user_keys SET last_seen = $4
		WHERE installation_id = $1 AND provider_id = $2 AND user_key = $3`, a.InstallationID, a.ProviderID, a.UserKey, now)
	if err != nil {
		return admitResult{}, fmt.Errorf("admit: touch user key: %w", err)
	}
	known, err := r.RowsAffected()
	if err != nil {
		return admitResult{}, fmt.Errorf("admit: %w", err)
	}
	if known == 0 {
		if count >= a.Limit {
			return admitResult{Admitted: false, Count: count}, nil // rolled back by the deferred Rollback
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_keys (installation_id, provider_id, user_key, first_seen, last_seen)
			VALUES ($1, $2, $3, $4, $4)`, a.InstallationID, a.ProviderID, a.UserKey, now); err != nil {
			return admitResult{}, fmt.Errorf("admit: add user key: %w", err)
		}
		count++
	}
	// Each threshold of a limit is announced once: "reached" at 100%, "near" at 80% unless
	// reaching it at the same time (a small limit), when "reached" says it all.
	kind := ""
	switch {
	case count >= a.Limit && reachedNotified != a.Limit:
		kind, nearNotified, reachedNotified = kindLimitReached, a.Limit, a.Limit
	case nearLimit(count, a.Limit) && nearNotified != a.Limit:
		kind, nearNotified = kindLimitNear, a.Limit
	}
	if _, err := tx.ExecContext(ctx, `UPDATE user_counters SET user_count = $3, user_limit = $4,
		near_notified_limit = $5, reached_notified_limit = $6 WHERE installation_id = $1 AND provider_id = $2`,
		a.InstallationID, a.ProviderID, count, a.Limit, nearNotified, reachedNotified); err != nil {
		return admitResult{}, fmt.Errorf("admit: count: %w", err)
	}
	res := admitResult{Admitted: true, Count: count}
	if kind != "" {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return admitResult{}, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, installation_id, provider_id, kind, admin_email, user_count, user_limit, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			hex.EncodeToString(id), a.InstallationID, a.ProviderID, kind, a.AdminEmail, count, a.Limit, now); err != nil {
			return admitResult{}, fmt.Errorf("admit: outbox: %w", err)
		}
		res.Notified = true
	}
	if err := tx.Commit(); err != nil {
		return admitResult{}, fmt.Errorf("admit: commit: %w", err)
	}
	return res, nil
}

// admitKnown is admit's read-only fast path: a user key that is already known, was seen recently
// and needs no outbox row is admitted without a write. ok is false when the slow path must run.
func (s *store) admitKnown(ctx context.Context, a admission) (res admitResult, ok bool, err error) {
	var lastSeen string
	var count, notified, reached, limit int
	err = s.read.QueryRowContext(ctx, `SELECT k.last_seen, c.user_count, c.near_notified_limit, c.reached_notified_limit, c.user_limit
		FROM user_keys k JOIN user_counters c ON c.installation_id = k.installation_id AND c.provider_id = k.provider_id
		WHERE k.installation_id = $1 AND k.provider_id = $2 AND k.user_key = $3`,
		a.InstallationID, a.ProviderID, a.UserKey).Scan(&lastSeen, &count, &notified, &reached, &limit)
	if errors.Is(err, sql.ErrNoRows) {
		return admitResult{}, false, nil
	}
	if err != nil {
		return admitResult{}, false, fmt.Errorf("admit: look up user key: %w", err)
	}
	seen, err := time.Parse(tsLayout, lastSeen)
	if err != nil || a.Now.Sub(seen) >= lastSeenGranularity {
		return admitResult{}, false, nil
	}
	if limit != a.Limit || (nearLimit(count, a.Limit) && notified != a.Limit) || (count >= a.Limit && reached != a.Limit) {
		return admitResult{}, false, nil
	}
	return admitResult{Admitted: true, Count: count}, true, nil
}

// Outbox kinds.
const (
	kindLimitNear    = "user_limit_near"
	kindLimitReached = "user_limit_reached"
)

// outboxEntry is one administrator notification waiting to be sent.
type outboxEntry struct {
	ID             string `json:"-"`
	Attempts       int    `json:"-"`
	InstallationID string
	ProviderID     string
	Kind           string
	AdminEmail     string
	Count          int
	Limit          int
	CreatedAt      string
}

func (s *store) outbox(ctx context.Context) ([]outboxEntry, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT installation_id, provider_id, kind, admin_email, user_count, user_limit, created_at
		FROM outbox ORDER BY created_at, user_count, kind, id`)
	// (ID and Attempts stay zero: tests compare entries by value.)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxEntry
	for rows.Next() {
		var e outboxEntry
		if err := rows.Scan(&e.InstallationID, &e.ProviderID, &e.Kind, &e.AdminEmail, &e.Count, &e.Limit, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
