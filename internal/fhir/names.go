package fhir

import (
	"regexp"
	"sort"
	"strings"
)

// Naming rules for people who read their record: what a type is called in words, what an
// unresolvable reference points at, which types are directory entries rather than events, and
// friendly names for codes.

// directoryTypes are who and where, not things that happened.
var directoryTypes = map[string]bool{
	"Patient": true, "Practitioner": true, "PractitionerRole": true, "Organization": true,
	"Location": true, "RelatedPerson": true, "Person": true, "HealthcareService": true,
	"Endpoint": true, "Group": true, "InsurancePlan": true,
}

// IsDirectory reports whether records of this type describe someone or somewhere (a doctor, a
// clinic, a location) rather than something that happened.
func IsDirectory(typ string) bool { return directoryTypes[typ] }

// NotEvents are types that do not stand on their own in a timeline: directory entries, and
// records that are details of another event (a claim is a detail of its visit).
func NotEvents() []string {
	out := []string{"Claim", "ExplanationOfBenefit", "Coverage", "Provenance", "Medication", "Binary"}
	for t := range directoryTypes {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

var typeWords = map[string]string{
	"Patient":                  "patient",
	"Practitioner":             "doctor",
	"PractitionerRole":         "doctor",
	"Organization":             "clinic or organisation",
	"Location":                 "place",
	"Encounter":                "visit",
	"Condition":                "condition",
	"Observation":              "test result",
	"DiagnosticReport":         "report",
	"Procedure":                "procedure",
	"MedicationRequest":        "prescription",
	"MedicationStatement":      "medication",
	"Medication":               "medication",
	"Immunization":             "immunization",
	"AllergyIntolerance":       "allergy",
	"CarePlan":                 "care plan",
	"CareTeam":                 "care team",
	"Goal":                     "goal",
	"Claim":                    "claim",
	"ExplanationOfBenefit":     "explanation of benefit",
	"Coverage":                 "insurance cover",
	"DocumentReference":        "document",
	"ImagingStudy":             "imaging study",
	"Device":                   "device",
	"Binary":                   "file",
	"ServiceRequest":           "order",
	"Specimen":                 "specimen",
	"RelatedPerson":            "related person",
	"MedicationAdministration": "medication given",
	"MedicationDispense":       "medication dispensed",
}

// TypeWord names a type in lower-case words ("Practitioner" -> "doctor").
func TypeWord(typ string) string {
	if w, ok := typeWords[typ]; ok {
		return w
	}
	var b strings.Builder
	for i, r := range typ {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

// Unresolved says in words what a reference the store cannot resolve points at
// ("a doctor not in your records").
func Unresolved(typ string) string {
	w := TypeWord(typ)
	art := "a"
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		art = "an"
	}
	return art + " " + w + " not in your records"
}

// FallbackTitle is the title of a record that has nothing better: its type in words and its date
// ("Claim of 2019-03-04").
func FallbackTitle(typ, date string) string {
	w := TypeWord(typ)
	if w != "" {
		w = strings.ToUpper(w[:1]) + w[1:]
	}
	if len(date) >= 10 {
		return w + " of " + date[:10]
	}
	return w
}

// vendorPrefix matches a leading product/application number such as "NDA020800" or "ANDA078999"
// that some sources put before a medication's name.
var vendorPrefix = regexp.MustCompile(`^(?:NDA|ANDA|BLA|NDC)[0-9][0-9-]*\s+`)

// FriendlyName tidies a name for reading: a vendor prefix such as "NDA020800 " is dropped.
func FriendlyName(s string) string {
	s = strings.TrimSpace(s)
	if t := vendorPrefix.ReplaceAllString(s, ""); t != "" {
		return t
	}
	return s
}
