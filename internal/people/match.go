package people

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Patient is what matching knows of one Patient resource: Ref ("Patient/<id>"), display Name,
// NameKey (see NameKey), BirthDate as written, Gender, and only the Identifiers that can
// identify a person (see usable).
type Patient = records.Patient

// Identifier is a system|value pair of a Patient.
type Identifier = records.Identifier

type humanName struct {
	Use    string   `json:"use"`
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

type patientDoc struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Identifier   []struct {
		Use    string `json:"use"`
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Name      []humanName `json:"name"`
	BirthDate string      `json:"birthDate"`
	Gender    string      `json:"gender"`
}

// ParsePatient reads what matching needs from a Patient resource's JSON. id is the resource id
// the records use (an import may have assigned one); "" means the id in the JSON.
func ParsePatient(id string, raw []byte) (Patient, error) {
	var d patientDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return Patient{}, fmt.Errorf("read Patient: %w", err)
	}
	if d.ResourceType != "" && d.ResourceType != "Patient" {
		return Patient{}, fmt.Errorf("read Patient: the resource is a %s", d.ResourceType)
	}
	if id == "" {
		id = d.ID
	}
	p := Patient{Ref: "Patient/" + id, BirthDate: strings.TrimSpace(d.BirthDate), Gender: strings.ToLower(strings.TrimSpace(d.Gender))}
	if n, ok := bestName(d.Name); ok {
		p.Name = displayName(n)
		p.NameKey = NameKey(n.Family, n.Given)
	}
	seen := map[Identifier]bool{}
	for _, ident := range d.Identifier {
		id := Identifier{System: strings.TrimSpace(ident.System), Value: strings.TrimSpace(ident.Value)}
		if usable(ident.Use, id) && !seen[id] {
			seen[id] = true
			p.Identifiers = append(p.Identifiers, id)
		}
	}
	return p, nil
}

// placeholders are identifier values that stand for "no value".
var placeholders = map[string]bool{
	"unknown": true, "unk": true, "none": true, "null": true, "nil": true, "na": true, "n/a": true,
	"not available": true, "notavailable": true, "tbd": true, "pending": true, "test": true, "missing": true,
}

// usable reports whether an identifier can identify a person: it has a system and a value, is
// not marked old or temporary, and its value is not a placeholder (a word such as "unknown", a
// single repeated character such as 000000 or 999-99-9999, or fewer than 3 letters or digits).
// Identifiers shared by two Patients of one file, or known for two people, are left out when
// matching (see matcher).
func usable(use string, id Identifier) bool {
	if id.System == "" || id.Value == "" {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(use)) {
	case "old", "temp":
		return false
	}
	v := strings.ToLower(id.Value)
	if placeholders[v] {
		return false
	}
	var alnum []rune
	for _, r := range v {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			alnum = append(alnum, r)
		}
	}
	if len(alnum) < 3 {
		return false
	}
	for _, r := range alnum[1:] {
		if r != alnum[0] {
			return true
		}
	}
	return false // one character repeated
}

// bestName picks the name a person goes by: official, else usual, else the first that is not
// old or maiden, else the first.
func bestName(names []humanName) (humanName, bool) {
	if len(names) == 0 {
		return humanName{}, false
	}
	for _, use := range []string{"official", "usual", ""} {
		for _, n := range names {
			if n.Use == use && (n.Family != "" || len(n.Given) > 0 || n.Text != "") {
				return n, true
			}
		}
	}
	for _, n := range names {
		if n.Use != "old" && n.Use != "maiden" {
			return n, true
		}
	}
	return names[0], true
}

