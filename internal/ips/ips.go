// Package ips builds a person's International Patient Summary (HL7 FHIR IPS implementation
// guide, R4): a document Bundle whose first entry is a Composition (LOINC 60591-5) with coded
// sections, each with a narrative a doctor can read and the entries it summarises.
//
// What goes in ("only active or recent items"):
//   - problems (11450-4): Conditions whose clinicalStatus is active, recurrence or relapse;
//   - medications (10160-0): MedicationStatements and MedicationRequests that are active,
//     on-hold or intended;
//   - allergies (48765-2): AllergyIntolerances that are active (or carry no clinicalStatus);
//   - these three are always present, with an emptyReason when there is nothing, and are not
//     limited by the date range: what is current is current however old;
//   - dated sections – immunizations (11369-6, the latest dose of each vaccine), results
//     (30954-2, the latest value of each laboratory test), vital signs (8716-3, the latest of
//     each), procedures (47519-4), past illness (11348-0, resolved or inactive Conditions) –
//     keep items dated inside the range: the person's choice (since, until), by default the three
//     years up to the newest item of that section (so an old record still shows its last values);
//     immunizations by default reach back without limit (the history matters however old);
//   - implants (46264-8): the person's Devices that are active; care plans (18776-5): active
//     CarePlans;
//   - records marked entered-in-error or refuted never go in. Each section holds at most 100 items.
//
// Every entry has a urn:uuid fullUrl. References between included resources are rewritten to
// those fullUrls; a Medication, Practitioner, PractitionerRole, Organization or Location that an
// entry points at is added to the Bundle; any other reference (an Encounter, a Claim...) is cut
// down to its display text, so every reference inside the Bundle resolves inside it.
package ips

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"sort"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// LOINC codes of the IPS document and its sections.
const (
	LOINC        = "http://loinc.org"
	DocumentCode = "60591-5"
)

// Section keys (the API's sections parameter).
const (
	Problems      = "problems"
	Medications   = "medications"
	Allergies     = "allergies"
	Immunizations = "immunizations"
	Results       = "results"
	VitalSigns    = "vitals"
	Procedures    = "procedures"
	PastIllness   = "past_illness"
	Implants      = "implants"
	CarePlans     = "care_plans"
)

// Section is one IPS section definition.
type Section struct {
	Key      string
	Code     string // LOINC
	Display  string // LOINC display
	Title    string // heading for people
	Required bool
	Dated    bool // limited by the date range
	types    []string
}

// Sections lists the sections in document order.
var Sections = []Section{
	{Key: Problems, Code: "11450-4", Display: "Problem list - Reported", Title: "Active problems", Required: true, types: []string{"Condition"}},
	{Key: Medications, Code: "10160-0", Display: "History of Medication use Narrative", Title: "Medications", Required: true, types: []string{"MedicationStatement", "MedicationRequest"}},
	{Key: Allergies, Code: "48765-2", Display: "Allergies and adverse reactions Document", Title: "Allergies and intolerances", Required: true, types: []string{"AllergyIntolerance"}},
	{Key: Immunizations, Code: "11369-6", Display: "History of Immunization Narrative", Title: "Immunizations", Dated: true, types: []string{"Immunization"}},
	{Key: Results, Code: "30954-2", Display: "Relevant diagnostic tests/laboratory data Narrative", Title: "Results", Dated: true, types: []string{"Observation"}},
	{Key: VitalSigns, Code: "8716-3", Display: "Vital signs", Title: "Vital signs", Dated: true, types: []string{"Observation"}},
	{Key: Procedures, Code: "47519-4", Display: "History of Procedures Document", Title: "Procedures", Dated: true, types: []string{"Procedure"}},
	{Key: PastIllness, Code: "11348-0", Display: "History of Past illness Narrative", Title: "Past illness", Dated: true, types: []string{"Condition"}},
	{Key: Implants, Code: "46264-8", Display: "History of medical device use", Title: "Medical devices and implants", types: []string{"Device"}},
	{Key: CarePlans, Code: "18776-5", Display: "Plan of care note", Title: "Care plans", types: []string{"CarePlan"}},
}

// SectionByKey finds a section definition.
func SectionByKey(key string) (Section, bool) {
	for _, s := range Sections {
		if s.Key == key {
			return s, true
		}
	}
	return Section{}, false
}

