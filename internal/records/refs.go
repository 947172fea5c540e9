package records

// Read-side reference resolution: the titles of the records a record points at, the records
// that point at it, and titles that depend on another record (a prescription named by its
// Medication). Everything here runs at read time with batched queries, so the import path does
// no lookups.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// RefTarget is a record a reference resolves to.
type RefTarget struct {
	Type  string  `json:"type"`
	ID    string  `json:"id"`
	Title string  `json:"title"`
	Date  *string `json:"date,omitempty"`
	// SourceID is the source the target was found in.
	SourceID int64 `json:"source_id"`
	// Resource is the target itself, for test results (a report's results table shows their
	// values, units, ranges and flags without one request per result).
	Resource json.RawMessage `json:"resource,omitempty"`
}

// Related is a record that references another one.
type Related struct {
	Type     string  `json:"type"`
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Date     *string `json:"date"`
	SourceID int64   `json:"source_id"`
	// Resource is the record itself for the kinds a visit shows with values (test results,
	// costs); omitted otherwise.
	Resource json.RawMessage `json:"resource,omitempty"`
}

// Unresolvable is a reference the store holds no record for, said in words.
type Unresolvable struct {
	Reference string `json:"reference"`
	Type      string `json:"type,omitempty"`
	Text      string `json:"text"`
}

// Detail is one record with what it points at and what points at it.
type Detail struct {
	Item
	References map[string]RefTarget `json:"references"`
	Unresolved []Unresolvable       `json:"unresolved"`
	Related    []Related            `json:"related"`
	// RelatedPartial: the search for related records read its bound of candidate records
	// (relatedScan) and may have missed some (a very long history in one source).
	RelatedPartial bool `json:"related_partial,omitempty"`
}

// RefUse is one reference inside a resource and the element that holds it ("encounter",
// "performer", ...).
type RefUse struct {
	Reference string
	Element   string
}

// ResourceRefs lists the references of a resource in document order, with the name of the
// element each sits in (the key above the Reference object; array elements take the array's key).
func ResourceRefs(raw []byte) []RefUse {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []RefUse
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["reference"].(string); ok && ref != "" {
				out = append(out, RefUse{Reference: ref, Element: key})
			}
			// Deterministic order: sorted keys (maps have none).
			keys := make([]string, 0, len(x))
			for k := range x {
				if k != "contained" { // contained resources are part of this one, not targets
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(x[k], k)
			}
		case []any:
			for _, e := range x {
				walk(e, key)
			}
		}
	}
	walk(v, "")
	return out
}

