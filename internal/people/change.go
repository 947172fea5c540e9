package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Merge states.
const (
	MergePending   = "pending"
	MergeConfirmed = "confirmed"
	MergeUndone    = "undone"
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

func getMergeTx(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int64) (Merge, error) {
	m, err := scanMerge(q.QueryRowContext(ctx, `SELECT `+mergeCols+` FROM profile_merges m LEFT JOIN profiles p ON p.id = m.into_id WHERE m.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("merge %d: %w", id, ErrNotFound)
	}
	return m, err
}

// PendingMerges lists the merges that can still be undone (at most one).
func (s *Service) PendingMerges(ctx context.Context) ([]Merge, error) {
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

// confirmPendingTx makes every pending merge final: the merged person is deleted and the merge
// can no longer be undone. Called by every later change to people.
func (s *Service) confirmPendingTx(ctx context.Context, tx *sql.Tx, now string) error {
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

// Merge moves everything of person from (sources, patients, records) to person into, at once,
// and hides from. The merge stays undoable (Undo) until Confirm, or until a later merge, delete
// or re-assignment confirms it.
func (s *Service) Merge(ctx context.Context, into, from int64) (Merge, error) {
	if into == from {
		return Merge{}, invalid("A person cannot be merged with themselves.")
	}
	var id int64
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		for _, p := range []int64{into, from} {
			if err := liveTx(ctx, tx, p); err != nil {
				return err
			}
		}
		var fromName string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM profiles WHERE id = ?`, from).Scan(&fromName); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO profile_merges(into_id, from_id, from_name, state, created_at) VALUES (?,?,?,'pending',?)`, into, from, fromName, now)
		if err != nil {
			return db.Explain(err)
		}
		id, _ = res.LastInsertId()
		for _, q := range []string{
			`INSERT INTO profile_merge_items(merge_id, source_id, patient_ref) SELECT ?, id, '' FROM sources WHERE profile_id = ?`,
			`INSERT INTO profile_merge_items(merge_id, source_id, patient_ref) SELECT ?, source_id, patient_ref FROM source_patients WHERE profile_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id, from); err != nil {
				return db.Explain(err)
			}
		}
		res, err = tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE profile_id = ?`, into, from)
		if err != nil {
			return fmt.Errorf("move records: %w", db.Explain(err))
		}
		moved, _ := res.RowsAffected()
		for _, q := range []string{
			`UPDATE sources SET profile_id = ?1, updated_at = ?3 WHERE profile_id = ?2`,
			`UPDATE source_patients SET profile_id = ?1, updated_at = ?3 WHERE profile_id = ?2`,
			`UPDATE profiles SET merged_into = ?1, updated_at = ?3 WHERE id = ?2`,
		} {
			if _, err := tx.ExecContext(ctx, q, into, from, now); err != nil {
				return db.Explain(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE profile_merges SET moved = ? WHERE id = ?`, moved, id); err != nil {
			return db.Explain(err)
		}
		return s.resyncMergeSourcesTx(ctx, tx, id, now)
	})
	if err != nil {
		return Merge{}, err
	}
	m, err := getMergeTx(ctx, s.db.Read, id)
	if err != nil {
		return Merge{}, err
	}
	s.log.Info("people merged", "merge_id", id, "into", into, "from", from, "moved", m.Moved)
	s.changed(map[string]any{"merge_id": id, "profile_id": into, "change": "merged"})
	return m, nil
}

