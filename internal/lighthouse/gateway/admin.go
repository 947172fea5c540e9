package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// adminCommand runs `lighthouse admin --db DB COMMAND`: the operator's view of usage and the
// switches for revocation and key rotation. It opens (and migrates) the same database as the
// server, and works while servers run on it.
func adminCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lighthouse admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "SQLite database file, or a postgres:// DSN (required)")
	providersFile := fs.String("providers", "", "providers JSON file: show its current user limits (default: the limit each count was last checked against)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: lighthouse admin --db PATH|postgres://... COMMAND
  installations   each installation: ID, administrator, created, last seen, per-provider users/limit
  revoke ID       refuse every later request from the installation (problem installation_revoked)
  unrevoke ID     lift a revocation
  outbox          administrator notifications, pending and sent
  rotate-key      start sealing tickets with a new key (the old one opens tickets until they expire)`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	if *db == "" || len(rest) == 0 {
		fs.Usage()
		return errors.New("lighthouse admin: --db and a command are required")
	}
	cmd, rest := rest[0], rest[1:]
	wantArgs := map[string]int{"installations": 0, "revoke": 1, "unrevoke": 1, "outbox": 0, "rotate-key": 0}
	n, ok := wantArgs[cmd]
	if !ok {
		fs.Usage()
		return fmt.Errorf("lighthouse admin: unknown command %q", cmd)
	}
	if len(rest) != n {
		return fmt.Errorf("lighthouse admin %s: expected %d argument(s), got %d", cmd, n, len(rest))
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return fmt.Errorf("lighthouse admin: %w", err)
	}
	defer st.Close()
	now := time.Now()
	switch cmd {
	case "installations":
		limits := map[string]int{}
		if *providersFile != "" {
			ps, err := LoadProviders(*providersFile)
			if err != nil {
				return fmt.Errorf("lighthouse admin: %w", err)
			}
			for _, p := range ps {
				limits[p.ID] = p.UserLimit
			}
		}
		return listInstallations(ctx, st, stdout, limits)
	case "revoke", "unrevoke":
		err := st.setRevoked(ctx, rest[0], cmd == "revoke", now)
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("lighthouse admin %s: no installation %q", cmd, rest[0])
		}
		if err != nil {
			return fmt.Errorf("lighthouse admin %s: %w", cmd, err)
		}
		if cmd == "revoke" {
			fmt.Fprintf(stdout, "revoked %s: its requests now get installation_revoked\n", rest[0])
		} else {
			fmt.Fprintf(stdout, "unrevoked %s\n", rest[0])
		}
		return nil
	case "outbox":
		return listOutbox(ctx, st, stdout)
	default: // rotate-key
		if err := st.ensureTicketKey(ctx, now); err != nil {
			return fmt.Errorf("lighthouse admin rotate-key: %w", err)
		}
		id, err := st.rotateTicketKey(ctx, now)
		if err != nil {
			return fmt.Errorf("lighthouse admin rotate-key: %w", err)
		}
		fmt.Fprintf(stdout, "new ticket key %s\nRunning gateways seal with it within %s; the previous key opens tickets for %s more.\n",
			id, keyReload, flowTTL+keyReload)
		return nil
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func listInstallations(ctx context.Context, st *store, w io.Writer, limits map[string]int) error {
	list, err := st.installations(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tADMIN\tEMAIL\tCREATED\tLAST SEEN\tUSERS (provider count/limit)")
	for _, in := range list {
		status := "active"
		if in.Revoked {
			status = "revoked"
		}
		var usage []string
		for _, u := range in.Usage {
			limit := "?"
			if l, ok := limits[u.ProviderID]; ok {
				limit = fmt.Sprint(l)
			} else if u.Limit > 0 {
				limit = fmt.Sprint(u.Limit)
			}
			usage = append(usage, fmt.Sprintf("%s %d/%s", u.ProviderID, u.Count, limit))
		}
		if len(usage) == 0 {
			usage = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, status, oneLine(in.Name), in.Email,
			fmtTime(in.CreatedAt), fmtTime(in.LastSeen), strings.Join(usage, ", "))
	}
	return tw.Flush()
}

func listOutbox(ctx context.Context, st *store, w io.Writer) error {
	rows, err := st.outboxAll(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tSTATUS\tKIND\tINSTALLATION\tPROVIDER\tUSERS\tTO\tATTEMPTS\tNOTE")
	for _, r := range rows {
		status, note := "pending", ""
		if r.SentAt != "" {
			status, note = "sent", "sent "+r.SentAt
		} else if r.LastError != "" {
			note = "retry after " + r.NextAttempt + ": " + oneLine(r.LastError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%d\t%s\n", r.CreatedAt, status, r.Kind, r.InstallationID, r.ProviderID,
			r.Count, r.Limit, r.AdminEmail, r.Attempts, note)
	}
	return tw.Flush()
}

// oneLine keeps a value on its line of the table.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\t' {
			return ' '
		}
		return r
	}, s)
}
