package records

// Whose the patients of an import or a new connection are: what matching reads (people,
// their known Patients and identifiers, patient mappings) and what it records (mappings,
// Patients, the provisional person of a sign-in). internal/people decides; these methods run
// inside the import's or the connect's write transaction.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// Patient is what matching knows of one Patient resource (internal/people reads it from the
// resource and decides which identifiers count).
type Patient struct {
	Ref         string       // "Patient/<id>", as records name it
	Name        string       // display name ("Given Family")
	NameKey     string       // normalised "family|given"; "" when unknown
	BirthDate   string       // as written (YYYY, YYYY-MM or YYYY-MM-DD)
	Gender      string       // male | female | other | unknown | ""
	Identifiers []Identifier // only identifiers that can identify a person
}

// Identifier is a system|value pair of a Patient.
type Identifier struct{ System, Value string }

// KnownPerson is a visible person's name, birth date and gender: the person's own (Name) or
// those of a Patient mapped to the person (NameKey).
type KnownPerson struct {
	ProfileID                        int64
	Name, NameKey, BirthDate, Gender string
}

// KnownIdentifier is an identifier of a Patient mapped to a visible person.
type KnownIdentifier struct {
	ProfileID int64
	Identifier
}

// MatchData is everything matching knows of the visible people.
type MatchData struct {
	People      []KnownPerson // each person's own name, birth date, gender
	Patients    []KnownPerson // each mapped Patient's name key, birth date, gender
	Identifiers []KnownIdentifier
}

// LoadMatchData reads what matching needs of every visible person inside tx.
func (s *Store) LoadMatchData(ctx context.Context, tx *sql.Tx) (MatchData, error) {
	var md MatchData
	rows, err := tx.QueryContext(ctx, `SELECT p.id, p.name, coalesce(p.birth_date,''), coalesce(p.gender,'') FROM profiles p WHERE `+visibleProfile)
	if err != nil {
		return md, fmt.Errorf("read people: %w", db.Explain(err))
	}
	for rows.Next() {
		var k KnownPerson
		if err := rows.Scan(&k.ProfileID, &k.Name, &k.BirthDate, &k.Gender); err != nil {
			rows.Close()
			return md, err
		}
		md.People = append(md.People, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return md, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT sp.profile_id, coalesce(sp.name_key,''), coalesce(sp.birth_date,''), coalesce(sp.gender,'')
		FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id WHERE sp.has_patient = 1 AND `+visibleProfile)
	if err != nil {
		return md, fmt.Errorf("read known patients: %w", db.Explain(err))
	}
	for rows.Next() {
		var k KnownPerson
		if err := rows.Scan(&k.ProfileID, &k.NameKey, &k.BirthDate, &k.Gender); err != nil {
			rows.Close()
			return md, err
		}
		md.Patients = append(md.Patients, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return md, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT sp.profile_id, i.system, i.value FROM patient_identifiers i
		JOIN source_patients sp ON sp.source_id = i.source_id AND sp.patient_ref = i.patient_ref
		JOIN profiles p ON p.id = sp.profile_id WHERE `+visibleProfile)
	if err != nil {
		return md, fmt.Errorf("read known identifiers: %w", db.Explain(err))
	}
	defer rows.Close()
	for rows.Next() {
		var k KnownIdentifier
		if err := rows.Scan(&k.ProfileID, &k.System, &k.Value); err != nil {
			return md, err
		}
		md.Identifiers = append(md.Identifiers, k)
	}
	return md, rows.Err()
}

// PatientMapping is a patient of a source and the person it is mapped to (nil: nobody).
type PatientMapping struct {
	Ref       string
	ProfileID *int64
}

// PatientMappings lists the patients mapped to a visible person: in one source, or with
// sourceID 0 in every source.
func (s *Store) PatientMappings(ctx context.Context, tx *sql.Tx, sourceID int64) ([]PatientMapping, error) {
	q := `SELECT sp.patient_ref, sp.profile_id FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id WHERE ` + visibleProfile
	what := "read known patients"
	var args []any
	if sourceID != 0 {
		q = `SELECT sp.patient_ref, sp.profile_id FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id
		WHERE sp.source_id = ? AND ` + visibleProfile
		what = "read the source's patients"
		args = append(args, sourceID)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, db.Explain(err))
	}
	defer rows.Close()
	var out []PatientMapping
	for rows.Next() {
		var m PatientMapping
		var id int64
		if err := rows.Scan(&m.Ref, &id); err != nil {
			return nil, err
		}
		m.ProfileID = &id
		out = append(out, m)
	}
	return out, rows.Err()
}

