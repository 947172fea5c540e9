package own

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// FieldError is invalid input: answered as a 400 OperationOutcome whose location names the field
// (a FHIRPath such as "Observation.valueQuantity.unit").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string           { return e.Msg }
func (e *FieldError) HTTPStatus() int         { return http.StatusBadRequest }
func (e *FieldError) ErrorCode() string       { return "invalid_resource" }
func (e *FieldError) OutcomeLocation() string { return e.Field }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Systems.
const (
	LOINC = "http://loinc.org"
	UCUM  = "http://unitsofmeasure.org"
)

// Measurement is one kind of measurement a person can enter.
type Measurement struct {
	Code, Display string
	Category      string
	Units         []string // UCUM codes accepted
	Min, Max      float64  // plausible values (in any accepted unit)
}

// Measurements are the LOINC-coded measurements a person can enter.
var Measurements = map[string]Measurement{
	"29463-7": {Code: "29463-7", Display: "Body weight", Category: "vital-signs", Units: []string{"kg", "g", "[lb_av]"}, Min: 0.2, Max: 700000},
	"8302-2":  {Code: "8302-2", Display: "Body height", Category: "vital-signs", Units: []string{"cm", "m", "[in_i]"}, Min: 0.2, Max: 300},
	"85354-9": {Code: "85354-9", Display: "Blood pressure panel with all children optional", Category: "vital-signs"},
	"2339-0":  {Code: "2339-0", Display: "Glucose [Mass/volume] in Blood", Category: "laboratory", Units: []string{"mg/dL", "mmol/L"}, Min: 0.1, Max: 3000},
	"8310-5":  {Code: "8310-5", Display: "Body temperature", Category: "vital-signs", Units: []string{"Cel", "[degF]"}, Min: 20, Max: 115},
	"8867-4":  {Code: "8867-4", Display: "Heart rate", Category: "vital-signs", Units: []string{"/min"}, Min: 1, Max: 400},
}

// Blood pressure components.
var bpComponents = []struct{ code, display string }{
	{"8480-6", "Systolic blood pressure"},
	{"8462-4", "Diastolic blood pressure"},
}

// Types a person can enter.
var Types = []string{"Observation", "Condition", "MedicationStatement", "AllergyIntolerance", "Immunization", "DocumentReference"}

func enterable(t string) bool {
	for _, x := range Types {
		if x == t {
			return true
		}
	}
	return false
}

func obj(m map[string]any, k string) map[string]any { v, _ := m[k].(map[string]any); return v }

func arr(m map[string]any, k string) []any { v, _ := m[k].([]any); return v }

func strOf(m map[string]any, k string) string { v, _ := m[k].(string); return v }

// concept checks a CodeableConcept that must say something (a coding with a code, or text).
func concept(m map[string]any, typ, field string, required bool) error {
	v, present := m[field]
	if !present {
		if required {
			return fieldErr(typ+"."+field, "%s.%s is required.", typ, field)
		}
		return nil
	}
	c, ok := v.(map[string]any)
	if !ok {
		return fieldErr(typ+"."+field, "%s.%s must be a CodeableConcept (an object with coding or text).", typ, field)
	}
	if strings.TrimSpace(strOf(c, "text")) != "" {
		return nil
	}
	for i, x := range arr(c, "coding") {
		cd, _ := x.(map[string]any)
		if cd == nil || strOf(cd, "code") == "" {
			return fieldErr(fmt.Sprintf("%s.%s.coding[%d].code", typ, field, i), "%s.%s.coding[%d] needs a code.", typ, field, i)
		}
		return nil
	}
	return fieldErr(typ+"."+field, "%s.%s needs a coding or a text.", typ, field)
}

func oneOf(m map[string]any, typ, field string, required bool, allowed ...string) error {
	v, present := m[field]
	if !present {
		if required {
			return fieldErr(typ+"."+field, "%s.%s is required (one of %s).", typ, field, strings.Join(allowed, ", "))
		}
		return nil
	}
	s, _ := v.(string)
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fieldErr(typ+"."+field, "%s.%s must be one of %s.", typ, field, strings.Join(allowed, ", "))
}

// dateTime checks a FHIR date or dateTime that is not in the future (a day of slack for zones).
func dateTime(m map[string]any, typ, field string, required bool, now time.Time) error {
	v, present := m[field]
	if !present {
		if required {
			return fieldErr(typ+"."+field, "%s.%s is required (a date such as 2024-05-31 or 2024-05-31T08:30:00+02:00).", typ, field)
		}
		return nil
	}
	s, _ := v.(string)
	var t time.Time
	var err error
	switch len(s) {
	case 4:
		t, err = time.Parse("2006", s)
	case 7:
		t, err = time.Parse("2006-01", s)
	case 10:
		t, err = time.Parse("2006-01-02", s)
	default:
		t, err = time.Parse(time.RFC3339, s)
	}
	if err != nil {
		return fieldErr(typ+"."+field, "%s.%s is not a date: use 2024-05-31 or 2024-05-31T08:30:00+02:00.", typ, field)
	}
	if t.After(now.Add(36 * time.Hour)) {
		return fieldErr(typ+"."+field, "%s.%s is in the future.", typ, field)
	}
	if t.Year() < 1850 {
		return fieldErr(typ+"."+field, "%s.%s is before 1850.", typ, field)
	}
	return nil
}

