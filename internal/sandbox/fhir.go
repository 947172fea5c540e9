package sandbox

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	fhirJSON     = "application/fhir+json; charset=utf-8"
	defaultCount = 50
	maxCount     = 1000
)

func (s *Server) writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	severity := "error"
	if status < 400 {
		severity = "information"
	}
	var buf bytes.Buffer
	_ = encodeJSON(&buf, map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": severity, "code": code, "diagnostics": diagnostics}},
	})
	w.Header().Set("Content-Type", fhirJSON)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// handleMetadata serves the CapabilityStatement.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "use GET")
		return
	}
	base := s.base(r)
	s.store.mu.RLock()
	types := s.store.servedTypes()
	s.store.mu.RUnlock()
	searchParams := func(patient bool) []any {
		var out []any
		if patient {
			out = append(out, map[string]any{"name": "_id", "type": "token"})
		} else {
			out = append(out,
				map[string]any{"name": "patient", "type": "reference"},
				map[string]any{"name": "subject", "type": "reference"})
		}
		return append(out,
			map[string]any{"name": "_lastUpdated", "type": "date"},
			map[string]any{"name": "_count", "type": "number"})
	}
	var resources []any
	for _, t := range types {
		res := map[string]any{
			"type":        t,
			"interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}},
			"searchParam": searchParams(t == "Patient"),
		}
		if t == "Patient" && !s.cfg.NoEverything {
			res["operation"] = []any{map[string]any{
				"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
			}}
		}
		resources = append(resources, res)
	}
	shared := make([]string, 0, len(sharedTypes))
	for t := range sharedTypes {
		shared = append(shared, t)
	}
	slices.Sort(shared)
	for _, t := range shared {
		resources = append(resources, map[string]any{"type": t, "interaction": []any{map[string]any{"code": "read"}}})
	}
	security := map[string]any{
		"cors": true,
		"service": []any{map[string]any{
			"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR", "display": "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
	}
	if s.cfg.SMARTv1Only {
		security["extension"] = []any{map[string]any{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []any{
				map[string]any{"url": "authorize", "valueUri": base + "/auth/authorize"},
				map[string]any{"url": "token", "valueUri": base + "/auth/token"},
			},
		}}
	}
	cs := map[string]any{
		"resourceType":   "CapabilityStatement",
		"status":         "active",
		"date":           formatInstant(s.data.baseTime),
		"publisher":      "Fasten Desktop sandbox",
		"kind":           "instance",
		"software":       map[string]any{"name": "Fasten sandbox (demo hospital)"},
		"implementation": map[string]any{"description": "Synthetic Synthea patients", "url": s.fhirBase(r)},
		"fhirVersion":    "4.0.1",
		"format":         []any{"json"},
		"rest": []any{map[string]any{
			"mode":     "server",
			"security": security,
			"resource": resources,
		}},
	}
	var buf bytes.Buffer
	_ = encodeJSON(&buf, cs)
	w.Header().Set("Content-Type", fhirJSON)
	_, _ = w.Write(buf.Bytes())
}

// handleAPI serves the bearer-protected FHIR API; apiPath is the path below /fhir.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request, apiPath string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.writeOutcome(w, http.StatusMethodNotAllowed, "not-supported", "this server is read-only")
		return
	}
	if s.injectFault(w, r, apiPath) {
		return
	}
	g, problem := s.bearerGrant(r)
	if g == nil {
		challenge := `Bearer realm="sandbox"`
		if problem != "" {
			challenge += `, error="invalid_token", error_description="` + problem + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		msg := "a bearer access token is required"
		if problem != "" {
			msg = problem
		}
		s.writeOutcome(w, http.StatusUnauthorized, "login", msg)
		return
	}
	seg := strings.Split(strings.Trim(apiPath, "/"), "/")
	typ := seg[0]
	if !validType(typ) || !s.knownType(typ) {
		s.writeOutcome(w, http.StatusBadRequest, "not-supported", fmt.Sprintf("unknown resource type %q", typ))
		return
	}
	switch {
	case len(seg) == 1:
		s.search(w, r, g, typ)
	case len(seg) == 2 && strings.HasPrefix(seg[1], "$"):
		s.writeOutcome(w, http.StatusBadRequest, "not-supported", "type-level operations are not supported")
	case len(seg) == 2:
		s.read(w, r, g, typ, seg[1])
	case len(seg) == 3 && typ == "Patient" && seg[2] == "$everything":
		if s.cfg.NoEverything {
			s.writeOutcome(w, http.StatusBadRequest, "not-supported", "Patient/$everything is not supported")
			return
		}
		s.everything(w, r, g, seg[1])
	default:
		s.writeOutcome(w, http.StatusBadRequest, "not-supported", "unsupported request")
	}
}