// Options are the person's choices.
type Options struct {
	// Sections are the optional sections to include (nil: all that have data). The required
	// sections are always included.
	Sections map[string]bool
	// Since and Until (YYYY-MM-DD, inclusive) limit the dated sections; empty: the default rule.
	Since, Until string
}

// MaxPerSection bounds each section.
const MaxPerSection = 100

// DefaultYears is how far back from a dated section's newest item "recent" reaches.
const DefaultYears = 3

// Builder assembles IPS documents from the record store.
type Builder struct {
	store *records.Store
	now   func() time.Time
}

// NewBuilder returns a Builder reading from store; now may be nil (time.Now).
func NewBuilder(store *records.Store, now func() time.Time) *Builder {
	if now == nil {
		now = time.Now
	}
	return &Builder{store: store, now: now}
}

// rec is one stored record, decoded.
type rec struct {
	item records.Item
	res  map[string]any
	key  string // Type/id
	date string // normalised clinical date
}

// Build returns the person's IPS document Bundle (as a JSON-ready map).
func (b *Builder) Build(ctx context.Context, profileID int64, opt Options) (map[string]any, error) {
	prof, err := b.store.Profile(ctx, profileID)
	if err != nil {
		return nil, err
	}
	now := b.now().UTC()
	stamp := now.Format(time.RFC3339)
	d := &doc{b: b, ctx: ctx, byKey: map[string]string{}, urls: map[string]bool{}, patients: map[string]bool{}}

	// The person: their newest Patient resource; any of their Patient ids points at it.
	pts, err := b.store.PersonPatients(ctx, profileID)
	if err != nil {
		return nil, err
	}
	var patient map[string]any
	if len(pts) > 0 {
		if err := json.Unmarshal(pts[0].Resource, &patient); err != nil {
			return nil, fmt.Errorf("patient %s: %w", pts[0].ID, err)
		}
	} else {
		patient = map[string]any{"resourceType": "Patient", "id": uuidFrom("Patient/profile-" + fmt.Sprint(profileID)), "name": []any{map[string]any{"text": prof.Name}}}
		if prof.BirthDate != nil && *prof.BirthDate != "" {
			patient["birthDate"] = *prof.BirthDate
		}
		if prof.Gender != nil && *prof.Gender != "" {
			patient["gender"] = *prof.Gender
		}
	}
	patientID, _ := patient["id"].(string)
	d.patientURL = d.add("Patient", patientID, patient, 0)
	for _, p := range pts {
		d.patients["Patient/"+p.ID] = true
		d.byKey["Patient/"+p.ID] = d.patientURL
	}
	patientName := prof.Name
	if n := humanName(patient); n != "" {
		patientName = n
	}

	// Read each type once.
	all := map[string][]rec{}
	for _, s := range Sections {
		for _, t := range s.types {
			if _, ok := all[t]; ok {
				continue
			}
			items, err := b.store.PersonRecords(ctx, profileID, []string{t})
			if err != nil {
				return nil, err
			}
			rs := make([]rec, 0, len(items))
			for _, it := range items {
				var m map[string]any
				if json.Unmarshal(it.Resource, &m) != nil {
					continue
				}
				date := ""
				if it.Date != nil {
					date = *it.Date
				}
				rs = append(rs, rec{item: it, res: m, key: it.Type + "/" + it.ID, date: date})
			}
			all[t] = rs
		}
	}

	var sections []any
	var picked [][]rec
	var defs []Section
	for _, s := range Sections {
		if !s.Required && opt.Sections != nil && !opt.Sections[s.Key] {
			continue
		}
		var cands []rec
		for _, t := range s.types {
			cands = append(cands, all[t]...)
		}
		items := pick(s, cands, opt)
		if len(items) == 0 && !s.Required {
			continue
		}
		defs = append(defs, s)
		picked = append(picked, items)
	}
	// Add the entries first (so references between them resolve), then their supporting
	// resources, then rewrite every reference.
	entryURLs := make([][]string, len(picked))
	for i, items := range picked {
		for _, r := range items {
			url, ok := d.byKey[r.key]
			if !ok {
				url = d.add(r.item.Type, r.item.ID, r.res, r.item.SourceID)
			}
			entryURLs[i] = append(entryURLs[i], url)
		}
	}
	if err := d.resolveAll(); err != nil {
		return nil, err
	}
	for i, s := range defs {
		sec := map[string]any{
			"title": s.Title,
			"code":  codeable(LOINC, s.Code, s.Display),
		}
		if len(entryURLs[i]) == 0 {
			sec["text"] = narrative(`<p>` + html.EscapeString(emptyText(s)) + `</p>`)
			sec["emptyReason"] = map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "unavailable", "display": "Unavailable",
			}}, "text": emptyText(s)}
		} else {
			sec["text"] = narrative(sectionTable(s, picked[i], d))
			refs := make([]any, 0, len(entryURLs[i]))
			for _, u := range entryURLs[i] {
				refs = append(refs, map[string]any{"reference": u})
			}
			sec["entry"] = refs
		}
		sections = append(sections, sec)
	}

	compID := newUUID()
	title := "International Patient Summary: " + patientName
	comp := map[string]any{
		"resourceType": "Composition",
		"id":           compID,
		"meta":         map[string]any{"profile": []any{"http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips"}},
		"text": narrative(`<p>` + html.EscapeString(title) + `, made by the person with Fasten Desktop on ` +
			now.Format("2 January 2006") + `.</p>`),
		"status":  "final",
		"type":    codeable(LOINC, DocumentCode, "Patient summary Document"),
		"subject": map[string]any{"reference": d.patientURL, "display": patientName},
		"date":    stamp,
		"author":  []any{map[string]any{"reference": d.patientURL, "display": patientName}},
		"title":   title,
		"section": sections,
	}
	if opt.Since != "" || opt.Until != "" {
		period := map[string]any{}
		if opt.Since != "" {
			period["start"] = opt.Since
		}
		if opt.Until != "" {
			period["end"] = opt.Until
		}
		comp["event"] = []any{map[string]any{
			"code":   []any{codeable("http://terminology.hl7.org/CodeSystem/v3-ActClass", "PCPR", "care provision")},
			"period": period,
		}}
	}
	entries := []any{map[string]any{"fullUrl": "urn:uuid:" + compID, "resource": comp}}
	for _, e := range d.entries {
		entries = append(entries, map[string]any{"fullUrl": e.url, "resource": e.res})
	}
	bundleID := newUUID()
	return map[string]any{
		"resourceType": "Bundle",
		"id":           bundleID,
		"meta":         map[string]any{"profile": []any{"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"}},
		"identifier":   map[string]any{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:" + newUUID()},
		"type":         "document",
		"timestamp":    stamp,
		"entry":        entries,
	}, nil
}

