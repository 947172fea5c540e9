-- Lighthouse gateway schema, version 2: what operators need (issue 19) and single-use tickets
-- (issue 14 item 22). The same text runs on SQLite and PostgreSQL.

-- Revocation and activity of an installation. revoked_at set: every request from it is refused
-- with installation_revoked. last_seen is updated at most once an hour.
ALTER TABLE installations ADD COLUMN revoked_at TEXT;
ALTER TABLE installations ADD COLUMN last_seen TEXT;

-- The limit the counter was last checked against (for `lighthouse admin installations`), and the
-- limit for which the "limit reached" notification went to the outbox (0: none yet).
ALTER TABLE user_counters ADD COLUMN user_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_counters ADD COLUMN reached_notified_limit INTEGER NOT NULL DEFAULT 0;

-- Delivery state of the outbox. A sender claims a row by setting claim_id and claimed_until (a
-- lease); it marks sent_at only after the SMTP server accepted the message; a failure clears the
-- claim and sets next_attempt_at (backoff) and last_error.
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claim_id TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;

-- Ticket and state encryption keys. One is current (retired_at NULL); a retired key still opens
-- tickets until retired_at plus the ticket lifetime, so rotating never breaks a sign-in under way.
CREATE TABLE ticket_keys (
    id         TEXT PRIMARY KEY,
    key        TEXT NOT NULL,          -- base64url, 32 bytes
    created_at TEXT NOT NULL,
    retired_at TEXT
);

-- Tickets and provider states already used, until they expire: each works once, on any instance.
CREATE TABLE used_tickets (
    id         TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX used_tickets_expiry ON used_tickets (expires_at);

-- The HMAC key of schema version 1 signs nothing any more: do not keep a secret for nothing.
DELETE FROM settings WHERE name = 'ticket_signing_key';
