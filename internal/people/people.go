// Package people holds the household's people ("profiles"): who each patient of each source is,
// how incoming patients are matched to people, and the changes a person makes to that
// (rename, re-assign a source or a patient, merge with undo, delete).
//
// # Whose record is it
//
// A record's person follows from two things kept here, never from a guess at read time:
//   - a provider source (one patient per connection): every record belongs to the source's
//     person (sources.profile_id), decided when it was connected;
//   - a file source: a record that names a patient (subject, patient or beneficiary, the
//     index field records.Row.Index.Patient) belongs to the person that patient is mapped to in
//     that source (table source_patients); a record that names no patient (an Organization, a
//     Practitioner) is "not linked to a person" (profile NULL) and stays with its source.
//
// # Matching (imports and connects)
//
// Each incoming Patient resource goes, in this order, to:
//  1. the person it is already mapped to in the same source (a re-import or re-sync keeps what
//     the user re-assigned);
//  2. the person chosen in the connect dialog, if any;
//  3. the person who already has a Patient with the same identifier (system|value). Only
//     identifiers that can identify someone count: both parts present, not use=old or temp, not
//     a placeholder ("unknown", 000000, 999-99-9999, fewer than 3 letters or digits), not carried
//     by two Patients of the same incoming file, and not already known for two different
//     people. If identifiers point to several people, the one with most shared identifiers wins
//     (ties: the oldest person);
//  4. the person with the same normalised name (last word of the family name + first given
//     name, case and accents folded) and the same birth date, unless both genders are known and
//     differ; this includes people created by hand. Several: the oldest;
//  5. else a new person, named after the Patient.
//
// A record that names a Patient whose resource is not in the same file maps through, in order:
// the source's own mapping, a Patient of the same import (another file of it), the one person
// that Patient id is mapped to in other sources; else it is stored as not linked and adopted as
// soon as an import brings that Patient.
//
// # Merge, undo, confirm
//
// A merge moves everything of one person (sources, patient mappings, records) to another at
// once and hides the merged person; it stays undoable until the user confirms it, or until a
// later merge, delete or re-assignment confirms it implicitly (only the newest merge can be
// undone). Confirming deletes the hidden person. Undo moves back exactly what the merge moved
// (listed in profile_merge_items) and recomputes those records from the mappings, so records
// added in between follow the mapping they belong to.
package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Publisher receives events (resources.changed, profiles.changed); the events bus implements it.
type Publisher interface {
	Publish(topic string, data any)
}

// Options are the Service's dependencies.
type Options struct {
	Store *records.Store // required
	Log   *slog.Logger
	// Events receives profiles.changed and resources.changed; nil drops them.
	Events Publisher
	// Disconnect forgets a provider source's sign-in (tokens out of the keyring, a running sync
	// stopped) before deleting a person removes that source. nil: the source is just deleted.
	Disconnect func(ctx context.Context, sourceID int64) error
	Now        func() time.Time
}

// Service is the people service. It keeps no state of its own besides the database, so any
// number of Services may share one store.
type Service struct {
	store      *records.Store
	db         *db.DB
	log        *slog.Logger
	events     Publisher
	disconnect func(ctx context.Context, sourceID int64) error
	now        func() time.Time
}

// New returns a Service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, db: o.Store.DB(), log: o.Log, events: o.Events, disconnect: o.Disconnect, now: o.Now}
}

func (s *Service) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

func (s *Service) publish(topic string, data any) {
	if s.events != nil {
		s.events.Publish(topic, data)
	}
}

// ErrNotFound wraps records.ErrNotFound for a person that does not exist (or is hidden).
var ErrNotFound = records.ErrNotFound

// InvalidError is a request the user can fix; its message is shown as is.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalid(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

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
	// some; LastActivity the newest clinical date among them (not in the future).
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

// palette is the colours given to new people in turn (readable on light and dark themes).
var palette = []string{"#3b6fd8", "#d0563b", "#2e9a6a", "#8a4fd0", "#c2871a", "#1f8fa5", "#c44a86", "#5f7d1e"}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Initials derives a person's initials from a name: the first letters of the first and last
// words ("Raúl Fernández" -> "RF"), or the first two letters of a single word.
func Initials(name string) string {
	f := strings.Fields(name)
	first := func(w string) string {
		for _, r := range w {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return strings.ToUpper(string(r))
			}
		}
		return ""
	}
	switch len(f) {
	case 0:
		return "?"
	case 1:
		var out []rune
		for _, r := range f[0] {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				out = append(out, r)
			}
			if len(out) == 2 {
				break
			}
		}
		if len(out) == 0 {
			return "?"
		}
		return strings.ToUpper(string(out[0])) + strings.ToLower(string(out[1:]))
	}
	return first(f[0]) + first(f[len(f)-1])
}

const profileCols = `p.id, p.name, p.birth_date, p.gender, coalesce(p.color,''), coalesce(p.initials,''), p.created_at, p.updated_at`

