package fhir

import "testing"

func TestNamingRules(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"NDA020800 Amoxicillin 250 MG", "Amoxicillin 250 MG"},
		{"ANDA078999 Metformin", "Metformin"},
		{"NDA020800", "NDA020800"}, // nothing else to call it
		{"Acetaminophen 325 MG", "Acetaminophen 325 MG"},
		{"NDAxx tablets", "NDAxx tablets"},
	} {
		if got := FriendlyName(c.in); got != c.want {
			t.Errorf("FriendlyName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ typ, want string }{
		{"Practitioner", "a doctor not in your records"},
		{"Organization", "a clinic or organisation not in your records"},
		{"Encounter", "a visit not in your records"},
		{"Immunization", "an immunization not in your records"},
		{"NutritionOrder", "a nutrition order not in your records"},
	} {
		if got := Unresolved(c.typ); got != c.want {
			t.Errorf("Unresolved(%q) = %q, want %q", c.typ, got, c.want)
		}
	}
	if got := FallbackTitle("Claim", "2019-03-04T10:00:00Z"); got != "Claim of 2019-03-04" {
		t.Errorf("FallbackTitle = %q", got)
	}
	if !IsDirectory("Location") || IsDirectory("Encounter") {
		t.Error("IsDirectory")
	}
}

func TestTitlesOfDirectoryEntriesAndFallbacks(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{`{"resourceType":"Practitioner","id":"a","name":[{"family":"Kunze","given":["Liane"],"prefix":["Dr."]}]}`, "Liane Kunze"},
		{`{"resourceType":"Organization","id":"a","name":"Newman Regional Health"}`, "Newman Regional Health"},
		{`{"resourceType":"Location","id":"a","name":"Ward 3"}`, "Ward 3"},
		{`{"resourceType":"Observation","id":"a","code":{"text":"Glucose","coding":[{"display":"Glucose [Mass/volume] in Blood"}]}}`, "Glucose"},
		{`{"resourceType":"Observation","id":"a","code":{"coding":[{"code":"2345-7"},{"display":"Glucose [Mass/volume] in Blood"}]}}`, "Glucose [Mass/volume] in Blood"},
		{`{"resourceType":"MedicationRequest","id":"a","medicationCodeableConcept":{"coding":[{"display":"NDA020800 Amoxicillin 250 MG"}]}}`, "Amoxicillin 250 MG"},
		{`{"resourceType":"MedicationRequest","id":"a","medicationReference":{"reference":"Medication/m","display":"Ibuprofen"}}`, "Ibuprofen"},
		{`{"resourceType":"MedicationRequest","id":"a","medicationReference":{"reference":"Medication/m"}}`, ""},
	} {
		ix, err := IndexResource([]byte(c.raw))
		if err != nil {
			t.Fatal(err)
		}
		if ix.Title != c.want {
			t.Errorf("%s: title %q, want %q", c.raw, ix.Title, c.want)
		}
	}
}
