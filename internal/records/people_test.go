package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// profileOfRecords returns each record's person in a source by fhir id (0: not linked).
func profileOfRecords(t *testing.T, s *Store, sourceID int64) map[string]int64 {
	t.Helper()
	rows, err := s.db.Read.Query(`SELECT fhir_id, coalesce(profile_id, 0) FROM resources WHERE source_id = ?`, sourceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var p int64
		if err := rows.Scan(&id, &p); err != nil {
			t.Fatal(err)
		}
		out[id] = p
	}
	return out
}

func sourceProfile(t *testing.T, s *Store, id int64) int64 {
	t.Helper()
	src, err := s.GetSource(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if src.ProfileID == nil {
		return 0
	}
	return *src.ProfileID
}

func wantProfiles(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("records %v, want %v", got, want)
		}
	}
}

// TestPatientMappingsMergeAndUndo walks the people SQL through one household: two people, a
// file source with two patients and a record that names none, a merge and its undo.
func TestPatientMappingsMergeAndUndo(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	src := put(t, s,
		obs("a1", "2020-01-01", "1-1", "A one", "laboratory"),
		`{"resourceType":"Observation","id":"b1","status":"final","code":{"text":"B one"},"subject":{"reference":"Patient/b"}}`,
		`{"resourceType":"Organization","id":"org","name":"Clinic"}`,
	) // a1 names Patient/p
	tx := func(fn func(tx *sql.Tx) error) {
		t.Helper()
		if err := s.WriteTx(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	now := s.Stamp()
	var alice, bob int64
	tx(func(tx *sql.Tx) error {
		var err error
		if alice, err = s.CreateProfile(ctx, tx, NewProfile{Name: "Alice", Color: "#3b6fd8"}, now); err != nil {
			return err
		}
		bob, err = s.CreateProfile(ctx, tx, NewProfile{Name: "Bob", Color: "#d0563b"}, now)
		return err
	})

	// Both patients to Alice: the source is hers, the Organization stays not linked.
	tx(func(tx *sql.Tx) error {
		if err := s.MapPatients(ctx, tx, src, []PatientMapping{{"Patient/p", &alice}, {"Patient/b", &alice}}, true, now); err != nil {
			return err
		}
		return s.SyncSourceProfile(ctx, tx, src, now)
	})
	wantProfiles(t, profileOfRecords(t, s, src), map[string]int64{"a1": alice, "b1": alice, "org": 0})
	if got := sourceProfile(t, s, src); got != alice {
		t.Fatalf("source person %d, want Alice %d", got, alice)
	}

	// Patient/b to Bob: one record moves, the source holds two people and is nobody's.
	tx(func(tx *sql.Tx) error {
		n, err := s.SetPatientProfile(ctx, tx, src, "Patient/b", &bob, now)
		if n != 1 {
			t.Errorf("moved %d records, want 1", n)
		}
		if err != nil {
			return err
		}
		return s.SyncSourceProfile(ctx, tx, src, now)
	})
	wantProfiles(t, profileOfRecords(t, s, src), map[string]int64{"a1": alice, "b1": bob, "org": 0})
	if got := sourceProfile(t, s, src); got != 0 {
		t.Fatalf("source person %d, want none", got)
	}

	// Merge Bob into Alice: Bob is hidden, his record and mapping move.
	var mergeID int64
	tx(func(tx *sql.Tx) error {
		var err error
		if mergeID, err = s.MergeProfiles(ctx, tx, alice, bob, now); err != nil {
			return err
		}
		if err := s.CheckProfile(ctx, tx, bob); !errors.Is(err, ErrNotFound) {
			t.Errorf("merged person: %v, want not found", err)
		}
		return nil
	})
	m, err := s.GetMerge(ctx, mergeID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != "pending" || m.Moved != 1 || m.FromName != "Bob" || m.IntoName != "Alice" {
		t.Fatalf("merge %+v", m)
	}
	wantProfiles(t, profileOfRecords(t, s, src), map[string]int64{"a1": alice, "b1": alice, "org": 0})

	// Undo: exactly Patient/b goes back to Bob.
	tx(func(tx *sql.Tx) error {
		items, err := s.MergeItems(ctx, tx, mergeID)
		if err != nil {
			return err
		}
		if len(items) != 1 || items[0].SourceID != src || items[0].PatientRef != "Patient/b" || items[0].SourceKind != KindManual {
			t.Fatalf("merge items %+v", items)
		}
		n, err := s.MovePatientBack(ctx, tx, src, "Patient/b", bob, alice, now)
		if n != 1 {
			t.Errorf("moved back %d, want 1", n)
		}
		if err != nil {
			return err
		}
		return s.UndoMerge(ctx, tx, mergeID, bob, now)
	})
	wantProfiles(t, profileOfRecords(t, s, src), map[string]int64{"a1": alice, "b1": bob, "org": 0})
	tx(func(tx *sql.Tx) error { return s.CheckProfile(ctx, tx, bob) })
	if pm, err := s.PendingMerges(ctx); err != nil || len(pm) != 0 {
		t.Fatalf("pending merges %v, %v; want none", pm, err)
	}

	// Deleting Bob takes his record; the shared source stays, now Alice's alone.
	plan, err := s.PlanProfileDelete(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if plan.ResourceCount != 1 || len(plan.SourcesDeleted) != 0 || len(plan.SourcesKept) != 1 {
		t.Fatalf("plan %+v", plan)
	}
	tx(func(tx *sql.Tx) error { return s.DeleteProfileTx(ctx, tx, plan, now) })
	wantProfiles(t, profileOfRecords(t, s, src), map[string]int64{"a1": alice, "org": 0})
	if got := sourceProfile(t, s, src); got != alice {
		t.Fatalf("source person %d, want Alice %d", got, alice)
	}
}

// TestSyncSourceProfileLeavesProviderSources: a provider source's person is its own.
func TestSyncSourceProfileLeavesProviderSources(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := s.Stamp()
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		p, err := s.CreateProfile(ctx, tx, NewProfile{Name: "Carol"}, now)
		if err != nil {
			return err
		}
		src, err := s.CreateSource(ctx, tx, NewSource{Kind: KindProvider, Name: "Clinic", ProfileID: &p})
		if err != nil {
			return err
		}
		if err := s.MapPatients(ctx, tx, src, []PatientMapping{{Ref: "Patient/x"}}, false, now); err != nil {
			return err
		}
		if err := s.SyncSourceProfile(ctx, tx, src, now); err != nil {
			return err
		}
		got, err := s.GetSourceTx(ctx, tx, src)
		if err != nil {
			return err
		}
		if got.ProfileID == nil || *got.ProfileID != p {
			t.Errorf("provider source person %v, want %d", got.ProfileID, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A long list of people is read in parts side by side: the same people, in the same order, with
// the same counts as one read; Limit gives the first ones.
func TestProfilesLongListInParts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	n := 2*profileChunk + 77
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		src, err := s.CreateSource(ctx, tx, NewSource{Kind: KindManual, Name: "f"})
		if err != nil {
			return err
		}
		w, err := s.NewWriter(ctx, tx, src, false)
		if err != nil {
			return err
		}
		defer w.Close()
		for i := 1; i <= n; i++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')`, i*3, fmt.Sprint("P", i)); err != nil {
				return err
			}
			pid := int64(i * 3)
			raw := obs(fmt.Sprint("o", i), fmt.Sprintf("2020-01-%02d", 1+i%28), "2339-0", "Glucose", "laboratory")
			ix, err := fhir.IndexResource([]byte(raw))
			if err != nil {
				return err
			}
			for k := 0; k < i%3; k++ {
				ix.ID = fmt.Sprint("o", i, "-", k)
				if _, err := w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: &pid}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := ProfileQuery{Today: "2026-12-07", Counts: true}
	all, err := s.readProfiles(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.readProfileRange(ctx, q, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n || !reflect.DeepEqual(all, one) {
		t.Fatalf("in parts: %d people, one read: %d; the lists differ", len(all), len(one))
	}
	for i, p := range all {
		if p.ID != int64(3*(i+1)) || p.ResourceCount != (i+1)%3 || p.Counts["Observation"] != (i+1)%3 {
			t.Fatalf("person %d: %+v", i, p)
		}
	}
	first, err := s.Profiles(ctx, ProfileQuery{Today: "2026-12-07", Limit: 24})
	if err != nil || len(first) != 24 || first[23].ID != 72 {
		t.Fatalf("Limit 24: %d people, last %+v, %v", len(first), first[len(first)-1], err)
	}
	long, err := s.Profiles(ctx, ProfileQuery{Today: "2026-12-07", Limit: profileChunk + 5})
	if err != nil || len(long) != profileChunk+5 || long[len(long)-1].ID != int64(3*(profileChunk+5)) {
		t.Fatalf("Limit %d: %d people, %v", profileChunk+5, len(long), err)
	}
}
