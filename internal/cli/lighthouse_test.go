package cli

import (
	"database/sql"
	"slices"
	"testing"
)

func TestWantsPostgres(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--listen", "127.0.0.1:0", "--db", "postgres://u@h/db"}, true},
		{[]string{"--db=postgresql://u@h/db"}, true},
		{[]string{"-db", "postgres://x"}, true},
		{[]string{"--db", "/var/lib/lighthouse.db"}, false},
		{[]string{"--providers", "postgres://not-the-db", "--db", "x.db"}, false},
		{[]string{"--db"}, false},
	} {
		if got := wantsPostgres(c.args); got != c.want {
			t.Errorf("wantsPostgres(%q) = %v", c.args, got)
		}
	}
}

// Builds without the desktop tag (the headless build, tests) register the PostgreSQL driver.
func TestHeadlessBuildHasPostgres(t *testing.T) {
	if !slices.Contains(sql.Drivers(), "pgx") {
		t.Fatalf("drivers %v: the pgx driver is not registered", sql.Drivers())
	}
}
