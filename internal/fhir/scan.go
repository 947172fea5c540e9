// Package fhir reads FHIR R4 JSON as a stream: a Bundle of any type (its entries are the
// resources), NDJSON (one resource per line, bulk-export style), a single resource, or any
// sequence of those in one file. Memory stays flat in the size of the file: only one resource is
// held at a time. Every resource is checked while it is read (well-formed JSON, valid UTF-8, no BOM,
// no duplicate keys, a known resourceType, a valid id, nesting depth, size) and every problem is
// reported with its position: file, line, column, byte offset and Bundle entry index.
//
// Duplicate JSON keys are refused: RFC 8259 leaves their meaning open, and two readers of the
// same file could otherwise see two different records.
package fhir

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Position locates a resource or a problem in an input file.
type Position struct {
	File   string
	Line   int   // 1-based
	Column int   // 1-based, in bytes
	Offset int64 // 0-based byte offset
	Entry  int   // 0-based Bundle entry index, -1 when not in a Bundle
	Record int   // 1-based number of the top-level JSON value (the NDJSON line's record), 0 if unknown
}

func (p Position) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(", ")
	}
	fmt.Fprintf(&b, "line %d, column %d (byte %d)", p.Line, p.Column, p.Offset)
	if p.Entry >= 0 {
		fmt.Fprintf(&b, ", entry %d", p.Entry)
	}
	return b.String()
}

// Error codes: stable values the API and the CLI expose.
const (
	CodeInvalidJSON         = "invalid_json"
	CodeNumberRange         = "number_out_of_range"
	CodeInvalidUTF8         = "invalid_utf8"
	CodeBOM                 = "byte_order_mark"
	CodeDuplicateKey        = "duplicate_key"
	CodeTooDeep             = "too_deep"
	CodeTooLarge            = "too_large"
	CodeMissingResourceType = "missing_resource_type"
	CodeUnknownResourceType = "unknown_resource_type"
	CodeInvalidID           = "invalid_id"
	CodeNotAResource        = "not_a_resource"
	CodeDuplicateEntry      = "duplicate_entry"
)

