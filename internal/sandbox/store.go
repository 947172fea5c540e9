package sandbox

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// store is one Server's mutable view of the data. It starts as a shallow copy of a Data (the
// resources themselves are immutable and shared).
type store struct {
	mu       sync.RWMutex
	patients map[string]*patientRec
	order    []*patientRec
	shared   map[string]*resource   // "Type/id" -> resource
	owner    map[string]*patientRec // compartment "Type/id" -> patient
	types    map[string]bool        // searchable compartment types
	now      func() time.Time
	// reported is the latest instant (Unix ms) the server has handed out, as a change time
	// or as Bundle.meta.lastUpdated; change times are kept after it (see changeTime).
	reported atomic.Int64
}

type patientRec struct {
	id, name, birthDate string
	list                []*resource    // the compartment, stable order (Patient first)
	pos                 map[string]int // "Type/id" -> index in list
	shared              []string       // referenced shared resources ("Type/id"), bundle order
	seq                 int            // numbering for ReplicatePatient ids
}

func newStore(d *Data, now func() time.Time) *store {
	s := &store{
		patients: make(map[string]*patientRec, len(d.patients)),
		shared:   make(map[string]*resource, len(d.shared)),
		owner:    map[string]*patientRec{},
		types:    map[string]bool{},
		now:      now,
	}
	s.reported.Store(d.baseTime.UnixMilli())
	for _, t := range defaultCompartmentTypes {
		s.types[t] = true
	}
	for _, r := range d.shared {
		s.shared[r.key()] = r
	}
	for _, lp := range d.patients {
		p := &patientRec{
			id: lp.id, name: lp.name, birthDate: lp.birthDate,
			list:   slices.Clone(lp.list),
			pos:    make(map[string]int, len(lp.list)),
			shared: slices.Clone(lp.shared),
		}
		for i, r := range p.list {
			k := r.key()
			p.pos[k] = i
			s.owner[k] = p
			s.types[r.typ] = true
		}
		s.patients[p.id] = p
		s.order = append(s.order, p)
	}
	return s
}

func (s *store) nowMillis() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// reportTime returns Config.Now() for a Bundle.meta.lastUpdated and remembers it.
func (s *store) reportTime() time.Time {
	t := s.nowMillis()
	ms := t.UnixMilli()
	for {
		old := s.reported.Load()
		if ms <= old || s.reported.CompareAndSwap(old, ms) {
			return t
		}
	}
}

// changeTime returns the meta.lastUpdated for a change: Config.Now(), or 1 ms after the latest
// instant already handed out when the clock has not moved past it. So a change made after a
// search always satisfies _lastUpdated=gt<that search's Bundle.meta.lastUpdated>, even with a
// frozen test clock.
func (s *store) changeTime() time.Time {
	ms := s.nowMillis().UnixMilli()
	for {
		old := s.reported.Load()
		next := max(ms, old+1)
		if s.reported.CompareAndSwap(old, next) {
			return time.UnixMilli(next).UTC()
		}
	}
}

// lookup finds a resource and, for compartment resources, its patient. Caller holds s.mu.
func (s *store) lookup(typ, id string) (*resource, *patientRec) {
	k := typ + "/" + id
	if r, ok := s.shared[k]; ok {
		return r, nil
	}
	p := s.owner[k]
	if p == nil {
		return nil, nil
	}
	return p.list[p.pos[k]], p
}

// PatientInfo describes one patient (one login) of the sandbox.
type PatientInfo struct {
	ID        string
	Name      string // "Given Family" from the official name
	BirthDate string // as in Patient.birthDate
	// Resources is the number of resources Patient/$everything returns with no filter: the
	// compartment (the Patient included) plus the shared Organization/Practitioner resources
	// the patient's bundle carried. It equals the entry count of the Synthea bundle.
	Resources int
	// Counts is Resources by type. Shared types (see IsSharedType) are reachable by read or
	// $everything, not by search.
	Counts map[string]int
}

// Patients lists every patient in a stable order (Synthea file order, then added ones).
func (s *Server) Patients() []PatientInfo {
	st := s.store
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]PatientInfo, 0, len(st.order))
	for _, p := range st.order {
		out = append(out, p.info())
	}
	return out
}

// Patient returns one patient's summary.
func (s *Server) Patient(id string) (PatientInfo, bool) {
	st := s.store
	st.mu.RLock()
	defer st.mu.RUnlock()
	p := st.patients[id]
	if p == nil {
		return PatientInfo{}, false
	}
	return p.info(), true
}

