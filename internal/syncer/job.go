package syncer

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/ingest"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// refTypes are outside the patient compartment: they are not searched by patient but read by id
// when a synced resource refers to them.
var refTypes = map[string]bool{
	"Organization": true, "Practitioner": true, "PractitionerRole": true, "Location": true, "Medication": true,
}

// defaultTypes are searched when the scopes grant patient/* and the server lists no resources.
var defaultTypes = []string{
	"Patient", "AllergyIntolerance", "CarePlan", "CareTeam", "Condition", "Coverage", "Device",
	"DiagnosticReport", "DocumentReference", "Encounter", "Goal", "Immunization", "MedicationRequest",
	"MedicationStatement", "Observation", "Procedure", "ServiceRequest", "ExplanationOfBenefit", "Claim",
	"ImagingStudy", "MedicationAdministration", "MedicationDispense",
}

const (
	maxPages        = 100000 // per type: a server whose next links never end is stopped
	progressEvery   = 100 * time.Millisecond
	refBatch        = 50 // referenced resources written per transaction
	finalizeTimeout = 30 * time.Second
)

// syncRun is the state of one job.
type syncRun struct {
	s          *Syncer
	job        *job
	src        records.Source
	res        *RunResult
	f          *fetcher
	base       string // FHIR base, no trailing slash
	patient    string
	patientRef string
	old        *syncState
	next       syncState
	full       bool
	granted    []string

	seen        map[string]struct{} // "Type/id" stored (or confirmed) in this run
	refs        map[string]struct{} // referenced non-compartment resources
	complete    map[string]bool     // types fetched completely
	allComplete bool                // $everything completed: every type is complete
	changed     map[string]int      // added + updated by type

	invalid, outcomes, foreign int
	received                   int
	blocked                    time.Duration // waiting for the provider with nothing else to do
	lastProgress               time.Time
	curType                    string
}

// syncOne runs one sync of one source and records it.
func (s *Syncer) syncOne(ctx context.Context, j *job) RunResult {
	id, trigger := j.sourceID, j.trigger
	t0 := time.Now()
	res := RunResult{SourceID: id, Trigger: trigger, Counts: map[string]int{}}
	src, err := s.cfg.Store.GetSource(ctx, id)
	if err == nil {
		err = syncable(src)
	}
	if err == nil && s.cfg.Tokens == nil {
		err = ErrNoTokens // a set-up problem of this process: no run is recorded, no status changes
	}
	res.Name = src.Name
	if err != nil {
		res.Status, res.Err, res.Error = RunFailed, err, message(err)
		return res
	}
	res.RunID, err = s.insertRun(ctx, id, trigger, s.cfg.Now())
	if err != nil {
		res.Status, res.Err, res.Error = RunFailed, err, message(err)
		return res
	}
	s.publish("sync.started", map[string]any{"source_id": id, "run_id": res.RunID, "trigger": string(trigger)})
	s.log.Info("sync started", "source_id", id, "run_id", res.RunID, "trigger", string(trigger))

	r := &syncRun{
		s: s, src: src, res: &res, job: j,
		seen: map[string]struct{}{}, refs: map[string]struct{}{}, complete: map[string]bool{}, changed: map[string]int{},
	}
	err = r.run(ctx)
	if r.f != nil {
		res.Requests = int(r.f.requests.Load())
		res.HTTPWait = time.Duration(r.f.waitNS.Load())
		res.Blocked = r.blocked
	}
	r.summarizeWarnings()
	s.finish(ctx, r, err)
	res.Time = time.Since(t0)
	return res
}