// Error is a problem in the input, with where it is.
type Error struct {
	Pos  Position
	Code string
	Msg  string
	// Resource is "Type/id" (as far as known) when the problem is inside one resource.
	Resource string
	// Fatal means the rest of the file cannot be read (broken JSON syntax); otherwise only the
	// resource at Pos is bad and reading can go on.
	Fatal bool
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Ref is one `"reference": "..."` string inside a resource.
type Ref struct {
	Start, End int    // byte span of the JSON string literal, quotes included, within Entry.Raw
	Value      string // the decoded reference
}

// Identifier is one top-level identifier of a resource.
type Identifier struct{ System, Value string }

// Entry is one resource read from the input. Raw, Refs and Identifiers are only valid during the
// callback: the scanner reuses their memory.
type Entry struct {
	Pos         Position
	Type, ID    string
	Raw         []byte // the resource's JSON exactly as in the file
	FullURL     string // Bundle entry fullUrl
	Method      string // Bundle entry request.method
	RequestURL  string // Bundle entry request.url
	BundleType  string // the enclosing Bundle's type, "" outside a Bundle
	VersionID   string
	LastUpdated string
	Refs        []Ref
	Identifiers []Identifier
	// Invalid is set (instead of Scan failing) when Options.ContinueOnInvalid is on and this
	// resource is well-formed JSON but not acceptable.
	Invalid *Error
}

// Options bound what the scanner accepts. Zero values take the defaults.
type Options struct {
	MaxDepth          int  // nesting levels inside a resource; default 100
	MaxResourceBytes  int  // default 64 MiB
	MaxStringBytes    int  // default 1 MiB, FHIR's limit for strings; not applied to base64 `data`
	ContinueOnInvalid bool // report bad resources through Entry.Invalid and go on
}

func (o *Options) defaults() {
	if o.MaxDepth <= 0 {
		o.MaxDepth = 100
	}
	if o.MaxResourceBytes <= 0 {
		o.MaxResourceBytes = 64 << 20
	}
	if o.MaxStringBytes <= 0 {
		o.MaxStringBytes = 1 << 20
	}
}

// ErrStop can be returned by a callback to end Scan early without an error.
var ErrStop = errors.New("stop")

// Scan reads every resource in r and calls fn for each, in file order. name is used in positions.
// Scan returns the first fatal problem (broken JSON), the first invalid resource unless
// opt.ContinueOnInvalid, fn's error, or ctx's error.
func Scan(ctx context.Context, r io.Reader, name string, opt Options, fn func(*Entry) error) error {
	opt.defaults()
	s := &scanner{
		lexer: lexer{r: r, buf: make([]byte, 256<<10), line: 1},
		ctx:   ctx,
		name:  name,
		opt:   opt,
		fn:    fn,
		seed:  maphash.MakeSeed(),
		ksTop: -1,
	}
	s.capLimit = opt.MaxResourceBytes
	lower := strings.ToLower(name)
	s.ndjson = strings.HasSuffix(lower, ".ndjson") || strings.HasSuffix(lower, ".jsonl")
	err := s.top()
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

const maxEntryEvery = 256 // check ctx every this many resources

type scanner struct {
	lexer
	ctx    context.Context
	name   string
	opt    Options
	fn     func(*Entry) error
	seed   maphash.Seed
	record int
	count  int

	// per-resource state
	cur         *Entry
	resErr      *Error
	capBase     int64      // absolute offset of the resource's first byte
	keySets     [][]uint64 // a stack: the keys of each open object, for duplicate detection
	ksTop       int
	entry       Entry
	forceBundle bool
	ndjson      bool
	bundleType  string
	entryIdx    int
}

func (s *scanner) here() Position {
	return Position{File: s.name, Line: s.line, Column: int(s.abs()-s.lineStart) + 1, Offset: s.abs(), Entry: s.entryIdx, Record: s.record}
}

func (s *scanner) fatal(code, format string, args ...any) *Error {
	return &Error{Pos: s.here(), Code: code, Msg: fmt.Sprintf(format, args...), Fatal: true, Resource: s.curName()}
}

func (s *scanner) curName() string {
	if s.cur == nil || s.cur.Type == "" {
		return ""
	}
	if s.cur.ID == "" {
		return s.cur.Type
	}
	return s.cur.Type + "/" + s.cur.ID
}

// invalid records the first problem of the current resource; reading goes on so the scanner
// stays in step with the file.
func (s *scanner) invalid(pos Position, code, format string, args ...any) {
	if s.resErr == nil {
		s.resErr = &Error{Pos: pos, Code: code, Msg: fmt.Sprintf(format, args...)}
	}
}

func (s *scanner) top() error {
	if err := s.ensure(3); err != nil && err != io.EOF {
		return s.ioErr(err)
	}
	if s.end-s.pos >= 3 && s.buf[0] == 0xEF && s.buf[1] == 0xBB && s.buf[2] == 0xBF {
		return s.fatal(CodeBOM, "the file starts with a byte order mark (BOM); JSON must be plain UTF-8 without one: save it again as \"UTF-8\" (not \"UTF-8 with BOM\")")
	}
	seen := false
	for {
		if err := s.skipWS(); err != nil {
			if err == io.EOF {
				if !seen {
					return s.fatal(CodeInvalidJSON, "the file is empty: no FHIR resource found")
				}
				return nil
			}
			return s.ioErr(err)
		}
		c := s.buf[s.pos]
		if c != '{' {
			if !seen {
				if c == '[' {
					return s.fatal(CodeNotAResource, "the file holds a JSON array; expected a FHIR resource, a Bundle, or NDJSON (one resource per line)")
				}
				return s.fatal(CodeInvalidJSON, "unexpected %s: a FHIR file must start with '{'", describe(c))
			}
			return s.fatal(CodeInvalidJSON, "unexpected %s after the end of the JSON value (trailing garbage)", describe(c))
		}
		seen = true
		s.record++
		s.entryIdx = -1
		if err := s.topObject(); err != nil {
			var fe *Error
			if !s.opt.ContinueOnInvalid || !(s.ndjson || s.record > 1) || !errors.As(err, &fe) || !fe.Fatal {
				return err
			}
			// NDJSON: a broken line is skipped; reading resumes at the next line (JSON strings
			// cannot hold a raw newline, so the next '\n' always starts a new record).
			if cerr := s.fn(&Entry{Pos: fe.Pos, Invalid: fe}); cerr != nil {
				return cerr
			}
			s.cur, s.resErr, s.ksTop = nil, nil, -1
			s.dropCapture()
			if err := s.skipLine(); err != nil {
				return nil // the broken line was the last one
			}
		}
	}
}

// skipLine discards input up to and including the next newline.
func (s *scanner) skipLine() error {
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			s.pos++
			if c == '\n' {
				s.line++
				s.lineStart = s.abs()
				return nil
			}
		}
		if err := s.fill(); err != nil {
			return err
		}
	}
}

func describe(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (s *scanner) ioErr(err error) error {
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return s.fatal(CodeInvalidJSON, "the file ends in the middle of a JSON value (truncated?)")
	}
	if e, ok := err.(*Error); ok {
		return e
	}
	return fmt.Errorf("read %s: %w", s.name, err)
}

