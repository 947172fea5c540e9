package records

import (
	"context"
	"database/sql"
	"sort"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// Contents is what a record database holds, in brief: a backup's, shown before it is restored.
type Contents struct {
	Total   int              `json:"total"`  // records
	Counts  map[string]int   `json:"counts"` // records by FHIR type
	People  []ContentsPerson `json:"people"`
	Sources []ContentsSource `json:"sources"` // most records first
	// Newest is when a source last changed (RFC 3339), "" when there is none.
	Newest string `json:"newest,omitempty"`
}

// ContentsPerson is one person of Contents.
type ContentsPerson struct {
	Name      string `json:"name"`
	BirthDate string `json:"birth_date,omitempty"`
	Records   int    `json:"records"`
}

// ContentsSource is one source of Contents.
type ContentsSource struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // manual | provider
	Records int    `json:"records"`
}

// ReadContents summarises the database q reads (a checked copy of a backup, or this one) from
// its kept counts: no record is read.
func ReadContents(ctx context.Context, q *sql.DB) (Contents, error) {
	c := Contents{Counts: map[string]int{}, People: []ContentsPerson{}, Sources: []ContentsSource{}}
	err := eachRow(ctx, q, `SELECT type, sum(n) FROM resource_counts WHERE profile_id >= 0 GROUP BY type`, func(rows *sql.Rows) error {
		var t string
		var n int
		if err := rows.Scan(&t, &n); err != nil {
			return err
		}
		if n > 0 {
			c.Counts[t] = n
			c.Total += n
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	err = eachRow(ctx, q, `SELECT p.name, coalesce(p.birth_date, ''),
		coalesce((SELECT sum(n) FROM resource_counts c WHERE c.profile_id = p.id), 0)
		FROM profiles p ORDER BY p.name COLLATE NOCASE, p.id`, func(rows *sql.Rows) error {
		var p ContentsPerson
		err := rows.Scan(&p.Name, &p.BirthDate, &p.Records)
		c.People = append(c.People, p)
		return err
	})
	if err != nil {
		return c, err
	}
	err = eachRow(ctx, q, `SELECT s.name, s.kind,
		coalesce((SELECT sum(n) FROM resource_counts c WHERE c.source_id = s.id AND c.profile_id >= 0), 0)
		FROM sources s ORDER BY s.id`, func(rows *sql.Rows) error {
		var src ContentsSource
		err := rows.Scan(&src.Name, &src.Kind, &src.Records)
		c.Sources = append(c.Sources, src)
		return err
	})
	if err != nil {
		return c, err
	}
	sort.SliceStable(c.Sources, func(i, j int) bool { return c.Sources[i].Records > c.Sources[j].Records })
	var newest sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT max(updated_at) FROM sources`).Scan(&newest); err != nil {
		return c, db.Explain(err)
	}
	c.Newest = newest.String
	return c, nil
}

func eachRow(ctx context.Context, q *sql.DB, query string, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return db.Explain(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ProviderTokenKeys are the keyring keys of the provider sources' sign-ins, read on c (the
// writer a restore holds).
func ProviderTokenKeys(ctx context.Context, c *sql.Conn) ([]string, error) {
	rows, err := c.QueryContext(ctx, `SELECT token_key FROM sources WHERE kind = 'provider' AND coalesce(token_key, '') != ''`)
	if err != nil {
		return nil, db.Explain(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// AfterRestore, on c right after a backup replaced the records: every provider source asks for
// a new sign-in (tokens are never in a backup; the keys it names are the old database's), and a
// sync the backup recorded as running did not finish.
func AfterRestore(ctx context.Context, c *sql.Conn, now time.Time) error {
	ts := now.UTC().Format(time.RFC3339)
	if _, err := c.ExecContext(ctx, `UPDATE sources SET status = 'reconnect_needed', token_key = NULL,
		last_error = 'Restored from a backup: sign in again to sync.', updated_at = ? WHERE kind = 'provider'`, ts); err != nil {
		return db.Explain(err)
	}
	if _, err := c.ExecContext(ctx, `UPDATE sync_runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'`, ts); err != nil {
		return db.Explain(err)
	}
	return nil
}