// MapPatients records whose each patient of a source is (creating the mappings as needed);
// with moveRecords, the patients' records whose person differs move too.
func (s *Store) MapPatients(ctx context.Context, tx *sql.Tx, sourceID int64, ms []PatientMapping, moveRecords bool, now string) error {
	upsert, err := tx.PrepareContext(ctx, `INSERT INTO source_patients(source_id, patient_ref, profile_id, updated_at) VALUES (?,?,?,?)
		ON CONFLICT(source_id, patient_ref) DO UPDATE SET profile_id = excluded.profile_id, updated_at = excluded.updated_at`)
	if err != nil {
		return db.Explain(err)
	}
	defer upsert.Close()
	var fix *sql.Stmt
	if moveRecords {
		if fix, err = tx.PrepareContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS NOT ?`); err != nil {
			return db.Explain(err)
		}
		defer fix.Close()
	}
	for _, m := range ms {
		if _, err := upsert.ExecContext(ctx, sourceID, m.Ref, m.ProfileID, now); err != nil {
			return fmt.Errorf("record the source's patients: %w", db.Explain(err))
		}
		if fix != nil {
			if _, err := fix.ExecContext(ctx, m.ProfileID, sourceID, m.Ref, m.ProfileID); err != nil {
				return db.Explain(err)
			}
		}
	}
	return nil
}

// SavePatient stores what matching needs of a Patient a source holds (its mapping must exist).
func (s *Store) SavePatient(ctx context.Context, tx *sql.Tx, sourceID int64, pt Patient, now string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET has_patient = 1, name = ?, name_key = ?, birth_date = ?, gender = ?, updated_at = ?
		WHERE source_id = ? AND patient_ref = ?`, nullStr(pt.Name), nullStr(pt.NameKey), nullStr(pt.BirthDate), nullStr(pt.Gender), now, sourceID, pt.Ref); err != nil {
		return fmt.Errorf("record a patient: %w", db.Explain(err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM patient_identifiers WHERE source_id = ? AND patient_ref = ?`, sourceID, pt.Ref); err != nil {
		return db.Explain(err)
	}
	for _, id := range pt.Identifiers {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO patient_identifiers(source_id, patient_ref, system, value) VALUES (?,?,?,?)`,
			sourceID, pt.Ref, id.System, id.Value); err != nil {
			return fmt.Errorf("record a patient's identifiers: %w", db.Explain(err))
		}
	}
	return nil
}

// UnmappedSources lists the sources where the patient is mapped to nobody.
func (s *Store) UnmappedSources(ctx context.Context, tx *sql.Tx, patientRef string) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT source_id FROM source_patients WHERE patient_ref = ? AND profile_id IS NULL`, patientRef)
	if err != nil {
		return nil, db.Explain(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ProvisionalProfile returns the oldest person reserved for a pending sign-in, if any.
func (s *Store) ProvisionalProfile(ctx context.Context, tx *sql.Tx) (int64, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM profiles WHERE provisional = 1 ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

// ClaimProvisional turns the reserved person id into a visible person with these details; false
// if id is not (or no longer) a reserved person.
func (s *Store) ClaimProvisional(ctx context.Context, tx *sql.Tx, id int64, name, birthDate, gender, now string) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE profiles SET provisional = 0, name = ?, birth_date = ?, gender = ?, updated_at = ?
		WHERE id = ? AND provisional = 1`, name, nullStr(birthDate), nullStr(gender), now, id)
	if err != nil {
		return false, db.Explain(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetSourceProfile sets a source's own person (ErrNotFound if there is no such source).
func (s *Store) SetSourceProfile(ctx context.Context, tx *sql.Tx, sourceID, profileID int64, now string) error {
	res, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ?`, profileID, now, sourceID)
	if err != nil {
		return db.Explain(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("source %d: %w", sourceID, ErrNotFound)
	}
	return nil
}

// AssignSourceRecords gives every record of a source to a person; it returns how many moved.
func (s *Store) AssignSourceRecords(ctx context.Context, tx *sql.Tx, sourceID, profileID int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ?`, profileID, sourceID, profileID)
	if err != nil {
		return 0, db.Explain(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
