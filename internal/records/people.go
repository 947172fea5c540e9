package records

import (
	"context"
	"database/sql"
	"fmt"
)

// Deceased says, for each person whose Patient records say they died, the date of death (as
// recorded) or true when only "deceased" is known. People who are not listed are not known to
// have died. Reads only the Patient rows (a handful per person).
func (s *Store) Deceased(ctx context.Context) (map[int64]any, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT r.profile_id,
		json_extract(r.raw, '$.deceasedDateTime'), json_extract(r.raw, '$.deceasedBoolean')
		FROM resources r WHERE r.type = 'Patient' AND r.profile_id IS NOT NULL
		AND (json_extract(r.raw, '$.deceasedDateTime') IS NOT NULL OR json_extract(r.raw, '$.deceasedBoolean') = 1)`)
	if err != nil {
		return nil, fmt.Errorf("deceased people: %w", err)
	}
	defer rows.Close()
	out := map[int64]any{}
	for rows.Next() {
		var id int64
		var date sql.NullString
		var flag sql.NullInt64
		if err := rows.Scan(&id, &date, &flag); err != nil {
			return nil, err
		}
		if date.Valid && date.String != "" {
			// A date beats a bare "true"; of two dates the earliest recorded wins.
			if old, ok := out[id].(string); !ok || date.String < old {
				out[id] = date.String
			}
		} else if _, ok := out[id]; !ok {
			out[id] = true
		}
	}
	return out, rows.Err()
}