func displayName(n humanName) string {
	if len(n.Given) == 0 && n.Family == "" {
		return strings.Join(strings.Fields(n.Text), " ")
	}
	parts := append(append([]string{}, n.Given...), n.Family)
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// NameKey normalises a name for matching: the last word of the family name and the first word
// of the first given name, lower case, accents folded (é -> e, ß -> ss), only letters and digits
// kept: "Fernández García, Raúl" -> "garcia|raul". "" when either part is missing.
func NameKey(family string, given []string) string {
	fam := strings.Fields(family)
	var first string
	for _, g := range given {
		if f := strings.Fields(g); len(f) > 0 {
			first = f[0]
			break
		}
	}
	if len(fam) == 0 || first == "" {
		return ""
	}
	a, b := fold(fam[len(fam)-1]), fold(first)
	if a == "" || b == "" {
		return ""
	}
	return a + "|" + b
}

// nameKeyOf is NameKey for a display name typed by a person ("Raúl Fernández"): first word as
// the given name, last word as the family name.
func nameKeyOf(name string) string {
	f := strings.Fields(name)
	if len(f) < 2 {
		return ""
	}
	return NameKey(f[len(f)-1], []string{f[0]})
}

var foldTable = func() map[rune]string {
	m := map[rune]string{}
	for base, chars := range map[string]string{
		"a": "àáâãäåāăą", "c": "çćĉċč", "d": "ďđð", "e": "èéêëēĕėęě", "g": "ĝğġģ", "h": "ĥħ",
		"i": "ìíîïĩīĭįı", "j": "ĵ", "k": "ķ", "l": "ĺļľŀł", "n": "ñńņňŉ", "o": "òóôõöøōŏő",
		"r": "ŕŗř", "s": "śŝşšș", "t": "ţťŧț", "u": "ùúûüũūŭůűų", "w": "ŵ", "y": "ýÿŷ", "z": "źżž",
		"ss": "ß", "ae": "æ", "oe": "œ", "th": "þ",
	} {
		for _, r := range chars {
			m[r] = base
		}
	}
	return m
}()

func fold(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if f, ok := foldTable[r]; ok {
			b.WriteString(f)
		} else if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func gendersAgree(a, b string) bool {
	known := func(g string) bool { return g == "male" || g == "female" }
	return !known(a) || !known(b) || a == b
}

// matcher finds the person a Patient belongs to among the people already known: the Patients
// of every source (their identifiers, name and birth date) and the people's own name and birth
// date (a person created by hand before any record).
type matcher struct {
	byIdent map[Identifier]map[int64]int // identifier -> person -> how many Patients carry it
	byName  map[string]map[int64]string  // name key|birth date -> person -> gender
}

func newMatcher() *matcher {
	return &matcher{byIdent: map[Identifier]map[int64]int{}, byName: map[string]map[int64]string{}}
}

// add records that person id has Patient p.
func (m *matcher) add(id int64, p Patient) {
	for _, ident := range p.Identifiers {
		if m.byIdent[ident] == nil {
			m.byIdent[ident] = map[int64]int{}
		}
		m.byIdent[ident][id]++
	}
	m.addName(id, p.NameKey, p.BirthDate, p.Gender)
}

func (m *matcher) addName(id int64, key, birth, gender string) {
	if key == "" || birth == "" {
		return
	}
	k := key + "|" + birth
	if m.byName[k] == nil {
		m.byName[k] = map[int64]string{}
	}
	if g, ok := m.byName[k][id]; !ok || g == "" {
		m.byName[k][id] = gender
	}
}

// Match methods.
const (
	ByIdentifier = "identifier"
	ByName       = "name_birth_date"
)

// match returns the person p belongs to and how it was found, or 0. Identifiers in ignore
// (shared by two Patients of the incoming file) are not used; nor are identifiers known for
// two different people.
func (m *matcher) match(p Patient, ignore map[Identifier]bool) (int64, string) {
	votes := map[int64]int{}
	for _, ident := range p.Identifiers {
		if ignore[ident] {
			continue
		}
		owners := m.byIdent[ident]
		if len(owners) != 1 {
			continue // unknown, or ambiguous: known for two people
		}
		for id := range owners {
			votes[id]++
		}
	}
	if len(votes) > 0 {
		ids := make([]int64, 0, len(votes))
		for id := range votes {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(a, b int) bool {
			if votes[ids[a]] != votes[ids[b]] {
				return votes[ids[a]] > votes[ids[b]]
			}
			return ids[a] < ids[b]
		})
		return ids[0], ByIdentifier
	}
	if p.NameKey != "" && p.BirthDate != "" {
		var best int64
		for id, g := range m.byName[p.NameKey+"|"+p.BirthDate] {
			if gendersAgree(g, p.Gender) && (best == 0 || id < best) {
				best = id
			}
		}
		if best != 0 {
			return best, ByName
		}
	}
	return 0, ""
}

// sharedIdentifiers returns the identifiers carried by more than one Patient of a file: a
// family or placeholder number, not a person's.
func sharedIdentifiers(ps []Patient) map[Identifier]bool {
	owners := map[Identifier]string{}
	shared := map[Identifier]bool{}
	for _, p := range ps {
		for _, id := range p.Identifiers {
			if o, ok := owners[id]; ok && o != p.Ref {
				shared[id] = true
			}
			owners[id] = p.Ref
		}
	}
	return shared
}
