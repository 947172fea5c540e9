package sandbox

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// DefaultBaseTime is meta.lastUpdated of every loaded resource unless LoadData is given another.
var DefaultBaseTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// sharedTypes are served to any valid token by read and are not part of a patient compartment.
var sharedTypes = map[string]bool{
	"Organization": true, "Practitioner": true, "PractitionerRole": true, "Location": true, "Medication": true,
}

// defaultCompartmentTypes are searchable even when no patient has one (the search is then
// empty), so a client that asks for common US Core types does not get "unknown type".
var defaultCompartmentTypes = []string{
	"AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "Condition", "Coverage", "Device",
	"DiagnosticReport", "DocumentReference", "Encounter", "ExplanationOfBenefit", "Goal",
	"ImagingStudy", "Immunization", "MedicationRequest", "Observation", "Patient", "Procedure",
}

// IsSharedType reports whether resources of type t are shared between patients (Organization,
// Practitioner, PractitionerRole, Location, Medication): readable by any valid token, never
// searched by patient.
func IsSharedType(t string) bool { return sharedTypes[t] }

// Data is the parsed Synthea data set: immutable once loaded, so one Data may back any number
// of Servers (tests load it once per test binary and pass it as Config.Data).
type Data struct {
	baseTime time.Time
	patients []*loadedPatient
	shared   []*resource
}

type loadedPatient struct {
	id, name, birthDate string
	list                []*resource // the compartment, bundle order (Patient first)
	shared              []string    // keys of the shared resources the bundle carried
}

// BaseTime is the meta.lastUpdated given to every loaded resource.
func (d *Data) BaseTime() time.Time { return d.baseTime }

// resource is one stored resource. It is never modified after creation (a change replaces it),
// so readers may keep a pointer after releasing the store lock.
type resource struct {
	typ, id     string
	version     int
	lastUpdated time.Time // millisecond precision, UTC
	raw         []byte    // the full JSON, meta included; nil for a lazy clone
	clone       *cloneRef
}

func (r *resource) key() string { return r.typ + "/" + r.id }

// bytes returns the resource JSON. Lazy clones (ReplicatePatient) are materialized here.
func (r *resource) bytes() []byte {
	if r.clone != nil {
		return r.clone.materialize()
	}
	return r.raw
}

// appendTo appends the resource JSON to dst without an intermediate copy.
func (r *resource) appendTo(dst []byte) []byte {
	if r.clone != nil {
		return r.clone.appendTo(dst)
	}
	return append(dst, r.raw...)
}

// sizeHint is about the length of the resource JSON.
func (r *resource) sizeHint() int {
	if r.clone != nil {
		return r.clone.sizeHint()
	}
	return len(r.raw)
}

// LoadData reads every patient-*.json transaction bundle in dir and every other *.json bundle
// (organizations.json, practitioners.json) as shared resources. An empty dir means the shared
// Synthea folder; a zero baseTime means DefaultBaseTime. `urn:uuid:` references are resolved to
// `Type/id` and every resource gets meta.versionId "1" and meta.lastUpdated = baseTime.
func LoadData(dir string, baseTime time.Time) (*Data, error) {
	if dir == "" {
		d, err := shareddata.Path(shareddata.Synthea)
		if err != nil {
			return nil, fmt.Errorf("locate synthea data: %w", err)
		}
		dir = d
	}
	d, err := LoadDataFS(os.DirFS(dir), baseTime)
	if err != nil && errors.Is(err, errNoPatients) {
		return nil, fmt.Errorf("no patient-*.json bundles in %s", dir)
	}
	return d, err
}

var errNoPatients = errors.New("no patient-*.json bundles")