// finish records the run's outcome: on success the cursor, missing marks, status and run row in
// one transaction; otherwise the run row and the source's status.
func (s *Syncer) finish(ctx context.Context, r *syncRun, err error) {
	res, src := r.res, r.src
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalizeTimeout)
	defer cancel()
	end := s.cfg.Now()
	status, lastErr := "", ""
	switch {
	case err == nil:
		res.Status = RunOK
		status = records.StatusConnected
		if len(res.Warnings) > 0 {
			lastErr = warningText(res.Warnings)
		}
		ferr := s.cfg.Store.WriteTx(wctx, func(tx *sql.Tx) error {
			if r.full {
				n, err := r.markMissing(wctx, tx, end)
				if err != nil {
					return err
				}
				res.Missing = n
			}
			if err := s.sourceStatusTx(wctx, tx, src.ID, status, lastErr, &end, &r.next); err != nil {
				return err
			}
			return finishRunTx(wctx, tx, res.RunID, end, res)
		})
		if ferr == nil {
			break
		}
		err = fmt.Errorf("could not save the end of the sync: %w", ferr)
		res.Missing = 0
		fallthrough
	case ctx.Err() == nil:
		res.Status, res.Err, res.Error = RunFailed, err, message(err)
		switch {
		case errors.Is(err, ErrReconnectNeeded):
			status = records.StatusReconnectNeeded
		default:
			status = records.StatusError
		}
		lastErr = res.Error
		ferr := s.cfg.Store.WriteTx(wctx, func(tx *sql.Tx) error {
			if status != "" {
				if err := s.sourceStatusTx(wctx, tx, src.ID, status, lastErr, nil, nil); err != nil {
					return err
				}
			}
			return finishRunTx(wctx, tx, res.RunID, end, res)
		})
		if ferr != nil {
			s.log.Error("could not record a failed sync", "source_id", src.ID, "run_id", res.RunID, "err", ferr)
		}
	default:
		res.Status, res.Err, res.Error = RunCancelled, ctx.Err(), "The sync was stopped before it finished."
		ferr := s.cfg.Store.WriteTx(wctx, func(tx *sql.Tx) error { return finishRunTx(wctx, tx, res.RunID, end, res) })
		if ferr != nil {
			s.log.Error("could not record a cancelled sync", "source_id", src.ID, "run_id", res.RunID, "err", ferr)
		}
	}

	s.release(r.job)
	if res.Status == RunOK {
		s.publish("sync.done", map[string]any{
			"source_id": src.ID, "run_id": res.RunID, "added": res.Added, "updated": res.Updated,
			"unchanged": res.Unchanged, "missing": res.Missing, "counts": res.Counts, "warnings": len(res.Warnings),
		})
		if res.Added+res.Updated+res.Missing > 0 {
			s.publish("resources.changed", map[string]any{
				"source_id": src.ID, "added": res.Added, "updated": res.Updated, "missing": res.Missing, "counts": r.changed,
			})
		}
	} else if res.Status == RunFailed {
		s.publish("sync.failed", map[string]any{"source_id": src.ID, "run_id": res.RunID, "error": res.Error})
		if res.Added+res.Updated > 0 {
			s.publish("resources.changed", map[string]any{
				"source_id": src.ID, "added": res.Added, "updated": res.Updated, "missing": 0, "counts": r.changed,
			})
		}
	}
	if status != "" && status != src.Status {
		s.publish("source.status", map[string]any{"source_id": src.ID, "status": status})
	}
	s.log.Info("sync finished", "source_id", src.ID, "run_id", res.RunID, "status", res.Status,
		"mode", res.Mode, "full", res.Full, "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged,
		"missing", res.Missing, "requests", res.Requests, "warnings", len(res.Warnings), "error", res.Error)
}

func (r *syncRun) warn(msg string) { r.res.Warnings = append(r.res.Warnings, msg) }

// plural prefixes n to one or many.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func (r *syncRun) summarizeWarnings() {
	if r.invalid > 0 {
		r.warn(plural(r.invalid, "resource from the provider was not valid FHIR and was skipped.", "resources from the provider were not valid FHIR and were skipped."))
	}
	if r.foreign > 0 {
		r.warn(plural(r.foreign, "resource about another patient was ignored.", "resources about another patient were ignored."))
	}
	if r.outcomes > 0 {
		r.s.log.Debug("provider sent OperationOutcome entries", "source_id", r.src.ID, "count", r.outcomes)
	}
}

