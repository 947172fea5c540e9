-- Lighthouse gateway schema, version 1. The same text runs on SQLite and PostgreSQL.
-- Timestamps are UTC RFC 3339 strings with millisecond precision ("2006-01-02T15:04:05.000Z").
-- Nothing here holds a token, an authorization code, an OAuth state or an installation secret.

CREATE TABLE installations (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,         -- hex SHA-256 of the installation secret
    name        TEXT NOT NULL,         -- administrator name
    email       TEXT NOT NULL,         -- administrator email, used only for limit warnings
    created_at  TEXT NOT NULL
);

-- The distinct pseudonymous user keys seen per (installation, provider).
CREATE TABLE user_keys (
    installation_id TEXT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    provider_id     TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    first_seen      TEXT NOT NULL,
    last_seen       TEXT NOT NULL,
    PRIMARY KEY (installation_id, provider_id, user_key)
);

-- One row per (installation, provider): the admitted user count and the lock that serialises
-- admissions (SELECT ... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite).
-- near_notified_limit is the limit for which the 80% warning went to the outbox (0: none yet).
CREATE TABLE user_counters (
    installation_id     TEXT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    provider_id         TEXT NOT NULL,
    user_count          INTEGER NOT NULL,
    near_notified_limit INTEGER NOT NULL,
    PRIMARY KEY (installation_id, provider_id)
);

-- Notifications for the installation's administrator, to be sent by whatever the operator runs.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    installation_id TEXT NOT NULL,
    provider_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,     -- user_limit_near
    admin_email     TEXT NOT NULL,
    user_count      INTEGER NOT NULL,
    user_limit      INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;

-- Gateway-wide settings, e.g. the ticket signing key shared by every instance on one database.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
