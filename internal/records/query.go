package records

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Page is one page of items.
type Page struct {
	Items      []Item `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ErrBadQuery is wrapped by errors in the caller's query (bad cursor, unknown sort...).
var ErrBadQuery error = &httpkit.Kind{Status: http.StatusBadRequest, Code: "bad_request", Text: "the request is not valid"}

type cursor struct {
	K string `json:"k"` // sort key of the last item
	I int64  `json:"i"` // row id of the last item
	O int    `json:"o,omitempty"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, fmt.Errorf("%w: the cursor is not one this server issued", ErrBadQuery)
	}
	return c, nil
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return n
}

// ListQuery selects resources of one type.
type ListQuery struct {
	Type   string
	Filter Filter
	Code   string // system|code or a bare code
	Sort   string // -date (default), date, title, -title
	Cursor string
	Limit  int
}

// List returns a page of resources of one type.
func (s *Store) List(ctx context.Context, q ListQuery) (Page, error) {
	if !fhir.KnownType(q.Type) {
		return Page{}, fmt.Errorf("%w: unknown resource type %q", ErrBadQuery, q.Type)
	}
	col, desc := "r.sort_date", true
	switch q.Sort {
	case "", "-date":
	case "date":
		desc = false
	case "title":
		col, desc = "r.title", false
	case "-title":
		col = "r.title"
	default:
		return Page{}, fmt.Errorf("%w: sort must be one of -date, date, title, -title", ErrBadQuery)
	}
	args := []any{q.Type}
	var where string
	if q.Filter.ProfileID != 0 && isDirectoryRefType(q.Type) {
		// A person's doctors, clinics and places include those their visits reference (directory.go).
		where = `r.type = ?` + Filter{SourceID: q.Filter.SourceID}.where("r.", &args)
		w, err := s.personDirectoryWhere(ctx, q.Type, q.Filter.ProfileID, &args)
		if err != nil {
			return Page{}, err
		}
		where += w
	} else {
		where = `r.type = ?` + q.Filter.where("r.", &args)
	}
	if q.Code != "" {
		// The primary code is resources.code, indexed per person for results and vaccines
		// (migration 6); resource_codes holds the other codings. Two branches, merged in order,
		// so each reads its own index in date order (an OR of the two read every record of the
		// type and person).
		// A code with equivalents (blood pressure's two panels) is a branch pair per code.
		var branches []branch
		for _, c := range equivalents(q.Code) {
			primary, other := where, where
			pargs, oargs := append([]any{}, args...), append([]any{}, args...)
			if sys, code, ok := strings.Cut(c, "|"); ok {
				primary += ` AND r.code = ?`
				pargs = append(pargs, c)
				other += ` AND r.id IN (SELECT resource_id FROM resource_codes WHERE code = ? AND system = ?)`
				oargs = append(oargs, code, sys)
			} else {
				primary += ` AND substr(r.code, instr(r.code, '|') + 1) = ?`
				pargs = append(pargs, c)
				other += ` AND r.id IN (SELECT resource_id FROM resource_codes WHERE code = ?)`
				oargs = append(oargs, c)
			}
			branches = append(branches, branch{where: primary, args: pargs}, branch{where: other, args: oargs})
		}
		return s.keysetBranches(ctx, branches, col, desc, q.Cursor, q.Limit)
	}
	return s.keyset(ctx, where, args, col, desc, q.Cursor, q.Limit)
}

// keyset pages over (col, id) in the given direction.
func (s *Store) keyset(ctx context.Context, where string, args []any, col string, desc bool, cur string, limit int) (Page, error) {
	return s.keysetBranches(ctx, []branch{{where: where, args: args}}, col, desc, cur, limit)
}

// branch is one part of a keyset query: records matching where (with its args), read through
// index when one is named.
type branch struct {
	where string
	args  []any
	index string
}