// run performs the sync; see the package documentation.
func (r *syncRun) run(ctx context.Context) error {
	s, src := r.s, r.src
	if src.FHIRBase == nil || src.PatientID == nil || !fhir.ValidID(*src.PatientID) {
		return fmt.Errorf("this provider connection has no FHIR address or patient id; connect it again")
	}
	r.base = strings.TrimRight(*src.FHIRBase, "/")
	bu, err := url.Parse(r.base)
	if err != nil || !bu.IsAbs() || (bu.Scheme != "https" && bu.Scheme != "http") {
		return fmt.Errorf("this provider connection has an invalid FHIR address; connect it again")
	}
	r.patient = *src.PatientID
	r.patientRef = "Patient/" + r.patient
	tm, err := s.cfg.Tokens(ctx, src)
	if err != nil {
		if smart.NeedsReconnect(err) || errors.Is(err, smart.ErrNoToken) {
			return &ReconnectError{Provider: src.Name}
		}
		return fmt.Errorf("could not load the sign-in for %s: %w", src.Name, err)
	}
	r.f = newFetcher(&s.cfg, tm, bu, src.Name)
	r.granted = []string{"*"}
	if src.Scopes != nil {
		if g := smart.GrantedTypes(*src.Scopes); len(g) > 0 {
			r.granted = g
		}
	}

	capab, err := r.metadata(ctx)
	if err != nil {
		return err
	}
	r.old = loadState(src.SyncState)
	mode := modeSearch
	// A server that refused $everything before is searched type by type, and asked again for
	// $everything only at the periodic full sync.
	refused := r.old != nil && r.old.EverythingRefused && !r.fullDue()
	if capab.everything && r.allowed("Patient") && !refused {
		mode = modeEverything
	}
	r.begin(mode)
	r.next.EverythingRefused = refused
	if mode == modeEverything {
		err := r.everything(ctx)
		var re *requestError
		switch {
		case err == nil:
		case errors.As(err, &re) && re.status != 0 && r.received == 0:
			// The server lists $everything but refuses it: search each type instead.
			r.warn("The provider offers Patient/$everything but refused it (HTTP " + strconv.Itoa(re.status) + "); each record type was searched instead.")
			r.begin(modeSearch)
			r.next.EverythingRefused = true
		default:
			return err
		}
	}
	if r.next.Mode == modeSearch {
		if err := r.search(ctx, capab); err != nil {
			return err
		}
	}
	if err := r.resolveRefs(ctx); err != nil {
		return err
	}
	if r.full {
		r.next.FullAt = stamp(s.cfg.Now())
	} else if r.old != nil {
		r.next.FullAt = r.old.FullAt
	}
	return nil
}

// begin decides full or incremental for mode and resets the new state.
func (r *syncRun) begin(mode string) {
	r.full = r.old == nil || r.old.Mode != mode || r.fullDue()
	r.next = syncState{V: 1, Mode: mode, Types: map[string]string{}}
	r.res.Mode, r.res.Full = mode, r.full
}

// fullDue reports whether the periodic full sync is due (Config.FullSyncEvery since the last one).
func (r *syncRun) fullDue() bool {
	if r.old == nil {
		return true
	}
	last := parseStamp(r.old.FullAt)
	return last.IsZero() || !last.Add(r.s.cfg.FullSyncEvery).After(r.s.cfg.Now())
}

func (r *syncRun) allowed(t string) bool {
	return slices.Contains(r.granted, "*") || slices.Contains(r.granted, t)
}

