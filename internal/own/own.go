// Package own is what a person records themselves: measurements (weight, height, blood pressure,
// glucose, temperature, heart rate), conditions, medications they take, allergies, immunizations
// and notes. Each is a FHIR resource (LOINC codes and UCUM units for measurements) in the person's
// own manual source "Entered by me", written through the same ingest step as imported records, so
// it is indexed, listed, charted and exported like any other. Every one carries the meta tag
// SelfTag. Only these records can be changed or deleted; records from files or providers never.
package own

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/ingest"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// SelfTagSystem and SelfTagCode mark a record a person entered themselves (Resource.meta.tag).
const (
	SelfTagSystem = "https://fastenhealth.com/fasten-desktop/tags"
	SelfTagCode   = "self-entered"
)

// ErrNotEditable answers a change to a record that came from a file or a provider.
var ErrNotEditable error = &httpkit.Kind{Status: http.StatusConflict, Code: "not_editable",
	Text: "this record came from a file or a provider; only what you entered yourself can be changed or deleted"}

// Publisher receives change events (the events bus); nil drops them.
type Publisher interface {
	Publish(topic string, data any)
}

// Options are the service's dependencies.
type Options struct {
	Store  *records.Store
	Log    *slog.Logger
	Events Publisher
	Now    func() time.Time
}

// Service adds, changes and deletes a person's own entries.
type Service struct {
	store  *records.Store
	log    *slog.Logger
	events Publisher
	now    func() time.Time
}

// New returns the service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, log: o.Log, events: o.Events, now: o.Now}
}

// Result is what a write answers.
type Result struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	SourceID int64  `json:"source_id"`
}

// Create stores a new entry for a person.
func (s *Service) Create(ctx context.Context, profileID int64, res map[string]any) (Result, error) {
	now := s.now()
	if err := Validate(res, now); err != nil {
		return Result{}, err
	}
	typ := res["resourceType"].(string)
	id := newUUID()
	var out Result
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		// A person that is shown (not merged away, not a pending sign-in's placeholder).
		if err := s.store.CheckProfile(ctx, tx, profileID); err != nil {
			return err
		}
		srcID, err := s.store.SelfSource(ctx, tx, profileID)
		if err != nil {
			return err
		}
		w, err := s.writer(ctx, tx, srcID, profileID)
		if err != nil {
			return err
		}
		defer w.Close()
		patient, err := s.patient(ctx, tx, w, profileID, now)
		if err != nil {
			return err
		}
		complete(res, id, patient, now)
		if err := put(ctx, w, res); err != nil {
			return err
		}
		out = Result{Type: typ, ID: id, SourceID: srcID}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	s.publish(out, profileID, "created")
	return out, nil
}

// Update replaces an entry the person made.
func (s *Service) Update(ctx context.Context, typ, id string, res map[string]any) (Result, error) {
	now := s.now()
	if rt, _ := res["resourceType"].(string); rt != typ {
		return Result{}, fieldErr("resourceType", "The body is a %s but the address names a %s.", rt, typ)
	}
	if bid, ok := res["id"]; ok && bid != id {
		return Result{}, fieldErr(typ+".id", "The body's id is not the id in the address.")
	}
	if err := Validate(res, now); err != nil {
		return Result{}, err
	}
	var out Result
	var profile int64
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		own, err := s.ownCopy(ctx, tx, typ, id)
		if err != nil {
			return err
		}
		if own.ProfileID != nil {
			profile = *own.ProfileID
		}
		w, err := s.writer(ctx, tx, own.SourceID, profile)
		if err != nil {
			return err
		}
		defer w.Close()
		var old map[string]any
		_ = json.Unmarshal([]byte(own.Raw), &old)
		patient := subjectOf(old)
		complete(res, id, patient, now)
		if err := put(ctx, w, res); err != nil {
			return err
		}
		out = Result{Type: typ, ID: id, SourceID: own.SourceID}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	s.publish(out, profile, "updated")
	return out, nil
}

