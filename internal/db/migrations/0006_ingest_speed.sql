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