// resyncMergeSourcesTx recomputes the person of the file sources a merge touched.
func (s *Service) resyncMergeSourcesTx(ctx context.Context, tx *sql.Tx, mergeID int64, now string) error {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT source_id FROM profile_merge_items WHERE merge_id = ? AND patient_ref != ''`, mergeID)
	if err != nil {
		return db.Explain(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := syncSourceProfileTx(ctx, tx, id, now); err != nil {
			return err
		}
	}
	return nil
}

// Undo reverts a pending merge: the merged person is shown again and gets back exactly the
// sources and patients the merge moved, with their records.
func (s *Service) Undo(ctx context.Context, mergeID int64) (Merge, error) {
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		m, err := getMergeTx(ctx, tx, mergeID)
		if err != nil {
			return err
		}
		if m.State != MergePending || m.FromID == nil {
			return invalid("This merge was %s and can no longer be undone.", m.State)
		}
		from, into, now := *m.FromID, m.IntoID, s.stamp()
		rows, err := tx.QueryContext(ctx, `SELECT i.source_id, i.patient_ref, s.kind FROM profile_merge_items i JOIN sources s ON s.id = i.source_id
			WHERE i.merge_id = ? ORDER BY i.source_id, i.patient_ref`, mergeID)
		if err != nil {
			return db.Explain(err)
		}
		type item struct {
			src       int64
			ref, kind string
		}
		var items []item
		for rows.Next() {
			var it item
			if err := rows.Scan(&it.src, &it.ref, &it.kind); err != nil {
				rows.Close()
				return err
			}
			items = append(items, it)
		}
		rows.Close()
		var back int64
		for _, it := range items {
			var res sql.Result
			switch {
			case it.ref == "":
				if _, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ? AND profile_id IS ?`, from, now, it.src, into); err != nil {
					return db.Explain(err)
				}
				if it.kind != records.KindProvider {
					continue
				}
				res, err = tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS ?`, from, it.src, into)
			default:
				if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS ?`,
					from, now, it.src, it.ref, into); err != nil {
					return db.Explain(err)
				}
				res, err = tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS ?`, from, it.src, it.ref, into)
			}
			if err != nil {
				return fmt.Errorf("move records back: %w", db.Explain(err))
			}
			n, _ := res.RowsAffected()
			back += n
		}
		if err := s.resyncMergeSourcesTx(ctx, tx, mergeID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE profiles SET merged_into = NULL, updated_at = ? WHERE id = ?`, now, from); err != nil {
			return db.Explain(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE profile_merges SET state = 'undone', finished_at = ? WHERE id = ?`, now, mergeID); err != nil {
			return db.Explain(err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM profile_merge_items WHERE merge_id = ?`, mergeID)
		s.log.Info("merge undone", "merge_id", mergeID, "moved_back", back)
		return db.Explain(err)
	})
	if err != nil {
		return Merge{}, err
	}
	m, err := getMergeTx(ctx, s.db.Read, mergeID)
	if err == nil {
		s.changed(map[string]any{"merge_id": mergeID, "profile_id": m.FromID, "change": "merge_undone"})
	}
	return m, err
}

// Confirm makes a pending merge final (the merged person is deleted).
func (s *Service) Confirm(ctx context.Context, mergeID int64) (Merge, error) {
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		m, err := getMergeTx(ctx, tx, mergeID)
		if err != nil {
			return err
		}
		switch m.State {
		case MergeConfirmed:
			return nil
		case MergeUndone:
			return invalid("This merge was undone; there is nothing to confirm.")
		}
		return s.confirmPendingTx(ctx, tx, s.stamp())
	})
	if err != nil {
		return Merge{}, err
	}
	s.publish("profiles.changed", map[string]any{"merge_id": mergeID, "change": "merge_confirmed"})
	return getMergeTx(ctx, s.db.Read, mergeID)
}

// changed tells the window (and webhook subscribers of resources.changed) that records changed
// person. The payloads carry ids and counts only, never names.
func (s *Service) changed(data map[string]any) {
	s.publish("profiles.changed", data)
	if _, ok := data["source_id"]; !ok {
		data["source_id"] = 0 // several sources
	}
	s.publish("resources.changed", data)
}

// Reassigned says what a re-assignment moved.
type Reassigned struct {
	SourceID  int64  `json:"source_id"`
	Patient   string `json:"patient,omitempty"`
	ProfileID *int64 `json:"profile_id"`
	Moved     int    `json:"moved"` // records that changed person
}

func sourceKindTx(ctx context.Context, tx *sql.Tx, id int64) (string, error) {
	var kind string
	err := tx.QueryRowContext(ctx, `SELECT kind FROM sources WHERE id = ?`, id).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return kind, err
}

// ReassignSource gives a source, with every patient in it and their records, to a person
// (nil: to nobody, "not linked"). A file source's records that name no patient stay unlinked;
// a provider source's records all move. One transaction.
func (s *Service) ReassignSource(ctx context.Context, sourceID int64, profileID *int64) (Reassigned, error) {
	out := Reassigned{SourceID: sourceID, ProfileID: profileID}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		kind, err := sourceKindTx(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		if profileID != nil {
			if err := liveTx(ctx, tx, *profileID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ?`, profileID, now, sourceID); err != nil {
			return db.Explain(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ?`, profileID, now, sourceID); err != nil {
			return db.Explain(err)
		}
		q := `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ? AND patient_ref IS NOT NULL`
		if kind == records.KindProvider {
			q = `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ?`
		}
		res, err := tx.ExecContext(ctx, q, profileID, sourceID, profileID)
		if err != nil {
			return fmt.Errorf("move records: %w", db.Explain(err))
		}
		n, _ := res.RowsAffected()
		out.Moved = int(n)
		return nil
	})
	if err != nil {
		return Reassigned{}, err
	}
	s.log.Info("source re-assigned", "source_id", sourceID, "profile_id", profileID, "moved", out.Moved)
	s.changed(map[string]any{"source_id": sourceID, "profile_id": profileID, "change": "reassigned"})
	return out, nil
}