// Delete removes an entry the person made.
func (s *Service) Delete(ctx context.Context, typ, id string) (Result, error) {
	var out Result
	var profile int64
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		own, err := s.ownCopy(ctx, tx, typ, id)
		if err != nil {
			return err
		}
		if own.ProfileID != nil {
			profile = *own.ProfileID
		}
		if _, err := s.store.DeleteRecord(ctx, tx, own.SourceID, typ, id); err != nil {
			return err
		}
		out = Result{Type: typ, ID: id, SourceID: own.SourceID}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	s.publish(out, profile, "deleted")
	return out, nil
}

// ownCopy finds the person-entered copy of Type/id: not found, or not editable.
func (s *Service) ownCopy(ctx context.Context, tx *sql.Tx, typ, id string) (records.StoredCopy, error) {
	if !fhir.KnownType(typ) {
		return records.StoredCopy{}, httpkit.BadRequest("%q is not a FHIR resource type.", typ)
	}
	copies, err := s.store.StoredCopies(ctx, tx, typ, id)
	if err != nil {
		return records.StoredCopy{}, err
	}
	if len(copies) == 0 {
		return records.StoredCopy{}, fmt.Errorf("%s/%s: %w", typ, id, records.ErrNotFound)
	}
	for _, c := range copies {
		if c.Self && enterable(typ) && IsSelfEntered([]byte(c.Raw)) {
			return c, nil
		}
	}
	return records.StoredCopy{}, fmt.Errorf("%s/%s: %w", typ, id, ErrNotEditable)
}