// LoadDataFS is LoadData over the top folder of fsys. Bundles may also be gzip-compressed
// (patient-*.json.gz, organizations.json.gz): the embedded demo data set is (see demo.go).
func LoadDataFS(fsys fs.FS, baseTime time.Time) (*Data, error) {
	if baseTime.IsZero() {
		baseTime = DefaultBaseTime
	}
	baseTime = baseTime.UTC().Truncate(time.Millisecond)
	files, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list data: %w", err)
	}
	gz, err := fs.Glob(fsys, "*.json.gz")
	if err != nil {
		return nil, fmt.Errorf("list data: %w", err)
	}
	files = append(files, gz...)
	var patientFiles, sharedFiles []string
	for _, f := range files {
		if strings.HasPrefix(f, "patient-") {
			patientFiles = append(patientFiles, f)
		} else {
			sharedFiles = append(sharedFiles, f)
		}
	}
	if len(patientFiles) == 0 {
		return nil, errNoPatients
	}
	slices.Sort(patientFiles)
	slices.Sort(sharedFiles)

	d := &Data{baseTime: baseTime}
	sharedRefs := map[string]string{} // urn:uuid:X -> Type/id
	sharedSeen := map[string]bool{}
	for _, f := range sharedFiles {
		entries, err := readBundle(fsys, f)
		if err != nil {
			return nil, err
		}
		for i, e := range entries {
			if !sharedTypes[e.typ] {
				return nil, fmt.Errorf("%s entry %d: %s is not a shared type", f, i, e.typ)
			}
			sharedRefs[e.fullURL] = e.typ + "/" + e.id
		}
		for i := range entries {
			r, err := finishResource(&entries[i], sharedRefs, nil, baseTime)
			if err != nil {
				return nil, fmt.Errorf("%s entry %d: %w", f, i, err)
			}
			if !sharedSeen[r.key()] {
				sharedSeen[r.key()] = true
				d.shared = append(d.shared, r)
			}
		}
	}

	type result struct {
		p      *loadedPatient
		shared []*resource
		err    error
	}
	results := make([]result, len(patientFiles))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(patientFiles))) {
		wg.Go(func() {
			for i := range jobs {
				p, sh, err := loadPatientBundle(fsys, patientFiles[i], sharedRefs, baseTime)
				results[i] = result{p, sh, err}
			}
		})
	}
	for i := range patientFiles {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	seenPatient := map[string]bool{}
	for i, res := range results {
		if res.err != nil {
			return nil, res.err
		}
		if seenPatient[res.p.id] {
			return nil, fmt.Errorf("%s: patient %s appears twice", patientFiles[i], res.p.id)
		}
		seenPatient[res.p.id] = true
		d.patients = append(d.patients, res.p)
		for _, r := range res.shared {
			if !sharedSeen[r.key()] {
				sharedSeen[r.key()] = true
				d.shared = append(d.shared, r)
			}
		}
	}
	return d, nil
}

// readBundle reads and scans one Bundle file (gunzipped when its name ends in .gz).
func readBundle(fsys fs.FS, name string) ([]rawEntry, error) {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	compact, err := compactJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	entries, err := scanBundle(compact)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i := range entries {
		if entries[i].fullURL == "" {
			entries[i].fullURL = "urn:uuid:" + entries[i].id
		}
	}
	return entries, nil
}

func loadPatientBundle(fsys fs.FS, name string, sharedRefs map[string]string, baseTime time.Time) (*loadedPatient, []*resource, error) {
	entries, err := readBundle(fsys, name)
	if err != nil {
		return nil, nil, err
	}
	local := make(map[string]string, len(entries))
	var p *loadedPatient
	for i, e := range entries {
		local[e.fullURL] = e.typ + "/" + e.id
		if e.typ == "Patient" {
			if p != nil {
				return nil, nil, fmt.Errorf("%s: more than one Patient", name)
			}
			v, err := decodeJSON(e.raw)
			if err != nil {
				return nil, nil, fmt.Errorf("%s entry %d: %w", name, i, err)
			}
			m, _ := v.(map[string]any)
			p = &loadedPatient{id: e.id}
			p.name, p.birthDate = patientSummary(m)
		}
	}
	if p == nil {
		return nil, nil, fmt.Errorf("%s: no Patient entry", name)
	}
	var shared []*resource
	seenShared := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		r, err := finishResource(e, local, sharedRefs, baseTime)
		if err != nil {
			return nil, nil, fmt.Errorf("%s entry %d: %w", name, i, err)
		}
		if sharedTypes[e.typ] {
			if !seenShared[r.key()] {
				seenShared[r.key()] = true
				p.shared = append(p.shared, r.key())
				shared = append(shared, r)
			}
			continue
		}
		if e.typ == "Patient" {
			p.list = slices.Insert(p.list, 0, r)
		} else {
			p.list = append(p.list, r)
		}
	}
	return p, shared, nil
}

