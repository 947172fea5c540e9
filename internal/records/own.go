package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// A person's own entries (internal/own) live in one manual source per person, "Entered by me",
// marked by its content_hash "self:<person id>" (an imported file's hash is hex, so the two never
// meet). Only records in such a source are ever edited or deleted through the API.

// SelfSourceName is the name a person's own source is created with.
const SelfSourceName = "Entered by me"

const selfMark = "self:"

// IsSelfSource reports whether src holds a person's own entries.
func IsSelfSource(src Source) bool { return strings.HasPrefix(src.ContentHash, selfMark) }

// SelfSource returns the person's own source, creating it on first use (inside tx).
func (s *Store) SelfSource(ctx context.Context, tx *sql.Tx, profileID int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM sources WHERE kind = 'manual' AND content_hash = ? ORDER BY id LIMIT 1`,
		selfMark+strconv.FormatInt(profileID, 10)).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("own source: %w", db.Explain(err))
	}
	return s.CreateSource(ctx, tx, NewSource{Kind: KindManual, Name: SelfSourceName, ProfileID: &profileID,
		ContentHash: selfMark + strconv.FormatInt(profileID, 10)})
}

// StoredCopy is one stored copy of a record (the same Type/id may be in several sources).
type StoredCopy struct {
	SourceID  int64
	ProfileID *int64
	Self      bool // in a person's own source
	Raw       string
}

// StoredCopies lists every stored copy of Type/id (inside tx).
func (s *Store) StoredCopies(ctx context.Context, tx *sql.Tx, typ, id string) ([]StoredCopy, error) {
	rows, err := tx.QueryContext(ctx, `SELECT r.source_id, r.profile_id, coalesce(s.content_hash, ''), r.raw
		FROM resources r JOIN sources s ON s.id = r.source_id WHERE r.type = ? AND r.fhir_id = ? ORDER BY r.id`, typ, id)
	if err != nil {
		return nil, fmt.Errorf("find %s/%s: %w", typ, id, db.Explain(err))
	}
	defer rows.Close()
	var out []StoredCopy
	for rows.Next() {
		var c StoredCopy
		var mark string
		if err := rows.Scan(&c.SourceID, &c.ProfileID, &mark, &c.Raw); err != nil {
			return nil, err
		}
		c.Self = strings.HasPrefix(mark, selfMark)
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteRecord removes one record of one source (inside tx); false when there was none.
func (s *Store) DeleteRecord(ctx context.Context, tx *sql.Tx, sourceID int64, typ, id string) (bool, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE source_id = ? AND type = ? AND fhir_id = ?`, sourceID, typ, id)
	if err != nil {
		return false, fmt.Errorf("delete %s/%s: %w", typ, id, db.Explain(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// PersonPatientRef is the person's newest Patient as "Patient/<id>", "" when they have none
// (inside tx).
func (s *Store) PersonPatientRef(ctx context.Context, tx *sql.Tx, profileID int64) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT fhir_id FROM resources WHERE profile_id = ? AND type = 'Patient'
		ORDER BY updated_at DESC, id DESC LIMIT 1`, profileID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("person's patient: %w", db.Explain(err))
	}
	return "Patient/" + id, nil
}

// ProfileTx returns a person's name, birth date and gender inside tx.
func (s *Store) ProfileTx(ctx context.Context, tx *sql.Tx, id int64) (Profile, error) {
	var p Profile
	err := tx.QueryRowContext(ctx, `SELECT id, name, birth_date, gender FROM profiles WHERE id = ?`, id).
		Scan(&p.ID, &p.Name, &p.BirthDate, &p.Gender)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	return p, err
}
