package records

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// A person's doctors, clinics and places: the directory records (Practitioner, Organization,
// Location, PractitionerRole) that the person's visits and care teams reference. Those records
// usually name no patient (and often sit in another file), so they carry no person themselves;
// a person's view finds them through the references.

// personDirectoryVisits bounds the visits read for a person's doctors and clinics.
const personDirectoryVisits = 500

// directoryRefTypes are the directory types a person's view includes.
var directoryRefTypes = []string{"Practitioner", "PractitionerRole", "Organization", "Location"}

func isDirectoryRefType(t string) bool {
	for _, d := range directoryRefTypes {
		if d == t {
			return true
		}
	}
	return false
}

// personDirectory returns the ids, by type, of the directory records the person's visits and
// care teams reference (whether or not the store holds them). The answer is kept until the next
// write (db.Generation): every count and list of a person asks for it, and reading a person's
// visits costs tens of milliseconds on a long record.
func (s *Store) personDirectory(ctx context.Context, profileID int64) (map[string][]string, error) {
	return s.directories.get(s.db.Generation(), profileID, func() (map[string][]string, error) {
		return s.readPersonDirectory(ctx, profileID)
	})
}

func (s *Store) readPersonDirectory(ctx context.Context, profileID int64) (map[string][]string, error) {
	// Visits name the doctors (participant), the clinic (serviceProvider) and the places
	// (location); care teams their members. Reading only these keeps it cheap.
	// Bounded: the latest visits and care teams (a 200,000-record history must not make every
	// count of a person read tens of thousands of visits). Their references are picked out of
	// the JSON here (SQLite's json_tree took 150 ms for 500 visits).
	rows, err := s.db.Read.QueryContext(ctx, `SELECT raw FROM (SELECT r.raw FROM resources r INDEXED BY resources_profile_type
			WHERE r.profile_id = ? AND r.type = 'Encounter' ORDER BY r.sort_date DESC LIMIT ?)
		UNION ALL
		SELECT raw FROM (SELECT r.raw FROM resources r INDEXED BY resources_profile_type
			WHERE r.profile_id = ? AND r.type = 'CareTeam' ORDER BY r.sort_date DESC LIMIT 50)`,
		profileID, personDirectoryVisits, profileID)
	if err != nil {
		return nil, fmt.Errorf("a person's doctors and clinics: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	seen := map[string]bool{}
	var raw []byte
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		for _, ref := range jsonReferences(raw) {
			t, id, ok := strings.Cut(ref, "/")
			if !ok || id == "" || strings.Contains(id, "/") || !isDirectoryRefType(t) || seen[ref] {
				continue
			}
			seen[ref] = true
			out[t] = append(out[t], id)
		}
	}
	return out, rows.Err()
}

// jsonReferences returns the string values of every "reference" member in a resource's JSON.
// It looks for the key and decodes the string that follows, without parsing the rest: the
// stored JSON is valid (checked on the way in), and a "reference" inside some text is followed
// by no colon and a string.
func jsonReferences(raw []byte) []string {
	const key = `"reference"`
	var out []string
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(key))
		if j < 0 {
			return out
		}
		k := i + j + len(key)
		i = k
		for k < len(raw) && (raw[k] == ' ' || raw[k] == '\t' || raw[k] == '\n' || raw[k] == '\r') {
			k++
		}
		if k >= len(raw) || raw[k] != ':' {
			continue
		}
		k++
		for k < len(raw) && (raw[k] == ' ' || raw[k] == '\t' || raw[k] == '\n' || raw[k] == '\r') {
			k++
		}
		if k >= len(raw) || raw[k] != '"' {
			continue
		}
		end := k + 1
		escaped := false
		for end < len(raw) && raw[end] != '"' {
			if raw[end] == '\\' {
				escaped = true
				end++
			}
			end++
		}
		if end >= len(raw) {
			return out
		}
		v := string(raw[k+1 : end])
		if escaped {
			if err := json.Unmarshal(raw[k:end+1], &v); err != nil {
				continue
			}
		}
		out = append(out, v)
		i = end + 1
	}
}

// addPersonDirectoryCounts adds to a person's counts the doctors, clinics and places their
// records reference and the store holds.
func (s *Store) addPersonDirectoryCounts(ctx context.Context, profileID int64, counts map[string]int) error {
	dir, err := s.personDirectory(ctx, profileID)
	if err != nil || len(dir) == 0 {
		return err
	}
	for t, ids := range dir {
		b, _ := json.Marshal(ids)
		var n int
		err := s.db.Read.QueryRowContext(ctx, `SELECT count(DISTINCT r.fhir_id) FROM resources r
			WHERE r.source_id IN (SELECT id FROM sources) AND r.type = ? AND r.fhir_id IN (SELECT value FROM json_each(?))`, t, string(b)).Scan(&n)
		if err != nil {
			return fmt.Errorf("count a person's %s: %w", t, err)
		}
		if n > counts[t] {
			counts[t] = n
		}
	}
	return nil
}

// personDirectoryWhere narrows a list of a directory type to the person's own records of that
// type and the ones their records reference.
func (s *Store) personDirectoryWhere(ctx context.Context, typ string, profileID int64, args *[]any) (string, error) {
	dir, err := s.personDirectory(ctx, profileID)
	if err != nil {
		return "", err
	}
	ids := dir[typ]
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids)
	*args = append(*args, profileID, string(b))
	return ` AND (r.profile_id = ? OR r.fhir_id IN (SELECT value FROM json_each(?)))`, nil
}