func (p *patientRec) info() PatientInfo {
	counts := map[string]int{}
	for _, r := range p.list {
		counts[r.typ]++
	}
	for _, k := range p.shared {
		t, _, _ := strings.Cut(k, "/")
		counts[t]++
	}
	return PatientInfo{
		ID: p.id, Name: p.name, BirthDate: p.birthDate,
		Resources: len(p.list) + len(p.shared), Counts: counts,
	}
}

// Resource returns the JSON the FHIR API serves for Type/id (a copy), or false.
func (s *Server) Resource(typ, id string) (json.RawMessage, bool) {
	st := s.store
	st.mu.RLock()
	r, _ := st.lookup(typ, id)
	st.mu.RUnlock()
	if r == nil {
		return nil, false
	}
	return slices.Clone(r.bytes()), true
}

// Touch records a new version of Type/id with no content change: meta.versionId goes up by
// one and meta.lastUpdated becomes Config.Now() at millisecond precision (or 1 ms after the
// latest instant the server has already reported, if the clock has not moved past it).
func (s *Server) Touch(typ, id string) error { return s.Modify(typ, id, nil) }

// Modify applies change (may be nil) to the decoded resource and stores it as a new version
// (see Touch). resourceType and id cannot be changed; meta.versionId and meta.lastUpdated are
// set after change runs.
func (s *Server) Modify(typ, id string, change func(resource map[string]any)) error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	old, p := st.lookup(typ, id)
	if old == nil {
		return fmt.Errorf("modify %s/%s: %w", typ, id, ErrNotFound)
	}
	v, err := decodeJSON(old.bytes())
	if err != nil {
		return fmt.Errorf("modify %s/%s: %w", typ, id, err)
	}
	m := v.(map[string]any)
	if change != nil {
		change(m)
	}
	r, err := stampResource(m, typ, id, old.version+1, st.changeTime())
	if err != nil {
		return fmt.Errorf("modify: %w", err)
	}
	st.put(p, r)
	return nil
}

// put replaces or appends r: into p's compartment, or the shared pool when p is nil. Caller
// holds s.mu for writing.
func (st *store) put(p *patientRec, r *resource) {
	k := r.key()
	if p == nil {
		st.shared[k] = r
		return
	}
	if i, ok := p.pos[k]; ok {
		p.list[i] = r
		return
	}
	p.pos[k] = len(p.list)
	p.list = append(p.list, r)
	st.owner[k] = p
	st.types[r.typ] = true
}

// Remove deletes Type/id: later reads answer 404 and searches leave it out. A patient's
// Patient resource cannot be removed.
func (s *Server) Remove(typ, id string) error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	k := typ + "/" + id
	if _, ok := st.shared[k]; ok {
		delete(st.shared, k)
		return nil
	}
	p := st.owner[k]
	if p == nil {
		return fmt.Errorf("remove %s: %w", k, ErrNotFound)
	}
	if typ == "Patient" {
		return fmt.Errorf("remove %s: a patient cannot be removed", k)
	}
	i := p.pos[k]
	p.list = slices.Delete(p.list, i, i+1)
	delete(p.pos, k)
	delete(st.owner, k)
	for j := i; j < len(p.list); j++ {
		p.pos[p.list[j].key()] = j
	}
	return nil
}

