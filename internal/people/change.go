package people

import (
	"net/http"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"sort"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Merge states.
const (
	MergePending   = "pending"
	MergeConfirmed = "confirmed"
	MergeUndone    = "undone"
)

// Merge is one merge of a person (from) into another (into).
type Merge = records.Merge

// PendingMerges lists the merges that can still be undone (at most one).
func (s *Service) PendingMerges(ctx context.Context) ([]Merge, error) {
	return s.store.PendingMerges(ctx)
}

// confirmPendingTx makes every pending merge final: the merged person is deleted and the merge
// can no longer be undone. Called by every later change to people.
func (s *Service) confirmPendingTx(ctx context.Context, tx *sql.Tx, now string) error {
	return s.store.ConfirmPendingMerges(ctx, tx, now)
}

// Merge moves everything of person from (sources, patients, records) to person into, at once,
// and hides from. The merge stays undoable (Undo) until Confirm, or until a later merge, delete
// or re-assignment confirms it.
func (s *Service) Merge(ctx context.Context, into, from int64) (Merge, error) {
	if into == from {
		return Merge{}, invalid("A person cannot be merged with themselves.")
	}
	fromProviders := s.providersOf(ctx, from)
	var id int64
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		for _, p := range []int64{into, from} {
			if err := s.store.CheckProfile(ctx, tx, p); err != nil {
				return err
			}
		}
		var err error
		if id, err = s.store.MergeProfiles(ctx, tx, into, from, now); err != nil {
			return err
		}
		return s.resyncMergeSourcesTx(ctx, tx, id, now)
	})
	if err != nil {
		return Merge{}, err
	}
	m, err := s.store.GetMerge(ctx, id)
	if err != nil {
		return Merge{}, err
	}
	s.log.Info("people merged", "merge_id", id, "into", into, "from", from, "moved", m.Moved)
	s.changed(map[string]any{"merge_id": id, "profile_id": into, "change": "merged"})
	// The merged person's user key no longer stands for anyone at those providers.
	s.forget(from, fromProviders)
	return m, nil
}

// resyncMergeSourcesTx recomputes the person of the file sources a merge touched.
func (s *Service) resyncMergeSourcesTx(ctx context.Context, tx *sql.Tx, mergeID int64, now string) error {
	ids, err := s.store.MergeFileSources(ctx, tx, mergeID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.store.SyncSourceProfile(ctx, tx, id, now); err != nil {
			return err
		}
	}
	return nil
}

// Undo reverts a pending merge: the merged person is shown again and gets back exactly the
// sources and patients the merge moved, with their records.
func (s *Service) Undo(ctx context.Context, mergeID int64) (Merge, error) {
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		m, err := s.store.GetMergeTx(ctx, tx, mergeID)
		if err != nil {
			return err
		}
		if m.State != MergePending || m.FromID == nil {
			return invalid("This merge was %s and can no longer be undone.", m.State)
		}
		from, into, now := *m.FromID, m.IntoID, s.stamp()
		items, err := s.store.MergeItems(ctx, tx, mergeID)
		if err != nil {
			return err
		}
		var back int64
		for _, it := range items {
			var n int64
			if it.PatientRef == "" {
				// A provider source's records are all its person's; a file source's follow
				// their patients' mappings (moved back as their own items).
				n, err = s.store.MoveSourceBack(ctx, tx, it.SourceID, from, into, it.SourceKind == records.KindProvider, now)
			} else {
				n, err = s.store.MovePatientBack(ctx, tx, it.SourceID, it.PatientRef, from, into, now)
			}
			if err != nil {
				return err
			}
			back += n
		}
		if err := s.resyncMergeSourcesTx(ctx, tx, mergeID, now); err != nil {
			return err
		}
		if err := s.store.UndoMerge(ctx, tx, mergeID, from, now); err != nil {
			return err
		}
		s.log.Info("merge undone", "merge_id", mergeID, "moved_back", back)
		return nil
	})
	if err != nil {
		return Merge{}, err
	}
	m, err := s.store.GetMerge(ctx, mergeID)
	if err == nil {
		s.changed(map[string]any{"merge_id": mergeID, "profile_id": m.FromID, "change": "merge_undone"})
	}
	return m, err
}

// Confirm makes a pending merge final (the merged person is deleted).
func (s *Service) Confirm(ctx context.Context, mergeID int64) (Merge, error) {
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		m, err := s.store.GetMergeTx(ctx, tx, mergeID)
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
	return s.store.GetMerge(ctx, mergeID)
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

// ReassignSource gives a source, with every patient in it and their records, to a person
// (nil: to nobody, "not linked"). A file source's records that name no patient stay unlinked;
// a provider source's records all move. One transaction.
func (s *Service) ReassignSource(ctx context.Context, sourceID int64, profileID *int64) (Reassigned, error) {
	out := Reassigned{SourceID: sourceID, ProfileID: profileID}
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		kind, err := s.store.SourceKind(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		if profileID != nil {
			if err := s.store.CheckProfile(ctx, tx, *profileID); err != nil {
				return err
			}
		}
		// A provider source's records are all its person's; a file source's records that name
		// no patient stay not linked.
		n, err := s.store.AssignSource(ctx, tx, sourceID, profileID, kind != records.KindProvider, now)
		out.Moved = int(n)
		return err
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
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		kind, err := s.store.SourceKind(ctx, tx, sourceID)
		if err != nil {
			return err
		}
		if provider = kind == records.KindProvider; provider {
			return nil
		}
		switch ok, err := s.store.HasSourcePatient(ctx, tx, sourceID, patientRef); {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("%s in source %d: %w", patientRef, sourceID, ErrNotFound)
		}
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		if profileID != nil {
			if err := s.store.CheckProfile(ctx, tx, *profileID); err != nil {
				return err
			}
		}
		n, err := s.store.SetPatientProfile(ctx, tx, sourceID, patientRef, profileID, now)
		if err != nil {
			return err
		}
		out.Moved = int(n)
		return s.store.SyncSourceProfile(ctx, tx, sourceID, now)
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
type DeletePlan = records.DeletePlan

// PlanDelete says what deleting a person would remove, without removing anything.
func (s *Service) PlanDelete(ctx context.Context, id int64) (DeletePlan, error) {
	return s.store.PlanProfileDelete(ctx, id)
}

// ErrChanged means the records changed between the plan and the deletion; nothing was deleted.
var ErrChanged error = &httpkit.Kind{Status: http.StatusConflict, Code: "changed", Text: "the records changed while deleting; nothing was deleted, please try again"}

// Delete removes a person in one transaction: their records everywhere, the sources that held
// only their records (provider sources are disconnected first), their patients in shared
// sources (those sources stay with everyone else's records), and the person.
func (s *Service) Delete(ctx context.Context, id int64) (DeletePlan, error) {
	pre, err := s.PlanDelete(ctx, id)
	if err != nil {
		return pre, err
	}
	providers := s.providersOf(ctx, id)
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
	err = s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		if err := s.confirmPendingTx(ctx, tx, now); err != nil {
			return err
		}
		var err error
		if plan, err = s.store.PlanProfileDeleteTx(ctx, tx, id); err != nil {
			return err
		}
		for _, l := range plan.SourcesDeleted {
			if l.Kind == records.KindProvider && s.disconnect != nil && !disconnected[l.ID] {
				return ErrChanged
			}
		}
		return s.store.DeleteProfileTx(ctx, tx, plan, now)
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
	s.forget(id, providers)
	return plan, nil
}
