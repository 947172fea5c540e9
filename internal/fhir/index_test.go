package fhir

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestIndexSyntheaFields(t *testing.T) {
	files, _ := filepath.Glob(dataPath(t, shareddata.Synthea, "patient-*.json"))
	if len(files) == 0 {
		t.Fatal("no Synthea data")
	}
	seen := map[string]int{}
	var vital, lab, accented bool
	// Pass 1 over every file: fullUrl -> Type/id, as the importer does.
	urls := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		Scan(context.Background(), fh, f, Options{}, func(e *Entry) error {
			urls[e.FullURL] = e.Type + "/" + e.ID
			return nil
		})
		fh.Close()
	}
	resolve := func(v string) (string, bool) { r, ok := urls[v]; return r, ok }
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		err = Scan(context.Background(), fh, filepath.Base(f), Options{}, func(e *Entry) error {
			ix, err := IndexResource(RewriteRefs(e.Raw, e.Refs, resolve))
			if err != nil {
				t.Fatalf("%s: %v", e.Pos, err)
			}
			seen[ix.Type]++
			if ix.Type != e.Type || ix.ID != e.ID {
				t.Errorf("%s: index %s/%s vs scan %s/%s", e.Pos, ix.Type, ix.ID, e.Type, e.ID)
			}
			if ix.Title == "" {
				t.Errorf("%s: %s/%s has no title", e.Pos, e.Type, e.ID)
			}
			switch ix.Type {
			case "Organization", "Practitioner":
			case "Goal": // Synthea goals carry no date
				if ix.Patient == "" {
					t.Errorf("%s: goal has no patient", e.Pos)
				}
			default:
				if ix.Date == "" {
					t.Errorf("%s: %s/%s has no date", e.Pos, e.Type, e.ID)
				}
				if ix.Patient == "" {
					t.Errorf("%s: %s/%s has no patient", e.Pos, e.Type, e.ID)
				}
			}
			if len(ix.Date) > 10 && !strings.HasSuffix(ix.Date, "Z") {
				t.Errorf("%s: date %q not normalised", e.Pos, ix.Date)
			}
			if ix.Type == "Observation" {
				if ix.Code == "" || !strings.HasPrefix(ix.Code, "http://loinc.org|") {
					t.Errorf("%s: observation code %q", e.Pos, ix.Code)
				}
				vital = vital || ix.Category == "vital-signs"
				lab = lab || ix.Category == "laboratory"
			}
			if ix.Type == "Condition" && ix.Status == "" {
				t.Errorf("%s: condition without status", e.Pos)
			}
			if ix.Type == "Patient" && strings.ContainsAny(ix.Title, "áéíóúñü") {
				accented = true
			}
			return nil
		})
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if !vital || !lab {
		t.Errorf("categories: vital %v lab %v", vital, lab)
	}
	if !accented {
		t.Error("expected a patient name with an accent in the Synthea data")
	}
}