func emptyText(s Section) string {
	switch s.Key {
	case Problems:
		return "No current problems are recorded."
	case Medications:
		return "No current medications are recorded."
	case Allergies:
		return "No allergies or intolerances are recorded."
	}
	return "Nothing recorded."
}

// --- choosing -------------------------------------------------------------------------------

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			if len(c) == 0 {
				return ""
			}
			mm, _ := c[0].(map[string]any)
			if mm == nil {
				return ""
			}
			cur = mm[p]
		default:
			return ""
		}
	}
	if arr, ok := cur.([]any); ok && len(arr) > 0 {
		cur = arr[0]
	}
	s, _ := cur.(string)
	return s
}

// conceptCode is a concept's status code (clinicalStatus.coding[0].code).
func conceptCode(m map[string]any, field string) string { return str(m, field, "coding", "code") }

func enteredInError(m map[string]any) bool {
	if m["status"] == "entered-in-error" {
		return true
	}
	v := conceptCode(m, "verificationStatus")
	return v == "entered-in-error" || v == "refuted"
}

func category(m map[string]any) string {
	cats, _ := m["category"].([]any)
	for _, c := range cats {
		cm, _ := c.(map[string]any)
		codings, _ := cm["coding"].([]any)
		for _, cd := range codings {
			if cdm, ok := cd.(map[string]any); ok {
				if code, _ := cdm["code"].(string); code != "" {
					return code
				}
			}
		}
	}
	return ""
}

// primaryCode is the first system|code of code (or vaccineCode), else its text.
func primaryCode(m map[string]any) string {
	for _, f := range []string{"code", "vaccineCode", "medicationCodeableConcept", "type"} {
		c, _ := m[f].(map[string]any)
		if c == nil {
			continue
		}
		if sys, code := str(c, "coding", "system"), str(c, "coding", "code"); code != "" {
			return sys + "|" + code
		}
		if t, _ := c["text"].(string); t != "" {
			return t
		}
	}
	return ""
}

