package smart

import (
	"regexp"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// BaseScopes are requested on every standalone patient launch: the patient context, the user's
// identity (OpenID Connect), and a refresh token for background sync.
const BaseScopes = "launch/patient openid fhirUser offline_access"

var (
	resourceType = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
	// v2Scope matches SMART 2.x clinical scopes such as patient/Observation.rs or user/*.cruds.
	v2Scope = regexp.MustCompile(`^(patient|user|system)/(\*|[A-Za-z]+)\.c?r?u?d?s?(\?.*)?$`)
	// clinicalScope captures the resource type and permissions of a v1 or v2 clinical scope.
	clinicalScope = regexp.MustCompile(`^patient/(\*|[A-Za-z]+)\.([a-z*]+)(\?.*)?$`)
	v2Perm        = regexp.MustCompile(`^c?r?u?d?s?$`)
)

// UsesV2Scopes reports whether scopes for s should use the SMART 2.x syntax (".rs"): the server
// advertises permission-v2, or its scopes_supported lists v2-style scopes. Otherwise SMART v1
// ".read" scopes are used.
func UsesV2Scopes(s *Server) bool {
	if s.V2 || s.HasCapability("permission-v2") {
		return true
	}
	for _, sc := range s.ScopesSupported {
		if v2Scope.MatchString(sc) && !strings.HasSuffix(sc, ".read") && !strings.HasSuffix(sc, ".write") && !strings.HasSuffix(sc, ".*") {
			return true
		}
	}
	return false
}

// Scopes returns the minimal scope string for reading the given FHIR resource types of the
// signed-in patient: BaseScopes plus patient/<Type>.rs per type (SMART 2.x) or patient/<Type>.read
// (SMART v1), decided by UsesV2Scopes. With no types, patient/*.rs (or patient/*.read) is asked.
// Names that are not FHIR resource type names are skipped; duplicates are dropped.
func Scopes(s *Server, types []string) string {
	suffix := ".read"
	if UsesV2Scopes(s) {
		suffix = ".rs"
	}
	parts := strings.Fields(BaseScopes)
	var seen []string
	for _, t := range types {
		if !resourceType.MatchString(t) || slices.Contains(seen, t) {
			continue
		}
		seen = append(seen, t)
		parts = append(parts, "patient/"+t+suffix)
	}
	if len(seen) == 0 {
		parts = append(parts, "patient/*"+suffix)
	}
	return strings.Join(parts, " ")
}

// AuthCodeURL builds the authorization request of a direct (non-gateway) standalone launch:
// response_type=code, client_id, redirect_uri, scope, state, aud = the FHIR base URL, and the PKCE
// S256 challenge. The verifier never appears in it.
func AuthCodeURL(s *Server, clientID, redirectURI, scope, state string, p PKCE) string {
	cfg := oauth2.Config{
		ClientID:    clientID,
		RedirectURL: redirectURI,
		Endpoint:    oauth2.Endpoint{AuthURL: s.AuthorizationEndpoint, TokenURL: s.TokenEndpoint},
		Scopes:      strings.Fields(scope),
	}
	return cfg.AuthCodeURL(state,
		oauth2.SetAuthURLParam("aud", s.FHIRBase),
		oauth2.SetAuthURLParam("code_challenge", p.Challenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"),
	)
}

// GrantedTypes returns the resource types a scope string grants read access to for the patient
// or search ("*" for a wildcard), in order of appearance: patient/Observation.rs, .read, .r, .s,
// patient/*.cruds and patient/Observation.rs?category=... all count (a granular scope grants part
// of the type). Scopes without read or search (patient/Observation.c, .write) are ignored.
func GrantedTypes(scope string) []string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		m := clinicalScope.FindStringSubmatch(sc)
		if m == nil {
			continue
		}
		perm := m[2]
		readable := perm == "read" || perm == "*" || (v2Perm.MatchString(perm) && strings.ContainsAny(perm, "rs"))
		if !readable {
			continue
		}
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// AppTypes are the resource types Fasten reads from a provider and shows: the clinical record,
// the claims that describe visits, and the people and places those records point at. A connect
// asks for exactly these (SECURITY: minimum scopes), never a wildcard.
var AppTypes = []string{
	"Patient", "AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "Condition", "Coverage",
	"Device", "DiagnosticReport", "DocumentReference", "Encounter", "ExplanationOfBenefit",
	"FamilyMemberHistory", "Goal", "ImagingStudy", "Immunization", "Location", "Medication",
	"MedicationAdministration", "MedicationDispense", "MedicationRequest", "MedicationStatement",
	"Observation", "Organization", "Practitioner", "PractitionerRole", "Procedure",
	"RelatedPerson", "ServiceRequest", "Specimen",
}

// MinimumScopes is the scope a connect requests: the base scopes plus one read scope per type of
// AppTypes (.rs for SMART v2 servers, .read for v1). When the provider's catalog entry already
// limits the types (per-type scopes rather than a wildcard), only the types in both are asked for.
func MinimumScopes(s *Server, catalogScope string) string {
	types := AppTypes
	if allowed := GrantedTypes(catalogScope); len(allowed) > 0 && !slices.Contains(allowed, "*") {
		types = nil
		for _, t := range AppTypes {
			if slices.Contains(allowed, t) {
				types = append(types, t)
			}
		}
		if len(types) == 0 {
			types = []string{"Patient"}
		}
	}
	return Scopes(s, types)
}

// MissingScopes returns the scopes of requested that granted does not contain (exact match). An
// empty granted scope means the server did not say, which RFC 6749 §5.1 defines as "as requested":
// nothing is missing then.
func MissingScopes(requested, granted string) []string {
	if strings.TrimSpace(granted) == "" {
		return nil
	}
	g := strings.Fields(granted)
	var out []string
	for _, r := range strings.Fields(requested) {
		if !slices.Contains(g, r) {
			out = append(out, r)
		}
	}
	return out
}
