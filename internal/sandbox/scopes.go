package sandbox

import (
	"slices"
	"strings"
)

// resourceScope is a parsed SMART clinical scope: context/type.permissions.
type resourceScope struct {
	context string // patient, user or system
	typ     string // a resource type or "*"
	v2      bool
	perms   string // v2 letters kept (subset of "rs") or the v1 suffix ("read", "*")
	query   string // v2 "?param=value" restriction, kept but not enforced
}

func (rs resourceScope) canRead() bool {
	if rs.v2 {
		return strings.Contains(rs.perms, "r")
	}
	return rs.perms == "read" || rs.perms == "*"
}

func (rs resourceScope) canSearch() bool {
	if rs.v2 {
		return strings.Contains(rs.perms, "s")
	}
	return rs.perms == "read" || rs.perms == "*"
}

func (rs resourceScope) withType(t string) string {
	return rs.context + "/" + t + "." + rs.perms + rs.query
}

func (rs resourceScope) String() string { return rs.withType(rs.typ) }

// parseResourceScope parses "patient/Observation.rs", "patient/*.read", "user/Condition.cruds?category=x".
func parseResourceScope(s string) (resourceScope, bool) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return resourceScope{}, false
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok || (typ != "*" && !validType(typ)) {
		return resourceScope{}, false
	}
	out := resourceScope{context: ctx, typ: typ}
	switch perms {
	case "read", "write", "*":
		out.perms = perms
		return out, true
	}
	letters, query, _ := strings.Cut(perms, "?")
	if letters == "" || !isV2Perms(letters) {
		return resourceScope{}, false
	}
	out.v2 = true
	out.perms = letters
	if query != "" {
		out.query = "?" + query
	}
	return out, true
}

// isV2Perms reports whether p is a non-empty subsequence of "cruds".
func isV2Perms(p string) bool {
	const order = "cruds"
	j := 0
	for i := 0; i < len(p); i++ {
		k := strings.IndexByte(order[j:], p[i])
		if k < 0 {
			return false
		}
		j += k + 1
	}
	return true
}

// grantScopes decides what a request for `requested` is granted: the scopes the sandbox
// understands, with resource permissions reduced to reading (it serves no writes), then
// Config.WithholdTypes and Config.GrantScopes. The order of the request is kept.
func (s *Server) grantScopes(requested []string) []string {
	withheld := map[string]bool{}
	for _, t := range s.cfg.WithholdTypes {
		withheld[t] = true
	}
	var types []string
	if len(withheld) > 0 {
		s.store.mu.RLock()
		types = s.store.servedTypes()
		s.store.mu.RUnlock()
		for t := range sharedTypes {
			types = append(types, t)
		}
		slices.Sort(types)
	}
	var out []string
	add := func(sc string) {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	for _, sc := range requested {
		switch sc {
		case "openid", "fhirUser", "profile", "launch/patient", "offline_access":
			add(sc)
			continue
		}
		rs, ok := parseResourceScope(sc)
		if !ok || rs.context == "system" {
			continue
		}
		if rs.v2 {
			if s.cfg.SMARTv1Only {
				continue
			}
			var keep strings.Builder
			for _, c := range rs.perms {
				if c == 'r' || c == 's' {
					keep.WriteRune(c)
				}
			}
			if keep.Len() == 0 {
				continue
			}
			rs.perms = keep.String()
		} else {
			switch rs.perms {
			case "write":
				continue
			case "*":
				rs.perms = "read"
			}
		}
		switch {
		case withheld[rs.typ]:
		case rs.typ == "*" && len(withheld) > 0:
			for _, t := range types {
				if !withheld[t] {
					add(rs.withType(t))
				}
			}
		default:
			add(rs.String())
		}
	}
	if s.cfg.GrantScopes != nil {
		out = s.cfg.GrantScopes(slices.Clone(out))
	}
	return out
}

// scopeSet answers access questions for a granted scope list.
type scopeSet struct {
	names     []string
	resources []resourceScope
}

func newScopeSet(names []string) scopeSet {
	ss := scopeSet{names: names}
	for _, n := range names {
		if rs, ok := parseResourceScope(n); ok {
			ss.resources = append(ss.resources, rs)
		}
	}
	return ss
}

func (ss scopeSet) has(name string) bool { return slices.Contains(ss.names, name) }

// hasPatientScope reports whether any patient-level clinical scope was granted (then the
// token response carries `patient`).
func (ss scopeSet) hasPatientScope() bool {
	for _, rs := range ss.resources {
		if rs.context == "patient" {
			return true
		}
	}
	return false
}

func (ss scopeSet) allows(typ string, search bool) bool {
	for _, rs := range ss.resources {
		if rs.typ != "*" && rs.typ != typ {
			continue
		}
		if search && rs.canSearch() || !search && rs.canRead() {
			return true
		}
	}
	return false
}

// supportedScopes is scopes_supported in discovery.
func (s *Server) supportedScopes() []string {
	out := []string{"openid", "fhirUser", "launch/patient", "offline_access"}
	if s.cfg.SMARTv1Only {
		return append(out, "patient/*.read", "user/*.read")
	}
	return append(out, "patient/*.rs", "patient/*.read", "user/*.rs", "user/*.read")
}