func pick(s Section, cands []rec, opt Options) []rec {
	var out []rec
	keep := func(r rec) bool {
		if enteredInError(r.res) {
			return false
		}
		status, _ := r.res["status"].(string)
		clinical := conceptCode(r.res, "clinicalStatus")
		switch s.Key {
		case Problems:
			return clinical == "active" || clinical == "recurrence" || clinical == "relapse"
		case PastIllness:
			return clinical == "inactive" || clinical == "remission" || clinical == "resolved"
		case Medications:
			return status == "active" || status == "on-hold" || status == "intended"
		case Allergies:
			return clinical == "" || clinical == "active"
		case Immunizations:
			return status == "" || status == "completed"
		case Results:
			return category(r.res) == "laboratory" && status != "cancelled"
		case VitalSigns:
			return category(r.res) == "vital-signs" && status != "cancelled"
		case Procedures:
			return status == "" || status == "completed" || status == "in-progress"
		case Implants:
			return (status == "" || status == "active") && r.item.Patient != nil
		case CarePlans:
			return status == "active"
		}
		return false
	}
	for _, r := range cands {
		if keep(r) {
			out = append(out, r)
		}
	}
	if s.Dated {
		o := opt
		if s.Key == Immunizations && o.Since == "" {
			o.Since = "0000-01-01" // a vaccination history counts however old (a tetanus dose lasts ten years)
		}
		out = inRange(out, o)
	}
	switch s.Key {
	case Immunizations, Results, VitalSigns:
		out = latestPerCode(out)
	default:
		// Newest first; the same day by name, so the order never depends on storage order.
		sort.SliceStable(out, func(i, j int) bool {
			a, b := out[i], out[j]
			if a.date != b.date {
				return a.date > b.date
			}
			if a.item.Title != b.item.Title {
				return a.item.Title < b.item.Title
			}
			return a.key < b.key
		})
	}
	// Deduplicate (the same record from two sources) and bound.
	seen := map[string]bool{}
	kept := out[:0]
	for _, r := range out {
		if seen[r.key] {
			continue
		}
		seen[r.key] = true
		kept = append(kept, r)
	}
	if len(kept) > MaxPerSection {
		kept = kept[:MaxPerSection]
	}
	return kept
}

// inRange keeps items dated within [since, until]; by default the DefaultYears up to the newest.
func inRange(rs []rec, opt Options) []rec {
	since, until := opt.Since, opt.Until
	if since == "" {
		newest := ""
		for _, r := range rs {
			if r.date > newest && (until == "" || r.date[:min(len(r.date), 10)] <= until) {
				newest = r.date
			}
		}
		if newest == "" {
			return nil
		}
		t, err := time.Parse("2006-01-02", newest[:min(len(newest), 10)])
		if err != nil {
			return rs
		}
		since = t.AddDate(-DefaultYears, 0, 0).Format("2006-01-02")
	}
	var out []rec
	for _, r := range rs {
		day := r.date[:min(len(r.date), 10)]
		if day == "" || day < since || (until != "" && day > until) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// latestPerCode keeps the newest item of each code (the input is newest first), by title.
func latestPerCode(rs []rec) []rec {
	seen := map[string]bool{}
	var out []rec
	for _, r := range rs {
		c := primaryCode(r.res)
		if c == "" {
			c = r.key
		}
		if seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].item.Title != out[j].item.Title {
			return out[i].item.Title < out[j].item.Title
		}
		return out[i].key < out[j].key
	})
	return out
}

// --- the Bundle's resources and references --------------------------------------------------

type entry struct {
	url      string
	typ, id  string
	res      map[string]any
	sourceID int64
	done     bool
}

type doc struct {
	b          *Builder
	ctx        context.Context
	entries    []*entry
	byKey      map[string]string // Type/id -> fullUrl
	urls       map[string]bool
	patients   map[string]bool // the person's Patient references
	patientURL string
}

// supporting are the types an entry's reference pulls into the Bundle.
var supporting = map[string]bool{"Medication": true, "Practitioner": true, "PractitionerRole": true, "Organization": true, "Location": true}

