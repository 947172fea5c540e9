package records

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// Everyone's dashboard (issue 17): each list has a fixed size however many people there are, the
// people take turns (one person's many items cannot push another's out), and the latest result
// of each test is each person's.
func TestSummaryEveryoneIsPerPerson(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, id := range []int{1, 2} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')`, id, fmt.Sprint("P", id)); err != nil {
				return err
			}
		}
		src, err := s.CreateSource(ctx, tx, NewSource{Kind: KindManual, Name: "f"})
		if err != nil {
			return err
		}
		w, err := s.NewWriter(ctx, tx, src, false)
		if err != nil {
			return err
		}
		defer w.Close()
		add := func(pid int64, raw string) error {
			ix, err := fhir.IndexResource([]byte(raw))
			if err != nil {
				return err
			}
			_, err = w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: &pid})
			return err
		}
		// Person 1 has 150 active conditions, person 2 one (older than all of them).
		for i := range 150 {
			if err := add(1, fmt.Sprintf(`{"resourceType":"Condition","id":"c%d","clinicalStatus":{"coding":[{"code":"active"}]},"code":{"text":"C%d"},"onsetDateTime":"2021-01-%02d"}`, i, i, 1+i%28)); err != nil {
				return err
			}
		}
		if err := add(2, `{"resourceType":"Condition","id":"mine","clinicalStatus":{"coding":[{"code":"active"}]},"code":{"text":"Asthma"},"onsetDateTime":"2001-01-01"}`); err != nil {
			return err
		}
		// Both had glucose measured; person 1 more recently.
		if err := add(1, obs("g1", "2022-01-01", "2339-0", "Glucose", "laboratory")); err != nil {
			return err
		}
		return add(2, obs("g2", "2020-01-01", "2339-0", "Glucose", "laboratory"))
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Summary(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[int64]int{}
	for _, c := range sum.Conditions {
		per[*c.ProfileID]++
	}
	if len(sum.Conditions) != householdItems || per[1] != householdItems-1 || per[2] != 1 {
		t.Errorf("%d conditions, per person: %v (want %d: %d and 1)", len(sum.Conditions), per, householdItems, householdItems-1)
	}
	if len(sum.Labs) != 2 || *sum.Labs[0].ProfileID == *sum.Labs[1].ProfileID {
		t.Errorf("latest glucose of each person: %+v", sum.Labs)
	}
	if sum.Counts["Condition"] != 151 {
		t.Errorf("counts: %v", sum.Counts)
	}
	one, err := s.Summary(ctx, Filter{ProfileID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Conditions) != 1 || len(one.Labs) != 1 {
		t.Errorf("one person's summary: %d conditions, %d labs", len(one.Conditions), len(one.Labs))
	}
}

// A household of more than householdPeople people: each list still has its fixed size, and the
// people whose records are newest take turns.
func TestSummaryOfALargeHouseholdIsBounded(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const people = householdPeople + 4
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
		for p := int64(1); p <= people; p++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')`, p, fmt.Sprint("P", p)); err != nil {
				return err
			}
			for i := range 30 {
				raw := fmt.Sprintf(`{"resourceType":"Condition","id":"c%d-%d","clinicalStatus":{"coding":[{"code":"active"}]},"code":{"text":"C%d"},"onsetDateTime":"2021-%02d-%02d"}`, p, i, i, 1+i%12, 1+int(p)%28)
				ix, _ := fhir.IndexResource([]byte(raw))
				pid := p
				if _, err := w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: &pid}); err != nil {
					return err
				}
				obsRaw := obs(fmt.Sprintf("o%d-%d", p, i), fmt.Sprintf("2022-%02d-%02d", 1+i%12, 1+int(p)%28), fmt.Sprint("100-", i%5), "Test", "laboratory")
				ix, _ = fhir.IndexResource([]byte(obsRaw))
				if _, err := w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: obsRaw, Index: ix, ProfileID: &pid}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Summary(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[int64]int{}
	for _, c := range sum.Conditions {
		per[*c.ProfileID]++
	}
	if len(sum.Conditions) != householdItems || len(per) < 2 {
		t.Errorf("%d conditions from %d people (want %d from several)", len(sum.Conditions), len(per), householdItems)
	}
	// Five tests per person: the latest of each (person, test) until the quota is full.
	seen := map[string]bool{}
	for _, l := range sum.Labs {
		k := fmt.Sprint(*l.ProfileID, l.Title, string(l.Resource))
		if seen[k] {
			t.Errorf("a result twice: %s", k)
		}
		seen[k] = true
	}
	if len(sum.Labs) == 0 || len(sum.Labs) > householdLabs {
		t.Errorf("%d labs (want 1 to %d)", len(sum.Labs), householdLabs)
	}
	if sum.Counts["Condition"] != 30*people || sum.Patient != nil {
		t.Errorf("counts %v, patient %s", sum.Counts, sum.Patient)
	}
}

// Blood pressure under its two LOINC panels (85354-9 from "Entered by me" and US Core, 55284-4
// from Synthea) is one row of the latest results, the newest, for one person and for everyone,
// and a history by either code has both.
func TestBloodPressurePanelsAreOneMeasurement(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, id := range []int{1, 2} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')`, id, fmt.Sprint("P", id)); err != nil {
				return err
			}
		}
		src, err := s.CreateSource(ctx, tx, NewSource{Kind: KindManual, Name: "f"})
		if err != nil {
			return err
		}
		w, err := s.NewWriter(ctx, tx, src, false)
		if err != nil {
			return err
		}
		defer w.Close()
		for _, o := range []struct {
			pid            int64
			id, date, code string
		}{
			{1, "syn-old", "2020-01-01", "55284-4"},
			{1, "syn", "2021-06-01", "55284-4"},
			{1, "mine", "2024-03-01", "85354-9"},
			{2, "other", "2019-01-01", "55284-4"},
		} {
			raw := obs(o.id, o.date, o.code, "Blood pressure", "vital-signs")
			ix, err := fhir.IndexResource([]byte(raw))
			if err != nil {
				return err
			}
			if _, err := w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: &o.pid}); err != nil {
				return err
			}
		}
		// Another vital sign stays a row of its own.
		raw := obs("hr", "2024-03-01", "8867-4", "Heart rate", "vital-signs")
		ix, _ := fhir.IndexResource([]byte(raw))
		one := int64(1)
		_, err = w.Put(ctx, Row{Type: ix.Type, ID: ix.ID, Raw: raw, Index: ix, ProfileID: &one})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(items []Item) (out []string) {
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	one, err := s.Summary(ctx, Filter{ProfileID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(one.Vitals)); got != "[mine hr]" && got != "[hr mine]" {
		t.Errorf("person 1's vital signs: %s, want the newest blood pressure (mine) and the heart rate", got)
	}
	all, err := s.Summary(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	bp := map[string]bool{}
	for _, it := range all.Vitals {
		bp[it.ID] = true
	}
	if len(all.Vitals) != 3 || !bp["mine"] || !bp["other"] || !bp["hr"] {
		t.Errorf("everyone's vital signs: %v, want mine, other and hr", ids(all.Vitals))
	}
	for _, code := range []string{"http://loinc.org|85354-9", "http://loinc.org|55284-4", "55284-4"} {
		page, err := s.List(ctx, ListQuery{Type: "Observation", Filter: Filter{ProfileID: 1}, Code: code})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(page.Items)); got != "[mine syn syn-old]" {
			t.Errorf("history by %s: %s, want [mine syn syn-old]", code, got)
		}
	}
}
