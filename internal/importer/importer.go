// Package importer turns files a person already has (FHIR Bundle JSON, NDJSON, a single resource,
// a zip of those, or any of them gzip-compressed) into records.
//
// One import is one write transaction: either everything is stored or nothing is. Each file of
// the import becomes its own manual source (the Sources list shows the files a person imported,
// and deleting one removes exactly its records); a zip is one file. The files are read twice. The first pass checks every resource and learns what the
// references point at (Bundle fullUrls, identifiers of the resources that conditional references
// name); nothing is written during it, so a bad file is refused before the database is touched.
// The second pass parses again on its own goroutine and the writer stores rows as they come, so
// parsing (one core) overlaps SQLite (the other core).
//
// Policies (tested in importer_test.go):
//   - A resource that fails validation refuses the whole import with its position, unless
//     SkipInvalid is set: then every bad resource is skipped and listed. In NDJSON a line that is
//     not even JSON is skipped too; in a Bundle broken JSON ends the file and refuses the import.
//   - The same Type/id more than once in one file (two versions in a document Bundle, repeated
//     NDJSON lines): the last copy wins and a warning says so.
//   - A resource without an id (a transaction entry) gets one: the uuid of its urn:uuid fullUrl,
//     else a hash of its content, so importing the same file again gives the same ids.
//   - urn:uuid and absolute references to a fullUrl in the same import become Type/id. A
//     conditional reference (Type?identifier=system|value) becomes Type/id when exactly one
//     resource of that type in the import has that identifier; others are kept as written.
//   - Whose each record is: between the passes, internal/people matches the Patients pass 1 read
//     (identifiers, name, birth date) to people, creating people as needed, inside the import's
//     transaction; pass 2 inserts every record with its person (no record is updated
//     afterwards), and the (source, patient) -> person mapping is recorded at the end.
//   - A file whose content is identical to an earlier import updates that file's source in place
//     (nothing is duplicated); other files create a new source, unless a source is chosen, in
//     which case every file of the import goes into it.
package importer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/ingest"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Limits bound what one import may hold.
type Limits struct {
	MaxZipEntries int   // default 10,000
	MaxExpanded   int64 // total bytes after decompression; default 8 GiB
	MaxRatio      int64 // decompressed/compressed ratio that marks a zip bomb; default 200
	Scan          fhir.Options
	MaxWarnings   int // default 100
	MaxSkipped    int // default 1,000 listed (all are counted)
}

func (l *Limits) defaults() {
	if l.MaxZipEntries <= 0 {
		l.MaxZipEntries = 10000
	}
	if l.MaxExpanded <= 0 {
		l.MaxExpanded = 8 << 30
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = 200
	}
	if l.MaxWarnings <= 0 {
		l.MaxWarnings = 100
	}
	if l.MaxSkipped <= 0 {
		l.MaxSkipped = 1000
	}
}

// Importer imports files into a record store.
type Importer struct {
	store  *records.Store
	people *people.Service
	log    *slog.Logger
	limits Limits
	now    func() time.Time
}

// New returns an Importer.
func New(store *records.Store, log *slog.Logger, limits Limits) *Importer {
	limits.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{store: store, people: people.New(people.Options{Store: store, Log: log}), log: log, limits: limits, now: time.Now}
}

// Input is a file to import.
type Input struct {
	Name string // shown in positions and messages (the user's file name)
	Path string // where it is on disk
}

// Options for one import.
type Options struct {
	SkipInvalid bool
	SourceID    int64  // import into this existing manual source
	SourceName  string // name of a new source (default: from the file names)
	Progress    func(Progress)
	// ProfileFor overrides the person of a record by its Patient reference (optional; by default
	// internal/people matches the import's patients, see Import).
	ProfileFor func(patientRef string) *int64
}

// Progress reports how far an import is.
type Progress struct {
	Phase      string  `json:"phase"` // checking | writing | finishing
	File       string  `json:"file"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total"`
	Resources  int     `json:"resources"`
	Fraction   float64 `json:"fraction"` // 0..1 over the whole import
}

