package records

// The changes a person makes to who is whose (merge with undo, re-assignment, delete): the
// SQL behind internal/people's change rules. Every write takes the caller's transaction.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// Merge is one merge of a person (from) into another (into).
type Merge struct {
	ID         int64   `json:"id"`
	IntoID     int64   `json:"into_id"`
	IntoName   string  `json:"into_name"`
	FromID     *int64  `json:"from_id"`
	FromName   string  `json:"from_name"`
	State      string  `json:"state"`
	Moved      int     `json:"moved"` // records that moved
	CreatedAt  string  `json:"created_at"`
	FinishedAt *string `json:"finished_at"`
}

const mergeCols = `m.id, m.into_id, coalesce(p.name, ''), m.from_id, m.from_name, m.state, m.moved, m.created_at, m.finished_at`

func scanMerge(r rowScanner) (Merge, error) {
	var m Merge
	err := r.Scan(&m.ID, &m.IntoID, &m.IntoName, &m.FromID, &m.FromName, &m.State, &m.Moved, &m.CreatedAt, &m.FinishedAt)
	return m, err
}

func getMerge(ctx context.Context, q peopleQuerier, id int64) (Merge, error) {
	m, err := scanMerge(q.QueryRowContext(ctx, `SELECT `+mergeCols+` FROM profile_merges m LEFT JOIN profiles p ON p.id = m.into_id WHERE m.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("merge %d: %w", id, ErrNotFound)
	}
	return m, err
}

// GetMerge returns one merge.
func (s *Store) GetMerge(ctx context.Context, id int64) (Merge, error) {
	return getMerge(ctx, s.db.Read, id)
}

// GetMergeTx is GetMerge inside a write transaction.
func (s *Store) GetMergeTx(ctx context.Context, tx *sql.Tx, id int64) (Merge, error) {
	return getMerge(ctx, tx, id)
}

// PendingMerges lists the merges in state pending, newest first.
func (s *Store) PendingMerges(ctx context.Context) ([]Merge, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+mergeCols+` FROM profile_merges m LEFT JOIN profiles p ON p.id = m.into_id
		WHERE m.state = 'pending' ORDER BY m.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list merges: %w", err)
	}
	defer rows.Close()
	out := []Merge{}
	for rows.Next() {
		m, err := scanMerge(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ConfirmPendingMerges makes every pending merge confirmed: its list of what moved is dropped
// and the merged (hidden) person deleted.
func (s *Store) ConfirmPendingMerges(ctx context.Context, tx *sql.Tx, now string) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, from_id FROM profile_merges WHERE state = 'pending'`)
	if err != nil {
		return db.Explain(err)
	}
	type pm struct {
		id   int64
		from sql.NullInt64
	}
	var list []pm
	for rows.Next() {
		var m pm
		if err := rows.Scan(&m.id, &m.from); err != nil {
			rows.Close()
			return err
		}
		list = append(list, m)
	}
	rows.Close()
	for _, m := range list {
		if _, err := tx.ExecContext(ctx, `UPDATE profile_merges SET state = 'confirmed', finished_at = ? WHERE id = ?`, now, m.id); err != nil {
			return db.Explain(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM profile_merge_items WHERE merge_id = ?`, m.id); err != nil {
			return db.Explain(err)
		}
		if m.from.Valid {
			if _, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE id = ? AND merged_into IS NOT NULL`, m.from.Int64); err != nil {
				return fmt.Errorf("remove the merged person: %w", db.Explain(err))
			}
		}
	}
	return nil
}

// MergeProfiles moves everything of person from to person into (the sources whose person it
// is, its patient mappings, its records), hides from, and records a pending merge with the list
// of what moved, so that UndoMerge can move exactly that back. It returns the merge's id.
func (s *Store) MergeProfiles(ctx context.Context, tx *sql.Tx, into, from int64, now string) (int64, error) {
	fromName, err := s.ProfileName(ctx, tx, from)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO profile_merges(into_id, from_id, from_name, state, created_at) VALUES (?,?,?,'pending',?)`, into, from, fromName, now)
	if err != nil {
		return 0, db.Explain(err)
	}
	id, _ := res.LastInsertId()
	for _, q := range []string{
		`INSERT INTO profile_merge_items(merge_id, source_id, patient_ref) SELECT ?, id, '' FROM sources WHERE profile_id = ?`,
		`INSERT INTO profile_merge_items(merge_id, source_id, patient_ref) SELECT ?, source_id, patient_ref FROM source_patients WHERE profile_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id, from); err != nil {
			return 0, db.Explain(err)
		}
	}
	res, err = tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE profile_id = ?`, into, from)
	if err != nil {
		return 0, fmt.Errorf("move records: %w", db.Explain(err))
	}
	moved, _ := res.RowsAffected()
	for _, q := range []string{
		`UPDATE sources SET profile_id = ?1, updated_at = ?3 WHERE profile_id = ?2`,
		`UPDATE source_patients SET profile_id = ?1, updated_at = ?3 WHERE profile_id = ?2`,
		`UPDATE profiles SET merged_into = ?1, updated_at = ?3 WHERE id = ?2`,
	} {
		if _, err := tx.ExecContext(ctx, q, into, from, now); err != nil {
			return 0, db.Explain(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE profile_merges SET moved = ? WHERE id = ?`, moved, id); err != nil {
		return 0, db.Explain(err)
	}
	return id, nil
}

// MergeFileSources lists the sources of a pending merge's moved patient mappings.
func (s *Store) MergeFileSources(ctx context.Context, tx *sql.Tx, mergeID int64) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT source_id FROM profile_merge_items WHERE merge_id = ? AND patient_ref != ''`, mergeID)
	if err != nil {
		return nil, db.Explain(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// MergeItem is one thing a merge moved: a source's own person (PatientRef "") or one patient
// mapping of a source.
type MergeItem struct {
	SourceID   int64
	PatientRef string
	SourceKind string
}

// MergeItems lists what a pending merge moved.
func (s *Store) MergeItems(ctx context.Context, tx *sql.Tx, mergeID int64) ([]MergeItem, error) {
	rows, err := tx.QueryContext(ctx, `SELECT i.source_id, i.patient_ref, s.kind FROM profile_merge_items i JOIN sources s ON s.id = i.source_id
		WHERE i.merge_id = ? ORDER BY i.source_id, i.patient_ref`, mergeID)
	if err != nil {
		return nil, db.Explain(err)
	}
	defer rows.Close()
	var items []MergeItem
	for rows.Next() {
		var it MergeItem
		if err := rows.Scan(&it.SourceID, &it.PatientRef, &it.SourceKind); err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// MoveSourceBack gives a source whose person is still into back to person from; with records
// (a provider source), also its records that are still into's. It returns the records moved.
func (s *Store) MoveSourceBack(ctx context.Context, tx *sql.Tx, sourceID, from, into int64, withRecords bool, now string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ? AND profile_id IS ?`, from, now, sourceID, into); err != nil {
		return 0, db.Explain(err)
	}
	if !withRecords {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS ?`, from, sourceID, into)
	if err != nil {
		return 0, fmt.Errorf("move records back: %w", db.Explain(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// MovePatientBack gives a patient of a source still mapped to into back to person from, with
// its records that are still into's. It returns the records moved.
func (s *Store) MovePatientBack(ctx context.Context, tx *sql.Tx, sourceID int64, patientRef string, from, into int64, now string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS ?`,
		from, now, sourceID, patientRef, into); err != nil {
		return 0, db.Explain(err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS ?`, from, sourceID, patientRef, into)
	if err != nil {
		return 0, fmt.Errorf("move records back: %w", db.Explain(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// UndoMerge shows the merged person from again and marks the merge undone (after its items
// were moved back).
func (s *Store) UndoMerge(ctx context.Context, tx *sql.Tx, mergeID, from int64, now string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE profiles SET merged_into = NULL, updated_at = ? WHERE id = ?`, now, from); err != nil {
		return db.Explain(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE profile_merges SET state = 'undone', finished_at = ? WHERE id = ?`, now, mergeID); err != nil {
		return db.Explain(err)
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM profile_merge_items WHERE merge_id = ?`, mergeID)
	return db.Explain(err)
}

// SourceKind returns a source's kind (KindManual or KindProvider).
func (s *Store) SourceKind(ctx context.Context, tx *sql.Tx, id int64) (string, error) {
	var kind string
	err := tx.QueryRowContext(ctx, `SELECT kind FROM sources WHERE id = ?`, id).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return kind, err
}

// AssignSource gives a source and every patient mapped in it to a person (nil: nobody), and
// moves its records that differ: all of them, or with onlyPatients just those that name a
// patient. It returns the records moved.
func (s *Store) AssignSource(ctx context.Context, tx *sql.Tx, sourceID int64, profileID *int64, onlyPatients bool, now string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ?`, profileID, now, sourceID); err != nil {
		return 0, db.Explain(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ?`, profileID, now, sourceID); err != nil {
		return 0, db.Explain(err)
	}
	q := `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ?`
	if onlyPatients {
		q = `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ? AND patient_ref IS NOT NULL`
	}
	res, err := tx.ExecContext(ctx, q, profileID, sourceID, profileID)
	if err != nil {
		return 0, fmt.Errorf("move records: %w", db.Explain(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// HasSourcePatient says whether a source has a mapping for the patient.
func (s *Store) HasSourcePatient(ctx context.Context, tx *sql.Tx, sourceID int64, patientRef string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM source_patients WHERE source_id = ? AND patient_ref = ?`, sourceID, patientRef).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// SetPatientProfile maps a patient of a source to a person (nil: nobody) and moves that
// patient's records whose person differs. It returns the records moved.
func (s *Store) SetPatientProfile(ctx context.Context, tx *sql.Tx, sourceID int64, patientRef string, profileID *int64, now string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ? AND patient_ref = ?`,
		profileID, now, sourceID, patientRef); err != nil {
		return 0, db.Explain(err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS NOT ?`,
		profileID, sourceID, patientRef, profileID)
	if err != nil {
		return 0, fmt.Errorf("move records: %w", db.Explain(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// SyncSourceProfile sets a file source's person: the one person all its mapped patients
// belong to, else none (the source holds several people, or nobody known). A source with no
// patient mapping keeps what it has; a provider source is left alone.
func (s *Store) SyncSourceProfile(ctx context.Context, tx *sql.Tx, sourceID int64, now string) error {
	_, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = (
			SELECT CASE WHEN count(DISTINCT profile_id) = 1 THEN min(profile_id) END
			FROM source_patients WHERE source_id = ?1 AND profile_id IS NOT NULL),
		updated_at = ?2
		WHERE id = ?1 AND kind = 'manual' AND EXISTS (SELECT 1 FROM source_patients WHERE source_id = ?1)`, sourceID, now)
	if err != nil {
		return fmt.Errorf("set the source's person: %w", db.Explain(err))
	}
	return nil
}

// DeletePlan says what deleting a person removes (or removed).
type DeletePlan struct {
	ProfileID int64  `json:"profile_id"`
	Name      string `json:"name"`
	// ResourceCount and Counts: every record that goes: the person's own, wherever they are,
	// and the unlinked records (organizations, practitioners...) of the sources that go.
	ResourceCount int            `json:"resource_count"`
	Counts        map[string]int `json:"counts"`
	// SourcesDeleted held only this person's records: they go whole (a provider source is
	// disconnected: its sign-in leaves the keyring). SourcesKept also hold other people's (or
	// not yet known people's) records: they stay, without this person's records
	// (ResourceCount: how many of this person's go from it).
	SourcesDeleted []SourceLink `json:"sources_deleted"`
	SourcesKept    []SourceLink `json:"sources_kept"`
	Deleted        bool         `json:"deleted"`
}

// PlanProfileDelete says what deleting visible person id would remove (ErrNotFound if there
// is none).
func (s *Store) PlanProfileDelete(ctx context.Context, id int64) (DeletePlan, error) {
	return planDelete(ctx, s.db.Read, id)
}

// PlanProfileDeleteTx is PlanProfileDelete inside the deleting transaction.
func (s *Store) PlanProfileDeleteTx(ctx context.Context, tx *sql.Tx, id int64) (DeletePlan, error) {
	return planDelete(ctx, tx, id)
}

func planDelete(ctx context.Context, q peopleQuerier, id int64) (DeletePlan, error) {
	plan := DeletePlan{ProfileID: id, Counts: map[string]int{}, SourcesDeleted: []SourceLink{}, SourcesKept: []SourceLink{}}
	err := q.QueryRowContext(ctx, `SELECT p.name FROM profiles p WHERE p.id = ? AND `+visibleProfile, id).Scan(&plan.Name)
	if errors.Is(err, sql.ErrNoRows) {
		return plan, fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return plan, err
	}
	rows, err := q.QueryContext(ctx, `SELECT s.id, s.name, s.kind,
		(SELECT count(*) FROM resources r WHERE r.source_id = s.id AND r.profile_id = ?1),
		EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id IS NOT ?1)
		OR EXISTS (SELECT 1 FROM resources r WHERE r.source_id = s.id AND r.profile_id IS NOT NULL AND r.profile_id != ?1)
		FROM sources s
		WHERE s.profile_id = ?1
			OR EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id = ?1)
			OR s.id IN (SELECT DISTINCT source_id FROM resources WHERE profile_id = ?1)
		ORDER BY s.id`, id)
	if err != nil {
		return plan, fmt.Errorf("plan the deletion: %w", err)
	}
	for rows.Next() {
		var l SourceLink
		if err := rows.Scan(&l.ID, &l.Name, &l.Kind, &l.ResourceCount, &l.Shared); err != nil {
			rows.Close()
			return plan, err
		}
		if l.Shared {
			plan.SourcesKept = append(plan.SourcesKept, l)
		} else {
			plan.SourcesDeleted = append(plan.SourcesDeleted, l)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return plan, err
	}
	add := func(query string, args ...any) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("plan the deletion: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t string
			var n int
			if err := rows.Scan(&t, &n); err != nil {
				return err
			}
			plan.Counts[t] += n
			plan.ResourceCount += n
		}
		return rows.Err()
	}
	if err := add(`SELECT type, count(*) FROM resources WHERE profile_id = ? GROUP BY type`, id); err != nil {
		return plan, err
	}
	for i, l := range plan.SourcesDeleted {
		var all int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM resources WHERE source_id = ?`, l.ID).Scan(&all); err != nil {
			return plan, err
		}
		plan.SourcesDeleted[i].ResourceCount = all
		if err := add(`SELECT type, count(*) FROM resources WHERE source_id = ? AND profile_id IS NULL GROUP BY type`, l.ID); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// DeleteProfileTx removes, inside tx, the sources of the plan that go whole (their records
// with them), person id's records everywhere and patient mappings, and the person; the
// sources kept get their person recomputed (SyncSourceProfile).
func (s *Store) DeleteProfileTx(ctx context.Context, tx *sql.Tx, plan DeletePlan, now string) error {
	id := plan.ProfileID
	for _, l := range plan.SourcesDeleted {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE id = ?`, l.ID); err != nil {
			return fmt.Errorf("delete a source: %w", db.Explain(err))
		}
	}
	for _, q := range []string{
		`DELETE FROM resources WHERE profile_id = ?`,
		`DELETE FROM source_patients WHERE profile_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("delete the person's records: %w", db.Explain(err))
		}
	}
	for _, l := range plan.SourcesKept {
		if err := s.SyncSourceProfile(ctx, tx, l.ID, now); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete the person: %w", db.Explain(err))
	}
	return nil
}
