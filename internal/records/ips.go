package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// The read side of the International Patient Summary (internal/ips): a person's records of some
// types, and the resources those records point at.

// PersonRecords returns every record of a person of the given types, newest first (by clinical
// date). A person's record is bounded by what they have; the IPS builder picks from these.
func (s *Store) PersonRecords(ctx context.Context, profileID int64, types []string) ([]Item, error) {
	if profileID <= 0 || len(types) == 0 {
		return []Item{}, nil
	}
	args := []any{profileID}
	ph := make([]string, 0, len(types))
	for _, t := range types {
		if !fhir.KnownType(t) {
			return nil, fmt.Errorf("%w: unknown resource type %q", ErrBadQuery, t)
		}
		ph = append(ph, "?")
		args = append(args, t)
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+itemCols+` FROM resources r INDEXED BY resources_profile
		WHERE r.profile_id = ? AND r.type IN (`+strings.Join(ph, ",")+`) AND r.missing_since IS NULL
		ORDER BY r.sort_date DESC, r.id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("person records: %w", err)
	}
	return collect(rows)
}

// PersonPatients returns the Patient resources of a person, the most recently updated first.
func (s *Store) PersonPatients(ctx context.Context, profileID int64) ([]Item, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+itemCols+` FROM resources r
		WHERE r.profile_id = ? AND r.type = 'Patient' ORDER BY r.updated_at DESC, r.id DESC`, profileID)
	if err != nil {
		return nil, fmt.Errorf("person patients: %w", err)
	}
	return collect(rows)
}

// Profile returns one person (name, birth date, gender), shown or not.
func (s *Store) Profile(ctx context.Context, id int64) (Profile, error) {
	var p Profile
	err := s.db.Read.QueryRowContext(ctx, `SELECT id, name, birth_date, gender, created_at, updated_at FROM profiles WHERE id = ?`, id).
		Scan(&p.ID, &p.Name, &p.BirthDate, &p.Gender, &p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, fmt.Errorf("person %d: %w", id, ErrNotFound)
		}
		return p, fmt.Errorf("person %d: %w", id, err)
	}
	return p, nil
}
