package fhir

import (
	"encoding/json"
	"net/url"
	"strings"
)

// RewriteRefs returns raw with every reference that resolve maps to a new value replaced. When
// nothing changes it returns raw itself (no copy).
func RewriteRefs(raw []byte, refs []Ref, resolve func(string) (string, bool)) []byte {
	var out []byte
	last := 0
	for _, r := range refs {
		nv, ok := resolve(r.Value)
		if !ok || nv == r.Value {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(raw)+16)
		}
		out = append(out, raw[last:r.Start]...)
		enc, _ := json.Marshal(nv)
		out = append(out, enc...)
		last = r.End
	}
	if out == nil {
		return raw
	}
	return append(out, raw[last:]...)
}

// ParseConditional reads a conditional reference such as
// `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999` (values may be URL-encoded).
// Only a single `identifier` criterion is understood.
func ParseConditional(ref string) (typ, system, value string, ok bool) {
	typ, query, found := strings.Cut(ref, "?")
	if !found || !KnownType(typ) {
		return "", "", "", false
	}
	q, err := url.ParseQuery(strings.ReplaceAll(query, "+", "%2B"))
	if err != nil || len(q) != 1 || len(q["identifier"]) != 1 {
		return "", "", "", false
	}
	id := q["identifier"][0]
	if sys, val, hasSys := strings.Cut(id, "|"); hasSys {
		return typ, sys, val, val != ""
	}
	return typ, "", id, id != ""
}

// IdentifierKey is the lookup key for a conditional reference's target.
func IdentifierKey(typ, system, value string) string {
	return typ + "\x00" + system + "\x00" + value
}

// LocalRef splits a relative reference "Type/id" (optionally with /_history/v).
func LocalRef(ref string) (typ, id string, ok bool) {
	typ, rest, found := strings.Cut(ref, "/")
	if !found || !KnownType(typ) {
		return "", "", false
	}
	id, _, _ = strings.Cut(rest, "/")
	return typ, id, ValidID(id)
}
