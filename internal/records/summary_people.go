package records

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// householdPeople is the most people whose dashboard lists are chosen person by person (each
// one's newest through their own index, so everyone has a turn however old their records are);
// a larger household's are chosen from the household's newest records.
const householdPeople = 8

// peopleWithRecords lists the people (profile ids) holding records under f, at most
// householdPeople+1 (more is "many").
func (s *Store) peopleWithRecords(ctx context.Context, f Filter) ([]int64, error) {
	q := `SELECT DISTINCT profile_id FROM resource_counts WHERE profile_id > 0 AND n > 0`
	var args []any
	if f.SourceID != 0 {
		q += ` AND source_id = ?`
		args = append(args, f.SourceID)
	}
	rows, err := s.db.Read.QueryContext(ctx, q+` ORDER BY profile_id LIMIT ?`, append(args, householdPeople+1)...)
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

// householdList is one of the household's dashboard lists ("Everyone"): a fixed number of items
// however many people there are, each with its person, shared fairly: the people take turns
// (each one's newest, then each one's second newest, ...), so one person's thousand results
// cannot push another's out. The candidates are each person's newest householdScan records of
// each type (up to householdPeople people), or the household's newest (more people); of those
// only their person, code and category are read; then the winners.
type householdList struct {
	types   []string       // read newest first through (type, sort_date), one type at a time
	where   string         // further conditions on r
	perCode bool           // the newest of each (person, code) only: latest results, vaccines
	quota   map[string]int // items by category (Observation: vital-signs, laboratory); "" any
	byTitle bool           // the list is shown by title (latest results), else newest first
}

// householdScan bounds, per type, the records a household list is chosen from: a multiple of
// what the list shows, so that several people's newest are among them.
func householdScan(limit int) int { return max(50, 4*limit) }

type householdCandidate struct {
	id       int64
	profile  int64
	code     string
	category string
	date     string
}

func (s *Store) household(ctx context.Context, f Filter, people []int64, hl householdList) ([]Item, error) {
	total := 0
	for _, n := range hl.quota {
		total += n
	}
	var cands []householdCandidate
	scan := func(typ string, profile int64) error {
		args := []any{typ}
		index := "resources_type_date"
		w := hl.where + f.where("r.", &args)
		if profile != 0 {
			index = "resources_profile_type"
			w += ` AND r.profile_id = ?`
			args = append(args, profile)
		}
		args = append(args, householdScan(total))
		rows, err := s.db.Read.QueryContext(ctx, `SELECT r.id, coalesce(r.profile_id, 0), coalesce(r.code, ''), coalesce(r.category, ''), r.sort_date
			FROM resources r INDEXED BY `+index+`
			WHERE r.type = ?`+w+` ORDER BY r.sort_date DESC, r.id DESC LIMIT ?`, args...)
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c householdCandidate
			if err := rows.Scan(&c.id, &c.profile, &c.code, &c.category, &c.date); err != nil {
				return err
			}
			if _, kind := hl.quota[c.category]; !kind {
				c.category = ""
			}
			cands = append(cands, c)
		}
		return rows.Err()
	}
	for _, typ := range hl.types {
		if len(people) == 0 || len(people) > householdPeople {
			if err := scan(typ, 0); err != nil {
				return nil, err
			}
			continue
		}
		for _, p := range people {
			if err := scan(typ, p); err != nil {
				return nil, err
			}
		}
	}
	// Newest first across the types.
	slices.SortStableFunc(cands, func(a, b householdCandidate) int {
		if c := strings.Compare(b.date, a.date); c != 0 {
			return c
		}
		return cmp.Compare(b.id, a.id)
	})
	// Per kind, each person's candidates in order (the newest of each code when perCode).
	type queue struct{ ids []int64 }
	queues := map[string]map[int64]*queue{}
	order := map[string][]int64{} // people by their newest candidate
	seen := map[string]bool{}
	for _, c := range cands {
		if _, ok := hl.quota[c.category]; !ok {
			continue
		}
		if hl.perCode {
			k := fmt.Sprint(c.profile, "|", canonicalCode(c.code))
			if c.code == "" || seen[k] {
				continue
			}
			seen[k] = true
		}
		if queues[c.category] == nil {
			queues[c.category] = map[int64]*queue{}
		}
		q := queues[c.category][c.profile]
		if q == nil {
			q = &queue{}
			queues[c.category][c.profile] = q
			order[c.category] = append(order[c.category], c.profile)
		}
		q.ids = append(q.ids, c.id)
	}
	var ids []int64
	for kind, n := range hl.quota {
		for round := 0; n > 0; round++ {
			took := false
			for _, p := range order[kind] {
				if q := queues[kind][p]; round < len(q.ids) && n > 0 {
					ids = append(ids, q.ids[round])
					n--
					took = true
				}
			}
			if !took {
				break
			}
		}
	}
	if len(ids) == 0 {
		return []Item{}, nil
	}
	orderBy := `r.sort_date DESC, r.id DESC`
	if hl.byTitle {
		orderBy = `r.title, r.profile_id`
	}
	b, _ := json.Marshal(ids)
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+itemCols+`, coalesce(r.category, '') FROM resources r
		WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY `+orderBy, string(b))
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return collectWithCategory(rows)
}
