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
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
	// ForgetUsers tells the Lighthouse that a person no longer uses these providers (deleted,
	// or merged into someone else), so their user key stops counting against the providers'
	// limits. Best effort: it runs after the change and its failure only costs a slot. nil: none.
	ForgetUsers func(ctx context.Context, profileID int64, providerIDs []string)
	Now         func() time.Time
}

// Service is the people service. It keeps no state of its own besides the database, so any
// number of Services may share one store.
type Service struct {
	store       *records.Store
	log         *slog.Logger
	events      Publisher
	disconnect  func(ctx context.Context, sourceID int64) error
	forgetUsers func(ctx context.Context, profileID int64, providerIDs []string)
	now         func() time.Time
}

// New returns a Service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, log: o.Log, events: o.Events, disconnect: o.Disconnect, forgetUsers: o.ForgetUsers, now: o.Now}
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

// HTTPStatus and ErrorCode: a 400 bad_request (httpkit.Coded).
func (e *InvalidError) HTTPStatus() int   { return http.StatusBadRequest }
func (e *InvalidError) ErrorCode() string { return "bad_request" }

func invalid(format string, args ...any) error { return &InvalidError{fmt.Sprintf(format, args...)} }

// Profile is a person; PatientLink one patient of one source and whose it is; SourceLink a
// source that holds records of a person (see package records for the fields).
type (
	Profile     = records.Profile
	PatientLink = records.PatientLink
	SourceLink  = records.SourceLink
)

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

// withLook fills in the colour and initials of a person who has none of their own.
func withLook(p *Profile) {
	if p.Initials == "" {
		p.Initials = Initials(p.Name)
	}
	if p.Color == "" {
		p.Color = palette[int(p.ID)%len(palette)]
	}
}

// ListOptions tune List.
type ListOptions struct {
	Counts bool // include each person's counts by type
	Limit  int  // only the first Limit people (0: all)
}

// List returns every person, oldest first, with record and source counts and latest activity.
func (s *Service) List(ctx context.Context, o ListOptions) ([]Profile, error) {
	return s.list(ctx, records.ProfileQuery{Counts: o.Counts, Limit: o.Limit})
}

func (s *Service) list(ctx context.Context, q records.ProfileQuery) ([]Profile, error) {
	q.Today = s.now().UTC().Format("2006-01-02")
	out, err := s.store.Profiles(ctx, q)
	if err != nil {
		return nil, err
	}
	for i := range out {
		withLook(&out[i])
	}
	if err := s.withDeceased(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns one person with counts by type, their patients in each source and their sources.
func (s *Service) Get(ctx context.Context, id int64) (Profile, error) {
	list, err := s.list(ctx, records.ProfileQuery{ID: id})
	if err != nil {
		return Profile{}, err
	}
	if len(list) == 0 {
		return Profile{}, fmt.Errorf("person %d: %w", id, ErrNotFound)
	}
	p := &list[0]
	if p.Counts, err = s.store.Counts(ctx, records.Filter{ProfileID: id}); err != nil {
		return Profile{}, err
	}
	if p.Patients, err = s.store.ProfilePatients(ctx, id); err != nil {
		return Profile{}, err
	}
	if p.Sources, err = s.store.ProfileSources(ctx, id); err != nil {
		return Profile{}, err
	}
	return *p, nil
}

// Unlinked is what belongs to no person; UnlinkedSource a source holding records not linked to
// a person.
type (
	Unlinked       = records.Unlinked
	UnlinkedSource = records.UnlinkedSource
)

// Unlinked lists what is not linked to a person.
func (s *Service) Unlinked(ctx context.Context) (Unlinked, error) {
	return s.store.Unlinked(ctx)
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
		for _, r := range n {
			// NUL and other control characters, invisible (zero-width) and direction-overriding
			// characters make a name that reads differently from what it holds.
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
				return invalid("A name cannot hold control, invisible or text-direction characters.")
			}
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

// Create adds a person by hand (a child before any record arrives, for instance).
func (s *Service) Create(ctx context.Context, in Input) (Profile, error) {
	if in.Name == nil {
		return Profile{}, invalid("A person needs a name.")
	}
	if err := in.check(); err != nil {
		return Profile{}, err
	}
	var id int64
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.insertTx(ctx, tx, *in.Name, deref(in.BirthDate), deref(in.Gender), false)
		if err != nil {
			return err
		}
		if in.Color != nil || in.Initials != nil {
			err = s.store.SetProfileLook(ctx, tx, id, in.Color, in.Initials)
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
	n, err := s.store.CountProfiles(ctx, tx)
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(name) == "" {
		name = "Unnamed person"
	}
	return s.store.CreateProfile(ctx, tx, records.NewProfile{Name: name, BirthDate: birth, Gender: gender,
		Color: palette[n%len(palette)], Provisional: provisional}, s.stamp())
}

// Update changes a person's name, birth date, gender, colour or initials.
func (s *Service) Update(ctx context.Context, id int64, in Input) (Profile, error) {
	if err := in.check(); err != nil {
		return Profile{}, err
	}
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		return s.store.UpdateProfile(ctx, tx, id, records.ProfileUpdate{Name: in.Name, BirthDate: in.BirthDate,
			Gender: in.Gender, Color: in.Color, Initials: in.Initials}, s.stamp())
	})
	if err != nil {
		return Profile{}, err
	}
	s.publish("profiles.changed", map[string]any{"profile_id": id, "change": "updated"})
	return s.Get(ctx, id)
}

// providersOf lists the providers a person has connections to (their provider sources).
func (s *Service) providersOf(ctx context.Context, profileID int64) []string {
	srcs, err := s.store.ListSources(ctx, profileID)
	if err != nil {
		s.log.Warn("could not list a person's providers", "profile_id", profileID, "err", err)
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, src := range srcs {
		if src.Kind == records.KindProvider && src.ProviderID != nil && src.ProfileID != nil && *src.ProfileID == profileID && !seen[*src.ProviderID] {
			seen[*src.ProviderID] = true
			out = append(out, *src.ProviderID)
		}
	}
	return out
}

// forget calls ForgetUsers, if any, for what a person no longer uses.
func (s *Service) forget(profileID int64, providers []string) {
	if s.forgetUsers == nil || len(providers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.forgetUsers(ctx, profileID, providers)
}