func (r *syncRun) metadata(ctx context.Context) (capability, error) {
	body, _, err := r.get(ctx, r.base+"/metadata", "The server's CapabilityStatement")
	var re *requestError
	switch {
	case errors.As(err, &re):
		r.warn(re.msg + "; the granted record types were searched.")
		return capability{}, nil
	case err != nil:
		return capability{}, err
	}
	c, err := parseCapability(body)
	if err != nil {
		r.warn(capitalize(err.Error()) + "; the granted record types were searched.")
		return capability{}, nil
	}
	return c, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (r *syncRun) everything(ctx context.Context) error {
	q := url.Values{}
	q.Set("_count", strconv.Itoa(r.s.cfg.PageSize))
	if !r.full && r.old.Since != "" {
		q.Set("_since", r.old.Since)
	}
	u := r.base + "/Patient/" + r.patient + "/$everything?" + q.Encode()
	err := r.pages(ctx, "Patient/$everything", u, func(p page) error {
		if p.index == 0 {
			r.next.Since = p.serverTime
		}
		return r.storePage(ctx, p)
	})
	if err != nil {
		return err
	}
	r.allComplete = true
	return nil
}

// searchTypes are the types to search: what the scopes grant, narrowed to what the server lists.
func (r *syncRun) searchTypes(c capability) []string {
	var cands []string
	switch {
	case c.known:
		for t := range c.searchable {
			cands = append(cands, t)
		}
		slices.Sort(cands)
	case slices.Contains(r.granted, "*"):
		cands = slices.Clone(defaultTypes)
	default:
		cands = slices.Clone(r.granted)
	}
	var out []string
	for _, t := range cands {
		if t == "*" || refTypes[t] || !fhir.KnownType(t) || !r.allowed(t) || slices.Contains(out, t) {
			continue
		}
		out = append(out, t)
	}
	// The Patient first: it is the record the others hang on.
	if i := slices.Index(out, "Patient"); i > 0 {
		out = slices.Delete(out, i, i+1)
		out = slices.Insert(out, 0, "Patient")
	} else if i < 0 && r.allowed("Patient") {
		out = slices.Insert(out, 0, "Patient")
	}
	return out
}

func (r *syncRun) search(ctx context.Context, c capability) error {
	types := r.searchTypes(c)
	failed := 0
	var firstFail string
	for _, t := range types {
		q := url.Values{}
		if t == "Patient" {
			q.Set("_id", r.patient)
		} else {
			q.Set("patient", r.patient)
		}
		q.Set("_count", strconv.Itoa(r.s.cfg.PageSize))
		if !r.full && r.old.Types[t] != "" {
			q.Set("_lastUpdated", "gt"+r.old.Types[t])
		}
		var cursor string
		err := r.pages(ctx, t, r.base+"/"+t+"?"+q.Encode(), func(p page) error {
			if p.index == 0 {
				cursor = p.serverTime
			}
			return r.storePage(ctx, p)
		})
		var re *requestError
		switch {
		case err == nil:
			r.complete[t] = true
			if cursor != "" {
				r.next.Types[t] = cursor
			}
		case errors.As(err, &re):
			failed++
			if firstFail == "" {
				firstFail = re.msg
			}
			r.warn(re.msg + ".")
		default:
			return err
		}
	}
	if len(types) > 0 && failed == len(types) {
		return fmt.Errorf("the provider refused every search; for example %s", firstFail)
	}
	return nil
}

// page is one fetched page.
type page struct {
	index      int
	name       string // "Observation page 3", for positions in messages
	parsed     parsed
	serverTime string
	err        error
}

// parsed is what a page (or a read) holds, ready to store. It is built on the fetching goroutine
// and merged into the run by the storing one.
type parsed struct {
	rows                       []records.Row
	refs                       []string // referenced non-compartment resources, "Type/id"
	invalid, foreign, outcomes int
}

// merge appends the next page's content (stored together, in one transaction).
func (p *parsed) merge(q parsed) {
	p.rows = append(p.rows, q.rows...)
	p.refs = append(p.refs, q.refs...)
	p.invalid += q.invalid
	p.foreign += q.foreign
	p.outcomes += q.outcomes
}

// pageAhead is how many fetched pages may wait for the writer; pageBatch the rows the writer
// stores in one transaction when pages are waiting (merged, in order).
const (
	pageAhead = 8
	pageBatch = 5000
)

// pages fetches first and its next pages and hands them to fn in order. The next pages are
// fetched while fn handles the current one; pages that are already waiting when fn is free are
// merged into one (up to pageBatch rows), so a fast provider's records are stored in fewer,
// larger transactions (each commit rewrites the index pages it touched: 250 commits of 200
// records wrote the same pages again and again) while a slow one's still appear page by page.
func (r *syncRun) pages(parent context.Context, what, first string, fn func(page) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	r.curType = what
	ch := make(chan page, pageAhead)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		send := func(p page) bool {
			select {
			case ch <- p:
				return true
			case <-ctx.Done():
				return false
			}
		}
		seen := map[string]bool{}
		u := first
		for i := 0; u != ""; i++ {
			if i >= maxPages {
				send(page{err: &requestError{msg: fmt.Sprintf("%s: the provider sent more than %d pages; the rest was not synced", what, maxPages)}})
				return
			}
			seen[u] = true
			body, hdr, err := r.f.get(ctx, u, what)
			if err != nil {
				send(page{err: err})
				return
			}
			env, err := parseEnvelope(body)
			if err == nil && (env.resourceType != "Bundle") {
				err = fmt.Errorf("the answer is a %q, not a Bundle", env.resourceType)
			}
			if err != nil {
				send(page{err: &requestError{msg: fmt.Sprintf("%s: the provider's answer could not be read (%s)", what, clean(err.Error(), 120))}})
				return
			}
			p := page{index: i, name: fmt.Sprintf("%s page %d", what, i+1), serverTime: serverTime(env, hdr)}
			if p.parsed, err = r.parse(ctx, body, p.name); err != nil {
				send(page{err: err})
				return
			}
			next := ""
			if env.next != "" {
				nu, err := r.f.dir.Parse(env.next) // relative links are relative to the service base
				switch {
				case err != nil || !underBase(nu, r.f.base):
					if !send(p) {
						return
					}
					send(page{err: &requestError{msg: fmt.Sprintf("%s: the provider's next-page link points to another server; it was not followed", what)}})
					return
				case seen[nu.String()]:
					if !send(p) {
						return
					}
					send(page{err: &requestError{msg: fmt.Sprintf("%s: the provider's next-page links go round in a circle; paging stopped", what)}})
					return
				}
				next = nu.String()
			}
			if !send(p) {
				return
			}
			u = next
		}
	}()
	var err error
	for {
		t := time.Now()
		p, ok := <-ch
		r.blocked += time.Since(t)
		if !ok {
			break
		}
		if p.err != nil {
			err = p.err
			break
		}
		// Merge the pages that are waiting already (an error after them ends the loop once
		// the merged page is stored).
		var after error
	merge:
		for len(p.parsed.rows) < pageBatch {
			select {
			case q, ok := <-ch:
				if !ok {
					break merge
				}
				if q.err != nil {
					after = q.err
					break merge
				}
				p.parsed.merge(q.parsed)
			default:
				break merge
			}
		}
		if err = fn(p); err != nil {
			break
		}
		if after != nil {
			err = after
			break
		}
	}
	cancel()
	wg.Wait()
	if err == nil {
		err = parent.Err() // the fetcher may have stopped without saying so when parent ended
	}
	return err
}