// topObject reads one top-level object: a Bundle (whose entries are streamed) or a resource.
func (s *scanner) topObject() error {
	start := s.here()
	// Capture the object as a resource unless it turns out to be a Bundle whose resourceType
	// comes before its entries (the normal case), in which case the capture is dropped.
	s.beginResource(start)
	ent := s.cur
	const depth = 1
	bundle := s.forceBundle
	sawEntry := false
	if bundle {
		s.dropCapture()
		s.cur = nil
	}
	err := s.members(depth, func(key string, kpos Position) error {
		switch {
		case key == "resourceType":
			v, err := s.stringValue()
			if err != nil {
				return err
			}
			ent.Type = v
			if v == "Bundle" && !bundle && !sawEntry {
				bundle = true
				s.dropCapture()
				s.cur = nil
			}
			return nil
		case key == "entry" && bundle:
			return s.bundleEntries()
		case key == "type" && bundle:
			v, err := s.stringOrSkip(depth)
			s.bundleType = v
			return err
		case bundle:
			return s.value(depth, "", false)
		}
		if key == "entry" {
			sawEntry = true
		}
		return s.resourceKey(ent, key, kpos, depth)
	})
	if err != nil {
		return err
	}
	if bundle {
		s.bundleType = ""
		s.cur = nil
		return nil
	}
	if ent.Type == "Bundle" {
		// "entry" came before "resourceType": the whole Bundle was captured (within the
		// resource size limit); read its entries from memory.
		raw := append([]byte(nil), s.endCapture()...)
		if s.resErr != nil {
			return s.finishInvalid(ent)
		}
		return s.rescanBundle(raw, start)
	}
	return s.finishResource(ent, 0)
}

func (s *scanner) rescanBundle(raw []byte, start Position) error {
	sub := &scanner{
		lexer: lexer{r: strings.NewReader(string(raw)), buf: make([]byte, 64<<10), line: start.Line, lineStart: start.Offset - int64(start.Column-1), off: start.Offset},
		ctx:   s.ctx, name: s.name, opt: s.opt, fn: s.fn, seed: s.seed, record: s.record,
		ksTop: -1, forceBundle: true,
	}
	sub.capLimit = s.capLimit
	sub.entryIdx = -1
	if err := sub.skipWS(); err != nil {
		return sub.ioErr(err)
	}
	return sub.topObject()
}

func (s *scanner) bundleEntries() error {
	if err := s.skipWS(); err != nil {
		return s.ioErr(err)
	}
	if c := s.buf[s.pos]; c != '[' {
		if c == 'n' { // "entry": null
			return s.literal("null")
		}
		return s.fatal(CodeInvalidJSON, "Bundle.entry must be an array, found %s", describe(c))
	}
	idx := 0
	return s.elements(func() error {
		s.entryIdx = idx
		idx++
		return s.bundleEntry()
	})
}

// bundleEntry reads {fullUrl, resource, request, ...} and emits the resource.
func (s *scanner) bundleEntry() error {
	if s.buf[s.pos] != '{' {
		return s.fatal(CodeInvalidJSON, "a Bundle entry must be an object, found %s", describe(s.buf[s.pos]))
	}
	entryPos := s.here()
	const depth = 3 // Bundle > entry[] > entry object
	var fullURL, method, reqURL string
	var ent *Entry
	err := s.members(depth, func(key string, _ Position) error {
		var err error
		switch key {
		case "fullUrl":
			fullURL, err = s.stringOrSkip(depth)
		case "resource":
			if err := s.skipWS(); err != nil {
				return s.ioErr(err)
			}
			if s.buf[s.pos] != '{' {
				return s.value(depth, "", false)
			}
			s.beginResource(s.here())
			ent = s.cur
			if err := s.resourceObject(ent, 0); err != nil {
				return err
			}
			ent.Raw = s.endCapture()
		case "request":
			method, reqURL, err = s.request(depth)
		default:
			err = s.value(depth, "", false)
		}
		return err
	})
	if err != nil {
		return err
	}
	if ent == nil {
		// An entry without a resource (a DELETE in a transaction, or a search outcome): reported
		// to the caller with no Raw so it can warn.
		e := &s.entry
		*e = Entry{Pos: entryPos, FullURL: fullURL, Method: method, RequestURL: reqURL, BundleType: s.bundleType}
		return s.emit(e)
	}
	ent.FullURL, ent.Method, ent.RequestURL, ent.BundleType = fullURL, method, reqURL, s.bundleType
	return s.finishResource(ent, 0)
}

