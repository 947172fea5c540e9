-- Webhook hub (internal/events): subscriptions survive a restart. The hub.secret is NOT here:
-- secret_key names the OS keyring entry that holds it. Per-delivery counters stay in memory;
-- rows change when a subscription's state does.
CREATE TABLE hub_subscriptions (
    id                TEXT PRIMARY KEY,
    callback          TEXT NOT NULL UNIQUE,
    events            TEXT NOT NULL,          -- comma-separated topics
    state             TEXT NOT NULL
                      CHECK (state IN ('pending', 'active', 'failed', 'dead', 'expired')),
    lease_seconds     INTEGER NOT NULL,
    lease_expires     TEXT,                   -- RFC 3339 UTC
    include_resources INTEGER NOT NULL DEFAULT 0,  -- the subscriber asked (hub.include=resource)
    allow_resources   INTEGER NOT NULL DEFAULT 0,  -- the user allowed it for this subscription
    secret_key        TEXT,                   -- keyring entry of hub.secret (never the secret)
    failures          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_delivery     TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

-- Events that could not be delivered after every retry (the newest 10 per subscription).
CREATE TABLE hub_dead_letters (
    id              INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES hub_subscriptions(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    event_time      TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    error           TEXT NOT NULL,
    failed_at       TEXT NOT NULL
);
CREATE INDEX hub_dead_letters_subscription ON hub_dead_letters(subscription_id, id);