// AddResources adds (or replaces, with the version bumped) resources in patientID's
// compartment; shared types (IsSharedType) go to the shared pool and are linked to the patient
// for $everything. A new patient is created when the batch holds its Patient resource.
// Every resource needs resourceType and an id; `urn:uuid:<id>` references to resources of the
// batch or already stored are resolved; meta.lastUpdated becomes Config.Now(). Either the whole
// batch is stored or none of it.
func (s *Server) AddResources(patientID string, resources ...json.RawMessage) error {
	type item struct {
		typ, id string
		m       map[string]any
	}
	items := make([]item, 0, len(resources))
	batch := map[string]string{}
	for i, raw := range resources {
		v, err := decodeJSON(raw)
		if err != nil {
			return fmt.Errorf("add resource %d: %w", i, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("add resource %d: not a JSON object", i)
		}
		typ, _ := m["resourceType"].(string)
		id, _ := m["id"].(string)
		if !validType(typ) || !validID(id) {
			return fmt.Errorf("add resource %d: missing resourceType or bad id", i)
		}
		if typ == "Patient" && id != patientID {
			return fmt.Errorf("add resource %d: Patient/%s in the batch for patient %q", i, id, patientID)
		}
		items = append(items, item{typ, id, m})
		batch["urn:uuid:"+id] = typ + "/" + id
	}

	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.patients[patientID]
	var newPatient *patientRec
	if p == nil && patientID != "" {
		for _, it := range items {
			if it.typ == "Patient" {
				newPatient = &patientRec{id: patientID, pos: map[string]int{}}
				newPatient.name, newPatient.birthDate = patientSummary(it.m)
			}
		}
		if newPatient == nil {
			return fmt.Errorf("add resources: patient %q does not exist and the batch has no Patient/%s", patientID, patientID)
		}
		p = newPatient
	}
	resolve := func(ref string) (string, bool) {
		if v, ok := batch[ref]; ok {
			return v, true
		}
		id, ok := strings.CutPrefix(ref, "urn:uuid:")
		if !ok {
			return "", false
		}
		for k := range st.shared {
			if strings.HasSuffix(k, "/"+id) {
				return k, true
			}
		}
		if p != nil {
			for k := range p.pos {
				if strings.HasSuffix(k, "/"+id) {
					return k, true
				}
			}
		}
		return "", false
	}
	now := st.changeTime()
	built := make([]*resource, 0, len(items))
	for i, it := range items {
		k := it.typ + "/" + it.id
		shared := sharedTypes[it.typ]
		if !shared && p == nil {
			return fmt.Errorf("add resource %d: %s needs a patient", i, k)
		}
		if !shared {
			if o := st.owner[k]; o != nil && o != p {
				return fmt.Errorf("add resource %d: %s belongs to another patient", i, k)
			}
		}
		version := 1
		if old, _ := st.lookup(it.typ, it.id); old != nil {
			version = old.version + 1
		}
		resolveRefs(it.m, resolve)
		r, err := stampResource(it.m, it.typ, it.id, version, now)
		if err != nil {
			return fmt.Errorf("add resource %d: %w", i, err)
		}
		built = append(built, r)
	}
	if newPatient != nil {
		st.patients[patientID] = newPatient
		st.order = append(st.order, newPatient)
	}
	for _, r := range built {
		if sharedTypes[r.typ] {
			st.put(nil, r)
			if p != nil && !slices.Contains(p.shared, r.key()) {
				p.shared = append(p.shared, r.key())
			}
			continue
		}
		if r.typ == "Patient" {
			if _, ok := p.pos[r.key()]; !ok {
				// Keep the Patient first in the compartment.
				p.list = slices.Insert(p.list, 0, r)
				for j, x := range p.list {
					p.pos[x.key()] = j
				}
				st.owner[r.key()] = p
				continue
			}
			p.name, p.birthDate = patientSummaryOf(r)
		}
		st.put(p, r)
	}
	return nil
}

func patientSummaryOf(r *resource) (string, string) {
	v, err := decodeJSON(r.bytes())
	if err != nil {
		return "", ""
	}
	m, _ := v.(map[string]any)
	return patientSummary(m)
}

// ReplicatePatient gives newPatientID `times` copies of every compartment resource of
// srcPatientID (the Patient itself excepted), with new ids "<newPatientID>-<n>" and every
// reference between the copied resources (and to the source patient) rewritten; references to
// shared resources are kept. When newPatientID is a new id, the patient is created as a copy of
// the source Patient; when it equals srcPatientID the copies are added to that patient. It
// returns the number of resources added (the new Patient included). Copies are materialized
// when served, so a 50,000-resource patient costs little memory.
func (s *Server) ReplicatePatient(srcPatientID, newPatientID string, times int) (int, error) {
	if times < 1 {
		return 0, fmt.Errorf("replicate: times must be at least 1")
	}
	if !validID(newPatientID) || len(newPatientID) > 50 {
		return 0, fmt.Errorf("replicate: bad new patient id %q (1-50 of A-Z a-z 0-9 - .)", newPatientID)
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	src := st.patients[srcPatientID]
	if src == nil {
		return 0, fmt.Errorf("replicate %s: %w", srcPatientID, ErrNotFound)
	}
	dst := st.patients[newPatientID]
	added := 0
	if dst == nil {
		pr, _ := st.lookup("Patient", srcPatientID)
		if pr == nil {
			return 0, fmt.Errorf("replicate: patient %s has no Patient resource", srcPatientID)
		}
		v, err := decodeJSON(pr.bytes())
		if err != nil {
			return 0, fmt.Errorf("replicate: %w", err)
		}
		r, err := stampResource(v.(map[string]any), "Patient", newPatientID, 1, pr.lastUpdated)
		if err != nil {
			return 0, fmt.Errorf("replicate: %w", err)
		}
		dst = &patientRec{
			id: newPatientID, name: src.name, birthDate: src.birthDate,
			pos: map[string]int{}, shared: slices.Clone(src.shared),
		}
		st.patients[newPatientID] = dst
		st.order = append(st.order, dst)
		st.put(dst, r)
		added++
	} else if dst != src {
		for _, k := range src.shared {
			if !slices.Contains(dst.shared, k) {
				dst.shared = append(dst.shared, k)
			}
		}
	}

	rs := &replicaSet{srcPatient: srcPatientID, newPatient: newPatientID, base: dst.seq + 1}
	for _, r := range src.list {
		if r.typ == "Patient" {
			continue
		}
		rs.src = append(rs.src, r)
		rs.srcRaw = append(rs.srcRaw, r.bytes())
	}
	rs.n = len(rs.src)
	if rs.n == 0 {
		return added, nil
	}
	if idLen := len(newPatientID) + 1 + len(strconv.Itoa(rs.base+times*rs.n)); idLen > 64 {
		return added, fmt.Errorf("replicate: generated ids would exceed 64 characters")
	}
	rs.findSites()
	for k := range times {
		for i, r := range rs.src {
			c := &resource{
				typ: r.typ, id: rs.newID(i, k), version: r.version, lastUpdated: r.lastUpdated,
				clone: &cloneRef{set: rs, i: i, k: k},
			}
			st.put(dst, c)
			added++
		}
	}
	dst.seq = rs.base + times*rs.n - 1
	return added, nil
}

type replicaSet struct {
	srcPatient, newPatient string
	src                    []*resource
	srcRaw                 [][]byte
	sites                  [][]site // per source resource: where ids occur in srcRaw
	base, n                int
}

// site is a byte range of srcRaw[i] holding an id to rewrite: of source resource target, or of
// the source patient when target is -1.
type site struct{ start, end, target int }

type cloneRef struct {
	set  *replicaSet
	i, k int
}

func (rs *replicaSet) newID(i, k int) string {
	return rs.newPatient + "-" + strconv.Itoa(rs.base+k*rs.n+i)
}

func (c *cloneRef) materialize() []byte {
	return c.appendTo(make([]byte, 0, c.sizeHint()))
}

func (c *cloneRef) sizeHint() int {
	return len(c.set.srcRaw[c.i]) + len(c.set.sites[c.i])*16
}

// appendTo appends the copy's JSON to out.
func (c *cloneRef) appendTo(out []byte) []byte {
	rs := c.set
	src := rs.srcRaw[c.i]
	last := 0
	for _, s := range rs.sites[c.i] {
		out = append(out, src[last:s.start]...)
		if s.target < 0 {
			out = append(out, rs.newPatient...)
		} else {
			out = append(out, rs.newID(s.target, c.k)...)
		}
		last = s.end
	}
	return append(out, src[last:]...)
}

// findSites scans each source resource's JSON strings for ids of the copied set: whole-string
// ids (the resource's own id, identifiers) and the id part of references "Type/id" or
// ".../Type/id".
func (rs *replicaSet) findSites() {
	byKey := make(map[string]int, rs.n)
	byID := make(map[string]int, rs.n)
	for i, r := range rs.src {
		byKey[r.key()] = i
		if _, dup := byID[r.id]; dup {
			byID[r.id] = -2 // ambiguous across types
		} else {
			byID[r.id] = i
		}
	}
	patientKey := "Patient/" + rs.srcPatient
	rs.sites = make([][]site, rs.n)
	for i, raw := range rs.srcRaw {
		own := rs.src[i].id
		var sites []site
		forEachJSONString(raw, func(start, end int) {
			s := string(raw[start:end])
			switch {
			case s == own:
				sites = append(sites, site{start, end, i})
				return
			case s == rs.srcPatient:
				sites = append(sites, site{start, end, -1})
				return
			}
			if j, ok := byID[s]; ok && j >= 0 {
				sites = append(sites, site{start, end, j})
				return
			}
			slash := strings.LastIndexByte(s, '/')
			if slash <= 0 || strings.Contains(s, "/_history/") {
				return
			}
			prev := strings.LastIndexByte(s[:slash], '/')
			key := s[prev+1:]
			idStart := start + slash + 1
			if key == patientKey {
				sites = append(sites, site{idStart, end, -1})
			} else if j, ok := byKey[key]; ok {
				sites = append(sites, site{idStart, end, j})
			}
		})
		rs.sites[i] = sites
	}
}

// forEachJSONString calls fn with the content range of every string value (not object keys)
// in compact JSON b that has no escape sequences.
func forEachJSONString(b []byte, fn func(start, end int)) {
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		start := i + 1
		escaped := false
		j := start
		for ; j < len(b); j++ {
			if b[j] == '\\' {
				escaped = true
				j++
				continue
			}
			if b[j] == '"' {
				break
			}
		}
		if j >= len(b) {
			return
		}
		if !escaped && !(j+1 < len(b) && b[j+1] == ':') {
			fn(start, j)
		}
		i = j
	}
}

// servedTypes returns the searchable compartment types, sorted. Caller holds s.mu.
func (st *store) servedTypes() []string {
	return slices.Sorted(maps.Keys(st.types))
}
