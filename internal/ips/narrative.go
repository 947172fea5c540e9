package ips

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The narrative of each section: a table a doctor can read without the coded data. The printable
// summary in the app shows these same tables.

func sectionTable(s Section, rs []rec, d *doc) string {
	var head []string
	switch s.Key {
	case Problems, PastIllness:
		head = []string{"Problem", "Since", "Status"}
	case Medications:
		head = []string{"Medication", "Dose", "Since", "Status"}
	case Allergies:
		head = []string{"Substance", "Criticality", "Reaction", "Status"}
	case Immunizations:
		head = []string{"Vaccine", "Date"}
	case Results, VitalSigns:
		head = []string{"Test", "Value", "Flag", "Date"}
	case Procedures:
		head = []string{"Procedure", "Date"}
	case Implants:
		head = []string{"Device", "Status"}
	case CarePlans:
		head = []string{"Plan", "Since"}
	}
	var b strings.Builder
	b.WriteString(`<table><thead><tr>`)
	for _, h := range head {
		b.WriteString(`<th>` + html.EscapeString(h) + `</th>`)
	}
	b.WriteString(`</tr></thead><tbody>`)
	for _, r := range rs {
		b.WriteString(`<tr>`)
		cells := row(s, r, d)
		if selfEntered(r.res) {
			cells[0] += " (entered by the patient)"
		}
		for _, c := range cells {
			b.WriteString(`<td>` + html.EscapeString(c) + `</td>`)
		}
		b.WriteString(`</tr>`)
	}
	b.WriteString(`</tbody></table>`)
	return b.String()
}

func row(s Section, r rec, d *doc) []string {
	m := r.res
	name := conceptText(m["code"])
	if name == "" {
		name = r.item.Title
	}
	switch s.Key {
	case Problems, PastIllness:
		return []string{name, day(firstOf(m, "onsetDateTime", "recordedDate")), conceptCode(m, "clinicalStatus")}
	case Medications:
		med := conceptText(m["medicationCodeableConcept"])
		if med == "" {
			if ref, ok := m["medicationReference"].(map[string]any); ok {
				if u, _ := ref["reference"].(string); u != "" {
					for _, e := range d.entries {
						if e.url == u {
							med = conceptText(e.res["code"])
						}
					}
				}
				if med == "" {
					med, _ = ref["display"].(string)
				}
			}
		}
		if med == "" {
			med = r.item.Title
		}
		return []string{med, dose(m), day(firstOf(m, "authoredOn", "effectiveDateTime", "dateAsserted")), str(m, "status")}
	case Allergies:
		var reactions []string
		if rs, ok := m["reaction"].([]any); ok {
			for _, x := range rs {
				rm, _ := x.(map[string]any)
				if ms, ok := rm["manifestation"].([]any); ok {
					for _, mm := range ms {
						if t := conceptText(mm); t != "" {
							reactions = append(reactions, t)
						}
					}
				}
			}
		}
		crit, _ := m["criticality"].(string)
		status := conceptCode(m, "clinicalStatus")
		if status == "" {
			status = "active"
		}
		return []string{name, crit, strings.Join(reactions, ", "), status}
	case Immunizations:
		v := conceptText(m["vaccineCode"])
		if v == "" {
			v = r.item.Title
		}
		return []string{v, day(firstOf(m, "occurrenceDateTime", "occurrenceString", "recorded"))}
	case Results, VitalSigns:
		return []string{name, value(m), Flag(m), day(firstOf(m, "effectiveDateTime", "issued"))}
	case Procedures:
		return []string{name, day(firstOf(m, "performedDateTime")) + periodStart(m, "performedPeriod")}
	case Implants:
		t := conceptText(m["type"])
		if t == "" {
			t = r.item.Title
		}
		return []string{t, str(m, "status")}
	case CarePlans:
		t, _ := m["title"].(string)
		if t == "" {
			if cats, ok := m["category"].([]any); ok && len(cats) > 0 {
				t = conceptText(cats[0])
			}
		}
		if t == "" {
			t = r.item.Title
		}
		return []string{t, periodStart(m, "period")}
	}
	return []string{name}
}

func firstOf(m map[string]any, fields ...string) string {
	for _, f := range fields {
		if s, _ := m[f].(string); s != "" {
			return s
		}
	}
	return ""
}

func periodStart(m map[string]any, field string) string {
	p, _ := m[field].(map[string]any)
	if p == nil {
		return ""
	}
	s, _ := p["start"].(string)
	return day(s)
}