// visible selects people that are shown: not reserved for a pending sign-in, not merged away.
const visible = `p.provisional = 0 AND p.merged_into IS NULL`

type rowScanner interface{ Scan(...any) error }

func scanProfile(r rowScanner, extra ...any) (Profile, error) {
	var p Profile
	dst := append([]any{&p.ID, &p.Name, &p.BirthDate, &p.Gender, &p.Color, &p.Initials, &p.CreatedAt, &p.UpdatedAt}, extra...)
	if err := r.Scan(dst...); err != nil {
		return p, err
	}
	if p.Initials == "" {
		p.Initials = Initials(p.Name)
	}
	if p.Color == "" {
		p.Color = palette[int(p.ID)%len(palette)]
	}
	return p, nil
}

// ListOptions tune List.
type ListOptions struct {
	Counts bool // include each person's counts by type (a scan of every record)
}

// List returns every person, oldest first, with record and source counts and latest activity.
func (s *Service) List(ctx context.Context, o ListOptions) ([]Profile, error) {
	today := s.now().UTC().Format("2006-01-02") + "~" // any time today sorts before "~"
	// Counts come from resource_counts and the last activity from one seek in resources_profile
	// per person: no scan of the records (a household of 200,000 records lists in milliseconds).
	rows, err := s.db.Read.QueryContext(ctx, `SELECT `+profileCols+`,
		coalesce((SELECT sum(c.n) FROM resource_counts c WHERE c.profile_id = p.id), 0),
		(SELECT max(r.sort_date) FROM resources r INDEXED BY resources_profile WHERE r.profile_id = p.id AND r.sort_date <= ?),
		(SELECT count(*) FROM sources s WHERE s.profile_id = p.id
			OR EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id = p.id))
		FROM profiles p
		WHERE `+visible+` ORDER BY p.id`, today)
	if err != nil {
		return nil, fmt.Errorf("list people: %w", err)
	}
	defer rows.Close()
	out := []Profile{}
	for rows.Next() {
		var last sql.NullString
		var n, srcs int
		p, err := scanProfile(rows, &n, &last, &srcs)
		if err != nil {
			return nil, err
		}
		p.ResourceCount, p.SourceCount = n, srcs
		if last.Valid && last.String != "" {
			v := last.String
			p.LastActivity = &v
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := s.withDeceased(ctx, out); err != nil {
		return nil, err
	}
	if o.Counts && len(out) > 0 {
		idx := map[int64]*Profile{}
		for i := range out {
			out[i].Counts = map[string]int{}
			idx[out[i].ID] = &out[i]
		}
		rows, err := s.db.Read.QueryContext(ctx, `SELECT profile_id, type, sum(n) FROM resource_counts
			WHERE profile_id <> 0 GROUP BY profile_id, type HAVING sum(n) > 0`)
		if err != nil {
			return nil, fmt.Errorf("count records by person: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var t string
			var n int
			if err := rows.Scan(&id, &t, &n); err != nil {
				return nil, err
			}
			if p := idx[id]; p != nil {
				p.Counts[t] = n
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get returns one person with counts by type, their patients in each source and their sources.
func (s *Service) Get(ctx context.Context, id int64) (Profile, error) {
	list, err := s.List(ctx, ListOptions{})
	if err != nil {
		return Profile{}, err
	}
	var p *Profile
	for i := range list {
		if list[i].ID == id {
			p = &list[i]
		}
	}
	if p == nil {
		return Profile{}, fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	if p.Counts, err = s.store.Counts(ctx, records.Filter{ProfileID: id}); err != nil {
		return Profile{}, err
	}
	if p.Patients, err = s.patientLinks(ctx, `sp.profile_id = ?`, id); err != nil {
		return Profile{}, err
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT s.id, s.name, s.kind,
		coalesce((SELECT sum(c.n) FROM resource_counts c WHERE c.source_id = s.id AND c.profile_id = ?), 0),
		EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id IS NOT NULL AND sp.profile_id != ?)
		FROM sources s
		WHERE s.profile_id = ? OR EXISTS (SELECT 1 FROM source_patients sp WHERE sp.source_id = s.id AND sp.profile_id = ?)
		ORDER BY s.id`, id, id, id, id)
	if err != nil {
		return Profile{}, fmt.Errorf("sources of person %d: %w", id, err)
	}
	defer rows.Close()
	p.Sources = []SourceLink{}
	for rows.Next() {
		var l SourceLink
		if err := rows.Scan(&l.ID, &l.Name, &l.Kind, &l.ResourceCount, &l.Shared); err != nil {
			return Profile{}, err
		}
		p.Sources = append(p.Sources, l)
	}
	return *p, rows.Err()
}

func (s *Service) patientLinks(ctx context.Context, where string, args ...any) ([]PatientLink, error) {
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

// Unlinked lists what is not linked to a person.
func (s *Service) Unlinked(ctx context.Context) (Unlinked, error) {
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
	out.Patients, err = s.patientLinks(ctx, `sp.profile_id IS NULL`)
	return out, err
}

// Input is what a person is created or changed with; nil fields are left alone.
type Input struct {
	Name      *string `json:"name"`
	BirthDate *string `json:"birth_date"`
	Gender    *string `json:"gender"`
	Color     *string `json:"color"`
	Initials  *string `json:"initials"`
}

var birthRE = regexp.MustCompile(`^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$`)

func (in *Input) check() error {
	if in.Name != nil {
		n := strings.Join(strings.Fields(*in.Name), " ")
		if n == "" || utf8.RuneCountInString(n) > 200 {
			return invalid("A name must be 1 to 200 characters.")
		}
		in.Name = &n
	}
	if in.BirthDate != nil {
		b := strings.TrimSpace(*in.BirthDate)
		if b != "" && !birthRE.MatchString(b) {
			return invalid("A birth date must look like 2015-03-28 (or 2015-03, or 2015).")
		}
		if len(b) == 10 {
			if _, err := time.Parse("2006-01-02", b); err != nil {
				return invalid("%s is not a date.", b)
			}
		}
		in.BirthDate = &b
	}
	if in.Gender != nil {
		g := strings.ToLower(strings.TrimSpace(*in.Gender))
		switch g {
		case "", "male", "female", "other", "unknown":
		default:
			return invalid("gender must be male, female, other or unknown.")
		}
		in.Gender = &g
	}
	if in.Color != nil {
		c := strings.TrimSpace(*in.Color)
		if c != "" && !colorRE.MatchString(c) {
			return invalid("A colour must look like #3b6fd8.")
		}
		in.Color = &c
	}
	if in.Initials != nil {
		v := strings.TrimSpace(*in.Initials)
		if utf8.RuneCountInString(v) > 3 {
			return invalid("Initials are at most 3 characters.")
		}
		for _, r := range v {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return invalid("Initials may hold only letters and digits.")
			}
		}
		in.Initials = &v
	}
	return nil
}

func emptyNil(p *string) any {
	if p == nil || *p == "" {
		return nil
	}
	return *p
}

// Create adds a person by hand (a child before any record arrives, for instance).
func (s *Service) Create(ctx context.Context, in Input) (Profile, error) {
	if in.Name == nil {
		return Profile{}, invalid("A person needs a name.")
	}
	if err := in.check(); err != nil {
		return Profile{}, err
	}
	var id int64
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.insertTx(ctx, tx, *in.Name, deref(in.BirthDate), deref(in.Gender), false)
		if err != nil {
			return err
		}
		if in.Color != nil || in.Initials != nil {
			_, err = tx.ExecContext(ctx, `UPDATE profiles SET color = coalesce(?, color), initials = ? WHERE id = ?`, emptyNil(in.Color), emptyNil(in.Initials), id)
		}
		return err
	})
	if err != nil {
		return Profile{}, err
	}
	s.publish("profiles.changed", map[string]any{"profile_id": id, "change": "created"})
	return s.Get(ctx, id)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// insertTx creates a person with the next colour of the palette.
func (s *Service) insertTx(ctx context.Context, tx *sql.Tx, name, birth, gender string, provisional bool) (int64, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM profiles`).Scan(&n); err != nil {
		return 0, db.Explain(err)
	}
	if strings.TrimSpace(name) == "" {
		name = "Unnamed person"
	}
	now := s.stamp()
	res, err := tx.ExecContext(ctx, `INSERT INTO profiles(name, birth_date, gender, color, provisional, created_at, updated_at) VALUES (?,?,?,?,?,?,?)`,
		name, nullStr(birth), nullStr(gender), palette[n%len(palette)], provisional, now, now)
	if err != nil {
		return 0, fmt.Errorf("create person: %w", db.Explain(err))
	}
	return res.LastInsertId()
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Update changes a person's name, birth date, gender, colour or initials.
func (s *Service) Update(ctx context.Context, id int64, in Input) (Profile, error) {
	if err := in.check(); err != nil {
		return Profile{}, err
	}
	sets := []string{"updated_at = ?"}
	args := []any{s.stamp()}
	add := func(col string, v any) { sets = append(sets, col+" = ?"); args = append(args, v) }
	if in.Name != nil {
		add("name", *in.Name)
	}
	if in.BirthDate != nil {
		add("birth_date", emptyNil(in.BirthDate))
	}
	if in.Gender != nil {
		add("gender", emptyNil(in.Gender))
	}
	if in.Color != nil {
		add("color", emptyNil(in.Color))
	}
	if in.Initials != nil {
		add("initials", emptyNil(in.Initials))
	}
	args = append(args, id)
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE profiles SET `+strings.Join(sets, ", ")+` WHERE id = ? AND provisional = 0 AND merged_into IS NULL`, args...)
		if err != nil {
			return db.Explain(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("person %d: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return Profile{}, err
	}
	s.publish("profiles.changed", map[string]any{"profile_id": id, "change": "updated"})
	return s.Get(ctx, id)
}

// liveTx checks that id is a visible person.
func liveTx(ctx context.Context, tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM profiles p WHERE p.id = ? AND `+visible, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	return err
}