// ReassignPatient gives one patient of a source, with their records, to a person (nil: to
// nobody). For a provider source (one patient) this is ReassignSource. One transaction.
func (s *Service) ReassignPatient(ctx context.Context, sourceID int64, patientRef string, profileID *int64) (Reassigned, error) {
	if !strings.HasPrefix(patientRef, "Patient/") {
		patientRef = "Patient/" + patientRef
	}
	out := Reassigned{SourceID: sourceID, Patient: patientRef, ProfileID: profileID}
	var provider bool
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		kind, err := sourceKindTx(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		if provider = kind == records.KindProvider; provider {
			return nil
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM source_patients WHERE source_id = ? AND patient_ref = ?`, sourceID, patientRef).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s in source %d: %w", patientRef, sourceID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		if profileID != nil {
			if err := liveTx(ctx, tx, *profileID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ? AND patient_ref = ?`, profileID, now, sourceID, patientRef); err != nil {
			return db.Explain(err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS NOT ?`, profileID, sourceID, patientRef, profileID)
		if err != nil {
			return fmt.Errorf("move records: %w", db.Explain(err))
		}
		n, _ := res.RowsAffected()
		out.Moved = int(n)
		return syncSourceProfileTx(ctx, tx, sourceID, now)
	})
	if err != nil {
		return Reassigned{}, err
	}
	if provider {
		r, err := s.ReassignSource(ctx, sourceID, profileID)
		r.Patient = patientRef
		return r, err
	}
	s.log.Info("patient re-assigned", "source_id", sourceID, "patient", patientRef, "profile_id", profileID, "moved", out.Moved)
	s.changed(map[string]any{"source_id": sourceID, "profile_id": profileID, "change": "reassigned"})
	return out, nil
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

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func planDelete(ctx context.Context, q querier, id int64) (DeletePlan, error) {
	plan := DeletePlan{ProfileID: id, Counts: map[string]int{}, SourcesDeleted: []SourceLink{}, SourcesKept: []SourceLink{}}
	err := q.QueryRowContext(ctx, `SELECT p.name FROM profiles p WHERE p.id = ? AND `+visible, id).Scan(&plan.Name)
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

// PlanDelete says what deleting a person would remove, without removing anything.
func (s *Service) PlanDelete(ctx context.Context, id int64) (DeletePlan, error) {
	return planDelete(ctx, s.db.Read, id)
}

// ErrChanged means the records changed between the plan and the deletion; nothing was deleted.
var ErrChanged = errors.New("the records changed while deleting; nothing was deleted, please try again")

// Delete removes a person in one transaction: their records everywhere, the sources that held
// only their records (provider sources are disconnected first), their patients in shared
// sources (those sources stay with everyone else's records), and the person.
func (s *Service) Delete(ctx context.Context, id int64) (DeletePlan, error) {
	pre, err := s.PlanDelete(ctx, id)
	if err != nil {
		return pre, err
	}
	disconnected := map[int64]bool{}
	for _, l := range pre.SourcesDeleted {
		if l.Kind == records.KindProvider && s.disconnect != nil {
			if err := s.disconnect(ctx, l.ID); err != nil && !errors.Is(err, records.ErrNotFound) {
				return pre, fmt.Errorf("disconnect %s: %w", l.Name, err)
			}
			disconnected[l.ID] = true
		}
	}
	var plan DeletePlan
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		var err error
		if plan, err = planDelete(ctx, tx, id); err != nil {
			return err
		}
		for _, l := range plan.SourcesDeleted {
			if l.Kind == records.KindProvider && s.disconnect != nil && !disconnected[l.ID] {
				return ErrChanged
			}
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
			if err := syncSourceProfileTx(ctx, tx, l.ID, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete the person: %w", db.Explain(err))
		}
		return nil
	})
	if err != nil {
		return plan, err
	}
	plan.Deleted = true
	ids := make([]int64, 0, len(plan.SourcesDeleted))
	for _, l := range plan.SourcesDeleted {
		ids = append(ids, l.ID)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	s.log.Info("person deleted", "profile_id", id, "records", plan.ResourceCount, "sources_deleted", ids, "sources_kept", len(plan.SourcesKept))
	s.changed(map[string]any{"profile_id": id, "change": "deleted", "deleted": plan.ResourceCount, "counts": plan.Counts})
	return plan, nil
}