func (d *doc) add(typ, id string, res map[string]any, sourceID int64) string {
	url := "urn:uuid:" + uuidFor(typ, id)
	if d.urls[url] {
		url = "urn:uuid:" + uuidFrom(typ+"/"+id)
	}
	d.urls[url] = true
	d.byKey[typ+"/"+id] = url
	d.entries = append(d.entries, &entry{url: url, typ: typ, id: id, res: res, sourceID: sourceID})
	return url
}

// resolveAll rewrites references in every entry, adding supporting resources as it goes.
func (d *doc) resolveAll() error {
	for i := 0; i < len(d.entries); i++ {
		e := d.entries[i]
		if e.done {
			continue
		}
		e.done = true
		if err := d.rewrite(e, e.res); err != nil {
			return err
		}
	}
	return nil
}

// refKey turns a reference as stored into Type/id ("" when it is not one).
func refKey(ref string) string {
	if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return ""
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if !fhir.KnownType(typ) || !fhir.ValidID(id) {
		return ""
	}
	return typ + "/" + id
}

func (d *doc) rewrite(e *entry, v any) error {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"].(string); ok {
			if err := d.resolveRef(e, x, ref); err != nil {
				return err
			}
		}
		for k, c := range x {
			if k == "reference" || k == "text" && e.res["resourceType"] != nil && isNarrative(c) {
				continue
			}
			if err := d.rewrite(e, c); err != nil {
				return err
			}
		}
	case []any:
		for _, c := range x {
			if err := d.rewrite(e, c); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNarrative(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, has := m["div"]
	return has
}

func (d *doc) resolveRef(e *entry, ref map[string]any, s string) error {
	if strings.HasPrefix(s, "#") {
		return nil // contained
	}
	if d.urls[s] {
		return nil
	}
	key := refKey(s)
	if key != "" {
		if d.patients[key] || (strings.HasPrefix(key, "Patient/") && len(d.patients) == 0) {
			ref["reference"] = d.patientURL
			return nil
		}
		if url, ok := d.byKey[key]; ok {
			ref["reference"] = url
			return nil
		}
		typ, id, _ := strings.Cut(key, "/")
		if supporting[typ] {
			it, err := d.b.store.Get(d.ctx, typ, id, e.sourceID)
			if err != nil {
				it, err = d.b.store.Get(d.ctx, typ, id, 0)
			}
			if err == nil {
				var m map[string]any
				if json.Unmarshal(it.Resource, &m) == nil {
					if _, ok := ref["display"]; !ok && it.Title != "" {
						ref["display"] = it.Title
					}
					ref["reference"] = d.add(typ, id, m, it.SourceID)
					return nil
				}
			}
		}
	}
	// Not in the summary: keep what it says, not where it points.
	delete(ref, "reference")
	if _, ok := ref["display"]; !ok {
		if typ, _, ok := strings.Cut(key, "/"); ok {
			ref["display"] = typ + " (not included in this summary)"
		} else {
			ref["display"] = "Not included in this summary"
		}
	}
	return nil
}

// --- helpers --------------------------------------------------------------------------------

func codeable(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": display}}, "text": display}
}

func narrative(inner string) map[string]any {
	return map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">` + inner + `</div>`}
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// uuidFor is the record's id when it is a UUID, else one derived from Type/id.
func uuidFor(typ, id string) string {
	if isUUID(id) {
		return strings.ToLower(id)
	}
	return uuidFrom(typ + "/" + id)
}

// uuidFrom derives a stable name-based UUID (version 5 layout over SHA-256).
func uuidFrom(name string) string {
	h := sha256.Sum256([]byte("fasten-ips:" + name))
	return formatUUID(h[:16], 5)
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	return formatUUID(b[:], 4)
}

func formatUUID(b []byte, version byte) string {
	b[6] = (b[6] & 0x0f) | version<<4
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func humanName(p map[string]any) string {
	names, _ := p["name"].([]any)
	for _, n := range names {
		nm, _ := n.(map[string]any)
		if t, _ := nm["text"].(string); t != "" {
			return t
		}
		var parts []string
		if g, ok := nm["given"].([]any); ok {
			for _, x := range g {
				if s, _ := x.(string); s != "" {
					parts = append(parts, s)
				}
			}
		}
		if f, _ := nm["family"].(string); f != "" {
			parts = append(parts, f)
		}
		if len(parts) > 0 {
			return strings.Join(parts, " ")
		}
	}
	return ""
}
