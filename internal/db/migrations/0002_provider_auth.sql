-- How a provider source signs in again: where its tokens live in the OS keyring (never here),
-- the token endpoint recorded at connect time (refreshes go only there), the client id, and
-- whether refreshes must go through the Lighthouse (confidential clients).
ALTER TABLE sources ADD COLUMN token_url TEXT;
ALTER TABLE sources ADD COLUMN client_id TEXT;
ALTER TABLE sources ADD COLUMN confidential INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN token_key TEXT;
