package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

// syncTokens is how `sync` gets the TokenManager of a provider source: from the keyring, through
// the connect service (refreshes go to the recorded token endpoint, or through the Lighthouse for
// confidential clients).
func syncTokens(b *backend.Backend) syncer.TokenFunc {
	return b.Connect.TokenManagerFor
}

func syncCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("sync", env, &c)
	source := fs.Int64("source", 0, "sync only this source")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (see fasten-desktop help)", fs.Arg(0))}
	}
	lock, client, err := claim(ctx, c, env, "sync")
	if err != nil {
		return err
	}
	if client != nil {
		// The window or serve holds the folder: its syncer runs the syncs (joining one it runs
		// already) and its token managers refresh, so a rotating refresh token is spent once and
		// its running syncs are left alone.
		results, err := client.Sync(ctx, control.SyncRequest{SourceID: *source})
		if err != nil {
			return err
		}
		return printSync(env.Stdout, results)
	}
	defer lock.Release()
	// The OS keyring, or the encrypted secrets file of a headless server (as serve).
	keyring, note, err := secretsStore(ctx, c, env)
	if err != nil {
		return err
	}
	printSecretsNote(env.Stderr, note)
	b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), Getenv: env.Getenv, Lock: lock, Keyring: keyring})
	if err != nil {
		return err
	}
	defer b.Close()
	// Requests carry the app's User-Agent; the syncer sets its own timeouts.
	return runSync(ctx, env.Stdout, b, syncer.Config{Tokens: syncTokens(b), HTTP: &http.Client{Transport: b.HTTP.Transport}}, *source)
}

// runSync syncs every connected provider source (or only the one with id only) in this process,
// which holds the data folder, printing a line per source, and fails when any of them failed.
// Holding the folder is what makes MarkInterrupted safe: no other process has running syncs. cfg supplies Tokens (and, in tests, Sleep); Store and
// Log come from b.
func runSync(ctx context.Context, out io.Writer, b *backend.Backend, cfg syncer.Config, only int64) error {
	cfg.Store = b.Store
	cfg.DB = b.DB
	cfg.Log = b.Log.With("part", "syncer")
	s := syncer.New(cfg)
	if n, err := s.MarkInterrupted(ctx); err != nil {
		b.Log.Warn("could not mark interrupted syncs", "err", err)
	} else if n > 0 {
		b.Log.Info("syncs interrupted earlier", "runs", n)
	}
	var ids []int64
	if only != 0 {
		ids = []int64{only}
	}
	results, err := s.RunOnce(ctx, ids)
	if err != nil {
		return err
	}
	return printSync(out, control.SyncResults(results))
}

// printSync prints a line per source (the same for a direct run and one through the owner) and
// fails when any of them failed.
func printSync(out io.Writer, results []control.SyncResult) error {
	if len(results) == 0 {
		fmt.Fprintln(out, "No provider is connected; nothing to sync.")
		return nil
	}
	failed := 0
	for _, r := range results {
		name := r.Name
		if name == "" {
			name = "Source"
		}
		label := fmt.Sprintf("%s (source %d)", name, r.SourceID)
		switch r.Status {
		case syncer.RunOK:
			line := fmt.Sprintf("%s: %d added, %d updated, %d unchanged", label, r.Added, r.Updated, r.Unchanged)
			if r.Missing > 0 {
				line += fmt.Sprintf(", %d no longer returned by the provider (kept)", r.Missing)
			}
			fmt.Fprintln(out, line)
			for _, w := range r.Warnings {
				fmt.Fprintln(out, "  warning: "+w)
			}
		case syncer.RunCancelled:
			failed++
			fmt.Fprintf(out, "%s: stopped before it finished\n", label)
		default:
			failed++
			msg := r.Error
			if r.Plain {
				fmt.Fprintf(out, "%s: %s\n", label, msg)
				continue
			}
			fmt.Fprintf(out, "%s: failed: %s\n", label, strings.TrimSuffix(msg, "."))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d sources did not sync", failed, len(results))
	}
	return nil
}
