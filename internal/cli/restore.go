package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/restore"
)

// restoreCmd puts a backup back in place of the current records: it checks the file, shows what
// it holds, asks (unless --yes), then replaces the records and says where the previous ones are
// kept. Through the running window or serve when one holds the folder, else here.
func restoreCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("restore", env, &c)
	yes := fs.Bool("yes", false, "replace the records without asking")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"restore needs one FILE: a backup written by Settings → Backup or the backup command"}
	}
	file, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	lock, client, err := claim(ctx, c, env, "restore")
	if err != nil {
		return err
	}
	var steps restoreSteps
	if client != nil {
		steps = ownerSteps{client}
	} else {
		defer lock.Release()
		// The keyring only to take the replaced sources' sign-ins out (no note when it is not
		// available: a restore works without it).
		keyring, _, err := secretsStore(ctx, c, env)
		if err != nil {
			return err
		}
		b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), Getenv: env.Getenv, Lock: lock, Keyring: keyring, Command: "restore"})
		if err != nil {
			return err
		}
		defer b.Close()
		steps = localSteps{b.Restore}
	}
	p, err := steps.check(ctx, file)
	if err != nil {
		return err
	}
	printSummary(env.Stdout, p.Summary)
	if !*yes {
		ok, err := confirm(env, "Replace all current records with this backup? The current ones are kept in a file beside the database. [y/N] ")
		if err != nil || !ok {
			_ = steps.discard(ctx, p.ID)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "Nothing was changed.")
			return nil
		}
	}
	res, err := steps.apply(ctx, p.ID)
	if err != nil {
		_ = steps.discard(ctx, p.ID)
		return err
	}
	fmt.Fprintf(env.Stdout, "Restored %s: %s.\nThe records from before are kept in %s.\n", p.Summary.Name, nRecords(res.Summary.Total), res.Previous)
	for _, s := range res.Summary.Sources {
		if s.Kind == "provider" {
			fmt.Fprintln(env.Stdout, "Connected providers need a new sign-in (sign-ins are never in a backup): open Sources and choose Reconnect.")
			break
		}
	}
	return nil
}

// confirm asks on stdin; without a terminal answer (end of input) it is a no, and says --yes.
func confirm(env Env, question string) (bool, error) {
	fmt.Fprint(env.Stdout, question)
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, err
	}
	if err == io.EOF && strings.TrimSpace(line) == "" {
		fmt.Fprintln(env.Stdout)
		return false, usageError{"no answer on standard input; nothing was changed (pass --yes to restore without asking)"}
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

func nRecords(n int) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}

func printSummary(w io.Writer, s restore.Summary) {
	fmt.Fprintf(w, "%s is a good backup (checked): %s", s.Name, nRecords(s.Total))
	if s.Newest != "" && len(s.Newest) >= 10 {
		fmt.Fprintf(w, ", last changed %s", s.Newest[:10])
	}
	fmt.Fprintln(w, ".")
	for _, p := range s.People {
		born := ""
		if p.BirthDate != "" {
			born = ", born " + p.BirthDate
		}
		fmt.Fprintf(w, "  %s%s: %s\n", p.Name, born, nRecords(p.Records))
	}
	for _, src := range s.Sources {
		kind := "file"
		if src.Kind == "provider" {
			kind = "provider"
		}
		fmt.Fprintf(w, "  from %s (%s): %s\n", src.Name, kind, nRecords(src.Records))
	}
	types := make([]string, 0, len(s.Counts))
	for t := range s.Counts {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return s.Counts[types[i]] > s.Counts[types[j]] })
	if len(types) > 8 {
		types = types[:8]
	}
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, s.Counts[t])
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "  most: %s\n", strings.Join(parts, ", "))
	}
}

// restoreSteps is a restore done here or by the folder's owner.
type restoreSteps interface {
	check(ctx context.Context, file string) (restore.Pending, error)
	apply(ctx context.Context, id string) (restore.Result, error)
	discard(ctx context.Context, id string) error
}

type localSteps struct{ s *restore.Service }

func (l localSteps) check(ctx context.Context, file string) (restore.Pending, error) {
	return l.s.PrepareFile(ctx, file)
}
func (l localSteps) apply(ctx context.Context, id string) (restore.Result, error) {
	return l.s.Apply(ctx, id)
}
func (l localSteps) discard(_ context.Context, id string) error { return l.s.Discard(id) }

type ownerSteps struct{ c *control.Client }

func (o ownerSteps) check(ctx context.Context, file string) (p restore.Pending, err error) {
	err = o.c.Restore(ctx, control.RestoreRequest{Action: "check", Path: file}, &p)
	return p, err
}
func (o ownerSteps) apply(ctx context.Context, id string) (r restore.Result, err error) {
	err = o.c.Restore(ctx, control.RestoreRequest{Action: "apply", ID: id}, &r)
	return r, err
}
func (o ownerSteps) discard(ctx context.Context, id string) error {
	var out struct{}
	return o.c.Restore(ctx, control.RestoreRequest{Action: "discard", ID: id}, &out)
}
