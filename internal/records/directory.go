package records

import (
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
// care teams reference (whether or not the store holds them).
func (s *Store) personDirectory(ctx context.Context, profileID int64) (map[string][]string, error) {
	// Visits name the doctors (participant), the clinic (serviceProvider) and the places
	// (location); care teams their members. Reading only these keeps it cheap.
	// Bounded: the latest visits and care teams (their JSON is parsed here; a 200,000-record
	// history must not make every count of a person parse tens of thousands of visits).
	rows, err := s.db.Read.QueryContext(ctx, `WITH recent(raw) AS (
			SELECT raw FROM (SELECT r.raw FROM resources r INDEXED BY resources_type_date
				WHERE r.type = 'Encounter' AND r.profile_id = ? ORDER BY r.sort_date DESC LIMIT ?)
			UNION ALL
			SELECT raw FROM (SELECT r.raw FROM resources r INDEXED BY resources_type_date
				WHERE r.type = 'CareTeam' AND r.profile_id = ? ORDER BY r.sort_date DESC LIMIT 50))
		SELECT DISTINCT j.value FROM recent, json_tree(recent.raw) j
		WHERE j.key = 'reference' AND j.type = 'text'
		AND (j.value LIKE 'Practitioner/%' OR j.value LIKE 'PractitionerRole/%' OR j.value LIKE 'Organization/%' OR j.value LIKE 'Location/%')`,
		profileID, personDirectoryVisits, profileID)
	if err != nil {
		return nil, fmt.Errorf("a person's doctors and clinics: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			return nil, err
		}
		if t, id, ok := strings.Cut(ref, "/"); ok && id != "" && !strings.Contains(id, "/") {
			out[t] = append(out[t], id)
		}
	}
	return out, rows.Err()
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
