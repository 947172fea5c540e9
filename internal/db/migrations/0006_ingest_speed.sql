-- Import and sync speed (issue 17).
--
-- A statement that fires a trigger runs inside a statement savepoint, and FTS5 writes its
-- pending terms to disk at every savepoint: with the full-text and count triggers on INSERT,
-- every stored record became its own full-text segment, merged again and again (half of a
-- 200,000-record import went to those merges). The record writer (internal/records, Writer) now
-- keeps the full-text index and the counts itself when it inserts or changes a record, in the
-- same transaction; the triggers stay for the bulk statements (deleting a source, moving records
-- to another person), which are one statement each.
DROP TRIGGER resources_fts_ai;
DROP TRIGGER resources_fts_au;
DROP TRIGGER resource_counts_ai;

-- Reads at a million records (issue 17).
--
-- A person's records of one type, newest first: their lists, their dashboard and the visits that
-- name their doctors are a seek (through (type, sort_date) they read every person's records of
-- the type, most of them someone else's).
CREATE INDEX resources_profile_type ON resources(profile_id, type, sort_date);

-- A person's results by test: the latest of each (a skip scan over the person's codes) and one
-- test's history. They replace the index that started with the category, which found the
-- household's latest result of each test but not one person's without reading the others'.
DROP INDEX resources_obs_category;
CREATE INDEX resources_obs_person ON resources(profile_id, code, sort_date) WHERE type = 'Observation';
DROP INDEX resources_imm_code;
CREATE INDEX resources_imm_person ON resources(profile_id, code, sort_date) WHERE type = 'Immunization';

-- resource_codes keeps only the codings besides the primary one (which is resources.code): a
-- search by code finds the primary through the indexes above, and the table, once a row per
-- coding of every record, is nearly empty (most records have one coding).
DELETE FROM resource_codes WHERE EXISTS (
    SELECT 1 FROM resources r WHERE r.id = resource_codes.resource_id AND r.code = resource_codes.system || '|' || resource_codes.code);

-- Who died: the people list reads it from this index of the Patients' JSON (a few bytes each)
-- instead of parsing every Patient record (2,300 copies in a household of a million records).
CREATE INDEX resources_patient_deceased ON resources(profile_id, json_extract(raw, '$.deceasedDateTime'),
    json_extract(raw, '$.deceasedBoolean')) WHERE type = 'Patient';

-- Everyone's counts: one row per source and type with profile_id -1 (the sum of that source's
-- rows for every person and for nobody), so the household's counts read a few rows instead of
-- one per person and type (40,000 for 3,500 people). The record Writer adds to both rows; the
-- triggers below keep both on deletes and moves (a move between people leaves the -1 row).
INSERT INTO resource_counts (source_id, profile_id, type, n)
    SELECT source_id, -1, type, sum(n) FROM resource_counts WHERE profile_id >= 0 GROUP BY source_id, type;

DROP TRIGGER resource_counts_ad;
CREATE TRIGGER resource_counts_ad AFTER DELETE ON resources BEGIN
    UPDATE resource_counts SET n = n - 1
        WHERE source_id = old.source_id AND profile_id IN (coalesce(old.profile_id, 0), -1) AND type = old.type;
END;

DROP TRIGGER resource_counts_au;
CREATE TRIGGER resource_counts_au AFTER UPDATE OF source_id, profile_id, type ON resources
    WHEN old.source_id IS NOT new.source_id OR old.profile_id IS NOT new.profile_id OR old.type IS NOT new.type
BEGIN
    UPDATE resource_counts SET n = n - 1
        WHERE source_id = old.source_id AND profile_id = coalesce(old.profile_id, 0) AND type = old.type;
    INSERT INTO resource_counts (source_id, profile_id, type, n)
        VALUES (new.source_id, coalesce(new.profile_id, 0), new.type, 1)
        ON CONFLICT (source_id, profile_id, type) DO UPDATE SET n = n + 1;
    UPDATE resource_counts SET n = n - 1
        WHERE source_id = old.source_id AND profile_id = -1 AND type = old.type
        AND (old.source_id IS NOT new.source_id OR old.type IS NOT new.type);
    INSERT INTO resource_counts (source_id, profile_id, type, n)
        SELECT new.source_id, -1, new.type, 1 WHERE old.source_id IS NOT new.source_id OR old.type IS NOT new.type
        ON CONFLICT (source_id, profile_id, type) DO UPDATE SET n = n + 1;
END;

-- A person's counts (and every person's, in order) without reading anyone else's.
CREATE INDEX resource_counts_profile ON resource_counts(profile_id, type, n);

-- A person's active problems and medications, newest first, without reading the inactive ones
-- (a long record holds thousands of finished prescriptions). Conditions are never on-hold or
-- intended, prescriptions never a recurrence or relapse: one list of statuses serves both.
CREATE INDEX resources_active ON resources(profile_id, type, sort_date)
    WHERE status IN ('active', 'recurrence', 'relapse', 'on-hold', 'intended');