// get is fetcher.get for requests the job waits for (not prefetched).
func (r *syncRun) get(ctx context.Context, u, what string) ([]byte, http.Header, error) {
	t := time.Now()
	defer func() { r.blocked += time.Since(t) }()
	return r.f.get(ctx, u, what)
}

// relative maps an absolute reference under the FHIR base to Type/id.
func (r *syncRun) relative(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, r.base+"/")
	if !ok {
		return "", false
	}
	if _, _, ok := fhir.LocalRef(rest); !ok {
		return "", false
	}
	return rest, true
}

// parse reads the resources of a body (a Bundle page or a single resource). It only reads the
// run's fixed fields, so it may run on the fetching goroutine.
func (r *syncRun) parse(ctx context.Context, body []byte, name string) (parsed, error) {
	var out parsed
	pageSeen := map[string]struct{}{}
	refSeen := map[string]struct{}{}
	// A provider's entries: ids required, its OperationOutcomes are messages, and absolute
	// references under its FHIR base become Type/id (ingest, the step imports share).
	rules := ingest.Options{DropOutcomes: true, Resolve: r.relative}
	err := fhir.Scan(ctx, bytes.NewReader(body), name, fhir.Options{ContinueOnInvalid: true}, func(e *fhir.Entry) error {
		switch ingest.Classify(e, rules) {
		case ingest.Invalid, ingest.NoID:
			out.invalid++
			return nil
		case ingest.Empty:
			return nil
		case ingest.Outcome:
			out.outcomes++
			return nil
		}
		key := e.Type + "/" + e.ID
		if _, dup := pageSeen[key]; dup {
			return nil
		}
		for _, ref := range e.Refs {
			v := ref.Value
			if nv, ok := r.relative(v); ok {
				v = nv
			}
			if t, id, ok := fhir.LocalRef(v); ok && refTypes[t] {
				k := t + "/" + id
				if _, ok := refSeen[k]; !ok {
					refSeen[k] = struct{}{}
					out.refs = append(out.refs, k)
				}
			}
		}
		row, err := ingest.Row(e, rules)
		if err != nil {
			out.invalid++
			return nil
		}
		if p := row.Index.Patient; p != "" && p != r.patientRef {
			out.foreign++
			return nil
		}
		pageSeen[key] = struct{}{}
		out.rows = append(out.rows, row)
		return nil
	})
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) {
			return parsed{}, &requestError{msg: fmt.Sprintf("%s: the provider sent data that is not valid JSON (%s)", name, clean(fe.Msg, 120))}
		}
		return parsed{}, err
	}
	return out, nil
}