// Skipped is a resource left out by SkipInvalid.
type Skipped struct {
	File     string `json:"file"`
	Position string `json:"position"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Resource string `json:"resource,omitempty"`
}

// FileResult is what an import did with one file.
type FileResult struct {
	File         string         `json:"file"`
	SourceID     int64          `json:"source_id"`
	Counts       map[string]int `json:"counts"`
	Added        int            `json:"added"`
	Updated      int            `json:"updated"`
	Unchanged    int            `json:"unchanged"`
	ReusedSource bool           `json:"reused_source"`
}

// Result is what an import did; its JSON is what `import --json` prints. SourceID is the first
// file's source; Sources has one entry per file; Counts and the totals cover every file.
type Result struct {
	SourceID     int64          `json:"source_id"`
	Sources      []FileResult   `json:"sources"`
	Counts       map[string]int `json:"counts"`
	Skipped      []Skipped      `json:"skipped"`
	SkippedTotal int            `json:"skipped_total"`
	Warnings     []string       `json:"warnings"`
	Resources    int            `json:"resources"`
	Added        int            `json:"added"`
	Updated      int            `json:"updated"`
	Unchanged    int            `json:"unchanged"`
	Bytes        int64          `json:"bytes"`
	DurationMS   int64          `json:"duration_ms"`
	ReusedSource bool           `json:"reused_source"`
}

// RefusedError means the input is not acceptable; nothing was written.
type RefusedError struct {
	Err *fhir.Error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// HTTPStatus, ErrorCode and OutcomeLocation answer a refused upload with an OperationOutcome
// naming the position (httpkit.Outcome).
func (e *RefusedError) HTTPStatus() int         { return http.StatusBadRequest }
func (e *RefusedError) ErrorCode() string       { return e.Err.Code }
func (e *RefusedError) OutcomeLocation() string { return e.Err.Pos.String() }

// LimitError means the input is over a limit (zip bomb, too many entries); nothing was written.
type LimitError struct{ Msg string }

func (e *LimitError) Error() string { return e.Msg }

// HTTPStatus, ErrorCode and OutcomeLocation: a 413 OperationOutcome (httpkit.Outcome).
func (e *LimitError) HTTPStatus() int         { return http.StatusRequestEntityTooLarge }
func (e *LimitError) ErrorCode() string       { return "too_large" }
func (e *LimitError) OutcomeLocation() string { return "" }

// ErrEmpty means no resource was found.
var ErrEmpty error = &httpkit.OutcomeKind{Kind: httpkit.Kind{Status: http.StatusBadRequest, Code: "empty", Text: "no FHIR resources were found in the file"}}

// part is one stream of FHIR JSON: a plain file or one entry of a zip.
type part struct {
	input      int   // index into the import's inputs
	compressed bool  // a compressed zip entry: its expansion is capped
	zipped     bool  // an entry of a zip
	archive    int64 // the size of the zip the entry is in (0: not in a zip)
	name       string
	size       int64 // bytes in the file (a zip entry: compressed)
	// stream is how many bytes progress counts for this part: the file's own bytes, or a zip
	// entry's content (its declared size, which progress only trusts as far as it goes).
	stream int64
	open   func() (io.ReadCloser, error)
}

// budget counts what one pass decompresses: in all (against Limits.MaxExpanded) and per zip
// (against Limits.MaxRatio for the archive as a whole, so many entries that each stay under the
// per-entry check cannot add up to a bomb).
type budget struct {
	expanded int64
	archives map[int]*int64 // by input
}

func newBudget() *budget { return &budget{archives: map[int]*int64{}} }

func (b *budget) archive(input int) *int64 {
	if b.archives[input] == nil {
		b.archives[input] = new(int64)
	}
	return b.archives[input]
}

type idKey [2]uint64

// state is what the first pass learns.
type state struct {
	seeds      [2]maphash.Seed
	typeIndex  map[string]uint64 // resource type -> index kept in its keys
	typeNames  []string
	urls       map[string]string // fullUrl -> Type/id, across the whole import
	idents     map[string]string // fhir.IdentifierKey -> Type/id ("" when ambiguous)
	files      []*fileState
	skipped    []Skipped
	nskipped   int
	warnings   []string
	unresolved int
	budget     *budget            // what pass 1 decompressed, against the limits
	plan       *people.ImportPlan // whose each record is; set before pass 2
}

// fileState is what pass 1 learns about one input file.
type fileState struct {
	// keys holds one 16-byte key per resource (Type/id hashed twice, the type's index in the low
	// bits): sorted after pass 1 it gives the duplicates and exact counts in 16 bytes per
	// resource, where a map took 50 to 60.
	keys       []idKey
	counts     map[string]int
	patients   map[string]bool
	people     []people.Patient // the Patient resources, for matching (last copy wins)
	duplicates int
	partHashes [][]byte
	hash       string
}

// identifierTypes are the types whose identifiers conditional references are resolved against:
// the administrative resources other records point at. Keeping only these bounds memory.
var identifierTypes = map[string]bool{
	"Patient": true, "Practitioner": true, "PractitionerRole": true, "Organization": true,
	"Location": true, "Medication": true, "Device": true, "RelatedPerson": true, "Person": true,
	"HealthcareService": true, "Endpoint": true, "Group": true, "Substance": true, "Coverage": true,
	"InsurancePlan": true,
}

func (st *state) key(typ, id string) idKey {
	var k idKey
	for i := range k {
		var h maphash.Hash
		h.SetSeed(st.seeds[i])
		h.WriteString(typ)
		h.WriteByte('/')
		h.WriteString(id)
		k[i] = h.Sum64()
	}
	ti, ok := st.typeIndex[typ]
	if !ok {
		ti = uint64(len(st.typeNames))
		st.typeIndex[typ] = ti
		st.typeNames = append(st.typeNames, typ)
	}
	k[1] = k[1]&^0xffff | ti&0xffff
	return k
}

// dedupe finds the resources a file holds more than once: each repeat is a duplicate, and its
// type's count goes down by one (the last copy is kept when written). The keys are then freed.
func (st *state) dedupe(fs *fileState) {
	slices.SortFunc(fs.keys, func(a, b idKey) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	})
	for i := 1; i < len(fs.keys); i++ {
		if fs.keys[i] == fs.keys[i-1] {
			fs.duplicates++
			if ti := fs.keys[i][1] & 0xffff; int(ti) < len(st.typeNames) {
				fs.counts[st.typeNames[ti]]--
			}
		}
	}
	fs.keys = nil
}

func (st *state) warn(limit int, format string, args ...any) {
	if len(st.warnings) < limit {
		st.warnings = append(st.warnings, fmt.Sprintf(format, args...))
	}
}

// fileRules are how entries of a file become rows (ingest): ids are assigned where missing, and
// only a search result's OperationOutcomes are left out.
var fileRules = ingest.Options{AssignIDs: true}

// person is whose each record of input file i is: the caller's choice by patient when given,
// else the import plan's (internal/people matched the file's patients between the passes).
func (st *state) person(i int, override func(string) *int64) ingest.Person {
	return func(patientRef string) *int64 {
		if override != nil && patientRef != "" {
			return override(patientRef)
		}
		if st.plan != nil {
			return st.plan.ProfileFor(i, patientRef)
		}
		return nil
	}
}

func (st *state) resolve(ref string) (string, bool) {
	if v, ok := st.urls[ref]; ok {
		return v, true
	}
	if strings.IndexByte(ref, '?') > 0 {
		if typ, sys, val, ok := fhir.ParseConditional(ref); ok {
			if v := st.idents[fhir.IdentifierKey(typ, sys, val)]; v != "" {
				return v, true
			}
			if sys == "" {
				return "", false
			}
		}
	}
	return "", false
}

// Import imports inputs as one transaction.
func (im *Importer) Import(ctx context.Context, inputs []Input, opt Options) (*Result, error) {
	start := im.now()
	if len(inputs) == 0 {
		return nil, ErrEmpty
	}
	parts, closeAll, err := im.expand(inputs)
	defer closeAll()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, p := range parts {
		total += p.stream
	}
	st := &state{
		budget:    newBudget(),
		typeIndex: map[string]uint64{},
		seeds:     [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		urls:      map[string]string{},
		idents:    map[string]string{},
	}
	for range inputs {
		st.files = append(st.files, &fileState{counts: map[string]int{}, patients: map[string]bool{}})
	}
	prog := newProgress(opt.Progress, total)

	// Pass 1: check, count, learn references. Nothing is written.
	for _, p := range parts {
		if err := im.check(ctx, p, st, opt, prog); err != nil {
			return nil, err
		}
	}
	res := &Result{Counts: map[string]int{}, Skipped: st.skipped, SkippedTotal: st.nskipped, Bytes: total}
	for i, fs := range st.files {
		sort.Slice(fs.partHashes, func(a, b int) bool { return bytes.Compare(fs.partHashes[a], fs.partHashes[b]) < 0 })
		h := sha256.New()
		for _, ph := range fs.partHashes {
			h.Write(ph)
		}
		fs.hash = hex.EncodeToString(h.Sum(nil))
		st.dedupe(fs)
		for t, n := range fs.counts {
			res.Counts[t] += n
		}
		if fs.duplicates > 0 {
			st.warn(im.limits.MaxWarnings, "%s: %d resources appeared more than once; the last copy of each was kept", inputs[i].Name, fs.duplicates)
		}
	}
	if len(res.Counts) == 0 {
		if st.nskipped > 0 {
			return nil, fmt.Errorf("%w: all %d resources were invalid and skipped", ErrEmpty, st.nskipped)
		}
		return nil, ErrEmpty
	}

	// Pass 2: write, one source per file, all in one transaction.
	err = im.store.WriteTx(ctx, func(tx *sql.Tx) error {
		res.Sources = make([]FileResult, len(inputs))
		writers := make([]*ingest.Writer, len(inputs))
		plan := make([]people.ImportFile, len(inputs))
		defer func() {
			for _, w := range writers {
				if w != nil {
					w.Close()
				}
			}
		}()
		for i, in := range inputs {
			fs := st.files[i]
			fr := &res.Sources[i]
			fr.File, fr.Counts = in.Name, fs.counts
			if len(fs.counts) == 0 {
				continue // a bulk-export log, or every resource skipped: no source
			}
			sourceID, fresh, reused, err := im.target(ctx, tx, in, opt, fs)
			if err != nil {
				return err
			}
			fr.SourceID, fr.ReusedSource = sourceID, reused
			plan[i] = people.ImportFile{SourceID: sourceID, Fresh: fresh, Patients: fs.people}
			if res.SourceID == 0 {
				res.SourceID, res.ReusedSource = sourceID, reused
			}
			w, err := im.store.NewWriter(ctx, tx, sourceID, fresh && fs.duplicates == 0)
			if err != nil {
				return err
			}
			writers[i] = ingest.NewWriter(w, st.person(i, opt.ProfileFor))
		}
		// Whose each record is, decided before any is written (one INSERT per record, no update).
		var perr error
		if st.plan, perr = im.people.PlanImport(ctx, tx, plan); perr != nil {
			return perr
		}
		seen, err := im.write(ctx, parts, st, opt, writers, res, prog)
		if err != nil {
			return err
		}
		prog.phase("finishing", "")
		if err := st.plan.Finish(ctx, tx, seen); err != nil {
			return err
		}
		now := im.now().UTC().Format(time.RFC3339)
		done := map[int64]bool{}
		for _, fr := range res.Sources {
			if fr.SourceID != 0 && !done[fr.SourceID] {
				done[fr.SourceID] = true
				if err := im.store.UpdateSourceTx(ctx, tx, fr.SourceID, records.SourceUpdate{LastSync: &now}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Many rows changed: refresh the planner's statistics (bounded; a failure only costs speed).
	if oerr := im.store.Optimize(ctx); oerr != nil {
		im.log.Warn("could not refresh query statistics", "err", oerr)
	}
	if st.unresolved > 0 {
		st.warn(im.limits.MaxWarnings, "%d references point at resources that are not in this import; they were kept as written", st.unresolved)
	}
	res.Warnings = st.warnings
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	if res.Skipped == nil {
		res.Skipped = []Skipped{}
	}
	for _, fr := range res.Sources {
		res.Added += fr.Added
		res.Updated += fr.Updated
		res.Unchanged += fr.Unchanged
	}
	res.Resources = res.Added + res.Updated + res.Unchanged
	res.DurationMS = im.now().Sub(start).Milliseconds()
	prog.done(res.Resources)
	im.log.Info("import done", "source", res.SourceID, "files", len(inputs), "resources", res.Resources, "added", res.Added,
		"updated", res.Updated, "skipped", res.SkippedTotal, "bytes", total, "ms", res.DurationMS)
	return res, nil
}

func (im *Importer) target(ctx context.Context, tx *sql.Tx, in Input, opt Options, fs *fileState) (id int64, fresh, reused bool, err error) {
	if opt.SourceID != 0 {
		src, err := im.store.GetSourceTx(ctx, tx, opt.SourceID)
		if err != nil {
			return 0, false, false, err
		}
		if src.Kind != records.KindManual {
			return 0, false, false, httpkit.Errorf(http.StatusConflict, "conflict", "Source %d is a connection to a provider; files can only be imported into file sources.", opt.SourceID)
		}
		if records.IsSelfSource(src) {
			return 0, false, false, httpkit.Errorf(http.StatusConflict, "conflict", "Source %d holds what a person entered themselves; import files as a source of their own.", opt.SourceID)
		}
		return src.ID, false, false, nil
	}
	if id, ok, err := im.store.FindManualSourceByHash(ctx, tx, fs.hash); err != nil || ok {
		return id, false, ok, err
	}
	name := in.Name
	if opt.SourceName != "" {
		name = opt.SourceName
	}
	var patientID string
	if len(fs.patients) == 1 {
		for p := range fs.patients {
			patientID = p
		}
	}
	id, err = im.store.CreateSource(ctx, tx, records.NewSource{Kind: records.KindManual, Name: name, ContentHash: fs.hash, PatientID: patientID})
	return id, true, false, err
}

// open gives the decoded stream of a part, with gzip undone and expansion capped. Damaged
// compressed data (bad deflate, bad checksum, trailing garbage, a zip entry whose size lies) is
// bad input: a RefusedError naming the file and the byte where decoding failed.
func (im *Importer) openPart(p part, b *budget, onRead func(int)) (io.ReadCloser, error) {
	expanded := &b.expanded
	rc, err := p.open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.name, err)
	}
	raw := &offsetReader{r: rc, onRead: onRead}
	var src io.Reader = raw
	if p.compressed {
		src = &capped{r: src, closer: rc, name: p.name, used: expanded, limit: im.limits.MaxExpanded, ratioBase: p.size, ratio: im.limits.MaxRatio,
			archiveUsed: b.archive(p.input), archiveSize: p.archive}
	}
	if p.zipped {
		src = &decodeErrors{r: src, name: p.name, where: func() string { return fmt.Sprintf("after %d bytes of its content", raw.n) }, what: "zip entry"}
	}
	br := bufio.NewReaderSize(src, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, &RefusedError{&fhir.Error{Pos: fhir.Position{File: p.name, Line: 1, Column: 1, Entry: -1}, Code: "invalid_gzip", Msg: "the file looks gzip-compressed but cannot be decompressed: " + err.Error()}}
		}
		var dec io.Reader = &capped{r: zr, closer: rc, name: p.name, used: expanded, limit: im.limits.MaxExpanded, ratioBase: p.size, ratio: im.limits.MaxRatio}
		dec = &decodeErrors{r: dec, name: p.name, where: func() string {
			return fmt.Sprintf("near byte %d of the compressed file", max(0, raw.n-int64(br.Buffered())))
		}, what: "gzip data"}
		return readCloser{dec, rc}, nil
	}
	return readCloser{br, rc}, nil
}

// offsetReader counts the bytes read from the file itself (before decompression).
type offsetReader struct {
	r      io.Reader
	n      int64
	onRead func(int) // progress, in the same bytes as the import's total
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.n += int64(n)
	if n > 0 && o.onRead != nil {
		o.onRead(n)
	}
	return n, err
}

// decodeErrors turns a decompression failure into a RefusedError with the file and the offset.
type decodeErrors struct {
	r     io.Reader
	name  string
	what  string
	where func() string
}

func (d *decodeErrors) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	var le *LimitError
	if errors.As(err, &le) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return n, err
	}
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "gzip: "), "flate: ")
	if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "it ends too early"
	}
	return n, &RefusedError{&fhir.Error{Pos: fhir.Position{File: d.name, Line: 1, Column: 1, Entry: -1}, Code: "damaged_compressed_data",
		Msg: fmt.Sprintf("the %s is damaged %s (%s); nothing was imported", d.what, d.where(), msg)}}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// capped counts decompressed bytes against the import's budget and a ratio that marks a bomb.
type capped struct {
	r         io.Reader
	closer    io.Closer
	name      string
	used      *int64
	n         int64
	limit     int64
	ratioBase int64
	ratio     int64
	// The zip the entry is in: bytes expanded from all its entries, and its size.
	archiveUsed *int64
	archiveSize int64
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	total := atomic.AddInt64(c.used, int64(n))
	if total > c.limit {
		return n, &LimitError{fmt.Sprintf("%s expands to more than %d MiB; refused (zip bomb?)", c.name, c.limit>>20)}
	}
	if c.ratioBase > 0 && c.n > 16<<20 && c.n/c.ratioBase > c.ratio {
		return n, &LimitError{fmt.Sprintf("%s expands more than %d times its compressed size; refused as a likely zip bomb", c.name, c.ratio)}
	}
	if c.archiveUsed != nil && c.archiveSize > 0 {
		if t := atomic.AddInt64(c.archiveUsed, int64(n)); t > 16<<20 && t/c.archiveSize > c.ratio {
			zipName, _, _ := strings.Cut(c.name, "/")
			return n, &LimitError{fmt.Sprintf("%s expands more than %d times its size as a whole; refused as a likely zip bomb", zipName, c.ratio)}
		}
	}
	return n, err
}

func (c *capped) Close() error { return c.closer.Close() }

// expand turns inputs into parts: zips into their entries.
func (im *Importer) expand(inputs []Input) ([]part, func(), error) {
	var parts []part
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for idx, in := range inputs {
		// Before opening: opening a named pipe blocks until someone writes to it.
		if err := CheckFile(in.Path, in.Name); err != nil {
			return nil, closeAll, err
		}
		f, err := os.Open(in.Path)
		if err != nil {
			return nil, closeAll, fmt.Errorf("open %s: %w", in.Name, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, closeAll, fmt.Errorf("open %s: %w", in.Name, err)
		}
		if err := checkMode(st.Mode(), in.Name); err != nil {
			f.Close()
			return nil, closeAll, err
		}
		magic := make([]byte, 4)
		n, _ := io.ReadFull(f, magic)
		if n == 4 && string(magic) == "PK\x03\x04" {
			closers = append(closers, f)
			zp, err := im.zipParts(in, f, st.Size())
			if err != nil {
				return nil, closeAll, err
			}
			for i := range zp {
				zp[i].input = idx
			}
			parts = append(parts, zp...)
			continue
		}
		f.Close()
		path := in.Path
		parts = append(parts, part{input: idx, name: in.Name, size: st.Size(), stream: st.Size(), open: func() (io.ReadCloser, error) { return os.Open(path) }})
	}
	return parts, closeAll, nil
}

func (im *Importer) zipParts(in Input, f *os.File, size int64) ([]part, error) {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, &RefusedError{&fhir.Error{Pos: fhir.Position{File: in.Name, Line: 1, Column: 1, Entry: -1}, Code: "invalid_zip", Msg: "the zip file cannot be read: " + err.Error()}}
	}
	if len(zr.File) > im.limits.MaxZipEntries {
		return nil, &LimitError{fmt.Sprintf("%s holds %d files; at most %d are accepted", in.Name, len(zr.File), im.limits.MaxZipEntries)}
	}
	var parts []part
	for _, zf := range zr.File {
		name := zf.Name
		clean := path.Clean(strings.ReplaceAll(name, `\`, "/"))
		if strings.HasPrefix(clean, "/") || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(name, "\x00") || filepath.VolumeName(name) != "" {
			return nil, &RefusedError{&fhir.Error{Pos: fhir.Position{File: in.Name, Line: 1, Column: 1, Entry: -1}, Code: "unsafe_zip_entry",
				Msg: fmt.Sprintf("the zip holds an entry named %q that points outside the archive; refused", truncate(name, 120))}}
		}
		if zf.FileInfo().IsDir() {
			continue
		}
		base := path.Base(clean)
		lower := strings.ToLower(base)
		if strings.HasPrefix(clean, "__MACOSX/") || strings.HasPrefix(base, ".") {
			continue
		}
		trim := strings.TrimSuffix(lower, ".gz")
		if !strings.HasSuffix(trim, ".json") && !strings.HasSuffix(trim, ".ndjson") && !strings.HasSuffix(trim, ".jsonl") {
			continue
		}
		zf := zf
		parts = append(parts, part{
			compressed: zf.Method != zip.Store,
			zipped:     true,
			archive:    size,
			name:       in.Name + "/" + clean,
			size:       int64(zf.CompressedSize64),
			stream:     int64(min(zf.UncompressedSize64, 1<<50)),
			open: func() (io.ReadCloser, error) {
				if zf.Method != zip.Store && zf.Method != zip.Deflate {
					return nil, fmt.Errorf("unsupported compression method %d", zf.Method)
				}
				return zf.Open()
			},
		})
	}
	if len(parts) == 0 {
		return nil, &RefusedError{&fhir.Error{Pos: fhir.Position{File: in.Name, Line: 1, Column: 1, Entry: -1}, Code: "empty_zip", Msg: "the zip holds no .json or .ndjson files"}}
	}
	return parts, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// isBulkLog recognises a FHIR Bulk Data export log (log.ndjson), which holds no resources.
func isBulkLog(br *bufio.Reader) bool {
	head, _ := br.Peek(4096)
	line, _, _ := bytes.Cut(head, []byte("\n"))
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	_, hasType := m["resourceType"]
	_, hasExport := m["exportId"]
	_, hasEvent := m["eventId"]
	return !hasType && hasExport && hasEvent
}

// check is pass 1 over one part.
func (im *Importer) check(ctx context.Context, p part, st *state, opt Options, prog *progress) error {
	rc, err := im.openPart(p, st.budget, prog.add)
	if err != nil {
		return err
	}
	defer rc.Close()
	prog.phase("checking", p.name)
	fs := st.files[p.input]
	h := sha256.New()
	cr := io.TeeReader(rc, h)
	br := bufio.NewReaderSize(cr, 64<<10)
	if isBulkLog(br) {
		st.warn(im.limits.MaxWarnings, "%s is a bulk-export log, not FHIR resources; it was skipped", p.name)
		io.Copy(io.Discard, br)
		fs.partHashes = append(fs.partHashes, partHash(h))
		return nil
	}
	scanOpt := im.limits.Scan
	scanOpt.ContinueOnInvalid = opt.SkipInvalid
	err = fhir.Scan(ctx, br, p.name, scanOpt, func(e *fhir.Entry) error {
		switch ingest.Classify(e, fileRules) {
		case ingest.Invalid:
			st.skip(e.Invalid, im.limits.MaxSkipped)
			return nil
		case ingest.Empty:
			if e.Method == "DELETE" {
				st.warn(im.limits.MaxWarnings, "%s: a DELETE request for %s was not applied (imports never delete records)", e.Pos, e.RequestURL)
			} else {
				st.warn(im.limits.MaxWarnings, "%s: a Bundle entry without a resource was ignored", e.Pos)
			}
			return nil
		case ingest.Outcome:
			st.warn(im.limits.MaxWarnings, "%s: the server's OperationOutcome message in this search result was not imported", e.Pos)
			return nil
		}
		id := ingest.ID(e)
		ref := e.Type + "/" + id
		fs.keys = append(fs.keys, st.key(e.Type, id))
		fs.counts[e.Type]++
		if e.Type == "Patient" {
			pt, perr := people.ParsePatient(id, e.Raw)
			if perr != nil {
				pt = people.Patient{Ref: ref}
			}
			if fs.patients[id] {
				for i := range fs.people {
					if fs.people[i].Ref == ref {
						fs.people[i] = pt
					}
				}
			} else {
				fs.people = append(fs.people, pt)
			}
			fs.patients[id] = true
		}
		if e.FullURL != "" {
			st.urls[e.FullURL] = ref
		}
		if identifierTypes[e.Type] {
			for _, ident := range e.Identifiers {
				ik := fhir.IdentifierKey(e.Type, ident.System, ident.Value)
				if old, ok := st.idents[ik]; ok && old != ref {
					st.idents[ik] = "" // ambiguous: two resources share it
				} else {
					st.idents[ik] = ref
				}
				// A conditional reference may leave out the system.
				bare := fhir.IdentifierKey(e.Type, "", ident.Value)
				if old, ok := st.idents[bare]; ok && old != ref {
					st.idents[bare] = ""
				} else {
					st.idents[bare] = ref
				}
			}
		}
		return nil
	})
	if err != nil {
		return im.scanErr(err)
	}
	fs.partHashes = append(fs.partHashes, partHash(h))
	return nil
}

func partHash(h hash.Hash) []byte { return h.Sum(nil) }

func (st *state) skip(fe *fhir.Error, limit int) {
	st.nskipped++
	if len(st.skipped) < limit {
		st.skipped = append(st.skipped, Skipped{File: fe.Pos.File, Position: positionOnly(fe.Pos), Code: fe.Code, Message: fe.Msg, Resource: fe.Resource})
	}
}

func positionOnly(p fhir.Position) string {
	p.File = ""
	return p.String()
}

func (im *Importer) scanErr(err error) error {
	var fe *fhir.Error
	var le *LimitError
	switch {
	case errors.As(err, &le):
		return le
	case errors.As(err, &fe):
		return &RefusedError{fe}
	}
	return err
}

type batch struct {
	rows  []records.Row
	input []int // the input file of each row
	err   error
}

// write is pass 2: parse on a goroutine, store here. It returns the Patient references the
// records of each input named.
func (im *Importer) write(ctx context.Context, parts []part, st *state, opt Options, writers []*ingest.Writer, res *Result, prog *progress) ([]map[string]struct{}, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan batch, 8)
	go func() {
		defer close(ch)
		pass2 := newBudget()
		const size = 256
		cur := batch{rows: make([]records.Row, 0, size), input: make([]int, 0, size)}
		send := func() bool {
			if len(cur.rows) == 0 {
				return true
			}
			select {
			case ch <- cur:
				cur = batch{rows: make([]records.Row, 0, size), input: make([]int, 0, size)}
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, p := range parts {
			if err := im.produce(ctx, p, st, opt, prog, pass2, func(r records.Row) error {
				cur.rows = append(cur.rows, r)
				cur.input = append(cur.input, p.input)
				if len(cur.rows) == size && !send() {
					return ctx.Err()
				}
				return nil
			}); err != nil {
				select {
				case ch <- batch{err: err}:
				case <-ctx.Done():
				}
				return
			}
		}
		send()
	}()
	seen := make([]map[string]struct{}, len(writers))
	for i := range seen {
		seen[i] = map[string]struct{}{}
	}
	last := make([]string, len(writers)) // records of one patient come in runs: skip the map
	for b := range ch {
		if b.err != nil {
			return nil, b.err
		}
		for i, r := range b.rows {
			in := b.input[i]
			out, err := writers[in].Put(ctx, r)
			if err != nil {
				return nil, err
			}
			if p := r.Index.Patient; p != "" && p != last[in] {
				last[in] = p
				seen[in][p] = struct{}{}
			}
			fr := &res.Sources[in]
			switch out {
			case records.Added:
				fr.Added++
			case records.Updated:
				fr.Updated++
			default:
				fr.Unchanged++
			}
		}
		prog.written(len(b.rows))
	}
	return seen, ctx.Err()
}

func (im *Importer) produce(ctx context.Context, p part, st *state, opt Options, prog *progress, pass2 *budget, emit func(records.Row) error) error {
	rc, err := im.openPart(p, pass2, prog.add)
	if err != nil {
		return err
	}
	defer rc.Close()
	prog.phase("writing", p.name)
	br := bufio.NewReaderSize(rc, 64<<10)
	if isBulkLog(br) {
		io.Copy(io.Discard, br)
		return nil
	}
	scanOpt := im.limits.Scan
	scanOpt.ContinueOnInvalid = opt.SkipInvalid
	rules := fileRules
	rules.Resolve = st.resolve
	err = fhir.Scan(ctx, br, p.name, scanOpt, func(e *fhir.Entry) error {
		if ingest.Classify(e, rules) != ingest.Keep {
			return nil
		}
		for _, r := range e.Refs {
			if _, ok := st.resolve(r.Value); !ok && (strings.HasPrefix(r.Value, "urn:") || strings.Contains(r.Value, "?")) {
				st.unresolved++
			}
		}
		row, err := ingest.Row(e, rules)
		if err != nil {
			return err
		}
		return emit(row)
	})
	if err != nil {
		return im.scanErr(err)
	}
	return nil
}

// progress throttles reports to about ten a second.
type progress struct {
	mu       sync.Mutex // serialises calls of fn
	fn       func(Progress)
	total    int64
	checked  atomic.Int64
	writ     atomic.Int64
	rows     atomic.Int64
	phaseV   atomic.Value // string
	file     atomic.Value // string
	lastSent atomic.Int64
}

func newProgress(fn func(Progress), total int64) *progress {
	p := &progress{fn: fn, total: total}
	p.phaseV.Store("checking")
	p.file.Store("")
	return p
}

// checking is about a sixth of an import's time; writing the rest.
const checkShare = 0.15

func (p *progress) snapshot() Progress {
	ph := p.phaseV.Load().(string)
	pr := Progress{Phase: ph, File: p.file.Load().(string), BytesTotal: p.total, Resources: int(p.rows.Load())}
	frac := func(n int64) float64 {
		if p.total <= 0 {
			return 0
		}
		return min(1, float64(n)/float64(p.total))
	}
	switch ph {
	case "checking":
		pr.BytesDone = p.checked.Load()
		pr.Fraction = checkShare * frac(pr.BytesDone)
	case "writing", "finishing":
		pr.BytesDone = p.writ.Load()
		// Below 1 until the import is done: the last rows, the people and the commit remain.
		pr.Fraction = min(0.99, checkShare+(1-checkShare)*frac(pr.BytesDone))
	default:
		pr.BytesDone = p.total
		pr.Fraction = 1
	}
	if p.total > 0 {
		pr.BytesDone = min(pr.BytesDone, p.total)
	}
	return pr
}

func (p *progress) emit(force bool) {
	if p.fn == nil {
		return
	}
	now := time.Now().UnixMilli()
	last := p.lastSent.Load()
	if !force && now-last < 100 {
		return
	}
	if !p.lastSent.CompareAndSwap(last, now) && !force {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(p.snapshot())
}

func (p *progress) phase(ph, file string) {
	changed := p.phaseV.Load().(string) != ph
	p.phaseV.Store(ph)
	p.file.Store(file)
	p.emit(changed)
}

func (p *progress) add(n int) {
	if p.phaseV.Load().(string) == "checking" {
		p.checked.Add(int64(n))
	} else {
		p.writ.Add(int64(n))
	}
	p.emit(false)
}

func (p *progress) written(n int) {
	p.rows.Add(int64(n))
	p.emit(false)
}

func (p *progress) done(rows int) {
	p.rows.Store(int64(rows))
	p.phaseV.Store("done")
	p.emit(true)
}