func (s *scanner) request(depth int) (method, url string, err error) {
	if err := s.skipWS(); err != nil {
		return "", "", s.ioErr(err)
	}
	if s.buf[s.pos] != '{' {
		return "", "", s.value(depth, "", false)
	}
	d := depth + 1
	err = s.members(d, func(key string, _ Position) error {
		var err error
		switch key {
		case "method":
			method, err = s.stringOrSkip(d)
		case "url":
			url, err = s.stringOrSkip(d)
		default:
			err = s.value(d, "", false)
		}
		return err
	})
	return method, url, err
}

func (s *scanner) beginResource(p Position) {
	s.entry = Entry{Pos: p, Refs: s.entry.Refs[:0], Identifiers: s.entry.Identifiers[:0]}
	s.cur = &s.entry
	s.resErr = nil
	s.startCapture()
	s.capBase = s.abs()
}

// resourceObject reads a resource object at s.pos ('{'); depth is the nesting depth of the
// object within the outermost resource (0 for the resource itself, more for contained ones).
func (s *scanner) resourceObject(ent *Entry, depth int) error {
	d := depth + 1
	return s.members(d, func(key string, kpos Position) error {
		if key == "resourceType" {
			v, err := s.stringValue()
			ent.Type = v
			return err
		}
		return s.resourceKey(ent, key, kpos, d)
	})
}

// resourceKey reads the value of one key of a resource object (not resourceType).
func (s *scanner) resourceKey(ent *Entry, key string, kpos Position, d int) error {
	top := ent == s.cur
	switch {
	case key == "id":
		v, err := s.stringOrSkip(d)
		if err != nil {
			return err
		}
		ent.ID = v
		if !ValidID(v) {
			s.invalid(kpos, CodeInvalidID, "invalid resource id %q: ids are 1 to 64 letters, digits, '-' or '.'", truncate(v, 80))
		}
		return nil
	case key == "meta" && top:
		return s.meta(ent, d)
	case key == "identifier" && top:
		return s.identifiers(ent, d)
	case key == "contained":
		return s.contained(d)
	default:
		return s.value(d, key, false)
	}
}

func truncate(v string, n int) string {
	if len(v) <= n {
		return v
	}
	return v[:n] + "..."
}

func (s *scanner) meta(ent *Entry, depth int) error {
	if err := s.skipWS(); err != nil {
		return s.ioErr(err)
	}
	if s.buf[s.pos] != '{' {
		return s.value(depth, "meta", false)
	}
	d := depth + 1
	return s.members(d, func(key string, _ Position) error {
		var err error
		switch key {
		case "versionId":
			ent.VersionID, err = s.stringOrSkip(d)
		case "lastUpdated":
			ent.LastUpdated, err = s.stringOrSkip(d)
		default:
			err = s.value(d, key, false)
		}
		return err
	})
}

func (s *scanner) identifiers(ent *Entry, depth int) error {
	if err := s.skipWS(); err != nil {
		return s.ioErr(err)
	}
	if s.buf[s.pos] != '[' {
		return s.value(depth, "identifier", false)
	}
	d := depth + 2
	return s.elements(func() error {
		if s.buf[s.pos] != '{' {
			return s.value(depth+1, "", false)
		}
		var id Identifier
		err := s.members(d, func(key string, _ Position) error {
			var err error
			switch key {
			case "system":
				id.System, err = s.stringOrSkip(d)
			case "value":
				id.Value, err = s.stringOrSkip(d)
			default:
				err = s.value(d, key, false)
			}
			return err
		})
		if err == nil && id.Value != "" {
			ent.Identifiers = append(ent.Identifiers, id)
		}
		return err
	})
}

func (s *scanner) contained(depth int) error {
	if err := s.skipWS(); err != nil {
		return s.ioErr(err)
	}
	if s.buf[s.pos] != '[' {
		return s.value(depth, "contained", false)
	}
	return s.elements(func() error {
		if s.buf[s.pos] != '{' {
			s.invalid(s.here(), CodeNotAResource, "a contained resource must be an object")
			return s.value(depth+1, "", false)
		}
		if depth+2 > s.opt.MaxDepth {
			return s.value(depth+1, "", false)
		}
		p := s.here()
		var sub Entry
		if err := s.resourceObject(&sub, depth+1); err != nil {
			return err
		}
		switch {
		case sub.Type == "":
			s.invalid(p, CodeMissingResourceType, "a contained resource has no resourceType")
		case !KnownType(sub.Type):
			s.invalid(p, CodeUnknownResourceType, "unknown resourceType %q in a contained resource", truncate(sub.Type, 80))
		}
		return nil
	})
}

