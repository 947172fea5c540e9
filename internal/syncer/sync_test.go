package syncer

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

// TestFirstAndIncrementalSync covers both paths: a first sync stores every resource the sandbox
// holds for the patient (counts by type), over at least ten pages; a second sync after the
// provider changed one resource fetches and updates only that one.
func TestFirstAndIncrementalSync(t *testing.T) {
	for _, tc := range []struct {
		name         string
		noEverything bool
		mode         string
	}{
		{"everything", false, modeEverything},
		{"per-type search", true, modeSearch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, sandbox.Config{NoEverything: tc.noEverything})
			e := newEnv(t)
			id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
			want, _ := p.srv.Patient(testPatient)
			cfg := e.config(nil)
			cfg.PageSize = 7 // >= 10 pages for $everything and for the larger types
			s := New(cfg)

			r := runOne(t, s, id)
			mustOK(t, r)
			t.Logf("first sync: %d resources, %d requests, counts %v", r.Added, r.Requests, r.Counts)
			if r.Mode != tc.mode || !r.Full {
				t.Errorf("mode %q full %v, want %q full", r.Mode, r.Full, tc.mode)
			}
			if got := e.counts(id); !maps.Equal(got, want.Counts) {
				t.Errorf("stored counts by type:\n got %v\nwant %v", got, want.Counts)
			}
			if r.Added != want.Resources || r.Updated != 0 || r.Unchanged != 0 || !maps.Equal(r.Counts, want.Counts) {
				t.Errorf("result added %d updated %d unchanged %d counts %v; want %d added", r.Added, r.Updated, r.Unchanged, r.Counts, want.Resources)
			}
			if len(r.Warnings) != 0 {
				t.Errorf("warnings: %q", r.Warnings)
			}
			pages := map[string]int{}
			for _, lr := range fhirRequests(p) {
				if lr.Status != 200 || lr.Query.Get("_count") != "7" {
					continue
				}
				pages[lr.Path]++
			}
			maxPages := 0
			for _, n := range pages {
				maxPages = max(maxPages, n)
			}
			if maxPages < 10 {
				t.Errorf("paging: at most %d pages per search (%v), want >= 10", maxPages, pages)
			}
			src := e.source(id)
			if src.Status != "connected" || src.LastSync == nil || src.LastError != nil || src.SyncState == "" {
				t.Errorf("source after sync: status %s last_sync %v last_error %v state %q", src.Status, src.LastSync, src.LastError, src.SyncState)
			}

			// The provider records a new version of one Observation.
			obs := firstOfType(t, e, id, "Observation")
			if err := p.srv.Touch("Observation", obs); err != nil {
				t.Fatal(err)
			}
			p.srv.ResetRequests()
			r = runOne(t, s, id)
			mustOK(t, r)
			if r.Full || r.Added != 0 || r.Updated != 1 || r.Unchanged != 0 || !maps.Equal(r.Counts, map[string]int{"Observation": 1}) {
				t.Errorf("incremental: full %v added %d updated %d unchanged %d counts %v; want only Observation/%s updated",
					r.Full, r.Added, r.Updated, r.Unchanged, r.Counts, obs)
			}
			for _, lr := range fhirRequests(p) {
				switch {
				case tc.mode == modeEverything && lr.Query.Get("_since") == "":
					t.Errorf("incremental $everything without _since: %s %v", lr.Path, lr.Query)
				case tc.mode == modeSearch && !strings.HasPrefix(lr.Query.Get("_lastUpdated"), "gt"):
					t.Errorf("incremental search without _lastUpdated=gt: %s %v", lr.Path, lr.Query)
				}
			}
			if got := e.counts(id); !maps.Equal(got, want.Counts) {
				t.Errorf("after the incremental sync: %v, want %v", got, want.Counts)
			}
			var version string
			if err := e.db.Read.QueryRow(`SELECT version FROM resources WHERE source_id = ? AND type = 'Observation' AND fhir_id = ?`, id, obs).Scan(&version); err != nil || version != "2" {
				t.Errorf("stored version of the touched Observation: %q %v, want 2", version, err)
			}

			// Nothing changed: nothing comes back.
			r = runOne(t, s, id)
			mustOK(t, r)
			if r.Added+r.Updated+r.Unchanged != 0 {
				t.Errorf("no-change sync wrote %d/%d/%d", r.Added, r.Updated, r.Unchanged)
			}
		})
	}
}

func firstOfType(t testing.TB, e *env, id int64, typ string) string {
	t.Helper()
	var fid string
	if err := e.db.Read.QueryRow(`SELECT fhir_id FROM resources WHERE source_id = ? AND type = ? ORDER BY id LIMIT 1`, id, typ).Scan(&fid); err != nil {
		t.Fatal(err)
	}
	return fid
}

func TestResyncAddsNoDuplicates(t *testing.T) {
	p := newProvider(t, sandbox.Config{})
	e := newEnv(t)
	id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
	s := New(e.config(nil))
	mustOK(t, runOne(t, s, id))
	// Forget the cursor: the next sync fetches everything again.
	if _, err := e.db.Write.Exec(`UPDATE sources SET sync_state = NULL WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	r := runOne(t, s, id)
	mustOK(t, r)
	want, _ := p.srv.Patient(testPatient)
	if r.Added != 0 || r.Updated != 0 || r.Unchanged != want.Resources {
		t.Errorf("full re-sync: added %d updated %d unchanged %d, want %d unchanged", r.Added, r.Updated, r.Unchanged, want.Resources)
	}
	if got := total(e.counts(id)); got != want.Resources {
		t.Errorf("%d resources stored, want %d", got, want.Resources)
	}
}

// TestMissingResources: a full sync marks what the provider no longer returns (kept), and a
// resource returned again loses the mark.
func TestMissingResources(t *testing.T) {
	for _, noEverything := range []bool{false, true} {
		p := newProvider(t, sandbox.Config{NoEverything: noEverything})
		e := newEnv(t)
		id := e.connect(p, "Demo Hospital", p.signIn(t, testPatient, fullScope))
		cfg := e.config(nil)
		s := New(cfg)
		mustOK(t, runOne(t, s, id))
		obs := firstOfType(t, e, id, "Observation")
		raw, _ := p.srv.Resource("Observation", obs)
		if err := p.srv.Remove("Observation", obs); err != nil {
			t.Fatal(err)
		}
		// An incremental sync cannot see the deletion.
		r := runOne(t, s, id)
		mustOK(t, r)
		if r.Missing != 0 {
			t.Errorf("incremental sync marked %d missing", r.Missing)
		}
		// The periodic full sync does.
		if _, err := e.db.Write.Exec(`UPDATE sources SET sync_state = json_set(sync_state, '$.full_at', '2000-01-01T00:00:00.000Z') WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
		r = runOne(t, s, id)
		mustOK(t, r)
		if !r.Full || r.Missing != 1 {
			t.Errorf("full sync: full %v missing %d, want 1", r.Full, r.Missing)
		}
		item, err := e.store.Get(context.Background(), "Observation", obs, id)
		if err != nil || !item.Missing {
			t.Errorf("removed Observation: %v missing=%v, want kept and marked", err, item.Missing)
		}
		// It comes back.
		if err := p.srv.AddResources(testPatient, raw); err != nil {
			t.Fatal(err)
		}
		r = runOne(t, s, id)
		mustOK(t, r)
		item, err = e.store.Get(context.Background(), "Observation", obs, id)
		if err != nil || item.Missing {
			t.Errorf("returned Observation: %v missing=%v, want the mark cleared", err, item.Missing)
		}
	}
}
