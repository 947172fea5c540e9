package records

import (
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// notEventsClause keeps a timeline to things that happened: directory entries (the patient,
// doctors, clinics, places) and records that are details of a visit (claims, explanations of
// benefit) are left out unless asked for by type.
func notEventsClause() string {
	types := fhir.NotEvents()
	q := make([]string, len(types))
	for i, t := range types {
		q[i] = "'" + t + "'" // fixed names from fhir.NotEvents, never user input
	}
	return ` AND r.type NOT IN (` + strings.Join(q, ",") + `)`
}