// finishResource checks the resource's type and id and hands it to the callback.
func (s *scanner) finishResource(ent *Entry, _ int) error {
	if s.capturing {
		ent.Raw = s.endCapture()
	}
	switch {
	case ent.Raw == nil && s.resErr == nil:
		s.invalid(ent.Pos, CodeTooLarge, "this resource is larger than %d MiB", s.opt.MaxResourceBytes>>20)
	case s.resErr != nil:
	case ent.Type == "":
		s.invalid(ent.Pos, CodeMissingResourceType, "this object has no resourceType, so it is not a FHIR resource")
	case !KnownType(ent.Type):
		s.invalid(ent.Pos, CodeUnknownResourceType, "unknown resourceType %q (not a FHIR R4 resource type)", truncate(ent.Type, 80))
	}
	if s.resErr != nil {
		return s.finishInvalid(ent)
	}
	return s.emit(ent)
}

func (s *scanner) finishInvalid(ent *Entry) error {
	e := s.resErr
	e.Resource = s.curName()
	s.resErr = nil
	if !s.opt.ContinueOnInvalid {
		return e
	}
	ent.Invalid = e
	return s.emit(ent)
}

func (s *scanner) emit(ent *Entry) error {
	s.count++
	if s.count%maxEntryEvery == 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	err := s.fn(ent)
	s.cur = nil
	return err
}

// --- generic values -------------------------------------------------------------------------

// pushKeys opens a key set for a new object; popKeys closes it.
func (s *scanner) pushKeys() {
	s.ksTop++
	if s.ksTop == len(s.keySets) {
		s.keySets = append(s.keySets, nil)
	}
	s.keySets[s.ksTop] = s.keySets[s.ksTop][:0]
}

func (s *scanner) popKeys() { s.ksTop-- }

// readKey reads `"key" :` and records the key for duplicate detection at depth d.
func (s *scanner) readKey(d int) (string, Position, error) {
	kpos := s.here()
	if s.buf[s.pos] != '"' {
		return "", kpos, s.fatal(CodeInvalidJSON, "expected a quoted key, found %s", describe(s.buf[s.pos]))
	}
	s.pos++
	key, err := s.str(true, "")
	if err != nil {
		return "", kpos, err
	}
	h := maphash.String(s.seed, key)
	for _, k := range s.keySets[s.ksTop] {
		if k == h {
			s.invalid(kpos, CodeDuplicateKey, "the key %q appears twice in the same object (duplicate keys are refused)", truncate(key, 80))
			if s.cur == nil {
				return "", kpos, &Error{Pos: kpos, Code: CodeDuplicateKey, Msg: fmt.Sprintf("the key %q appears twice in the same object", truncate(key, 80)), Fatal: true}
			}
			break
		}
	}
	s.keySets[s.ksTop] = append(s.keySets[s.ksTop], h)
	if err := s.skipWS(); err != nil {
		return "", kpos, s.ioErr(err)
	}
	if s.buf[s.pos] != ':' {
		return "", kpos, s.fatal(CodeInvalidJSON, "expected ':' after the key %q, found %s", truncate(key, 80), describe(s.buf[s.pos]))
	}
	s.pos++
	return key, kpos, nil
}

// stringValue reads a value that must be a string (resourceType).
func (s *scanner) stringValue() (string, error) {
	if err := s.skipWS(); err != nil {
		return "", s.ioErr(err)
	}
	if s.buf[s.pos] != '"' {
		p := s.here()
		s.invalid(p, CodeMissingResourceType, "resourceType must be a string")
		return "", s.value(1, "", false)
	}
	s.pos++
	return s.str(true, "")
}

// stringOrSkip reads a string value, or skips any other value and returns "".
func (s *scanner) stringOrSkip(depth int) (string, error) {
	if err := s.skipWS(); err != nil {
		return "", s.ioErr(err)
	}
	if s.buf[s.pos] != '"' {
		return "", s.value(depth, "", false)
	}
	s.pos++
	return s.str(true, "")
}

// value reads any JSON value at s.pos (after optional whitespace). depth is the depth of the
// enclosing container; key is the key this value belongs to ("" in arrays).
func (s *scanner) value(depth int, key string, _ bool) error {
	if err := s.skipWS(); err != nil {
		return s.ioErr(err)
	}
	c := s.buf[s.pos]
	switch {
	case c == '"':
		start := s.abs()
		s.pos++
		if key == "reference" && s.cur != nil && s.capturing {
			v, err := s.str(true, key)
			if err != nil {
				return err
			}
			s.cur.Refs = append(s.cur.Refs, Ref{Start: int(start - s.capBase), End: int(s.abs() - s.capBase), Value: v})
			return nil
		}
		_, err := s.str(false, key)
		return err
	case c == '{' || c == '[':
		if depth+1 > s.opt.MaxDepth {
			p := s.here()
			s.invalid(p, CodeTooDeep, "nested deeper than %d levels", s.opt.MaxDepth)
			if s.cur == nil {
				return &Error{Pos: p, Code: CodeTooDeep, Msg: fmt.Sprintf("nested deeper than %d levels", s.opt.MaxDepth), Fatal: true}
			}
			return s.skipDeep()
		}
		if c == '{' {
			return s.object(depth + 1)
		}
		return s.array(depth + 1)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	default:
		return s.fatal(CodeInvalidJSON, "unexpected %s where a value was expected", describe(c))
	}
}