// IsSelfEntered reports whether a resource carries the self-entered tag.
func IsSelfEntered(raw []byte) bool {
	var m struct {
		Meta struct {
			Tag []struct{ System, Code string } `json:"tag"`
		} `json:"meta"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for _, t := range m.Meta.Tag {
		if t.System == SelfTagSystem && t.Code == SelfTagCode {
			return true
		}
	}
	return false
}

func (s *Service) writer(ctx context.Context, tx *sql.Tx, sourceID, profileID int64) (*ingest.Writer, error) {
	w, err := s.store.NewWriter(ctx, tx, sourceID, false)
	if err != nil {
		return nil, err
	}
	var person *int64
	if profileID != 0 {
		person = &profileID
	}
	return ingest.NewWriter(w, ingest.OnePerson(person)), nil
}

// patient is the person's Patient reference; a person without one (added by hand) gets a
// Patient in their own source, made from their name, birth date and gender.
func (s *Service) patient(ctx context.Context, tx *sql.Tx, w *ingest.Writer, profileID int64, now time.Time) (string, error) {
	ref, err := s.store.PersonPatientRef(ctx, tx, profileID)
	if err != nil || ref != "" {
		return ref, err
	}
	p, err := s.store.ProfileTx(ctx, tx, profileID)
	if err != nil {
		return "", err
	}
	id := newUUID()
	pt := map[string]any{"resourceType": "Patient", "id": id, "name": []any{map[string]any{"text": p.Name}}}
	if p.BirthDate != nil && *p.BirthDate != "" {
		pt["birthDate"] = *p.BirthDate
	}
	if p.Gender != nil && *p.Gender != "" {
		pt["gender"] = *p.Gender
	}
	pt["meta"] = map[string]any{"lastUpdated": now.UTC().Format(time.RFC3339), "tag": []any{selfTag()}}
	if err := put(ctx, w, pt); err != nil {
		return "", err
	}
	return "Patient/" + id, nil
}

func put(ctx context.Context, w *ingest.Writer, res map[string]any) error {
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	typ, _ := res["resourceType"].(string)
	id, _ := res["id"].(string)
	row, err := ingest.Row(&fhir.Entry{Type: typ, ID: id, Raw: raw}, ingest.Options{})
	if err != nil {
		return err
	}
	_, err = w.Put(ctx, row)
	return err
}

func selfTag() map[string]any {
	return map[string]any{"system": SelfTagSystem, "code": SelfTagCode, "display": "Entered by me"}
}

func subjectOf(m map[string]any) string {
	for _, f := range []string{"subject", "patient"} {
		if r, ok := m[f].(map[string]any); ok {
			if s, _ := r["reference"].(string); s != "" {
				return s
			}
		}
	}
	return ""
}

func coding(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": display}}}
}

// complete sets what the app owns: id, the self-entered tag, the person, and defaults.
func complete(m map[string]any, id, patient string, now time.Time) {
	m["id"] = id
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["lastUpdated"] = now.UTC().Format(time.RFC3339)
	tags, _ := meta["tag"].([]any)
	kept := []any{selfTag()}
	for _, t := range tags {
		if tm, ok := t.(map[string]any); ok && tm["system"] == SelfTagSystem {
			continue
		}
		kept = append(kept, t)
	}
	meta["tag"] = kept
	delete(meta, "versionId")
	m["meta"] = meta
	typ, _ := m["resourceType"].(string)
	field := "subject"
	if typ == "AllergyIntolerance" || typ == "Immunization" {
		field = "patient"
	}
	if patient != "" {
		m[field] = map[string]any{"reference": patient}
	} else {
		delete(m, field)
	}
	today := now.Format("2006-01-02")
	setDefault := func(k string, v any) {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	switch typ {
	case "Observation":
		if code, ok := measurementCode(m); ok {
			meas := Measurements[code]
			setDefault("category", []any{coding("http://terminology.hl7.org/CodeSystem/observation-category", meas.Category, categoryDisplay(meas.Category))})
		}
	case "Condition":
		setDefault("clinicalStatus", coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"))
		setDefault("recordedDate", today)
	case "MedicationStatement":
		setDefault("dateAsserted", today)
	case "AllergyIntolerance":
		setDefault("clinicalStatus", coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"))
		setDefault("recordedDate", today)
	case "Immunization":
		setDefault("primarySource", true)
	case "DocumentReference":
		setDefault("type", coding(LOINC, "51855-5", "Patient Note"))
	}
}

func categoryDisplay(c string) string {
	if c == "laboratory" {
		return "Laboratory"
	}
	return "Vital Signs"
}

func measurementCode(m map[string]any) (string, bool) {
	for _, x := range arr(obj(m, "code"), "coding") {
		cd, _ := x.(map[string]any)
		if strOf(cd, "system") == LOINC {
			if _, ok := Measurements[strOf(cd, "code")]; ok {
				return strOf(cd, "code"), true
			}
		}
	}
	return "", false
}

func (s *Service) publish(r Result, profile int64, action string) {
	if s.events == nil {
		return
	}
	s.events.Publish("resources.changed", map[string]any{"source_id": r.SourceID, "profile_id": profile, "types": []string{r.Type}, "id": r.ID, "via": "own." + action})
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// --- HTTP -----------------------------------------------------------------------------------

// MaxBody caps an entry's JSON (a note may carry some text).
const MaxBody = 256 << 10

// Routes: POST /resources?profile=ID, PUT and DELETE /resources/{type}/{id}.
func (s *Service) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: "POST", Path: "/resources", Handler: s.postResource},
		{Method: "PUT", Path: "/resources/{type}/{id}", Handler: s.putResource},
		{Method: "DELETE", Path: "/resources/{type}/{id}", Handler: s.deleteResource},
	}
}

func decodeResource(r *http.Request) (map[string]any, error) {
	var m map[string]any
	if err := httpkit.DecodeJSON(r, &m, MaxBody, false); err != nil {
		// A body that is not JSON is a refused payload too: an OperationOutcome.
		if sc, ok := err.(*httpkit.StatusError); ok && sc.Status == http.StatusBadRequest {
			return nil, &FieldError{Msg: sc.Msg}
		}
		return nil, err
	}
	if m == nil {
		return nil, fieldErr("resourceType", "The body must be a FHIR resource (a JSON object).")
	}
	return m, nil
}

func (s *Service) postResource(w http.ResponseWriter, r *http.Request) {
	profile, err := strconv.ParseInt(r.URL.Query().Get("profile"), 10, 64)
	if err != nil || profile <= 0 {
		httpkit.Fail(w, r, s.log, httpkit.BadRequest("The profile parameter is required: the person this entry is about."))
		return
	}
	m, err := decodeResource(r)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	out, err := s.Create(r.Context(), profile, m)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusCreated, out)
}

func (s *Service) putResource(w http.ResponseWriter, r *http.Request) {
	m, err := decodeResource(r)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	out, err := s.Update(r.Context(), r.PathValue("type"), r.PathValue("id"), m)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) deleteResource(w http.ResponseWriter, r *http.Request) {
	out, err := s.Delete(r.Context(), r.PathValue("type"), r.PathValue("id"))
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, out)
}
