package gateway

// The gateway's PostgreSQL tests need the driver; the app registers it in the headless build only
// (internal/cli/postgres.go).
import _ "github.com/jackc/pgx/v5/stdlib"
