//go:build !desktop

package cli

// The PostgreSQL driver for `lighthouse --db postgres://...` is linked into the headless build
// only (make build-headless, the dist tarballs, and tests); the desktop build (tag desktop) leaves
// it out: a user's install runs no Lighthouse on PostgreSQL.
import _ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