func (s *scanner) object(d int) error {
	return s.members(d, func(key string, _ Position) error { return s.value(d, key, false) })
}

// members reads the object at s.pos ('{'), calling fn with each key once its ':' is consumed;
// fn reads the value. Keys are checked for duplicates.
func (s *scanner) members(d int, fn func(key string, kpos Position) error) error {
	s.pos++ // '{'
	s.pushKeys()
	first := true
	for {
		if err := s.skipWS(); err != nil {
			return s.ioErr(err)
		}
		if s.buf[s.pos] == '}' {
			s.pos++
			s.popKeys()
			return nil
		}
		if !first {
			if s.buf[s.pos] != ',' {
				return s.fatal(CodeInvalidJSON, "expected ',' or '}' in an object, found %s", describe(s.buf[s.pos]))
			}
			s.pos++
			if err := s.skipWS(); err != nil {
				return s.ioErr(err)
			}
		}
		first = false
		key, kpos, err := s.readKey(d)
		if err != nil {
			return err
		}
		if err := fn(key, kpos); err != nil {
			return err
		}
	}
}

// elements reads the array at s.pos ('['), calling fn at the start of each element (after
// whitespace); fn reads the element.
func (s *scanner) elements(fn func() error) error {
	s.pos++ // '['
	first := true
	for {
		if err := s.skipWS(); err != nil {
			return s.ioErr(err)
		}
		if s.buf[s.pos] == ']' {
			s.pos++
			return nil
		}
		if !first {
			if s.buf[s.pos] != ',' {
				return s.fatal(CodeInvalidJSON, "expected ',' or ']' in an array, found %s", describe(s.buf[s.pos]))
			}
			s.pos++
			if err := s.skipWS(); err != nil {
				return s.ioErr(err)
			}
		}
		first = false
		if err := fn(); err != nil {
			return err
		}
	}
}

func (s *scanner) array(d int) error {
	return s.elements(func() error { return s.value(d, "", false) })
}

// skipDeep skips a value nested too deeply, without recursion, still checking the syntax.
func (s *scanner) skipDeep() error {
	var stack []byte
	expectValue := true
	for {
		if err := s.skipWS(); err != nil {
			return s.ioErr(err)
		}
		c := s.buf[s.pos]
		if expectValue {
			switch {
			case c == '{':
				stack = append(stack, '}')
				s.pos++
				if err := s.skipWS(); err != nil {
					return s.ioErr(err)
				}
				if s.buf[s.pos] == '}' {
					continue // handled as a closer below
				}
				if s.buf[s.pos] != '"' {
					return s.fatal(CodeInvalidJSON, "expected a quoted key, found %s", describe(s.buf[s.pos]))
				}
				s.pos++
				if _, err := s.str(false, ""); err != nil {
					return err
				}
				if err := s.skipWS(); err != nil {
					return s.ioErr(err)
				}
				if s.buf[s.pos] != ':' {
					return s.fatal(CodeInvalidJSON, "expected ':' after a key, found %s", describe(s.buf[s.pos]))
				}
				s.pos++
				continue
			case c == '[':
				stack = append(stack, ']')
				s.pos++
				if err := s.skipWS(); err != nil {
					return s.ioErr(err)
				}
				if s.buf[s.pos] == ']' {
					expectValue = false
				}
				continue
			case c == '}' && len(stack) > 0 && stack[len(stack)-1] == '}':
				// empty object
			default:
				if err := s.value(0, "", false); err != nil {
					return err
				}
				expectValue = false
				if len(stack) == 0 {
					return nil
				}
				continue
			}
		}
		// after a value: ',' or the closer
		if len(stack) == 0 {
			return nil
		}
		top := stack[len(stack)-1]
		switch {
		case c == top:
			s.pos++
			stack = stack[:len(stack)-1]
			expectValue = false
			if len(stack) == 0 {
				return nil
			}
		case c == ',':
			s.pos++
			expectValue = true
			if top == '}' {
				if err := s.skipWS(); err != nil {
					return s.ioErr(err)
				}
				if s.buf[s.pos] != '"' {
					return s.fatal(CodeInvalidJSON, "expected a quoted key, found %s", describe(s.buf[s.pos]))
				}
				s.pos++
				if _, err := s.str(false, ""); err != nil {
					return err
				}
				if err := s.skipWS(); err != nil {
					return s.ioErr(err)
				}
				if s.buf[s.pos] != ':' {
					return s.fatal(CodeInvalidJSON, "expected ':' after a key, found %s", describe(s.buf[s.pos]))
				}
				s.pos++
			}
		default:
			return s.fatal(CodeInvalidJSON, "expected ',' or '%c', found %s", top, describe(c))
		}
	}
}