// quantity checks a UCUM Quantity with one of the given units.
func quantity(q map[string]any, path string, units []string, lo, hi float64) error {
	if q == nil {
		return fieldErr(path, "%s is required: a value with a unit.", path)
	}
	v, ok := q["value"].(float64)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return fieldErr(path+".value", "%s.value must be a number.", path)
	}
	if strOf(q, "system") != UCUM {
		return fieldErr(path+".system", "%s.system must be %s (UCUM).", path, UCUM)
	}
	code := strOf(q, "code")
	okUnit := false
	for _, u := range units {
		okUnit = okUnit || code == u
	}
	if !okUnit {
		return fieldErr(path+".code", "%s.code must be one of the UCUM units %s.", path, strings.Join(units, ", "))
	}
	if v < lo || v > hi {
		return fieldErr(path+".value", "%s.value %v is not a plausible value.", path, v)
	}
	return nil
}

// Validate checks a resource a person entered. It names the first wrong field.
func Validate(m map[string]any, now time.Time) error {
	typ, _ := m["resourceType"].(string)
	if typ == "" {
		return fieldErr("resourceType", "The body must be a FHIR resource with a resourceType.")
	}
	if !enterable(typ) {
		return fieldErr("resourceType", "%s is not something you can enter yourself; you can enter %s.", typ, strings.Join(Types, ", "))
	}
	if _, ok := m["contained"]; ok {
		return fieldErr(typ+".contained", "Contained resources are not accepted in your own entries.")
	}
	if n, ok := m["note"]; ok {
		ns, _ := n.([]any)
		for i, x := range ns {
			nm, _ := x.(map[string]any)
			if nm == nil || strings.TrimSpace(strOf(nm, "text")) == "" {
				return fieldErr(fmt.Sprintf("%s.note[%d].text", typ, i), "%s.note[%d] needs a text.", typ, i)
			}
		}
	}
	switch typ {
	case "Observation":
		if err := oneOf(m, typ, "status", true, "final", "amended", "preliminary", "registered"); err != nil {
			return err
		}
		if err := concept(m, typ, "code", true); err != nil {
			return err
		}
		if err := dateTime(m, typ, "effectiveDateTime", true, now); err != nil {
			return err
		}
		code := ""
		for _, x := range arr(obj(m, "code"), "coding") {
			cd, _ := x.(map[string]any)
			if strOf(cd, "system") == LOINC {
				code = strOf(cd, "code")
			}
		}
		meas, known := Measurements[code]
		switch {
		case code == "85354-9":
			comps := arr(m, "component")
			for _, c := range bpComponents {
				found := false
				for i, x := range comps {
					cm, _ := x.(map[string]any)
					for _, y := range arr(obj(cm, "code"), "coding") {
						cd, _ := y.(map[string]any)
						if strOf(cd, "system") == LOINC && strOf(cd, "code") == c.code {
							found = true
							if err := quantity(obj(cm, "valueQuantity"), fmt.Sprintf("Observation.component[%d].valueQuantity", i), []string{"mm[Hg]"}, 10, 350); err != nil {
								return err
							}
						}
					}
				}
				if !found {
					return fieldErr("Observation.component", "A blood pressure needs a %s component (LOINC %s) in mm[Hg].", strings.ToLower(c.display), c.code)
				}
			}
		case known:
			if err := quantity(obj(m, "valueQuantity"), "Observation.valueQuantity", meas.Units, meas.Min, meas.Max); err != nil {
				return err
			}
		default:
			_, q := m["valueQuantity"]
			_, s := m["valueString"]
			_, c := m["valueCodeableConcept"]
			if !q && !s && !c {
				return fieldErr("Observation.value[x]", "An observation needs a value (valueQuantity, valueString or valueCodeableConcept).")
			}
		}
	case "Condition":
		if err := concept(m, typ, "code", true); err != nil {
			return err
		}
		if err := dateTime(m, typ, "onsetDateTime", false, now); err != nil {
			return err
		}
	case "MedicationStatement":
		if err := oneOf(m, typ, "status", true, "active", "completed", "stopped", "on-hold", "intended", "not-taken"); err != nil {
			return err
		}
		if err := concept(m, typ, "medicationCodeableConcept", true); err != nil {
			return err
		}
		if err := dateTime(m, typ, "effectiveDateTime", false, now); err != nil {
			return err
		}
		if _, ok := m["medicationReference"]; ok {
			return fieldErr("MedicationStatement.medicationReference", "Name the medication in medicationCodeableConcept.")
		}
	case "AllergyIntolerance":
		if err := concept(m, typ, "code", true); err != nil {
			return err
		}
		if err := oneOf(m, typ, "criticality", false, "low", "high", "unable-to-assess"); err != nil {
			return err
		}
		if err := dateTime(m, typ, "onsetDateTime", false, now); err != nil {
			return err
		}
	case "Immunization":
		if err := oneOf(m, typ, "status", true, "completed", "not-done"); err != nil {
			return err
		}
		if err := concept(m, typ, "vaccineCode", true); err != nil {
			return err
		}
		if err := dateTime(m, typ, "occurrenceDateTime", true, now); err != nil {
			return err
		}
	case "DocumentReference":
		if err := oneOf(m, typ, "status", true, "current"); err != nil {
			return err
		}
		content := arr(m, "content")
		if len(content) == 0 {
			return fieldErr("DocumentReference.content", "A note needs content: an attachment with its text.")
		}
		c0, _ := content[0].(map[string]any)
		at := obj(c0, "attachment")
		if at == nil || strOf(at, "contentType") != "text/plain" || strOf(at, "data") == "" {
			return fieldErr("DocumentReference.content[0].attachment", "A note's attachment must be text/plain with data.")
		}
		if _, ok := at["url"]; ok || len(content) > 1 {
			return fieldErr("DocumentReference.content[0].attachment.url", "A note holds its text itself: no links to elsewhere, one attachment.")
		}
		if err := dateTime(m, typ, "date", true, now); err != nil {
			return err
		}
	}
	return nil
}
