// Package ingest is the one step that turns a scanned FHIR entry into a stored row. The importer
// (files) and the syncer (provider pages) both use it, so a record is stored and indexed the same
// way however it arrived: which entries are records, the id, reference rewriting, the index
// fields (title, dates, codes, search text, patient) and the person the row belongs to.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Options say how entries of one stream become rows.
type Options struct {
	// AssignIDs gives an entry without an id a stable one (files: the uuid of its urn:uuid
	// fullUrl, else a hash of its bytes). Without it such an entry is not stored (NoID).
	AssignIDs bool
	// DropOutcomes leaves out every OperationOutcome (a provider's messages); otherwise only
	// those inside a search result are left out (a file may hold an OperationOutcome record).
	DropOutcomes bool
	// Resolve maps a reference as written to "Type/id"; nil keeps every reference as written.
	Resolve func(ref string) (string, bool)
}

// Reason says why an entry is (not) stored.
type Reason int

// Reasons.
const (
	Keep    Reason = iota // a record to store
	Invalid               // it failed validation (Entry.Invalid)
	Empty                 // a Bundle entry without a resource (a DELETE request, ...)
	Outcome               // a server's OperationOutcome, not a record
	NoID                  // no id, and ids are not assigned
)

// Classify says whether e is a record to store.
func Classify(e *fhir.Entry, o Options) Reason {
	switch {
	case e.Invalid != nil:
		return Invalid
	case e.Raw == nil:
		return Empty
	case e.Type == "OperationOutcome" && (o.DropOutcomes || e.BundleType == "searchset"):
		return Outcome
	case e.ID == "" && !o.AssignIDs:
		return NoID
	}
	return Keep
}

// ID is the id e is stored under.
func ID(e *fhir.Entry) string {
	if e.ID != "" {
		return e.ID
	}
	if u, ok := strings.CutPrefix(e.FullURL, "urn:uuid:"); ok && fhir.ValidID(u) {
		return u
	}
	h := sha256.Sum256(e.Raw)
	return hex.EncodeToString(h[:16])
}

// Row turns an entry that Classify keeps into a row: id, references rewritten, index fields.
// The row's person is set when it is written (Writer).
func Row(e *fhir.Entry, o Options) (records.Row, error) {
	id := ID(e)
	raw := e.Raw
	if o.Resolve != nil {
		raw = fhir.RewriteRefs(raw, e.Refs, o.Resolve)
	}
	if e.ID == "" {
		raw = withID(raw, id)
	}
	ix, err := fhir.IndexResource(raw)
	if err != nil {
		return records.Row{}, &fhir.Error{Pos: e.Pos, Code: fhir.CodeInvalidJSON, Msg: err.Error()}
	}
	ix.ID = id
	return records.Row{Type: e.Type, ID: id, Raw: string(raw), Index: ix}, nil
}

// withID puts "id" first in a resource that has none.
func withID(raw []byte, id string) []byte {
	enc, _ := json.Marshal(id)
	out := make([]byte, 0, len(raw)+len(enc)+8)
	out = append(out, '{')
	out = append(out, `"id":`...)
	out = append(out, enc...)
	rest := bytes.TrimLeft(raw[1:], " \t\r\n")
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, raw[1:]...)
}

// Person decides whose a row is from the patient it names ("Patient/x", "" for none); nil means
// nobody ("not linked").
type Person func(patientRef string) *int64

// OnePerson is the rule of a provider source: every record is its person's.
func OnePerson(profile *int64) Person {
	return func(string) *int64 { return profile }
}

// Writer stores rows of one source inside one write transaction, each with its person.
type Writer struct {
	w      *records.Writer
	person Person
}

// NewWriter wraps a records.Writer with the person rule.
func NewWriter(w *records.Writer, person Person) *Writer {
	return &Writer{w: w, person: person}
}

// Put stores one row with its person.
func (w *Writer) Put(ctx context.Context, r records.Row) (records.Outcome, error) {
	if w.person != nil {
		r.ProfileID = w.person(r.Index.Patient)
	}
	return w.w.Put(ctx, r)
}

// Close releases the writer's statements.
func (w *Writer) Close() { w.w.Close() }
