package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The connect flow's statements on the record tables (internal/connect names no table itself).

// ChoosablePerson reports whether id is a person a sign-in may be started for: a profile that
// exists, is not the provisional one reserved for an undecided sign-in, and was not merged into
// another.
func (s *Store) ChoosablePerson(ctx context.Context, id int64) (bool, error) {
	var one int
	err := s.db.Read.QueryRowContext(ctx, `SELECT 1 FROM profiles WHERE id = ? AND provisional = 0 AND merged_into IS NULL`, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up person %d: %w", id, err)
	}
	return true, nil
}

// AddSource creates a source in a transaction of its own and returns its id (a provider source
// once its tokens are in the keyring).
func (s *Store) AddSource(ctx context.Context, n NewSource) (int64, error) {
	var id int64
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.CreateSource(ctx, tx, n)
		return err
	})
	return id, err
}

// FindProviderSource returns the provider source that holds this provider's patient (the same
// provider, FHIR server and patient id), if there is one: a second connect of the same patient
// signs in to it again instead of adding a copy of every record.
func (s *Store) FindProviderSource(ctx context.Context, providerID, fhirBase, patientID string) (Source, bool, error) {
	src, err := scanSource(s.db.Read.QueryRowContext(ctx, `SELECT `+sourceCols+` FROM sources s
		WHERE s.kind = 'provider' AND s.provider_id = ? AND s.fhir_base = ? AND s.patient_id = ? ORDER BY s.id LIMIT 1`,
		providerID, fhirBase, patientID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Source{}, false, nil
	case err != nil:
		return Source{}, false, fmt.Errorf("look up the provider's source: %w", err)
	}
	return src, true, nil
}