// finishResource resolves urn:uuid references and stamps meta (version 1, baseTime).
func finishResource(e *rawEntry, refs, moreRefs map[string]string, baseTime time.Time) (*resource, error) {
	resolve := func(ref string) (string, bool) {
		if v, ok := refs[ref]; ok {
			return v, true
		}
		v, ok := moreRefs[ref]
		return v, ok
	}
	if out, ok := finishRaw(e, resolve, formatInstant(baseTime)); ok {
		return &resource{typ: e.typ, id: e.id, version: 1, lastUpdated: baseTime, raw: out}, nil
	}
	v, err := decodeJSON(e.raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("resource is not an object")
	}
	resolveRefs(m, resolve)
	return stampResource(m, e.typ, e.id, 1, baseTime)
}

// stampResource sets meta.versionId and meta.lastUpdated and encodes m.
func stampResource(m map[string]any, typ, id string, version int, lu time.Time) (*resource, error) {
	lu = lu.UTC().Truncate(time.Millisecond)
	m["resourceType"] = typ
	m["id"] = id
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = strconv.Itoa(version)
	meta["lastUpdated"] = formatInstant(lu)
	m["meta"] = meta
	var buf bytes.Buffer
	if err := encodeJSON(&buf, m); err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", typ, id, err)
	}
	return &resource{typ: typ, id: id, version: version, lastUpdated: lu, raw: buf.Bytes()}, nil
}

// resolveRefs rewrites every "reference" string found by resolve, at any depth.
func resolveRefs(v any, resolve func(string) (string, bool)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "reference" {
				if r, ok := resolve(s); ok {
					x[k] = r
				}
				continue
			}
			resolveRefs(e, resolve)
		}
	case []any:
		for _, e := range x {
			resolveRefs(e, resolve)
		}
	}
}

// patientSummary returns a display name (official name preferred) and the birth date.
func patientSummary(m map[string]any) (name, birthDate string) {
	birthDate, _ = m["birthDate"].(string)
	names, _ := m["name"].([]any)
	var pick map[string]any
	for _, n := range names {
		nm, _ := n.(map[string]any)
		if nm == nil {
			continue
		}
		if pick == nil {
			pick = nm
		}
		if u, _ := nm["use"].(string); u == "official" {
			pick = nm
			break
		}
	}
	if pick == nil {
		return "", birthDate
	}
	if t, _ := pick["text"].(string); t != "" {
		return t, birthDate
	}
	var parts []string
	if given, ok := pick["given"].([]any); ok {
		for _, g := range given {
			if s, _ := g.(string); s != "" {
				parts = append(parts, s)
			}
		}
	}
	if f, _ := pick["family"].(string); f != "" {
		parts = append(parts, f)
	}
	return strings.Join(parts, " "), birthDate
}

// validID reports whether s is a FHIR id: 1-64 of [A-Za-z0-9-.].
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validType reports whether s looks like a FHIR resource type name.
func validType(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

const instantLayout = "2006-01-02T15:04:05.000Z"

func formatInstant(t time.Time) string { return t.UTC().Format(instantLayout) }

// ErrNotFound is returned (wrapped) by Touch, Modify, Remove and ReplicatePatient for an
// unknown resource or patient.
var ErrNotFound = errors.New("not found")
