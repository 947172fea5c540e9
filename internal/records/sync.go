package records

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// The record-table statements the syncer needs; the syncer keeps its own sync_runs table.

// SyncableSource is a provider source the scheduler may sync, with its last completed sync.
type SyncableSource struct {
	ID       int64
	LastSync string // "" when never synced
}

// SyncableSources lists the provider sources that are connected (or failed last time), by id.
func (s *Store) SyncableSources(ctx context.Context) ([]SyncableSource, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT id, coalesce(last_sync, '') FROM sources
		WHERE kind = 'provider' AND status IN ('connected', 'error') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list syncable sources: %w", err)
	}
	defer rows.Close()
	var out []SyncableSource
	for rows.Next() {
		var src SyncableSource
		if err := rows.Scan(&src.ID, &src.LastSync); err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// SourceProfileTx reads the person a source belongs to inside tx (nil: nobody).
func (s *Store) SourceProfileTx(ctx context.Context, tx *sql.Tx, id int64) (*int64, error) {
	var profile *int64
	err := tx.QueryRowContext(ctx, `SELECT profile_id FROM sources WHERE id = ?`, id).Scan(&profile)
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return profile, err
}

// StoredKeys says which of keys ("Type/id") the source holds.
func (s *Store) StoredKeys(ctx context.Context, sourceID int64, keys []string) (map[string]bool, error) {
	have := map[string]bool{}
	const chunk = 200
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		args := []any{sourceID}
		conds := make([]string, 0, len(part))
		for _, k := range part {
			t, id, _ := strings.Cut(k, "/")
			conds = append(conds, "(type = ? AND fhir_id = ?)")
			args = append(args, t, id)
		}
		rows, err := s.db.Read.QueryContext(ctx,
			`SELECT type, fhir_id FROM resources WHERE source_id = ? AND (`+strings.Join(conds, " OR ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read stored records: %w", err)
		}
		for rows.Next() {
			var t, id string
			if err := rows.Scan(&t, &id); err != nil {
				rows.Close()
				return nil, err
			}
			have[t+"/"+id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return have, nil
}

// MarkMissingTx sets missing_since (to stamp) on the source's present records for which gone
// says true, and returns how many it marked.
func (s *Store) MarkMissingTx(ctx context.Context, tx *sql.Tx, sourceID int64, stamp string, gone func(typ, id string) bool) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, type, fhir_id FROM resources WHERE source_id = ? AND missing_since IS NULL`, sourceID)
	if err != nil {
		return 0, db.Explain(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		var t, fid string
		if err := rows.Scan(&id, &t, &fid); err != nil {
			rows.Close()
			return 0, err
		}
		if gone(t, fid) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	st, err := tx.PrepareContext(ctx, `UPDATE resources SET missing_since = ? WHERE id = ?`)
	if err != nil {
		return 0, db.Explain(err)
	}
	defer st.Close()
	for _, id := range ids {
		if _, err := st.ExecContext(ctx, stamp, id); err != nil {
			return 0, db.Explain(err)
		}
	}
	return len(ids), nil
}
