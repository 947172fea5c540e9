package records

// The household's people (profiles) and who each patient of each source is (source_patients):
// the SQL of internal/people, which keeps the matching and merge rules and calls these methods.
// Reads use the read pool; writes take the caller's write transaction (Store.WriteTx).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// ErrDiskFull is returned (wrapped) when a write failed because the disk is full.
var ErrDiskFull = db.ErrDiskFull

// Profile is a person.
type Profile struct {
	ID        int64   `json:"id"`
	Name      string  `json:"name"`
	BirthDate *string `json:"birth_date"`
	Gender    *string `json:"gender"`
	Color     string  `json:"color"`
	Initials  string  `json:"initials"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	// ResourceCount is how many records are this person's; SourceCount how many sources hold
	// some; LastActivity the newest clinical date among them (not in the future), with Counts
	// and for one person only (null in the plain list).
	ResourceCount int            `json:"resource_count"`
	SourceCount   int            `json:"source_count"`
	LastActivity  *string        `json:"last_activity"`
	Counts        map[string]int `json:"counts,omitempty"`
	// Detail only (GET /profiles/{id}).
	Patients []PatientLink `json:"patients,omitempty"`
	Sources  []SourceLink  `json:"sources,omitempty"`

	// Deceased is null, the date of death, or true when only that is known (from the person's
	// Patient records).
	Deceased any `json:"deceased"`
}

// PatientLink is one patient of one source, and whose it is.
type PatientLink struct {
	SourceID      int64   `json:"source_id"`
	SourceName    string  `json:"source_name"`
	SourceKind    string  `json:"source_kind"`
	PatientRef    string  `json:"patient_ref"`
	PatientID     string  `json:"patient_id"`
	ProfileID     *int64  `json:"profile_id"`
	Name          *string `json:"name"`
	BirthDate     *string `json:"birth_date"`
	ResourceCount int     `json:"resource_count"`
}

// SourceLink is a source that holds records of a person.
type SourceLink struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Kind string `json:"kind"`
	// ResourceCount: this person's records in it; Shared: it also holds other people's.
	ResourceCount int  `json:"resource_count"`
	Shared        bool `json:"shared"`
}

// Unlinked is what belongs to no person: records that name no patient (or a patient not mapped
// to anyone), and patients of sources that are not mapped to anyone.
type Unlinked struct {
	ResourceCount int              `json:"resource_count"`
	Counts        map[string]int   `json:"counts"`
	Sources       []UnlinkedSource `json:"sources"`
	Patients      []PatientLink    `json:"patients"`
}

// UnlinkedSource is a source holding records not linked to a person.
type UnlinkedSource struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	ResourceCount int    `json:"resource_count"`
}

const profileCols = `p.id, p.name, p.birth_date, p.gender, coalesce(p.color,''), coalesce(p.initials,''), p.created_at, p.updated_at`

// visibleProfile selects people that are shown: not reserved for a pending sign-in, not merged
// away.
const visibleProfile = `p.provisional = 0 AND p.merged_into IS NULL`

// peopleQuerier is the read pool or a write transaction.
type peopleQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ListProfiles returns every visible person, oldest first, with record and source counts and
// the newest clinical date up to today (a "2006-01-02" day; later dates do not count). Color
// and Initials are as stored ("" when not set).
func (s *Store) ListProfiles(ctx context.Context, today string) ([]Profile, error) {
	return s.Profiles(ctx, ProfileQuery{Today: today})
}

// ProfileQuery selects people for Profiles.
type ProfileQuery struct {
	Today  string // "2006-01-02": later clinical dates are not a person's last activity
	ID     int64  // only this person (0: everyone shown)
	Counts bool   // each person's counts by type too
	Limit  int    // only the first Limit people, oldest first (0: all)
}

// Profiles returns the visible people (or one) with their record and source counts and last
// activity: one query, counts from resource_counts (its index by person, migration 6), the last
// activity from one seek in resources_profile per person. That is about 10 microseconds a
// person: a household of 3,500 people takes some 40 ms, and every page asks for the list, so
// the whole list is kept until the next write (db.Generation).
func (s *Store) Profiles(ctx context.Context, q ProfileQuery) ([]Profile, error) {
	if q.ID != 0 {
		return s.readProfiles(ctx, q)
	}
	list, err := s.people.get(s.db.Generation(), q, func() ([]Profile, error) { return s.readProfiles(ctx, q) })
	return slices.Clone(list), err // the Counts maps are shared and read-only
}

// profileChunk is how many people one read of a long list takes: a household of thousands is
// read in parts side by side on the read pool (each person costs a few seeks; 3,481 people took
// 53 ms in one query).
const profileChunk = 600

func (s *Store) readProfiles(ctx context.Context, q ProfileQuery) ([]Profile, error) {
	if q.ID != 0 || (q.Limit > 0 && q.Limit <= profileChunk) {
		return s.readProfileRange(ctx, q, 0, 0)
	}
	// The ids that bound each part.
	rows, err := s.db.Read.QueryContext(ctx, `SELECT p.id FROM profiles p WHERE `+visibleProfile+` ORDER BY p.id`)
	if err != nil {
		return nil, fmt.Errorf("list people: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if q.Limit > 0 && len(ids) > q.Limit {
		ids = ids[:q.Limit]
	}
	if len(ids) <= profileChunk {
		return s.readProfileRange(ctx, q, 0, 0)
	}
	parts := make([][]Profile, (len(ids)+profileChunk-1)/profileChunk)
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := ids[i*profileChunk], ids[min((i+1)*profileChunk, len(ids))-1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = s.readProfileRange(ctx, ProfileQuery{Today: q.Today, Counts: q.Counts}, lo, hi)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]Profile, 0, len(ids))
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// readProfileRange reads the people of q, only those with lo <= id <= hi when hi > 0.
func (s *Store) readProfileRange(ctx context.Context, q ProfileQuery, lo, hi int64) ([]Profile, error) {
	today := q.Today + "~" // any time today sorts before "~"
	types := `NULL`
	if q.Counts {
		types = `(SELECT group_concat(type || ':' || n, ',') FROM (SELECT c.type, sum(c.n) AS n FROM resource_counts c
			WHERE c.profile_id = p.id GROUP BY c.type HAVING sum(c.n) > 0))`
	}
	where := visibleProfile
	args := []any{today}
	if q.ID != 0 {
		where += ` AND p.id = ?`
		args = append(args, q.ID)
	}
	if hi > 0 {
		where += ` AND p.id BETWEEN ? AND ?`
		args = append(args, lo, hi)
	}
	limit := ""
	if q.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	// The last activity is a seek in resources_profile per person: 60% of reading 3,481 people
	// right after a write. It is for the people's cards (Counts) and one person's page (ID); the
	// plain list (every page's person switcher) leaves it null.
	last := `(SELECT max(r.sort_date) FROM resources r INDEXED BY resources_profile WHERE r.profile_id = p.id AND r.sort_date <= ?1)`
	if !q.Counts && q.ID == 0 {
		last = `(SELECT NULL WHERE ?1 IS NULL)`
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+profileCols+`,
		coalesce((SELECT sum(c.n) FROM resource_counts c WHERE c.profile_id = p.id), 0),
		`+last+`,
		(SELECT count(*) FROM sources s WHERE s.profile_id = p.id
			OR EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id = p.id)),
		`+types+`
		FROM profiles p
		WHERE `+where+` ORDER BY p.id`+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("list people: %w", err)
	}
	defer rows.Close()
	out := []Profile{}
	for rows.Next() {
		var p Profile
		var last, counts sql.NullString
		if err := rows.Scan(&p.ID, &p.Name, &p.BirthDate, &p.Gender, &p.Color, &p.Initials, &p.CreatedAt, &p.UpdatedAt,
			&p.ResourceCount, &last, &p.SourceCount, &counts); err != nil {
			return nil, err
		}
		if last.Valid && last.String != "" {
			v := last.String
			p.LastActivity = &v
		}
		if q.Counts {
			p.Counts = map[string]int{}
			for _, kv := range strings.Split(counts.String, ",") {
				if t, n, ok := strings.Cut(kv, ":"); ok {
					v, _ := strconv.Atoi(n)
					p.Counts[t] = v
				}
			}
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ProfileSources lists the sources that belong to person id or hold one of its patients, with
// how many of its records each holds and whether it also holds other people's patients.
func (s *Store) ProfileSources(ctx context.Context, id int64) ([]SourceLink, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT s.id, s.name, s.kind,
		coalesce((SELECT sum(c.n) FROM resource_counts c WHERE c.source_id = s.id AND c.profile_id = ?), 0),
		EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id IS NOT NULL AND sp.profile_id != ?)
		FROM sources s
		WHERE s.profile_id = ? OR EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id = ?)
		ORDER BY s.id`, id, id, id, id)
	if err != nil {
		return nil, fmt.Errorf("sources of person %d: %w", id, err)
	}
	defer rows.Close()
	out := []SourceLink{}
	for rows.Next() {
		var l SourceLink
		if err := rows.Scan(&l.ID, &l.Name, &l.Kind, &l.ResourceCount, &l.Shared); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ProfilePatients lists the patients of every source mapped to person id.
func (s *Store) ProfilePatients(ctx context.Context, id int64) ([]PatientLink, error) {
	return s.patientLinks(ctx, `sp.profile_id = ?`, id)
}

func (s *Store) patientLinks(ctx context.Context, where string, args ...any) ([]PatientLink, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT sp.source_id, s.name, s.kind, sp.patient_ref, sp.profile_id, sp.name, sp.birth_date,
		(SELECT count(*) FROM resources r WHERE r.patient_ref = sp.patient_ref AND r.source_id = sp.source_id)
		FROM source_patients sp JOIN sources s ON s.id = sp.source_id WHERE `+where+` ORDER BY sp.source_id, sp.patient_ref`, args...)
	if err != nil {
		return nil, fmt.Errorf("patients: %w", err)
	}
	defer rows.Close()
	out := []PatientLink{}
	for rows.Next() {
		var l PatientLink
		if err := rows.Scan(&l.SourceID, &l.SourceName, &l.SourceKind, &l.PatientRef, &l.ProfileID, &l.Name, &l.BirthDate, &l.ResourceCount); err != nil {
			return nil, err
		}
		l.PatientID = strings.TrimPrefix(l.PatientRef, "Patient/")
		out = append(out, l)
	}
	return out, rows.Err()
}

// Unlinked lists what is not linked to a person: records by source and type, and the patients
// mapped to nobody.
func (s *Store) Unlinked(ctx context.Context) (Unlinked, error) {
	out := Unlinked{Counts: map[string]int{}, Sources: []UnlinkedSource{}}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT c.source_id, s.name, s.kind, c.type, c.n FROM resource_counts c JOIN sources s ON s.id = c.source_id
		WHERE c.profile_id = 0 AND c.n > 0 ORDER BY c.source_id, c.type`)
	if err != nil {
		return out, fmt.Errorf("unlinked records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var src UnlinkedSource
		var t string
		var n int
		if err := rows.Scan(&src.ID, &src.Name, &src.Kind, &t, &n); err != nil {
			return out, err
		}
		out.Counts[t] += n
		out.ResourceCount += n
		if k := len(out.Sources); k > 0 && out.Sources[k-1].ID == src.ID {
			out.Sources[k-1].ResourceCount += n
		} else {
			src.ResourceCount = n
			out.Sources = append(out.Sources, src)
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	rows.Close()
	out.Patients, err = s.patientLinks(ctx, `sp.profile_id IS NULL`)
	return out, err
}

// NewProfile describes a person to create.
type NewProfile struct {
	Name, BirthDate, Gender string // "" birth date or gender: unknown
	Color                   string
	// Provisional: reserved for a pending sign-in, not shown.
	Provisional bool
}

// CountProfiles counts every person ever stored and not deleted, shown or not (new people take
// the next colour of a palette by it).
func (s *Store) CountProfiles(ctx context.Context, tx *sql.Tx) (int, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM profiles`).Scan(&n); err != nil {
		return 0, db.Explain(err)
	}
	return n, nil
}

// CreateProfile inserts a person inside tx; now is the created and updated time.
func (s *Store) CreateProfile(ctx context.Context, tx *sql.Tx, p NewProfile, now string) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO profiles(name, birth_date, gender, color, provisional, created_at, updated_at) VALUES (?,?,?,?,?,?,?)`,
		p.Name, nullStr(p.BirthDate), nullStr(p.Gender), p.Color, p.Provisional, now, now)
	if err != nil {
		return 0, fmt.Errorf("create person: %w", db.Explain(err))
	}
	return res.LastInsertId()
}

// ProfileUpdate is the fields of a person to change; nil fields are left alone, "" clears
// (Name must not be "").
type ProfileUpdate struct {
	Name, BirthDate, Gender, Color, Initials *string
}

func emptyNil(p *string) any {
	if p == nil || *p == "" {
		return nil
	}
	return *p
}

// SetProfileLook sets a new person's colour (nil or "": keep the one it got) and initials
// (nil or "": derived from the name).
func (s *Store) SetProfileLook(ctx context.Context, tx *sql.Tx, id int64, color, initials *string) error {
	_, err := tx.ExecContext(ctx, `UPDATE profiles SET color = coalesce(?, color), initials = ? WHERE id = ?`, emptyNil(color), emptyNil(initials), id)
	return err
}

// UpdateProfile writes the given fields of a visible person (ErrNotFound if there is none).
func (s *Store) UpdateProfile(ctx context.Context, tx *sql.Tx, id int64, u ProfileUpdate, now string) error {
	sets := []string{"updated_at = ?"}
	args := []any{now}
	add := func(col string, v any) { sets = append(sets, col+" = ?"); args = append(args, v) }
	if u.Name != nil {
		add("name", *u.Name)
	}
	if u.BirthDate != nil {
		add("birth_date", emptyNil(u.BirthDate))
	}
	if u.Gender != nil {
		add("gender", emptyNil(u.Gender))
	}
	if u.Color != nil {
		add("color", emptyNil(u.Color))
	}
	if u.Initials != nil {
		add("initials", emptyNil(u.Initials))
	}
	args = append(args, id)
	res, err := tx.ExecContext(ctx, `UPDATE profiles SET `+strings.Join(sets, ", ")+` WHERE id = ? AND provisional = 0 AND merged_into IS NULL`, args...)
	if err != nil {
		return db.Explain(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	return nil
}

// CheckProfile says whether id is a visible person (ErrNotFound if not).
func (s *Store) CheckProfile(ctx context.Context, tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM profiles p WHERE p.id = ? AND `+visibleProfile, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	return err
}

// ProfileName returns a person's name, shown or not.
func (s *Store) ProfileName(ctx context.Context, tx *sql.Tx, id int64) (string, error) {
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM profiles WHERE id = ?`, id).Scan(&name)
	return name, err
}

// Deceased says, for each person whose Patient records say they died, the date of death (as
// recorded) or true when only "deceased" is known. People who are not listed are not known to
// have died. Reads only the Patient rows (a handful per person).
func (s *Store) Deceased(ctx context.Context) (map[int64]any, error) {
	// The expressions are those of resources_patient_deceased (migration 6): answered from the
	// index, no Patient's JSON is read.
	rows, err := s.db.Read.QueryContext(ctx, `SELECT r.profile_id,
		json_extract(r.raw, '$.deceasedDateTime'), json_extract(r.raw, '$.deceasedBoolean')
		FROM resources r INDEXED BY resources_patient_deceased WHERE r.type = 'Patient' AND r.profile_id > 0
		AND (json_extract(r.raw, '$.deceasedDateTime') IS NOT NULL OR json_extract(r.raw, '$.deceasedBoolean') = 1)`)
	if err != nil {
		return nil, fmt.Errorf("deceased people: %w", err)
	}
	defer rows.Close()
	out := map[int64]any{}
	for rows.Next() {
		var id int64
		var date sql.NullString
		var flag sql.NullInt64
		if err := rows.Scan(&id, &date, &flag); err != nil {
			return nil, err
		}
		if date.Valid && date.String != "" {
			// A date beats a bare "true"; of two dates the earliest recorded wins.
			if old, ok := out[id].(string); !ok || date.String < old {
				out[id] = date.String
			}
		} else if _, ok := out[id]; !ok {
			out[id] = true
		}
	}
	return out, rows.Err()
}