// keysetBranches pages over (col, id) across branches with no record in common: each branch is
// read in order and they are merged (a compound SELECT ordered by the key).
func (s *Store) keysetBranches(ctx context.Context, branches []branch, col string, desc bool, cur string, limit int) (Page, error) {
	c, err := decodeCursor(cur)
	if err != nil {
		return Page{}, err
	}
	limit = clampLimit(limit)
	op, dir := ">", "ASC"
	if desc {
		op, dir = "<", "DESC"
	}
	var parts []string
	var args []any
	for _, b := range branches {
		where := b.where
		args = append(args, b.args...)
		if cur != "" {
			where += fmt.Sprintf(` AND (%s, r.id) %s (?, ?)`, col, op)
			args = append(args, c.K, c.I)
		}
		from := "resources r"
		if b.index != "" {
			from += " INDEXED BY " + b.index
		}
		parts = append(parts, fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s`, itemCols, col, from, where))
	}
	var q string
	if len(parts) == 1 {
		q = fmt.Sprintf(`%s ORDER BY %s %s, r.id %s LIMIT ?`, parts[0], col, dir, dir)
	} else {
		// By position: the key is the column after itemCols, the row id the first.
		q = fmt.Sprintf(`%s ORDER BY %d %s, 1 %s LIMIT ?`, strings.Join(parts, " UNION ALL "), strings.Count(itemCols, ",")+2, dir, dir)
	}
	args = append(args, limit+1)
	rows, err := s.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return Page{}, fmt.Errorf("query resources: %w", err)
	}
	defer rows.Close()
	var items []Item
	var keys []string
	for rows.Next() {
		var it Item
		var date, raw, key string
		if err := rows.Scan(&it.rowID, &it.SourceID, &it.Type, &it.ID, &it.Version, &date, &it.LastUpdated, &it.Title, &it.Patient, &it.ProfileID, &it.Missing, &raw, &key); err != nil {
			return Page{}, err
		}
		if date != "" {
			it.Date = &date
		}
		it.Resource = json.RawMessage(raw)
		items = append(items, it)
		keys = append(keys, key)
	}
	if err := rows.Err(); err != nil {
		return Page{}, err
	}
	p := Page{Items: items}
	if p.Items == nil {
		p.Items = []Item{}
	}
	if len(items) > limit {
		p.Items = items[:limit]
		last := p.Items[limit-1]
		p.NextCursor = encodeCursor(cursor{K: keys[limit-1], I: last.rowID})
	}
	return p, s.fillTitles(ctx, p.Items)
}

// TimelineQuery selects records of all (or some) types by date.
type TimelineQuery struct {
	Types  []string
	Filter Filter
	Q      string
	Cursor string
	Limit  int
}

// Timeline returns records newest first.
func (s *Store) Timeline(ctx context.Context, q TimelineQuery) (Page, error) {
	var args []any
	where := `1=1` + q.Filter.where("r.", &args)
	if len(q.Types) > 0 {
		ph := make([]string, 0, len(q.Types))
		for _, t := range q.Types {
			if !fhir.KnownType(t) {
				return Page{}, fmt.Errorf("%w: unknown resource type %q", ErrBadQuery, t)
			}
			ph = append(ph, "?")
			args = append(args, t)
		}
		where += ` AND r.type IN (` + strings.Join(ph, ",") + `)`
	} else {
		where += notEventsClause() // directory entries and claims are not events (see timeline.go)
	}
	if fts := ftsQuery(q.Q); fts != "" {
		where += ` AND r.id IN (SELECT rowid FROM resources_fts WHERE resources_fts MATCH ?)`
		args = append(args, fts)
	}
	return s.keyset(ctx, where, args, "r.sort_date", true, q.Cursor, q.Limit)
}

// ftsQuery turns what a person typed into a safe FTS5 query: every word must match (as a prefix).
func ftsQuery(in string) string {
	words := strings.FieldsFunc(in, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	var parts []string
	for _, w := range words {
		if len(parts) == 16 {
			break
		}
		parts = append(parts, `"`+w+`"*`)
	}
	return strings.Join(parts, " ")
}

// searchDirect is the most matches Search reads directly; past it, it reads the date index and
// keeps the matches (they are then frequent enough to fill a page quickly).
const searchDirect = 2000

// Search returns the records matching q (every word, as a prefix), newest first; records with no
// date (doctors, clinics, places) come last. Ranking by relevance (bm25) scores every match
// against the full-text index and reads each matching record: on a million records a common
// word matches tens of thousands, which took hundreds of milliseconds. Now the work is bounded
// by the page: a few matches are read directly; many are found in date order through the date
// index of everyone or of the person (resources_date, resources_profile), whose entries are
// checked against the matches before any record is read.
func (s *Store) Search(ctx context.Context, q string, f Filter, cur string, limit int) (Page, error) {
	fts := ftsQuery(q)
	if fts == "" {
		return Page{Items: []Item{}}, nil
	}
	if _, err := decodeCursor(cur); err != nil {
		return Page{}, err
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT rowid FROM resources_fts WHERE resources_fts MATCH ? LIMIT ?`, fts, searchDirect+1)
	if err != nil {
		return Page{}, fmt.Errorf("search: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return Page{}, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("search: %w", err)
	}
	if len(ids) == 0 {
		return Page{Items: []Item{}}, nil
	}
	var args []any
	var where, index string
	if len(ids) <= searchDirect {
		b, _ := json.Marshal(ids)
		where = `r.id IN (SELECT value FROM json_each(?))`
		args = append(args, string(b))
	} else {
		where = `r.id IN (SELECT rowid FROM resources_fts WHERE resources_fts MATCH ?)`
		args = append(args, fts)
		index = "resources_date"
		if f.ProfileID != 0 {
			index = "resources_profile"
		}
	}
	where += f.where("r.", &args)
	p, err := s.keysetBranches(ctx, []branch{{where: where, args: args, index: index}}, "r.sort_date", true, cur, limit)
	if err != nil {
		return Page{}, fmt.Errorf("search: %w", err)
	}
	return p, nil
}

// Get returns one resource: from the given source, else the most recently updated copy.
func (s *Store) Get(ctx context.Context, typ, id string, sourceID int64) (Item, error) {
	args := []any{typ, id}
	q := `SELECT ` + itemCols + ` FROM resources r WHERE r.type = ? AND r.fhir_id = ?`
	if sourceID != 0 {
		q += ` AND r.source_id = ?`
		args = append(args, sourceID)
	}
	q += ` ORDER BY r.updated_at DESC LIMIT 1`
	it, err := scanItem(s.db.Read.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("%s/%s: %w", typ, id, ErrNotFound)
	}
	return it, err
}

// Summary is the dashboard's content.
type Summary struct {
	Patient       json.RawMessage `json:"patient"`
	Counts        map[string]int  `json:"counts"`
	Conditions    []Item          `json:"conditions"`
	Medications   []Item          `json:"medications"`
	Allergies     []Item          `json:"allergies"`
	Immunizations []Item          `json:"immunizations"`
	Vitals        []Item          `json:"vitals"`
	Labs          []Item          `json:"labs"`
	Encounters    []Item          `json:"encounters"`
}

// Summary gathers the dashboard. Every list holds at most a fixed number of items, so the page
// stays small and fast on any record: a person's active problems, medications and allergies
// (newest first), their latest result of each test and dose of each vaccine, and recent visits.
// For everyone (a household) the same lists hold the household's newest items, each with its
// person; the latest results are the newest of each person's tests (summary_people.go).
func (s *Store) Summary(ctx context.Context, f Filter) (Summary, error) {
	if f.ProfileID == 0 {
		ids, err := s.peopleWithRecords(ctx, f)
		if err != nil {
			return Summary{}, err
		}
		if len(ids) == 1 {
			// One person holds every record of a person: their summary (exact latest of each
			// test), with the counts of everything.
			sum, err := s.summary(ctx, Filter{SourceID: f.SourceID, ProfileID: ids[0]}, nil, false, true)
			if err == nil {
				sum.Counts, err = s.Counts(ctx, f)
			}
			return sum, err
		}
		// Several people: the household's lists, no one patient. Nobody (records that name no
		// person): the same lists, with the newest Patient.
		return s.summary(ctx, f, ids, true, len(ids) == 0)
	}
	return s.summary(ctx, f, nil, false, true)
}

// Bounds of the dashboard's lists: a person's, and a household's (every person's together).
const (
	summaryItems      = 100
	summaryVitals     = 50
	summaryEncounters = 10
	householdItems    = 25
	householdLabs     = 50
)

func (s *Store) summary(ctx context.Context, f Filter, people []int64, household, withPatient bool) (Summary, error) {
	var sum Summary
	list := func(where string, order string, limit int) ([]Item, error) {
		var args []any
		w := where + f.where("r.", &args)
		args = append(args, limit)
		rows, err := s.db.Read.QueryContext(ctx, `SELECT `+itemCols+` FROM resources r WHERE `+w+` ORDER BY `+order+` LIMIT ?`, args...)
		if err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		return collect(rows)
	}
	newest := func(where string, limit int) ([]Item, error) {
		return list(where, `r.sort_date DESC, r.id DESC`, limit)
	}
	var counts map[string]int
	var countsErr error
	countsDone := make(chan struct{})
	go func() {
		defer close(countsDone)
		counts, countsErr = s.Counts(ctx, f)
	}()
	var results []Item // the latest of each test, vital signs and laboratory results together
	type step struct {
		dst *[]Item
		run func() ([]Item, error)
	}
	// activeStatuses is the WHERE of resources_active (migration 6), which the conditions and
	// prescriptions lists must repeat to read it; a condition is never on-hold or intended and
	// a prescription never a recurrence or relapse.
	const activeStatuses = `r.status IN ('active', 'recurrence', 'relapse', 'on-hold', 'intended')`
	active := map[string]string{
		"Condition":          activeStatuses,
		"MedicationRequest":  activeStatuses,
		"AllergyIntolerance": `(r.status IS NULL OR r.status = 'active')`,
	}
	patient := step{nil, func() ([]Item, error) {
		// The newest stored Patient (chosen by row id in the index, then read: sorting the
		// Patients by updated_at would read every copy's JSON).
		var args []any
		fw := f.where("r.", &args)
		var raw string
		err := s.db.Read.QueryRowContext(ctx, `SELECT r.raw FROM resources r WHERE r.id =
			(SELECT r.id FROM resources r WHERE r.type = 'Patient'`+fw+` ORDER BY r.id DESC LIMIT 1)`, args...).Scan(&raw)
		switch {
		case err == nil:
			sum.Patient = json.RawMessage(raw)
		case errors.Is(err, sql.ErrNoRows):
			err = nil
		default:
			err = fmt.Errorf("summary: %w", err)
		}
		return nil, err
	}}
	var steps []step
	if household {
		one := func(types []string, where string, n int) func() ([]Item, error) {
			return func() ([]Item, error) {
				return s.household(ctx, f, people, householdList{types: types, where: where, quota: map[string]int{"": n}})
			}
		}
		steps = []step{
			{&sum.Conditions, one([]string{"Condition"}, ` AND `+active["Condition"], householdItems)},
			{&sum.Medications, func() ([]Item, error) {
				items, err := one([]string{"MedicationRequest", "MedicationStatement"}, ` AND `+active["MedicationRequest"], householdItems)()
				if err == nil {
					err = s.fillTitles(ctx, items)
				}
				return items, err
			}},
			{&sum.Allergies, one([]string{"AllergyIntolerance"}, ` AND `+active["AllergyIntolerance"], householdItems)},
			{&sum.Immunizations, func() ([]Item, error) {
				return s.household(ctx, f, people, householdList{types: []string{"Immunization"}, perCode: true, byTitle: true,
					quota: map[string]int{"": householdItems}})
			}},
			{&results, func() ([]Item, error) {
				return s.household(ctx, f, people, householdList{types: []string{"Observation"}, perCode: true, byTitle: true,
					quota: map[string]int{"vital-signs": householdItems, "laboratory": householdLabs}})
			}},
			{&sum.Encounters, one([]string{"Encounter"}, "", summaryEncounters)},
		}
	} else {
		steps = []step{
			{&sum.Conditions, func() ([]Item, error) {
				return newest(`r.type = 'Condition' AND `+active["Condition"], summaryItems)
			}},
			{&sum.Medications, func() ([]Item, error) {
				// One query per type (each a seek in date order), merged: an IN over the two
				// types would read and sort all of a person's prescriptions.
				var items []Item
				for _, t := range []string{"MedicationRequest", "MedicationStatement"} {
					part, err := newest(`r.type = '`+t+`' AND `+active["MedicationRequest"], summaryItems)
					if err != nil {
						return nil, err
					}
					items = append(items, part...)
				}
				sort.SliceStable(items, func(i, j int) bool {
					if items[i].sortKey != items[j].sortKey {
						return items[i].sortKey > items[j].sortKey
					}
					return items[i].rowID > items[j].rowID
				})
				if len(items) > summaryItems {
					items = items[:summaryItems]
				}
				return items, s.fillTitles(ctx, items)
			}},
			{&sum.Allergies, func() ([]Item, error) {
				return newest(`r.type = 'AllergyIntolerance' AND `+active["AllergyIntolerance"], summaryItems)
			}},
			{&sum.Immunizations, func() ([]Item, error) {
				items, err := s.latestPerCode(ctx, f, "Immunization", "resources_imm_person")
				if len(items) > summaryItems {
					items = items[:summaryItems]
				}
				return items, err
			}},
			{&results, func() ([]Item, error) { return s.latestPerCode(ctx, f, "Observation", "resources_obs_person") }},
			{&sum.Encounters, func() ([]Item, error) { return newest(`r.type = 'Encounter'`, summaryEncounters) }},
		}
	}
	if withPatient {
		steps = append(steps, patient)
	}
	// The steps are independent reads: run them side by side on the read pool.
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items, err := st.run()
			if st.dst != nil {
				*st.dst, errs[i] = items, err
			} else {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	<-countsDone
	sum.Counts = counts
	sum.Vitals, sum.Labs = []Item{}, []Item{}
	for _, it := range results { // already within the household's quotas
		switch {
		case it.category == "vital-signs" && len(sum.Vitals) < summaryVitals:
			sum.Vitals = append(sum.Vitals, it)
		case it.category == "laboratory" && len(sum.Labs) < summaryItems:
			sum.Labs = append(sum.Labs, it)
		}
	}
	return sum, errors.Join(append(errs, countsErr)...)
}

// latestPerCode is a person's newest record of each code of one type (Observation: every test;
// Immunization: every vaccine), by title: a skip scan over the person's index of that type
// (profile_id, code, sort_date), one seek for the next code and one for its newest row. No
// record is read but the winners.
func (s *Store) latestPerCode(ctx context.Context, f Filter, typ, index string) ([]Item, error) {
	where := `r.type = '` + typ + `' AND r.profile_id = ?`
	var fargs []any
	fw := Filter{SourceID: f.SourceID}.where("r.", &fargs)
	args := []any{f.ProfileID, f.ProfileID, f.ProfileID}
	args = append(args, fargs...)
	q := `WITH RECURSIVE codes(c) AS (
			SELECT (SELECT min(r.code) FROM resources r INDEXED BY ` + index + ` WHERE ` + where + ` AND r.code IS NOT NULL)
			UNION ALL
			SELECT (SELECT min(r.code) FROM resources r INDEXED BY ` + index + ` WHERE ` + where + ` AND r.code > codes.c)
				FROM codes WHERE codes.c IS NOT NULL)
		SELECT ` + itemCols + `, coalesce(r.category, ''), coalesce(r.code, '') FROM resources r WHERE r.id IN (
			SELECT (SELECT r.id FROM resources r INDEXED BY ` + index + ` WHERE ` + where + ` AND r.code = codes.c` + fw + `
				ORDER BY r.sort_date DESC LIMIT 1)
			FROM codes WHERE codes.c IS NOT NULL)
		ORDER BY r.title`
	rows, err := s.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return collectWithCode(rows)
}

// collectWithCode is collect for rows that end with the category and code columns; of
// equivalent codes (mergeEquivalent) only each person's newest is kept.
func collectWithCode(rows *sql.Rows) ([]Item, error) {
	var codes []string
	items, err := collectRows(rows, func(it *Item) []any {
		codes = append(codes, "")
		return []any{&it.category, &codes[len(codes)-1]}
	})
	if err != nil {
		return nil, err
	}
	return mergeEquivalent(items, codes), nil
}

// collectWithCategory is collect for rows that end with the category column.
func collectWithCategory(rows *sql.Rows) ([]Item, error) {
	return collectRows(rows, func(it *Item) []any { return []any{&it.category} })
}

// collectRows scans itemCols and then the columns extra gives for each row.
func collectRows(rows *sql.Rows, extra func(*Item) []any) ([]Item, error) {
	defer rows.Close()
	out := []Item{}
	for rows.Next() {
		var it Item
		var date, raw string
		dst := append([]any{&it.rowID, &it.SourceID, &it.Type, &it.ID, &it.Version, &date, &it.LastUpdated, &it.Title, &it.Patient,
			&it.ProfileID, &it.Missing, &raw}, extra(&it)...)
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		it.sortKey = date
		if date != "" {
			it.Date = &date
		}
		it.Resource = json.RawMessage(raw)
		out = append(out, it)
	}
	return out, rows.Err()
}

// Export writes every resource matching f as a FHIR Bundle of type collection, streamed.
func (s *Store) Export(ctx context.Context, w io.Writer, f Filter, timestamp string) error {
	var args []any
	rows, err := s.db.Read.QueryContext(ctx, `SELECT r.raw FROM resources r WHERE 1=1`+f.where("r.", &args)+` ORDER BY r.source_id, r.id`, args...)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer rows.Close()
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, `{"resourceType":"Bundle","type":"collection","timestamp":%s,"entry":[`, strconv.Quote(timestamp))
	n := 0
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n{\"resource\":")
		bw.WriteString(raw)
		bw.WriteByte('}')
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}
