-- Fasten Desktop record store, version 1.
-- Times are RFC 3339 UTC text. FHIR dates are kept as text normalised for sorting
-- (date-only values stay as they are; values with a time are converted to UTC).

CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    birth_date  TEXT,
    gender      TEXT,
    color       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE sources (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('manual', 'provider')),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'ok'
                 CHECK (status IN ('ok', 'connected', 'reconnect_needed', 'error')),
    profile_id   INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    patient_id   TEXT,
    provider_id  TEXT,
    fhir_base    TEXT,
    scopes       TEXT,
    content_hash TEXT,   -- manual sources: identity of the imported files, for idempotent re-import
    sync_state   TEXT,   -- provider sources: JSON cursor of the incremental sync
    last_sync    TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX sources_content_hash ON sources(content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE resources (
    id            INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    type          TEXT NOT NULL,
    fhir_id       TEXT NOT NULL,
    version       TEXT,
    last_updated  TEXT,
    sort_date     TEXT,
    title         TEXT NOT NULL DEFAULT '',
    status        TEXT,   -- clinicalStatus / status code, for "active" lists
    category      TEXT,   -- first category code (vital-signs, laboratory, ...)
    code          TEXT,   -- primary code as system|code
    patient_ref   TEXT,   -- Patient/<id> the resource is about
    profile_id    INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    search_text   TEXT NOT NULL DEFAULT '',
    hash          BLOB NOT NULL,  -- SHA-256 of raw: unchanged re-imports and syncs write nothing
    raw           TEXT NOT NULL,  -- the resource JSON as stored (references resolved)
    missing_since TEXT,           -- provider sources: first sync that no longer returned it
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (source_id, type, fhir_id)
);
CREATE INDEX resources_type_date ON resources(type, sort_date);
CREATE INDEX resources_date ON resources(sort_date);
CREATE INDEX resources_obs_code ON resources(code, sort_date) WHERE type = 'Observation';
CREATE INDEX resources_obs_category ON resources(category, code, sort_date) WHERE type = 'Observation';
CREATE INDEX resources_profile ON resources(profile_id, sort_date);
CREATE INDEX resources_patient ON resources(patient_ref);

CREATE TABLE resource_codes (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    system      TEXT NOT NULL DEFAULT '',
    code        TEXT NOT NULL,
    PRIMARY KEY (resource_id, system, code)
) WITHOUT ROWID;
CREATE INDEX resource_codes_code ON resource_codes(code, system);

-- Full-text search over titles, codes and selected text, kept in step by triggers.
CREATE VIRTUAL TABLE resources_fts USING fts5(
    title, search_text,
    content = 'resources', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER resources_fts_ai AFTER INSERT ON resources BEGIN
    INSERT INTO resources_fts(rowid, title, search_text) VALUES (new.id, new.title, new.search_text);
END;
CREATE TRIGGER resources_fts_ad AFTER DELETE ON resources BEGIN
    INSERT INTO resources_fts(resources_fts, rowid, title, search_text)
        VALUES ('delete', old.id, old.title, old.search_text);
END;
CREATE TRIGGER resources_fts_au AFTER UPDATE OF title, search_text ON resources BEGIN
    INSERT INTO resources_fts(resources_fts, rowid, title, search_text)
        VALUES ('delete', old.id, old.title, old.search_text);
    INSERT INTO resources_fts(rowid, title, search_text) VALUES (new.id, new.title, new.search_text);
END;

CREATE TABLE sync_runs (
    id           INTEGER PRIMARY KEY,
    source_id    INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    trigger_kind TEXT NOT NULL,  -- schedule | manual | startup | connect
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'ok', 'failed', 'cancelled', 'interrupted')),
    added        INTEGER NOT NULL DEFAULT 0,
    updated      INTEGER NOT NULL DEFAULT 0,
    unchanged    INTEGER NOT NULL DEFAULT 0,
    requests     INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);
CREATE INDEX sync_runs_source ON sync_runs(source_id, started_at);
