package gateway

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"
)

// A database of schema version 1 with data migrates to version 2: installations keep working,
// counts stay, the old outbox row stays pending, and the unused signing key is gone.
func TestMigrateFromVersion1(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		driver, src := "sqlite", dsn
		if isPostgresDSN(dsn) {
			driver = "pgx"
		}
		db, err := sql.Open(driver, src)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		secret := "v1-secret-value-0123456789"
		for _, q := range []string{
			ms[0].sql,
			`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
			`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', '2026-01-01T00:00:00.000Z')`,
			`INSERT INTO installations VALUES ('inst1', '` + hashSecret(secret) + `', 'Ada', 'ada@example.org', '2026-01-01T00:00:00.000Z')`,
			`INSERT INTO user_keys VALUES ('inst1', 'small', '` + userKey(1) + `', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`,
			`INSERT INTO user_keys VALUES ('inst1', 'small', '` + userKey(2) + `', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`,
			`INSERT INTO user_counters VALUES ('inst1', 'small', 2, 3)`,
			`INSERT INTO outbox (id, installation_id, provider_id, kind, admin_email, user_count, user_limit, created_at)
				VALUES ('o1', 'inst1', 'small', 'user_limit_near', 'ada@example.org', 2, 3, '2026-01-01T00:00:00.000Z')`,
			`INSERT INTO settings VALUES ('ticket_signing_key', 'old-key')`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()

		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"))
		ada := creds{"inst1", secret}
		if r := e.connect(ada, "small", connectBody(t, userKey(3), 50000)); r.status != http.StatusOK {
			t.Fatalf("connect after migration: %d %s", r.status, r.body)
		}
		if r := e.connect(ada, "small", connectBody(t, userKey(4), 50000)); r.status != http.StatusForbidden {
			t.Fatalf("4th user after migration: %d %s", r.status, r.body)
		}
		rows, err := e.g.store.outboxAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Kind != kindLimitNear || rows[0].SentAt != "" || rows[1].Kind != kindLimitReached {
			t.Errorf("outbox after migration: %+v", rows)
		}
		var n int
		e.g.store.read.QueryRow("SELECT COUNT(*) FROM settings WHERE name = 'ticket_signing_key'").Scan(&n)
		if n != 0 {
			t.Error("the version-1 signing key is still stored")
		}
		list, _ := e.g.store.installations(context.Background())
		if len(list) != 1 || len(list[0].Usage) != 1 || list[0].Usage[0].Count != 3 || list[0].Usage[0].Limit != 3 {
			t.Errorf("installations after migration: %+v", list)
		}
		if !strings.HasPrefix(list[0].LastSeen.Format("2006"), "2026") {
			t.Errorf("last seen not recorded: %v", list[0].LastSeen)
		}
	})
}
