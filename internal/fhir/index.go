package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Index holds the fields the record store sorts, filters and searches by.
type Index struct {
	Type        string
	ID          string
	VersionID   string
	LastUpdated string   // normalised (see NormalizeDate)
	Date        string   // the clinical sort date, normalised
	Title       string   // a human title
	Status      string   // clinicalStatus code, else status
	Category    string   // first category code
	Code        string   // primary code as system|code
	Codes       []Coding // every coding of the primary concept(s)
	Patient     string   // "Patient/<id>" the resource is about
	Text        string   // words for full-text search (title, displays, codes, notes)
}

// Coding is a system|code pair.
type Coding struct{ System, Code string }

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type reference struct {
	Reference string `json:"reference"`
	Display   string `json:"display"`
}

type humanName struct {
	Use    string   `json:"use"`
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix"`
}

// indexDoc is what Index decodes: only the fields it needs (encoding/json skips the rest).
type indexDoc struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`

	EffectiveDateTime  string  `json:"effectiveDateTime"`
	EffectiveInstant   string  `json:"effectiveInstant"`
	EffectivePeriod    *period `json:"effectivePeriod"`
	OnsetDateTime      string  `json:"onsetDateTime"`
	OnsetPeriod        *period `json:"onsetPeriod"`
	PerformedDateTime  string  `json:"performedDateTime"`
	PerformedPeriod    *period `json:"performedPeriod"`
	OccurrenceDateTime string  `json:"occurrenceDateTime"`
	OccurrencePeriod   *period `json:"occurrencePeriod"`
	AuthoredOn         string  `json:"authoredOn"`
	Period             *period `json:"period"`
	BillablePeriod     *period `json:"billablePeriod"`
	Issued             string  `json:"issued"`
	RecordedDate       string  `json:"recordedDate"`
	Recorded           string  `json:"recorded"`
	Date               string  `json:"date"`
	DateAsserted       string  `json:"dateAsserted"`
	Created            string  `json:"created"`
	Started            string  `json:"started"`
	StartDate          string  `json:"startDate"`
	Sent               string  `json:"sent"`
	WhenHandedOver     string  `json:"whenHandedOver"`
	BirthDate          string  `json:"birthDate"`

	Code                      *concept        `json:"code"`
	VaccineCode               *concept        `json:"vaccineCode"`
	MedicationCodeableConcept *concept        `json:"medicationCodeableConcept"`
	MedicationReference       *reference      `json:"medicationReference"`
	Type                      json.RawMessage `json:"type"`
	Class                     *coding         `json:"class"`
	Category                  json.RawMessage `json:"category"`
	ProcedureCode             []concept       `json:"procedureCode"`
	ReasonCode                []concept       `json:"reasonCode"`
	Description               json.RawMessage `json:"description"`
	Title                     string          `json:"title"`
	Name                      json.RawMessage `json:"name"`
	DeviceName                []struct {
		Name string `json:"name"`
	} `json:"deviceName"`
	Series []struct {
		Modality *coding `json:"modality"`
		BodySite *coding `json:"bodySite"`
	} `json:"series"`
	Item []struct {
		ProductOrService *concept `json:"productOrService"`
	} `json:"item"`

	ClinicalStatus *concept        `json:"clinicalStatus"`
	Status         json.RawMessage `json:"status"`

	Subject     *reference `json:"subject"`
	Patient     *reference `json:"patient"`
	Beneficiary *reference `json:"beneficiary"`

	Note []struct {
		Text string `json:"text"`
	} `json:"note"`
	ValueString string `json:"valueString"`
}

// IndexResource extracts the index fields of one resource's JSON.
func IndexResource(raw []byte) (Index, error) {
	var d indexDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		// A wrongly shaped element (an object where FHIR wants an array, say) only costs that
		// element's index value; encoding/json fills in everything else.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return Index{}, fmt.Errorf("read index fields: %w", err)
		}
	}
	ix := Index{
		Type:        d.ResourceType,
		ID:          d.ID,
		VersionID:   d.Meta.VersionID,
		LastUpdated: NormalizeDate(d.Meta.LastUpdated),
	}
	ix.Date = NormalizeDate(firstNonEmpty(
		d.EffectiveDateTime, d.EffectiveInstant, start(d.EffectivePeriod),
		d.OnsetDateTime, start(d.OnsetPeriod),
		d.PerformedDateTime, start(d.PerformedPeriod),
		d.OccurrenceDateTime, start(d.OccurrencePeriod),
		d.AuthoredOn, start(d.Period), start(d.BillablePeriod),
		d.Issued, d.RecordedDate, d.Recorded, d.Date, d.DateAsserted,
		d.Started, d.StartDate, d.Sent, d.WhenHandedOver, d.Created,
		birthDateFor(d.ResourceType, d.BirthDate),
	))

	var text []string
	addConcept := func(c *concept) {
		if c == nil {
			return
		}
		if c.Text != "" {
			text = append(text, c.Text)
		}
		for _, cd := range c.Coding {
			if cd.Display != "" && cd.Display != c.Text {
				text = append(text, cd.Display)
			}
			if cd.Code != "" {
				text = append(text, cd.Code)
			}
		}
	}
	addCodes := func(c *concept) {
		if c == nil {
			return
		}
		for _, cd := range c.Coding {
			if cd.Code != "" {
				ix.Codes = append(ix.Codes, Coding{cd.System, cd.Code})
			}
		}
	}

	types := concepts(d.Type)
	categories := concepts(d.Category)
	primary := firstConcept(d.Code, d.VaccineCode, d.MedicationCodeableConcept)
	if primary == nil && len(types) > 0 {
		primary = &types[0]
	}
	if primary == nil && len(d.ProcedureCode) > 0 {
		primary = &d.ProcedureCode[0]
	}
	if primary != nil {
		addCodes(primary)
		for _, cd := range primary.Coding {
			if cd.Code != "" {
				ix.Code = cd.System + "|" + cd.Code
				break
			}
		}
	}
	ix.Title = FriendlyName(title(&d, primary, types))
	if ix.Title != "" {
		text = append(text, ix.Title)
	}
	addConcept(primary)
	for i := range types {
		if &types[i] != primary {
			addConcept(&types[i])
		}
	}
	for i := range categories {
		addConcept(&categories[i])
	}
	for i := range d.ReasonCode {
		addConcept(&d.ReasonCode[i])
	}
	for _, n := range d.Note {
		if n.Text != "" {
			text = append(text, n.Text)
		}
	}
	if d.ValueString != "" {
		text = append(text, d.ValueString)
	}

	if len(categories) > 0 {
		for _, cd := range categories[0].Coding {
			if cd.Code != "" {
				ix.Category = cd.Code
				break
			}
		}
	} else if codes := stringList(d.Category); len(codes) > 0 { // AllergyIntolerance.category is code[]
		ix.Category = codes[0]
	}
	if d.ClinicalStatus != nil {
		for _, cd := range d.ClinicalStatus.Coding {
			if cd.Code != "" {
				ix.Status = cd.Code
				break
			}
		}
	}
	if ix.Status == "" {
		var s string
		if json.Unmarshal(d.Status, &s) == nil {
			ix.Status = s
		}
	}
	switch {
	case d.ResourceType == "Patient" && d.ID != "":
		ix.Patient = "Patient/" + d.ID
	case d.Subject != nil && strings.HasPrefix(d.Subject.Reference, "Patient/"):
		ix.Patient = d.Subject.Reference
	case d.Patient != nil && strings.HasPrefix(d.Patient.Reference, "Patient/"):
		ix.Patient = d.Patient.Reference
	case d.Beneficiary != nil && strings.HasPrefix(d.Beneficiary.Reference, "Patient/"):
		ix.Patient = d.Beneficiary.Reference
	}
	ix.Text = strings.Join(dedupe(text), " ")
	return ix, nil
}

func birthDateFor(t, bd string) string {
	if t == "Patient" {
		return bd
	}
	return ""
}

func title(d *indexDoc, primary *concept, types []concept) string {
	switch d.ResourceType {
	case "Patient", "Practitioner", "RelatedPerson", "Person":
		if n := personName(d.Name); n != "" {
			return n
		}
	case "Organization", "Location", "HealthcareService", "InsurancePlan", "Endpoint", "Group":
		var s string
		if json.Unmarshal(d.Name, &s) == nil && s != "" {
			return s
		}
	case "MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense":
		if primary == nil && d.MedicationReference != nil && d.MedicationReference.Display != "" {
			return d.MedicationReference.Display
		}
	case "Encounter":
		if primary == nil && d.Class != nil {
			return firstNonEmpty(d.Class.Display, d.Class.Code)
		}
	case "Claim", "ExplanationOfBenefit":
		kind := conceptText(primary)
		var item string
		for _, it := range d.Item {
			if t := conceptText(it.ProductOrService); t != "" {
				item = t
				break
			}
		}
		return strings.TrimSpace(strings.Join(nonEmpty(kind, item), ": "))
	case "DocumentReference", "CarePlan", "Goal", "DiagnosticReport":
		if primary == nil || d.ResourceType == "Goal" {
			if s := descriptionText(d.Description); s != "" {
				return s
			}
		}
	case "ImagingStudy":
		if primary == nil && len(d.Series) > 0 && d.Series[0].Modality != nil {
			t := firstNonEmpty(d.Series[0].Modality.Display, d.Series[0].Modality.Code)
			if bs := d.Series[0].BodySite; bs != nil && bs.Display != "" {
				t += " (" + bs.Display + ")"
			}
			return t
		}
	case "Device":
		for _, n := range d.DeviceName {
			if n.Name != "" && primary == nil {
				return n.Name
			}
		}
	}
	if t := conceptText(primary); t != "" {
		return t
	}
	if d.Title != "" {
		return d.Title
	}
	if s := descriptionText(d.Description); s != "" {
		return s
	}
	var s string
	if json.Unmarshal(d.Name, &s) == nil && s != "" {
		return s
	}
	if cats := concepts(d.Category); len(cats) > 0 {
		if t := conceptText(&cats[0]); t != "" {
			return t
		}
	}
	return ""
}

func personName(raw json.RawMessage) string {
	var names []humanName
	if json.Unmarshal(raw, &names) != nil || len(names) == 0 {
		return ""
	}
	best := names[0]
	for _, n := range names {
		if n.Use == "official" {
			best = n
			break
		}
	}
	if best.Text != "" {
		return best.Text
	}
	parts := append(append([]string{}, best.Given...), best.Family)
	return strings.TrimSpace(strings.Join(nonEmpty(parts...), " "))
}

func descriptionText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var c concept
	if json.Unmarshal(raw, &c) == nil {
		return conceptText(&c)
	}
	return ""
}

func conceptText(c *concept) string {
	if c == nil {
		return ""
	}
	if c.Text != "" {
		return c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != "" {
			return cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

// concepts reads a CodeableConcept or an array of them.
func concepts(raw json.RawMessage) []concept {
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '[':
		var cs []concept
		if json.Unmarshal(raw, &cs) == nil {
			return cs
		}
		return nil
	case '{':
		var c concept
		if json.Unmarshal(raw, &c) == nil {
			return []concept{c}
		}
	}
	return nil
}

func stringList(raw json.RawMessage) []string {
	var ss []string
	if len(raw) > 0 && raw[0] == '[' && json.Unmarshal(raw, &ss) == nil {
		return ss
	}
	return nil
}

func firstConcept(cs ...*concept) *concept {
	for _, c := range cs {
		if c != nil && (c.Text != "" || len(c.Coding) > 0) {
			return c
		}
	}
	return nil
}

func start(p *period) string {
	if p == nil {
		return ""
	}
	return firstNonEmpty(p.Start, p.End)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// NormalizeDate makes FHIR date, dateTime and instant values sort correctly as text: values with
// a time are converted to UTC (RFC 3339, seconds, 'Z'); partial dates (2019, 2019-05, 2019-05-01)
// stay as they are. Values that do not parse are kept unchanged.
func NormalizeDate(s string) string {
	if len(s) <= 10 {
		return s
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	return s
}
