package cli

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
)

func lighthouseCmd(ctx context.Context, args []string, env Env) error {
	if wantsPostgres(args) && !slices.Contains(sql.Drivers(), "pgx") {
		return errors.New("this build has no PostgreSQL support (the desktop build leaves it out): run the Lighthouse with a SQLite --db PATH, " +
			"or use the headless build (make build-headless, or fasten-desktop-<version>-linux-amd64.tar.gz from make dist)")
	}
	return gateway.Command(ctx, args, env.Stdout, env.Stderr, env.Getenv)
}

// wantsPostgres reports whether --db names a PostgreSQL database.
func wantsPostgres(args []string) bool {
	for i, a := range args {
		v, ok := "", false
		switch {
		case a == "--db" || a == "-db":
			if i+1 < len(args) {
				v, ok = args[i+1], true
			}
		case strings.HasPrefix(a, "--db=") || strings.HasPrefix(a, "-db="):
			v, ok = a[strings.Index(a, "=")+1:], true
		}
		if ok && (strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")) {
			return true
		}
	}
	return false
}
