package records

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// Everyone's dashboard is bounded per person and keeps each person's latest result per test.
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
	if per[1] != 100 || per[2] != 1 {
		t.Errorf("conditions per person: %v (want 100 and 1)", per)
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