func day(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func conceptText(v any) string {
	c, _ := v.(map[string]any)
	if c == nil {
		return ""
	}
	if t, _ := c["text"].(string); t != "" {
		return t
	}
	if codings, ok := c["coding"].([]any); ok {
		for _, x := range codings {
			cm, _ := x.(map[string]any)
			if d, _ := cm["display"].(string); d != "" {
				return d
			}
		}
		for _, x := range codings {
			cm, _ := x.(map[string]any)
			if d, _ := cm["code"].(string); d != "" {
				return d
			}
		}
	}
	return ""
}

func num(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func quantity(v any) string {
	q, _ := v.(map[string]any)
	if q == nil {
		return ""
	}
	n, ok := num(q["value"])
	if !ok {
		return ""
	}
	code, _ := q["code"].(string)
	unit, _ := q["unit"].(string)
	if unit == "" {
		unit = code
	}
	if code == "" {
		code = unit
	}
	return strings.TrimSpace(roundFor(n, code) + " " + unitText(unit))
}

// roundFor shows a measured value as a person would write it: whole mmHg and beats per minute,
// otherwise four significant digits and at most two decimals (the coded value keeps them all).
func roundFor(v float64, unit string) string {
	switch unit {
	case "mm[Hg]", "mmHg", "/min", "{beats}/min", "{breaths}/min":
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	if v == 0 {
		return "0"
	}
	digits := 4 - int(math.Floor(math.Log10(math.Abs(v)))) - 1
	digits = max(0, min(digits, 2))
	p := math.Pow(10, float64(digits))
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}

// unitText is a UCUM unit as people read it.
func unitText(u string) string {
	switch u {
	case "mm[Hg]":
		return "mmHg"
	case "Cel":
		return "°C"
	case "[degF]":
		return "°F"
	case "[lb_av]":
		return "lb"
	case "[in_i]":
		return "in"
	case "kg/m2":
		return "kg/m²"
	case "10*3/uL":
		return "×10³/µL"
	case "10*6/uL":
		return "×10⁶/µL"
	case "10*9/L":
		return "×10⁹/L"
	case "10*12/L":
		return "×10¹²/L"
	case "{score}", "1", "{count}":
		return ""
	}
	if strings.HasPrefix(u, "{") && strings.HasSuffix(u, "}") {
		return strings.Trim(u, "{}")
	}
	return strings.ReplaceAll(u, "uL", "µL")
}

// value is an Observation's value as text (components joined, "120/80 mmHg" for blood pressure).
func value(m map[string]any) string {
	if s := quantity(m["valueQuantity"]); s != "" {
		return s
	}
	if s := conceptText(m["valueCodeableConcept"]); s != "" {
		return s
	}
	if s, _ := m["valueString"].(string); s != "" {
		return s
	}
	if b, ok := m["valueBoolean"].(bool); ok {
		return strconv.FormatBool(b)
	}
	comps, _ := m["component"].([]any)
	var sys, dia string
	var parts []string
	for _, c := range comps {
		cm, _ := c.(map[string]any)
		code := str(cm, "code", "coding", "code")
		v := quantity(cm["valueQuantity"])
		switch code {
		case "8480-6":
			sys = v
		case "8462-4":
			dia = v
		}
		if v != "" {
			parts = append(parts, conceptText(cm["code"])+" "+v)
		}
	}
	if sys != "" && dia != "" {
		s := strings.Fields(sys)
		dd := strings.Fields(dia)
		unit := ""
		if len(dd) > 1 {
			unit = " " + strings.Join(dd[1:], " ")
		}
		return s[0] + "/" + dd[0] + unit
	}
	return strings.Join(parts, "; ")
}

// Flag is an Observation's interpretation (H, L, A...), else one worked out from its reference
// range, else "".
func Flag(m map[string]any) string {
	if in, ok := m["interpretation"].([]any); ok && len(in) > 0 {
		if c := str(map[string]any{"x": in}, "x", "coding", "code"); c != "" && c != "N" {
			return c
		}
		if c := conceptText(in[0]); c != "" && !strings.EqualFold(c, "normal") && c != "N" {
			return c
		}
		return ""
	}
	q, _ := m["valueQuantity"].(map[string]any)
	v, ok := num(q["value"])
	if !ok {
		return ""
	}
	rr, _ := m["referenceRange"].([]any)
	if len(rr) == 0 {
		return ""
	}
	r0, _ := rr[0].(map[string]any)
	if lo, ok := num(mapOf(r0["low"])["value"]); ok && v < lo {
		return "L"
	}
	if hi, ok := num(mapOf(r0["high"])["value"]); ok && v > hi {
		return "H"
	}
	return ""
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

// dose is a medication's dosage as text.
func dose(m map[string]any) string {
	var ds []any
	if x, ok := m["dosageInstruction"].([]any); ok {
		ds = x
	} else if x, ok := m["dosage"].([]any); ok {
		ds = x
	}
	if len(ds) == 0 {
		return ""
	}
	d0, _ := ds[0].(map[string]any)
	if t, _ := d0["text"].(string); t != "" {
		return t
	}
	var parts []string
	if dr, ok := d0["doseAndRate"].([]any); ok && len(dr) > 0 {
		drm, _ := dr[0].(map[string]any)
		if q := quantity(drm["doseQuantity"]); q != "" {
			parts = append(parts, q)
		} else if dq, ok := drm["doseQuantity"].(map[string]any); ok {
			if n, ok := num(dq["value"]); ok {
				parts = append(parts, fmtNum(n))
			}
		}
	}
	rep := mapOf(mapOf(d0["timing"])["repeat"])
	if f, ok := num(rep["frequency"]); ok {
		p, _ := num(rep["period"])
		unit, _ := rep["periodUnit"].(string)
		names := map[string]string{"s": "second", "min": "minute", "h": "hour", "d": "day", "wk": "week", "mo": "month", "a": "year"}
		per := names[unit]
		if per == "" {
			per = unit
		}
		if p > 1 {
			per = fmtNum(p) + " " + per + "s"
		}
		times := "times"
		if f == 1 {
			times = "time"
		}
		parts = append(parts, fmt.Sprintf("%s %s per %s", fmtNum(f), times, per))
	}
	if b, _ := d0["asNeededBoolean"].(bool); b {
		parts = append(parts, "as needed")
	}
	return strings.Join(parts, ", ")
}

// selfEntered reports whether the person recorded this themselves (internal/own's tag).
func selfEntered(m map[string]any) bool {
	tags, _ := mapOf(m["meta"])["tag"].([]any)
	for _, t := range tags {
		tm := mapOf(t)
		if tm["system"] == "https://fastenhealth.com/fasten-desktop/tags" && tm["code"] == "self-entered" {
			return true
		}
	}
	return false
}