func (s *Server) knownType(t string) bool {
	if sharedTypes[t] {
		return true
	}
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	return s.store.types[t]
}

func (s *Server) read(w http.ResponseWriter, r *http.Request, g *accessGrant, typ, id string) {
	if !sharedTypes[typ] && !g.scopes.allows(typ, false) {
		s.writeOutcome(w, http.StatusForbidden, "forbidden", "the granted scopes do not allow reading "+typ)
		return
	}
	st := s.store
	st.mu.RLock()
	res, p := st.lookup(typ, id)
	st.mu.RUnlock()
	if res == nil || (!sharedTypes[typ] && (p == nil || p.id != g.patient)) {
		s.writeOutcome(w, http.StatusNotFound, "not-found", typ+"/"+id+" is not known")
		return
	}
	h := w.Header()
	h.Set("Content-Type", fhirJSON)
	h.Set("ETag", `W/"`+strconv.Itoa(res.version)+`"`)
	h.Set("Last-Modified", res.lastUpdated.Format(http.TimeFormat))
	h.Set("Content-Location", s.fhirBase(r)+"/"+typ+"/"+id+"/_history/"+strconv.Itoa(res.version))
	_, _ = w.Write(res.bytes())
}

// dateFilter is one _lastUpdated comparison; the value's precision defines [lo, hi).
type dateFilter struct {
	op     string
	lo, hi time.Time
}

func (f dateFilter) match(t time.Time) bool {
	switch f.op {
	case "gt":
		return !t.Before(f.hi)
	case "ge":
		return !t.Before(f.lo)
	case "lt":
		return t.Before(f.lo)
	case "le":
		return t.Before(f.hi)
	default: // eq
		return !t.Before(f.lo) && t.Before(f.hi)
	}
}

func parseDateFilter(v string) (dateFilter, error) {
	op := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		op, v = v[:2], v[2:]
		switch op {
		case "eq", "gt", "ge", "lt", "le":
		case "sa":
			op = "gt"
		case "eb":
			op = "lt"
		default:
			return dateFilter{}, fmt.Errorf("prefix %q is not supported", op)
		}
	}
	lo, hi, err := parseFHIRDateTime(v)
	if err != nil {
		return dateFilter{}, err
	}
	return dateFilter{op: op, lo: lo, hi: hi}, nil
}

// parseFHIRDateTime parses a FHIR date/dateTime/instant of any precision into the interval
// [lo, hi) it denotes. A time without zone is UTC. A space in the zone (an unescaped '+' in a
// query string) is read as '+'.
func parseFHIRDateTime(v string) (lo, hi time.Time, err error) {
	v = strings.ReplaceAll(v, " ", "+")
	bad := func() (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, fmt.Errorf("%q is not a FHIR date or instant", v)
	}
	date, clock, hasTime := strings.Cut(v, "T")
	if !hasTime {
		var t time.Time
		var e error
		switch len(date) {
		case 4:
			t, e = time.Parse("2006", date)
			hi = t.AddDate(1, 0, 0)
		case 7:
			t, e = time.Parse("2006-01", date)
			hi = t.AddDate(0, 1, 0)
		case 10:
			t, e = time.Parse("2006-01-02", date)
			hi = t.AddDate(0, 0, 1)
		default:
			return bad()
		}
		if e != nil {
			return bad()
		}
		return t, hi, nil
	}
	zone := "Z"
	switch {
	case strings.HasSuffix(clock, "Z"):
		clock = strings.TrimSuffix(clock, "Z")
	case len(clock) > 6 && (clock[len(clock)-6] == '+' || clock[len(clock)-6] == '-') && clock[len(clock)-3] == ':':
		zone = clock[len(clock)-6:]
		clock = clock[:len(clock)-6]
	}
	var precision time.Duration
	switch {
	case len(clock) == 5:
		clock += ":00"
		precision = time.Minute
	case len(clock) == 8:
		precision = time.Second
	case len(clock) > 9 && clock[8] == '.':
		digits := len(clock) - 9
		if digits > 9 {
			return bad()
		}
		precision = time.Second
		for range digits {
			precision /= 10
		}
	default:
		return bad()
	}
	t, e := time.Parse("2006-01-02T15:04:05.999999999Z07:00", date+"T"+clock+zone)
	if e != nil {
		return bad()
	}
	return t, t.Add(precision), nil
}

