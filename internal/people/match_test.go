package people_test

import (
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/people"
)

func TestNameKey(t *testing.T) {
	for _, tc := range []struct {
		family string
		given  []string
		want   string
	}{
		{"Fernández García", []string{"Raúl"}, "garcia|raul"},
		{"O'Keefe54", []string{"Karena692", "Sau887"}, "okeefe54|karena692"},
		{"Straße", []string{"Jürgen Klaus"}, "strasse|jurgen"},
		{"", []string{"Ann"}, ""},
		{"Doe", nil, ""},
	} {
		if got := people.NameKey(tc.family, tc.given); got != tc.want {
			t.Errorf("NameKey(%q, %q) = %q, want %q", tc.family, tc.given, got, tc.want)
		}
	}
}

// TestParsePatientIdentifiers: only identifiers that can identify a person are kept.
func TestParsePatientIdentifiers(t *testing.T) {
	raw := `{"resourceType":"Patient","id":"p1","name":[{"use":"maiden","family":"Old"},{"use":"official","family":"Doe","given":["Jane"]}],
		"birthDate":"1980-01-02","gender":"female","identifier":[
		{"system":"http://hospital.example.org/mrn","value":"A-123"},
		{"system":"http://hospital.example.org/mrn","value":"A-123"},
		{"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-99-9999"},
		{"system":"urn:x","value":"unknown"},
		{"system":"urn:x","value":"12"},
		{"value":"no-system-1"},
		{"system":"urn:old","value":"OLD-777","use":"old"},
		{"system":"urn:temp","value":"T-777","use":"temp"},
		{"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-12-3185"}]}`
	p, err := people.ParsePatient("", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []people.Identifier{{System: "http://hospital.example.org/mrn", Value: "A-123"}, {System: "http://hl7.org/fhir/sid/us-ssn", Value: "999-12-3185"}}
	if len(p.Identifiers) != len(want) || p.Identifiers[0] != want[0] || p.Identifiers[1] != want[1] {
		t.Fatalf("identifiers %+v, want %+v", p.Identifiers, want)
	}
	if p.Ref != "Patient/p1" || p.Name != "Jane Doe" || p.NameKey != "doe|jane" || p.BirthDate != "1980-01-02" || p.Gender != "female" {
		t.Fatalf("patient %+v", p)
	}
	if _, err := people.ParsePatient("x", []byte(`{"resourceType":"Observation"}`)); err == nil {
		t.Fatal("an Observation was read as a Patient")
	}
}