func TestIndexExamples(t *testing.T) {
	cases := []struct {
		json string
		want Index
	}{
		{`{"resourceType":"Observation","id":"o","status":"final","category":[{"coding":[{"code":"vital-signs"}]}],
		   "code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},
		   "subject":{"reference":"Patient/p"},"effectiveDateTime":"2019-03-01T10:00:00-05:00"}`,
			Index{Type: "Observation", ID: "o", Date: "2019-03-01T15:00:00Z", Title: "Body Height", Status: "final", Category: "vital-signs", Code: "http://loinc.org|8302-2", Patient: "Patient/p"}},
		{`{"resourceType":"Condition","id":"c","clinicalStatus":{"coding":[{"code":"active"}]},"code":{"text":"Asthma"},"onsetPeriod":{"start":"2001"},"subject":{"reference":"Patient/p"}}`,
			Index{Type: "Condition", ID: "c", Date: "2001", Title: "Asthma", Status: "active", Patient: "Patient/p"}},
		{`{"resourceType":"Patient","id":"p","birthDate":"1980-02-01","name":[{"use":"nickname","given":["Jo"]},{"use":"official","given":["José","Luis"],"family":"Martínez"}]}`,
			Index{Type: "Patient", ID: "p", Date: "1980-02-01", Title: "José Luis Martínez", Patient: "Patient/p"}},
		{`{"resourceType":"AllergyIntolerance","id":"a","category":["food"],"code":{"coding":[{"display":"Peanuts"}]},"patient":{"reference":"Patient/p"},"recordedDate":"2010-01-01"}`,
			Index{Type: "AllergyIntolerance", ID: "a", Date: "2010-01-01", Title: "Peanuts", Category: "food", Patient: "Patient/p"}},
		{`{"resourceType":"MedicationRequest","id":"m","status":"active","medicationReference":{"reference":"Medication/x","display":"Aspirin"},"subject":{"reference":"Patient/p"},"authoredOn":"2020-05-05"}`,
			Index{Type: "MedicationRequest", ID: "m", Date: "2020-05-05", Title: "Aspirin", Status: "active", Patient: "Patient/p"}},
		{`{"resourceType":"Organization","id":"org","name":"Hospital"}`, Index{Type: "Organization", ID: "org", Title: "Hospital"}},
	}
	for _, c := range cases {
		got, err := IndexResource([]byte(c.json))
		if err != nil {
			t.Fatal(err)
		}
		got.Codes, got.Text = nil, ""
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("\n got %+v\nwant %+v", got, c.want)
		}
	}
}

func TestNormalizeDate(t *testing.T) {
	for in, want := range map[string]string{
		"2019": "2019", "2019-05": "2019-05", "2019-05-01": "2019-05-01",
		"2019-05-01T23:30:00+02:00":     "2019-05-01T21:30:00Z",
		"2019-05-01T23:30:00.123-03:00": "2019-05-02T02:30:00Z",
		"2019-05-01T23:30:00":           "2019-05-01T23:30:00Z",
		"not a date at all":             "not a date at all",
	} {
		if got := NormalizeDate(in); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}

func TestRewriteRefs(t *testing.T) {
	raw := []byte(`{"resourceType":"Observation","subject":{"reference":"urn:uuid:1"},"performer":[{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99"},{"reference":"#c"}]}`)
	var refs []Ref
	raw2 := []byte(strings.Replace(string(raw), `"Observation",`, `"Observation","id":"o",`, 1))
	Scan(context.Background(), strings.NewReader(string(raw2)), "x.json", Options{}, func(e *Entry) error {
		refs = append(refs, e.Refs...)
		return nil
	})
	if len(refs) != 3 {
		t.Fatalf("refs %v", refs)
	}
	out := RewriteRefs(raw2, refs, func(v string) (string, bool) {
		switch v {
		case "urn:uuid:1":
			return "Patient/p", true
		case "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99":
			return "Practitioner/dr", true
		}
		return "", false
	})
	want := `{"resourceType":"Observation","id":"o","subject":{"reference":"Patient/p"},"performer":[{"reference":"Practitioner/dr"},{"reference":"#c"}]}`
	if string(out) != want {
		t.Fatalf("got %s", out)
	}
	if same := RewriteRefs(raw2, refs, func(string) (string, bool) { return "", false }); &same[0] != &raw2[0] {
		t.Fatal("no change should return the input itself")
	}
}

func TestParseConditional(t *testing.T) {
	cases := []struct{ in, typ, sys, val string }{
		{"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999", "Practitioner", "http://hl7.org/fhir/sid/us-npi", "9999"},
		{"Organization?identifier=https%3A%2F%2Fgithub.com%2Fsynthetichealth%2Fsynthea%7Cabc", "Organization", "https://github.com/synthetichealth/synthea", "abc"},
		{"Patient?identifier=123", "Patient", "", "123"},
		{"Patient?name=x", "", "", ""},
		{"Nope?identifier=1", "", "", ""},
		{"Patient/1", "", "", ""},
	}
	for _, c := range cases {
		typ, sys, val, ok := ParseConditional(c.in)
		if typ != c.typ || sys != c.sys || val != c.val || ok != (c.typ != "") {
			t.Errorf("%s: got %q %q %q %v", c.in, typ, sys, val, ok)
		}
	}
}
