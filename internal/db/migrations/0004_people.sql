-- People (issue 7): who each patient of each source is, so that imports, syncs, re-assignment
-- and merges can be decided and undone. internal/people owns these tables.
--
-- A record's person is a function of these tables (internal/people keeps it so):
--   provider source: every record -> sources.profile_id (one patient per connection);
--   file source:     a record with a Patient reference -> source_patients(source, patient_ref).profile_id;
--                    a record without one -> NULL ("not linked to a person").

-- initials: an override of the initials derived from the name ('' or NULL: derived).
-- provisional: a person reserved for a sign-in whose patient is not known yet (its id derives
--   the Lighthouse user key); hidden from lists until a connect settles on it.
-- merged_into: the person this one was merged into while the merge can still be undone; hidden.
ALTER TABLE profiles ADD COLUMN initials TEXT;
ALTER TABLE profiles ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN merged_into INTEGER REFERENCES profiles(id) ON DELETE SET NULL;

-- One row per (source, patient reference) seen in that source's records, with the person it
-- belongs to (NULL: not known yet) and, when the source holds the Patient resource itself, what
-- matching uses: normalised name key, birth date, gender.
CREATE TABLE source_patients (
    source_id   INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    patient_ref TEXT NOT NULL,              -- Patient/<id> as the source's records name it
    profile_id  INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    has_patient INTEGER NOT NULL DEFAULT 0, -- the source holds this Patient resource
    name        TEXT,                       -- display name from the Patient resource
    name_key    TEXT,                       -- normalised family|given (see internal/people)
    birth_date  TEXT,
    gender      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (source_id, patient_ref)
);
CREATE INDEX source_patients_ref ON source_patients(patient_ref);
CREATE INDEX source_patients_profile ON source_patients(profile_id);

-- Identifiers (system|value) of the Patient resources above that can identify a person.
CREATE TABLE patient_identifiers (
    source_id   INTEGER NOT NULL,
    patient_ref TEXT NOT NULL,
    system      TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (system, value, source_id, patient_ref),
    FOREIGN KEY (source_id, patient_ref) REFERENCES source_patients(source_id, patient_ref) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX patient_identifiers_patient ON patient_identifiers(source_id, patient_ref);

-- Merges: applied at once, undoable while pending (until confirmed, or until a later merge,
-- delete or re-assignment confirms it). items lists what moved from `from_id` to `into_id`.
CREATE TABLE profile_merges (
    id          INTEGER PRIMARY KEY,
    into_id     INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    from_id     INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    from_name   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'undone')),
    moved       INTEGER NOT NULL DEFAULT 0,  -- records moved
    created_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE profile_merge_items (
    merge_id    INTEGER NOT NULL REFERENCES profile_merges(id) ON DELETE CASCADE,
    source_id   INTEGER NOT NULL,
    patient_ref TEXT NOT NULL,  -- '' for the source itself (sources.profile_id)
    PRIMARY KEY (merge_id, source_id, patient_ref)
) WITHOUT ROWID;
