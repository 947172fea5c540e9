package smart

import (
	"slices"
	"strings"
	"testing"
)

func TestMinimumScopes(t *testing.T) {
	v2 := &Server{V2: true, Capabilities: []string{"permission-v2"}, ScopesSupported: []string{"patient/*.rs"}}
	v1 := &Server{}
	got := MinimumScopes(v2, "launch/patient patient/*.read")
	if strings.Contains(got, "*") || !strings.Contains(got, "patient/Observation.rs") || !strings.HasPrefix(got, BaseScopes) {
		t.Fatalf("v2 with a wildcard catalog: %s", got)
	}
	if n := len(GrantedTypes(got)); n != len(AppTypes) {
		t.Fatalf("asked for %d types, want %d", n, len(AppTypes))
	}
	if got := MinimumScopes(v1, ""); !strings.Contains(got, "patient/Condition.read") || strings.Contains(got, ".rs") {
		t.Fatalf("v1: %s", got)
	}
	// A catalog that limits types narrows the request; an unknown type is not added.
	got = MinimumScopes(v2, "patient/Observation.read patient/Condition.read patient/Basic.read")
	if types := GrantedTypes(got); len(types) != 2 || !slices.Contains(types, "Observation") || !slices.Contains(types, "Condition") {
		t.Fatalf("narrowed: %s", got)
	}
	if len(got) > 2048 {
		t.Fatalf("scope too long for the Lighthouse (%d)", len(got))
	}
}
