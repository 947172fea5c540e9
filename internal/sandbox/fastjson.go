package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The loader works on raw bytes (compact, scan, splice) rather than decoding every resource
// into maps: it keeps the Synthea key order and is several times faster, which matters for
// tests that run under the race detector.

var errSyntax = errors.New("malformed JSON")

// compactJSON removes insignificant whitespace, checking that strings are terminated and
// brackets balance. Other syntax is checked by scanning later.
func compactJSON(src []byte) ([]byte, error) {
	dst := make([]byte, 0, len(src))
	var stack []byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			end := stringEnd(src, i)
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated string at byte %d", errSyntax, i)
			}
			dst = append(dst, src[i:end+1]...)
			i = end
			continue
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return nil, fmt.Errorf("%w: unbalanced %q at byte %d", errSyntax, c, i)
			}
			stack = stack[:len(stack)-1]
		}
		dst = append(dst, c)
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("%w: unexpected end of input", errSyntax)
	}
	return dst, nil
}

// stringEnd returns the index of the quote closing the JSON string that opens at b[i], or -1.
// It finds quotes with bytes.IndexByte (fast, also under the race detector) and skips the
// escaped ones.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		j = q + 1
	}
}

// skipValue returns the index just past the JSON value starting at b[i] (compact JSON).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		end := stringEnd(b, i)
		if end < 0 {
			return 0, errSyntax
		}
		return end + 1, nil
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := stringEnd(b, j)
				if end < 0 {
					return 0, errSyntax
				}
				j = end
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// forEachMember calls fn for every member of the compact JSON object b[start:]: its key (as
// raw bytes between the quotes) and the value span. fn returns false to stop.
func forEachMember(b []byte, fn func(key []byte, valStart, valEnd int) bool) error {
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("%w: not an object", errSyntax)
	}
	i := 1
	if b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errSyntax
		}
		kEnd, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if kEnd >= len(b) || b[kEnd] != ':' {
			return errSyntax
		}
		vEnd, err := skipValue(b, kEnd+1)
		if err != nil {
			return err
		}
		if !fn(b[i+1:kEnd-1], kEnd+1, vEnd) {
			return nil
		}
		if vEnd >= len(b) {
			return errSyntax
		}
		switch b[vEnd] {
		case ',':
			i = vEnd + 1
		case '}':
			return nil
		default:
			return errSyntax
		}
	}
}

// forEachElement calls fn for every element span of the compact JSON array b.
func forEachElement(b []byte, fn func(start, end int) error) error {
	if len(b) < 2 || b[0] != '[' {
		return fmt.Errorf("%w: not an array", errSyntax)
	}
	i := 1
	if b[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(i, end); err != nil {
			return err
		}
		if end >= len(b) {
			return errSyntax
		}
		switch b[end] {
		case ',':
			i = end + 1
		case ']':
			return nil
		default:
			return errSyntax
		}
	}
}

func stringValue(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b[1 : len(b)-1]), true
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return "", false
	}
	return s, true
}

// rawEntry is one bundle entry found by scanning.
type rawEntry struct {
	fullURL string
	typ, id string
	raw     []byte // compact resource JSON
	metaAt  [2]int // span of the top-level meta value, or {-1,-1}
	idEnd   int    // end of the top-level id member value
}

// scanBundle returns the entries of a compact Bundle.
func scanBundle(b []byte) ([]rawEntry, error) {
	var entrySpan [2]int
	isBundle := false
	err := forEachMember(b, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case "resourceType":
			s, _ := stringValue(b[vs:ve])
			isBundle = s == "Bundle"
		case "entry":
			entrySpan = [2]int{vs, ve}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if !isBundle {
		return nil, fmt.Errorf("not a Bundle")
	}
	if entrySpan[1] == 0 {
		return nil, nil
	}
	var out []rawEntry
	arr := b[entrySpan[0]:entrySpan[1]]
	err = forEachElement(arr, func(start, end int) error {
		e := rawEntry{}
		el := arr[start:end]
		var resSpan [2]int
		if err := forEachMember(el, func(key []byte, vs, ve int) bool {
			switch string(key) {
			case "fullUrl":
				e.fullURL, _ = stringValue(el[vs:ve])
			case "resource":
				resSpan = [2]int{vs, ve}
			}
			return true
		}); err != nil {
			return fmt.Errorf("entry %d: %w", len(out), err)
		}
		if resSpan[1] == 0 {
			return fmt.Errorf("entry %d: no resource", len(out))
		}
		e.raw = el[resSpan[0]:resSpan[1]]
		if err := scanResourceHead(&e); err != nil {
			return fmt.Errorf("entry %d: %w", len(out), err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// scanResourceHead fills typ, id, metaAt and idEnd from e.raw.
func scanResourceHead(e *rawEntry) error {
	e.metaAt = [2]int{-1, -1}
	b := e.raw
	err := forEachMember(b, func(key []byte, vs, ve int) bool {
		switch string(key) {
		case "resourceType":
			e.typ, _ = stringValue(b[vs:ve])
		case "id":
			e.id, _ = stringValue(b[vs:ve])
			e.idEnd = ve
		case "meta":
			e.metaAt = [2]int{vs, ve}
		}
		return true
	})
	if err != nil {
		return err
	}
	if !validType(e.typ) || !validID(e.id) {
		return fmt.Errorf("missing resourceType or bad id")
	}
	return nil
}

var refPrefix = []byte(`"reference":"urn:uuid:`)

// finishRaw resolves `urn:uuid:` references and stamps meta.versionId "1" and
// meta.lastUpdated into a scanned resource, keeping its key order. ok is false when the
// resource needs the slow path (meta already has versionId or lastUpdated, or is no object).
func finishRaw(e *rawEntry, resolve func(string) (string, bool), lastUpdated string) (out []byte, ok bool) {
	b := e.raw
	stamp := `"versionId":"1","lastUpdated":"` + lastUpdated + `"`
	insertAt, insert := -1, ""
	if e.metaAt[0] >= 0 {
		meta := b[e.metaAt[0]:e.metaAt[1]]
		if len(meta) < 2 || meta[0] != '{' {
			return nil, false
		}
		clash := false
		if forEachMember(meta, func(key []byte, _, _ int) bool {
			if k := string(key); k == "versionId" || k == "lastUpdated" {
				clash = true
			}
			return !clash
		}) != nil || clash {
			return nil, false
		}
		insertAt = e.metaAt[0] + 1
		insert = stamp
		if len(meta) > 2 {
			insert += ","
		}
	} else {
		insertAt = e.idEnd
		insert = `,"meta":{` + stamp + `}`
	}
	out = make([]byte, 0, len(b)+len(insert)+64)
	last := 0
	emit := func(upTo int) {
		if insertAt >= last && insertAt <= upTo {
			out = append(out, b[last:insertAt]...)
			out = append(out, insert...)
			last = insertAt
			insertAt = -2
		}
		out = append(out, b[last:upTo]...)
		last = upTo
	}
	for from := 0; ; {
		k := bytes.Index(b[from:], refPrefix)
		if k < 0 {
			break
		}
		valStart := from + k + len(`"reference":`) // at the opening quote
		end := bytes.IndexByte(b[valStart+1:], '"')
		if end < 0 {
			break
		}
		valEnd := valStart + 1 + end // the closing quote
		from = valEnd
		ref := string(b[valStart+1 : valEnd])
		if bytes.IndexByte([]byte(ref), '\\') >= 0 {
			continue
		}
		target, found := resolve(ref)
		if !found {
			continue
		}
		emit(valStart + 1)
		out = append(out, target...)
		last = valEnd
	}
	emit(len(b))
	return out, true
}