// storePage writes one page (or several merged, see pages) in its own transaction.
func (r *syncRun) storePage(ctx context.Context, p page) error {
	return r.write(ctx, p.parsed)
}

// write stores a page's rows in one write transaction and counts them once it committed.
// Resources already stored in this run (a provider may repeat one across pages) are skipped.
func (r *syncRun) write(ctx context.Context, pg parsed) error {
	r.invalid += pg.invalid
	r.foreign += pg.foreign
	r.outcomes += pg.outcomes
	for _, k := range pg.refs {
		r.refs[k] = struct{}{}
	}
	rows := pg.rows[:0:0]
	inPage := make(map[string]struct{}, len(pg.rows))
	for _, row := range pg.rows {
		k := row.Type + "/" + row.ID
		_, dup := r.seen[k]
		if _, again := inPage[k]; !dup && !again {
			inPage[k] = struct{}{}
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		r.progress()
		return nil
	}
	outs := make([]records.Outcome, len(rows))
	err := r.s.cfg.Store.WriteTx(ctx, func(tx *sql.Tx) error {
		// A provider source holds one patient: every record it syncs is its person's, read in
		// the page's transaction so a re-assignment during a sync is never undone by it.
		profile, err := r.s.cfg.Store.SourceProfileTx(ctx, tx, r.src.ID)
		if err != nil {
			return err
		}
		rw, err := r.s.cfg.Store.NewWriter(ctx, tx, r.src.ID, false)
		if err != nil {
			return err
		}
		w := ingest.NewWriter(rw, ingest.OnePerson(profile))
		defer w.Close()
		for i, row := range rows {
			if outs[i], err = w.Put(ctx, row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("could not store the synced records: %w", err)
	}
	for i, row := range rows {
		r.seen[row.Type+"/"+row.ID] = struct{}{}
		r.res.Counts[row.Type]++
		switch outs[i] {
		case records.Added:
			r.res.Added++
			r.changed[row.Type]++
		case records.Updated:
			r.res.Updated++
			r.changed[row.Type]++
		default:
			r.res.Unchanged++
		}
	}
	r.received += len(rows)
	r.progress()
	return nil
}

// progress publishes sync.progress at most every progressEvery.
func (r *syncRun) progress() {
	now := time.Now()
	if !r.lastProgress.IsZero() && now.Sub(r.lastProgress) < progressEvery {
		return
	}
	r.lastProgress = now
	r.s.publish("sync.progress", map[string]any{
		"source_id": r.src.ID, "run_id": r.res.RunID, "resources": r.received,
		"requests": r.f.requests.Load(), "type": r.curType,
	})
}

// resolveRefs reads referenced non-compartment resources that were not returned: all of them on a
// full sync, those not stored yet on an incremental one.
func (r *syncRun) resolveRefs(ctx context.Context) error {
	var todo []string
	for k := range r.refs {
		if _, ok := r.seen[k]; ok {
			continue
		}
		t, _, _ := strings.Cut(k, "/")
		if r.allowed(t) {
			todo = append(todo, k)
		}
	}
	slices.Sort(todo)
	if !r.full && len(todo) > 0 {
		var err error
		if todo, err = r.notStored(ctx, todo); err != nil {
			return err
		}
	}
	incomplete := map[string]bool{}
	if len(todo) > r.s.cfg.MaxRefReads {
		for _, k := range todo[r.s.cfg.MaxRefReads:] {
			t, _, _ := strings.Cut(k, "/")
			incomplete[t] = true
		}
		n := len(todo) - r.s.cfg.MaxRefReads
		r.warn(plural(n, "referenced record (organization, practitioner...) was left for the next sync.", "referenced records (organizations, practitioners...) were left for the next sync."))
		todo = todo[:r.s.cfg.MaxRefReads]
	}
	r.curType = "references"
	failed := map[int]int{}
	var batch parsed
	for _, k := range todo {
		t, _, _ := strings.Cut(k, "/")
		body, _, err := r.get(ctx, r.base+"/"+k, t)
		var re *requestError
		switch {
		case errors.As(err, &re):
			failed[re.status]++
			incomplete[t] = true
			continue
		case err != nil:
			return err
		}
		got, err := r.parse(ctx, body, k)
		if err != nil {
			if errors.As(err, &re) {
				failed[0]++
				incomplete[t] = true
				continue
			}
			return err
		}
		batch.rows = append(batch.rows, got.rows...)
		batch.invalid += got.invalid
		batch.foreign += got.foreign
		batch.outcomes += got.outcomes
		if len(batch.rows) >= refBatch {
			if err := r.write(ctx, batch); err != nil {
				return err
			}
			batch = parsed{}
		}
	}
	if err := r.write(ctx, batch); err != nil {
		return err
	}
	for st, n := range failed {
		how := "could not be read"
		if st != 0 {
			how = fmt.Sprintf("could not be read (HTTP %d %s)", st, http.StatusText(st))
		}
		r.warn(plural(n, "referenced record (organization, practitioner...) "+how+".", "referenced records (organizations, practitioners...) "+how+"."))
	}
	for t := range refTypes {
		if r.allowed(t) && !incomplete[t] {
			r.complete[t] = true
		}
	}
	return nil
}

// notStored returns the keys of todo that the source does not hold yet.
func (r *syncRun) notStored(ctx context.Context, todo []string) ([]string, error) {
	have, err := r.s.cfg.Store.StoredKeys(ctx, r.src.ID, todo)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range todo {
		if !have[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// markMissing sets missing_since on the source's resources this full sync did not return, for
// the types it fetched completely.
func (r *syncRun) markMissing(ctx context.Context, tx *sql.Tx, now time.Time) (int, error) {
	return r.s.cfg.Store.MarkMissingTx(ctx, tx, r.src.ID, stamp(now), func(t, id string) bool {
		if _, ok := r.seen[t+"/"+id]; ok {
			return false
		}
		return r.allComplete || r.complete[t]
	})
}