func (s *scanner) literal(lit string) error {
	if err := s.ensure(len(lit)); err != nil && err != io.EOF {
		return s.ioErr(err)
	}
	if s.end-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.fatal(CodeInvalidJSON, "invalid literal: expected %s", lit)
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) number() error {
	// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
	start := s.here()
	var lit []byte // the number as written, for the range check (numbers are short)
	long := false
	next := func() (byte, bool) {
		if s.pos >= s.end {
			if err := s.fill(); err != nil {
				return 0, false
			}
		}
		return s.buf[s.pos], true
	}
	adv := func() {
		if len(lit) < maxNumberLen {
			lit = append(lit, s.buf[s.pos])
		} else {
			long = true
		}
		s.pos++
	}
	digits := func() int {
		n := 0
		for {
			c, ok := next()
			if !ok || c < '0' || c > '9' {
				return n
			}
			adv()
			n++
		}
	}
	bad := func() error {
		return &Error{Pos: start, Code: CodeInvalidJSON, Msg: "invalid number", Fatal: true, Resource: s.curName()}
	}
	if c, _ := next(); c == '-' {
		adv()
	}
	c, ok := next()
	if !ok {
		return bad()
	}
	if c == '0' {
		adv()
	} else if digits() == 0 {
		return bad()
	}
	if c, ok := next(); ok && c == '.' {
		adv()
		if digits() == 0 {
			return bad()
		}
	}
	if c, ok := next(); ok && (c == 'e' || c == 'E') {
		adv()
		if c, ok := next(); ok && (c == '+' || c == '-') {
			adv()
		}
		if digits() == 0 {
			return bad()
		}
	}
	// A number no 64-bit float can hold (1e999999) is refused: stored and served back, it would
	// break every reader downstream.
	switch {
	case long:
		s.invalid(start, CodeNumberRange, "a number of more than %d characters is not accepted", maxNumberLen)
	default:
		if f, err := strconv.ParseFloat(string(lit), 64); err != nil && (math.IsInf(f, 0) || errors.Is(err, strconv.ErrSyntax)) {
			s.invalid(start, CodeNumberRange, "the number %.40s is out of range (too large for a 64-bit number)", lit)
		}
	}
	return nil
}

// maxNumberLen bounds a JSON number's length (FHIR decimals have at most 18 significant digits).
const maxNumberLen = 256

// str reads the rest of a string after its opening quote; it decodes the value when keep is
// true. key decides the length limit (base64 "data" is exempt).
func (s *scanner) str(keep bool, key string) (string, error) {
	start := s.here()
	var out []byte
	n := 0
	for {
		if s.pos >= s.end {
			if err := s.fill(); err != nil {
				if err == io.EOF {
					return "", &Error{Pos: start, Code: CodeInvalidJSON, Msg: "a string is not closed before the end of the file (truncated?)", Fatal: true, Resource: s.curName()}
				}
				return "", s.ioErr(err)
			}
		}
		// Fast path over plain ASCII.
		i := s.pos
		buf := s.buf[:s.end]
		for i < len(buf) {
			c := buf[i]
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				break
			}
			i++
		}
		if keep {
			out = append(out, buf[s.pos:i]...)
		}
		n += i - s.pos
		s.pos = i
		if i == len(buf) {
			continue
		}
		c := buf[i]
		switch {
		case c == '"':
			s.pos++
			if n > s.opt.MaxStringBytes && key != "data" && s.cur != nil {
				s.invalid(start, CodeTooLarge, "a text value is %d bytes long; FHIR strings are limited to %d bytes", n, s.opt.MaxStringBytes)
			}
			return string(out), nil
		case c == '\\':
			if err := s.ensure(2); err != nil && err != io.EOF {
				return "", s.ioErr(err)
			}
			if s.end-s.pos < 2 {
				return "", s.fatal(CodeInvalidJSON, "the file ends inside an escape sequence")
			}
			e := s.buf[s.pos+1]
			var r rune = -1
			switch e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				if err := s.ensure(6); err != nil && err != io.EOF {
					return "", s.ioErr(err)
				}
				if s.end-s.pos < 6 {
					return "", s.fatal(CodeInvalidJSON, "the file ends inside a \\u escape")
				}
				v, err := strconv.ParseUint(string(s.buf[s.pos+2:s.pos+6]), 16, 16)
				if err != nil {
					return "", s.fatal(CodeInvalidJSON, "invalid \\u escape %q", s.buf[s.pos:s.pos+6])
				}
				if keep {
					out = utf8.AppendRune(out, rune(v)) // lone surrogates become U+FFFD, as encoding/json does
				}
				s.pos += 6
				n++
				continue
			default:
				return "", s.fatal(CodeInvalidJSON, "invalid escape sequence \\%c in a string", e)
			}
			if keep {
				out = append(out, byte(r))
			}
			s.pos += 2
			n++
		case c < 0x20:
			return "", s.fatal(CodeInvalidJSON, "a raw control character (byte 0x%02x) inside a string; it must be escaped", c)
		default:
			if err := s.ensure(utf8.UTFMax); err != nil && err != io.EOF {
				return "", s.ioErr(err)
			}
			r, size := utf8.DecodeRune(s.buf[s.pos:s.end])
			if r == utf8.RuneError && size <= 1 {
				return "", s.fatal(CodeInvalidUTF8, "invalid UTF-8 byte 0x%02x in a string (is the file in another encoding, such as Latin-1?)", s.buf[s.pos])
			}
			if keep {
				out = append(out, s.buf[s.pos:s.pos+size]...)
			}
			s.pos += size
			n += size
		}
	}
}