// localKey reads a reference as "Type/id" (a relative reference, or an absolute one whose tail is
// Type/id), or "" when it is not one (a contained "#id", a urn, a conditional reference).
func localKey(ref string) string {
	if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if strings.Contains(ref, "://") {
		parts := strings.Split(strings.TrimRight(ref, "/"), "/")
		if len(parts) < 2 {
			return ""
		}
		ref = parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	typ, id, ok := fhir.LocalRef(ref)
	if !ok {
		return ""
	}
	return typ + "/" + id
}

// resolveChunk bounds the pairs of one lookup query.
const resolveChunk = 300

// Resolve finds the records behind references ("Type/id"), preferring a copy in the source
// `prefer`. Titles that depend on another record (a prescription by its Medication) are filled
// in; a record with no title at all gets its type and date in words. Missing keys are absent.
func (s *Store) Resolve(ctx context.Context, keys []string, prefer int64) (map[string]RefTarget, error) {
	return s.resolve(ctx, keys, prefer, true)
}

func (s *Store) resolve(ctx context.Context, keys []string, prefer int64, nested bool) (map[string]RefTarget, error) {
	out := map[string]RefTarget{}
	seen := map[string]bool{}
	var pairs []any
	flush := func() error {
		if len(pairs) == 0 {
			return nil
		}
		vals := strings.TrimSuffix(strings.Repeat("(?,?),", len(pairs)/2), ",")
		// source_id IN (all sources) lets SQLite seek the (source_id, type, fhir_id) unique index
		// once per source instead of scanning every record of the type.
		rows, err := s.db.Read.QueryContext(ctx, `WITH want(t, i) AS (VALUES `+vals+`)
			SELECT r.type, r.fhir_id, r.source_id, r.title, r.sort_date,
				CASE WHEN r.type IN ('Observation','MedicationRequest','MedicationStatement','MedicationAdministration','MedicationDispense') THEN r.raw END
			FROM want JOIN resources r ON r.source_id IN (SELECT id FROM sources) AND r.type = want.t AND r.fhir_id = want.i`, pairs...)
		if err != nil {
			return fmt.Errorf("resolve references: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t RefTarget
			var date string
			var raw *string
			if err := rows.Scan(&t.Type, &t.ID, &t.SourceID, &t.Title, &date, &raw); err != nil {
				return err
			}
			if date != "" {
				t.Date = &date
			}
			if raw != nil {
				t.Resource = json.RawMessage(*raw)
			}
			k := t.Type + "/" + t.ID
			old, had := out[k]
			// The preferred source wins; otherwise a copy with a title beats one without.
			if !had || (t.SourceID == prefer && old.SourceID != prefer) || (old.Title == "" && t.Title != "" && old.SourceID != prefer) {
				out[k] = t
			}
		}
		pairs = pairs[:0]
		return rows.Err()
	}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		typ, id, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		pairs = append(pairs, typ, id)
		if len(pairs) >= 2*resolveChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	// Titles that come from another record.
	if nested {
		var meds []medNeed
		for k, t := range out {
			if t.Title == "" && isMedicationUse(t.Type) && t.Resource != nil {
				meds = append(meds, medNeed{key: k, raw: t.Resource, source: t.SourceID})
			}
		}
		if len(meds) > 0 {
			titles, err := s.medicationTitles(ctx, meds)
			if err != nil {
				return nil, err
			}
			for k, title := range titles {
				t := out[k]
				t.Title = title
				out[k] = t
			}
		}
	}
	for k, t := range out {
		if t.Type != "Observation" {
			t.Resource = nil
		}
		if t.Title == "" {
			t.Title = fhir.FallbackTitle(t.Type, deref(t.Date))
		}
		out[k] = t
	}
	return out, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func isMedicationUse(t string) bool {
	switch t {
	case "MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense":
		return true
	}
	return false
}

type medNeed struct {
	key    string // whatever the caller wants the title back under
	raw    []byte
	source int64
}

// medicationTitles names prescriptions and medication statements by the Medication their
// medicationReference points at (its code's text, else a coding's display), or the reference's
// own display. Returns titles by need key; needs with nothing found are absent.
func (s *Store) medicationTitles(ctx context.Context, needs []medNeed) (map[string]string, error) {
	out := map[string]string{}
	type want struct{ key, med, display string }
	var wants []want
	var keys []string
	for _, n := range needs {
		var d struct {
			MedicationReference *struct {
				Reference string `json:"reference"`
				Display   string `json:"display"`
			} `json:"medicationReference"`
		}
		if json.Unmarshal(n.raw, &d) != nil || d.MedicationReference == nil {
			continue
		}
		w := want{key: n.key, med: localKey(d.MedicationReference.Reference), display: d.MedicationReference.Display}
		wants = append(wants, w)
		if w.med != "" {
			keys = append(keys, w.med)
		}
	}
	var found map[string]RefTarget
	if len(keys) > 0 {
		var err error
		// One level only: a Medication's title never depends on another record.
		if found, err = s.resolve(ctx, keys, 0, false); err != nil {
			return nil, err
		}
	}
	for _, w := range wants {
		if t, ok := found[w.med]; ok && t.Title != "" {
			out[w.key] = t.Title
		} else if w.display != "" {
			out[w.key] = fhir.FriendlyName(w.display)
		}
	}
	return out, nil
}

// fillTitles gives items whose title depends on another record (a prescription by its
// Medication) that title. One batched lookup for the whole page.
func (s *Store) fillTitles(ctx context.Context, items []Item) error {
	var needs []medNeed
	for i := range items {
		if items[i].Title == "" && isMedicationUse(items[i].Type) {
			needs = append(needs, medNeed{key: fmt.Sprint(i), raw: items[i].Resource, source: items[i].SourceID})
		}
	}
	if len(needs) == 0 {
		return nil
	}
	titles, err := s.medicationTitles(ctx, needs)
	if err != nil {
		return err
	}
	for k, t := range titles {
		var i int
		fmt.Sscan(k, &i)
		items[i].Title = t
	}
	return nil
}

// relatedLimit bounds the records listed as related to one record; relatedScan the candidate
// records read to find them.
const (
	relatedLimit = 1000
	relatedScan  = 5000
)

// longLived are types whose date may lie long before the visit that records them (a condition's
// onset, a care plan's start): a visit's candidates include them whatever their date.
const longLived = `'Condition','AllergyIntolerance','CarePlan','Goal','CareTeam','MedicationStatement','FamilyMemberHistory','Device','EpisodeOfCare'`

// relatedCandidates is the bounded set of records that may reference it (each row numbered, so
// the caller sees when the bound was reached):
//   - a visit: the records of its source dated from a day before it to a week after it ends, and
//     its source's long-lived records dated before it (a condition's onset);
//   - a doctor, clinic or place: the newest records of every source;
//   - anything else: its source's records from its date on, nearest first.
func relatedCandidates(it Item) (string, []any) {
	const cols = `r.type, r.fhir_id, r.source_id, r.title, r.sort_date, r.raw`
	limit := fmt.Sprint(relatedScan)
	// The bound applies inside; the outer row number tells the caller whether it was reached.
	wrap := func(inner string) string { return `SELECT *, row_number() OVER () AS n FROM (` + inner + `)` }
	date := deref(it.Date)
	switch {
	case it.Type == "Encounter" && date != "":
		from, to := visitWindow(it.Resource, date)
		return wrap(`SELECT * FROM (
				SELECT ` + cols + ` FROM resources r INDEXED BY resources_date WHERE r.source_id = ? AND r.sort_date >= ? AND r.sort_date <= ?
				UNION ALL
				SELECT ` + cols + ` FROM resources r WHERE r.source_id = ? AND r.type IN (` + longLived + `) AND r.sort_date < ?
			) LIMIT ` + limit),
			[]any{it.SourceID, from, to, it.SourceID, from}
	case fhir.IsDirectory(it.Type):
		return wrap(`SELECT ` + cols + ` FROM resources r INDEXED BY resources_date ORDER BY r.sort_date DESC LIMIT ` + limit), nil
	case date != "":
		return wrap(`SELECT ` + cols + ` FROM resources r INDEXED BY resources_date
			WHERE r.source_id = ? AND r.sort_date >= ? ORDER BY r.sort_date LIMIT ` + limit),
			[]any{it.SourceID, date[:min(10, len(date))]}
	default:
		return wrap(`SELECT ` + cols + ` FROM resources r INDEXED BY resources_date
			WHERE r.source_id = ? ORDER BY r.sort_date DESC LIMIT ` + limit),
			[]any{it.SourceID}
	}
}

// visitWindow is the date range whose records may have been made during a visit: from a day
// before it starts to a week after it ends (results come later than the visit).
func visitWindow(raw []byte, start string) (string, string) {
	var e struct {
		Period struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"period"`
	}
	json.Unmarshal(raw, &e)
	end := fhir.NormalizeDate(e.Period.End)
	if end == "" || end < start {
		end = start
	}
	shift := func(d string, days int) string {
		for _, layout := range []string{"2006-01-02T15:04:05Z", "2006-01-02"} {
			if t, err := time.Parse(layout, d); err == nil {
				return t.AddDate(0, 0, days).Format("2006-01-02")
			}
		}
		return d
	}
	// "~" sorts after any time of the last day.
	return shift(start, -1), shift(end, 7) + "~"
}

// Detail returns one record with the records its references resolve to (titles), the references
// that resolve to nothing (in words), and the records that reference it: for a visit, everything
// recorded during it (every record whose `encounter` points at it); for anything else, the
// records that point at it. Related records are looked for in the record's own source (where a
// file or a connection keeps what belongs together); for a doctor, clinic or place in every
// source. A patient lists none (everything is theirs: that is the person's page).
func (s *Store) Detail(ctx context.Context, typ, id string, sourceID int64) (Detail, error) {
	it, err := s.Get(ctx, typ, id, sourceID)
	if err != nil {
		return Detail{}, err
	}
	items := []Item{it}
	if err := s.fillTitles(ctx, items); err != nil {
		return Detail{}, err
	}
	d := Detail{Item: items[0], References: map[string]RefTarget{}, Unresolved: []Unresolvable{}, Related: []Related{}}
	self := typ + "/" + id
	var keys []string
	var others []string
	for _, u := range ResourceRefs(it.Resource) {
		if k := localKey(u.Reference); k != "" {
			if k != self {
				keys = append(keys, k)
			}
		} else if !strings.HasPrefix(u.Reference, "#") {
			others = append(others, u.Reference)
		}
	}
	found, err := s.Resolve(ctx, keys, it.SourceID)
	if err != nil {
		return Detail{}, err
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if t, ok := found[k]; ok {
			d.References[k] = t
		} else {
			t, _, _ := strings.Cut(k, "/")
			d.Unresolved = append(d.Unresolved, Unresolvable{Reference: k, Type: t, Text: fhir.Unresolved(t)})
		}
	}
	for _, ref := range others {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		t, _, _ := strings.Cut(ref, "?")
		if !fhir.KnownType(t) {
			t = ""
		}
		text := "a record not in your records"
		if t != "" {
			text = fhir.Unresolved(t)
		}
		d.Unresolved = append(d.Unresolved, Unresolvable{Reference: ref, Type: t, Text: text})
	}
	if d.Related, d.RelatedPartial, err = s.related(ctx, it); err != nil {
		return Detail{}, err
	}
	return d, nil
}

// related lists the records that reference it (see Detail).
func (s *Store) related(ctx context.Context, it Item) ([]Related, bool, error) {
	out := []Related{}
	if it.Type == "Patient" {
		return out, false, nil
	}
	self := it.Type + "/" + it.ID
	q, args := relatedCandidates(it)
	// A cheap text filter finds the candidates (a reference is stored as "Type/id" in quotes);
	// parsing them confirms where the reference sits.
	q = `SELECT c.type, c.fhir_id, c.source_id, c.title, c.sort_date, c.raw, c.n FROM (` + q + `) c
		WHERE instr(c.raw, ?) > 0 AND NOT (c.type = ? AND c.fhir_id = ?) AND c.type <> 'Provenance' LIMIT ?`
	args = append(args, `"`+self+`"`, it.Type, it.ID, relatedLimit)
	rows, err := s.db.Read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("related records: %w", err)
	}
	defer rows.Close()
	var items []Item
	seen := map[string]bool{}
	partial := false
	for rows.Next() {
		var r Item
		var date, raw string
		var n int
		if err := rows.Scan(&r.Type, &r.ID, &r.SourceID, &r.Title, &date, &raw, &n); err != nil {
			return nil, false, err
		}
		if n >= relatedScan {
			partial = true
		}
		if date != "" {
			r.Date = &date
		}
		r.Resource = json.RawMessage(raw)
		if !refersTo(r.Resource, self, it.Type == "Encounter") {
			continue
		}
		k := fmt.Sprint(r.SourceID, r.Type, "/", r.ID)
		if seen[k] {
			continue
		}
		seen[k] = true
		items = append(items, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if err := s.fillTitles(ctx, items); err != nil {
		return nil, false, err
	}
	for _, r := range items {
		rel := Related{Type: r.Type, ID: r.ID, Title: r.Title, Date: r.Date, SourceID: r.SourceID}
		if rel.Title == "" {
			rel.Title = fhir.FallbackTitle(r.Type, deref(r.Date))
		}
		switch r.Type {
		case "Observation", "Claim", "ExplanationOfBenefit", "DocumentReference", "MedicationRequest", "MedicationStatement":
			rel.Resource = r.Resource
		}
		out = append(out, rel)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := deref(out[i].Date), deref(out[j].Date); a != b {
			return a > b
		}
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, partial, nil
}

// refersTo reports whether raw references self; with encounterOnly, only from an `encounter`
// element (the visit a record was made during).
func refersTo(raw []byte, self string, encounterOnly bool) bool {
	for _, u := range ResourceRefs(raw) {
		if localKey(u.Reference) != self {
			continue
		}
		if !encounterOnly || u.Element == "encounter" {
			return true
		}
	}
	return false
}