// paging reads _count and _offset.
func paging(q url.Values) (count, offset int, err error) {
	count = defaultCount
	if v := q.Get("_count"); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 {
			return 0, 0, fmt.Errorf("_count must be a non-negative integer")
		}
		count = min(n, maxCount)
	}
	if v := q.Get("_offset"); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 {
			return 0, 0, fmt.Errorf("_offset must be a non-negative integer")
		}
		offset = n
	}
	return count, offset, nil
}

// patientParam extracts the patient id from "X", "Patient/X" or "<base>/Patient/X".
func patientParam(v string) (string, bool) {
	if i := strings.LastIndex(v, "Patient/"); i >= 0 {
		v = v[i+len("Patient/"):]
	} else if strings.Contains(v, "/") {
		return "", false
	}
	return v, validID(v)
}

type entry struct {
	res  *resource
	mode string
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, g *accessGrant, typ string) {
	if sharedTypes[typ] {
		s.writeOutcome(w, http.StatusBadRequest, "not-supported", typ+" is shared: read it by id")
		return
	}
	if !g.scopes.allows(typ, true) {
		s.writeOutcome(w, http.StatusForbidden, "forbidden", "the granted scopes do not allow searching "+typ)
		return
	}
	q := r.URL.Query()
	count, offset, err := paging(q)
	if err != nil {
		s.writeOutcome(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	canon := url.Values{}
	var patientID string
	if typ == "Patient" {
		patientID = g.patient
		if v := q.Get("_id"); v != "" {
			canon.Set("_id", v)
			patientID = v
		}
	} else {
		name, v := "patient", q.Get("patient")
		if v == "" {
			name, v = "subject", q.Get("subject")
		}
		if v == "" {
			s.writeOutcome(w, http.StatusBadRequest, "required", "search by patient: add patient=<id>")
			return
		}
		id, ok := patientParam(v)
		if !ok {
			s.writeOutcome(w, http.StatusBadRequest, "invalid", name+" must be a Patient reference")
			return
		}
		canon.Set(name, v)
		patientID = id
		if id != g.patient {
			s.writeOutcome(w, http.StatusForbidden, "forbidden", "the access token is for another patient")
			return
		}
	}
	var filters []dateFilter
	for _, v := range q["_lastUpdated"] {
		f, err := parseDateFilter(v)
		if err != nil {
			s.writeOutcome(w, http.StatusBadRequest, "invalid", "_lastUpdated: "+err.Error())
			return
		}
		filters = append(filters, f)
		canon.Add("_lastUpdated", v)
	}
	match := func(res *resource) bool {
		if res.typ != typ {
			return false
		}
		for _, f := range filters {
			if !f.match(res.lastUpdated) {
				return false
			}
		}
		return true
	}
	var page []entry
	total := 0
	st := s.store
	st.mu.RLock()
	if p := st.patients[patientID]; p != nil && patientID == g.patient {
		for _, res := range p.list {
			if match(res) {
				if total >= offset && total < offset+count {
					page = append(page, entry{res, "match"})
				}
				total++
			}
		}
	}
	st.mu.RUnlock()
	s.writeBundle(w, r, "/"+typ, canon, count, offset, total, page)
}

func (s *Server) everything(w http.ResponseWriter, r *http.Request, g *accessGrant, id string) {
	if id != g.patient {
		s.writeOutcome(w, http.StatusForbidden, "forbidden", "the access token is for another patient")
		return
	}
	if !g.scopes.allows("Patient", false) {
		s.writeOutcome(w, http.StatusForbidden, "forbidden", "the granted scopes do not allow reading Patient")
		return
	}
	q := r.URL.Query()
	count, offset, err := paging(q)
	if err != nil {
		s.writeOutcome(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	canon := url.Values{}
	var since time.Time
	if v := q.Get("_since"); v != "" {
		lo, _, err := parseFHIRDateTime(v)
		if err != nil {
			s.writeOutcome(w, http.StatusBadRequest, "invalid", "_since: "+err.Error())
			return
		}
		since = lo
		canon.Set("_since", v)
	}
	var onlyTypes map[string]bool
	if v := q.Get("_type"); v != "" {
		onlyTypes = map[string]bool{}
		for _, t := range strings.Split(v, ",") {
			onlyTypes[strings.TrimSpace(t)] = true
		}
		canon.Set("_type", v)
	}
	keep := func(res *resource) bool {
		if onlyTypes != nil && !onlyTypes[res.typ] {
			return false
		}
		if !since.IsZero() && res.lastUpdated.Before(since) {
			return false
		}
		return sharedTypes[res.typ] || g.scopes.allows(res.typ, false)
	}
	var page []entry
	total := 0
	add := func(res *resource, mode string) {
		if !keep(res) {
			return
		}
		if total >= offset && total < offset+count {
			page = append(page, entry{res, mode})
		}
		total++
	}
	st := s.store
	st.mu.RLock()
	if p := st.patients[id]; p != nil {
		for _, res := range p.list {
			add(res, "match")
		}
		for _, k := range p.shared {
			if res := st.shared[k]; res != nil {
				add(res, "include")
			}
		}
	}
	st.mu.RUnlock()
	s.writeBundle(w, r, "/Patient/"+id+"/$everything", canon, count, offset, total, page)
}

// writeBundle writes a searchset page. Links repeat the understood parameters (canon) with
// _count and _offset, as absolute URLs below the FHIR base.
func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request, path string, canon url.Values, count, offset, total int, page []entry) {
	fb := s.fhirBase(r)
	link := func(off int) string {
		v := url.Values{}
		for k, vs := range canon {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(count))
		if off > 0 {
			v.Set("_offset", strconv.Itoa(off))
		}
		return fb + path + "?" + v.Encode()
	}
	var buf bytes.Buffer
	size := 1024
	for _, e := range page {
		size += e.res.sizeHint() + len(fb) + len(e.res.typ) + len(e.res.id) + 64
	}
	buf.Grow(size)
	buf.WriteString(`{"resourceType":"Bundle","id":`)
	writeJSONString(&buf, randomToken()[:22])
	buf.WriteString(`,"meta":{"lastUpdated":`)
	writeJSONString(&buf, formatInstant(s.store.reportTime()))
	buf.WriteString(`},"type":"searchset","total":`)
	buf.WriteString(strconv.Itoa(total))
	buf.WriteString(`,"link":[{"relation":"self","url":`)
	writeJSONString(&buf, link(offset))
	buf.WriteString(`}`)
	if count > 0 && offset+count < total {
		buf.WriteString(`,{"relation":"next","url":`)
		writeJSONString(&buf, link(offset+count))
		buf.WriteString(`}`)
	}
	if offset > 0 && count > 0 {
		buf.WriteString(`,{"relation":"previous","url":`)
		writeJSONString(&buf, link(max(0, offset-count)))
		buf.WriteString(`}`)
	}
	buf.WriteString(`]`)
	if len(page) > 0 {
		buf.WriteString(`,"entry":[`)
		for i, e := range page {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(`{"fullUrl":`)
			writeJSONString(&buf, fb+"/"+e.res.typ+"/"+e.res.id)
			buf.WriteString(`,"resource":`)
			buf.Write(e.res.appendTo(buf.AvailableBuffer()))
			buf.WriteString(`,"search":{"mode":"`)
			buf.WriteString(e.mode)
			buf.WriteString(`"}}`)
		}
		buf.WriteString(`]`)
	}
	buf.WriteString(`}`)
	w.Header().Set("Content-Type", fhirJSON)
	_, _ = w.Write(buf.Bytes())
}
