package records

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// peopleWithRecords lists the people (profile ids) holding records under f.
func (s *Store) peopleWithRecords(ctx context.Context, f Filter) ([]int64, error) {
	q := `SELECT DISTINCT profile_id FROM resource_counts WHERE profile_id <> 0 AND n > 0`
	var args []any
	if f.SourceID != 0 {
		q += ` AND source_id = ?`
		args = append(args, f.SourceID)
	}
	rows, err := s.db.Read.QueryContext(ctx, q+` ORDER BY profile_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("people with records: %w", err)
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

// summaryEveryone is the household's dashboard: each person's summary, merged, so every list is
// bounded per person (one person's thousand results cannot push another's out) and "latest per
// test" is the latest of each person, not of whoever was measured last. Items keep their
// profile_id, so the page shows whose each one is.
func (s *Store) summaryEveryone(ctx context.Context, f Filter, ids []int64) (Summary, error) {
	parts := make([]Summary, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = s.Summary(ctx, Filter{SourceID: f.SourceID, ProfileID: id})
		}()
	}
	wg.Wait()
	var sum Summary
	for _, err := range errs {
		if err != nil {
			return sum, err
		}
	}
	var err error
	if sum.Counts, err = s.Counts(ctx, f); err != nil {
		return sum, err
	}
	byDate := func(dst *[]Item, pick func(Summary) []Item) {
		out := []Item{}
		for _, p := range parts {
			out = append(out, pick(p)...)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].sortKey > out[j].sortKey })
		*dst = out
	}
	byTitle := func(dst *[]Item, pick func(Summary) []Item) {
		out := []Item{}
		for _, p := range parts {
			out = append(out, pick(p)...)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Title < out[j].Title })
		*dst = out
	}
	byDate(&sum.Conditions, func(p Summary) []Item { return p.Conditions })
	byDate(&sum.Medications, func(p Summary) []Item { return p.Medications })
	byDate(&sum.Allergies, func(p Summary) []Item { return p.Allergies })
	byDate(&sum.Encounters, func(p Summary) []Item { return p.Encounters })
	byTitle(&sum.Immunizations, func(p Summary) []Item { return p.Immunizations })
	byTitle(&sum.Vitals, func(p Summary) []Item { return p.Vitals })
	byTitle(&sum.Labs, func(p Summary) []Item { return p.Labs })
	if len(sum.Encounters) > 10 {
		sum.Encounters = sum.Encounters[:10]
	}
	for _, p := range parts {
		if p.Patient != nil {
			sum.Patient = p.Patient
			break
		}
	}
	return sum, nil
}
