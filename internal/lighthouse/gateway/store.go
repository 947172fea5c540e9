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
	"path"
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
	return s, nil
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

// signingKey returns the ticket signing key, creating it on first use. Every gateway instance on
// one database gets the same key (insert if absent, then read).
func (s *store) signingKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := s.write.ExecContext(ctx,
		"INSERT INTO settings (name, value) VALUES ('ticket_signing_key', $1) ON CONFLICT (name) DO NOTHING",
		base64.RawURLEncoding.EncodeToString(fresh)); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	var enc string
	if err := s.write.QueryRowContext(ctx, "SELECT value FROM settings WHERE name = 'ticket_signing_key'").Scan(&enc); err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(key) < 32 {
		return nil, errors.New("the stored ticket signing key is malformed")
	}
	return key, nil
}

type installation struct {
	ID         string
	SecretHash string // hex SHA-256
	Name       string
	Email      string
	CreatedAt  time.Time
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
	err := s.read.QueryRowContext(ctx,
		"SELECT secret_hash, name, email FROM installations WHERE id = $1", id).Scan(&in.SecretHash, &in.Name, &in.Email)
	if errors.Is(err, sql.ErrNoRows) {
		return in, errNotFound
	}
	if err != nil {
		return in, fmt.Errorf("look up installation: %w", err)
	}
	return in, nil
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
	var count, notified int
	if err := tx.QueryRowContext(ctx, `SELECT user_count, near_notified_limit FROM user_counters
		WHERE installation_id = $1 AND provider_id = $2`+lock, a.InstallationID, a.ProviderID).Scan(&count, &notified); err != nil {
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
		if _, err := tx.ExecContext(ctx, `UPDATE user_counters SET user_count = $3
			WHERE installation_id = $1 AND provider_id = $2`, a.InstallationID, a.ProviderID, count); err != nil {
			return admitResult{}, fmt.Errorf("admit: count: %w", err)
		}
	}
	res := admitResult{Admitted: true, Count: count}
	if nearLimit(count, a.Limit) && notified != a.Limit {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return admitResult{}, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, installation_id, provider_id, kind, admin_email, user_count, user_limit, created_at)
			VALUES ($1, $2, $3, 'user_limit_near', $4, $5, $6, $7)`,
			hex.EncodeToString(id), a.InstallationID, a.ProviderID, a.AdminEmail, count, a.Limit, now); err != nil {
			return admitResult{}, fmt.Errorf("admit: outbox: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_counters SET near_notified_limit = $3
			WHERE installation_id = $1 AND provider_id = $2`, a.InstallationID, a.ProviderID, a.Limit); err != nil {
			return admitResult{}, fmt.Errorf("admit: outbox mark: %w", err)
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
	var count, notified int
	err = s.read.QueryRowContext(ctx, `SELECT k.last_seen, c.user_count, c.near_notified_limit
		FROM user_keys k JOIN user_counters c ON c.installation_id = k.installation_id AND c.provider_id = k.provider_id
		WHERE k.installation_id = $1 AND k.provider_id = $2 AND k.user_key = $3`,
		a.InstallationID, a.ProviderID, a.UserKey).Scan(&lastSeen, &count, &notified)
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
	if nearLimit(count, a.Limit) && notified != a.Limit {
		return admitResult{}, false, nil
	}
	return admitResult{Admitted: true, Count: count}, true, nil
}

// outboxEntry is one administrator notification waiting to be sent.
type outboxEntry struct {
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
		FROM outbox ORDER BY created_at, id`)
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