// --- the lexer: buffered reading with positions and capture ---------------------------------

type lexer struct {
	r         io.Reader
	buf       []byte
	pos, end  int
	off       int64 // absolute offset of buf[0]
	line      int
	lineStart int64
	eof       bool
	rerr      error

	capturing bool
	capStart  int
	capBuf    []byte
	capLimit  int
	capOver   bool
}

func (l *lexer) abs() int64 { return l.off + int64(l.pos) }

// fill reads more input, keeping unread bytes (and captured bytes) safe. It returns io.EOF when
// nothing more can be read.
func (l *lexer) fill() error {
	if l.eof {
		if l.rerr != nil {
			return l.rerr
		}
		return io.EOF
	}
	if l.capturing {
		l.flushCapture()
		l.capStart = 0
	}
	// Move the unread tail to the front.
	n := copy(l.buf, l.buf[l.pos:l.end])
	l.off += int64(l.pos)
	l.pos, l.end = 0, n
	for l.end < len(l.buf) {
		m, err := l.r.Read(l.buf[l.end:])
		l.end += m
		if err != nil {
			l.eof = true
			if err != io.EOF {
				l.rerr = err
			}
			break
		}
		if m > 0 {
			break
		}
	}
	if l.end > l.pos {
		return nil
	}
	if l.rerr != nil {
		return l.rerr
	}
	return io.EOF
}

// ensure tries to have at least n unread bytes buffered.
func (l *lexer) ensure(n int) error {
	for l.end-l.pos < n {
		before := l.end - l.pos
		if err := l.fill(); err != nil {
			return err
		}
		if l.end-l.pos == before {
			return io.EOF
		}
	}
	return nil
}

// skipWS skips whitespace, counting lines. It returns io.EOF at the end of input.
func (l *lexer) skipWS() error {
	for {
		for l.pos < l.end {
			switch l.buf[l.pos] {
			case ' ', '\t', '\r':
				l.pos++
			case '\n':
				l.pos++
				l.line++
				l.lineStart = l.abs()
			default:
				return nil
			}
		}
		if err := l.fill(); err != nil {
			return err
		}
	}
}

func (l *lexer) startCapture() {
	l.capturing = true
	l.capStart = l.pos
	l.capBuf = l.capBuf[:0]
	l.capOver = false
}

func (l *lexer) flushCapture() {
	if l.capOver {
		return
	}
	l.capBuf = append(l.capBuf, l.buf[l.capStart:l.pos]...)
	if l.capLimit > 0 && len(l.capBuf) > l.capLimit {
		l.capOver = true
		l.capBuf = l.capBuf[:0]
	}
}

func (l *lexer) dropCapture() {
	l.capturing = false
	l.capBuf = l.capBuf[:0]
}

// endCapture stops capturing and returns the captured bytes (valid until the next capture), or
// nil when the capture went over its limit.
func (l *lexer) endCapture() []byte {
	if !l.capturing {
		return nil
	}
	l.flushCapture()
	l.capturing = false
	if l.capOver {
		return nil
	}
	return l.capBuf
}
