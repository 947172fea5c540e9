package cli

import (
	"context"
	"fmt"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

func syncCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("sync", env, &c)
	source := fs.Int64("source", 0, "sync only this source")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), Getenv: env.Getenv})
	if err != nil {
		return err
	}
	defer b.Close()
	srcs, err := b.Store.ListSources(ctx, 0)
	if err != nil {
		return err
	}
	n := 0
	for _, s := range srcs {
		if s.Kind == records.KindProvider && (*source == 0 || s.ID == *source) {
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(env.Stdout, "No provider is connected; nothing to sync.")
		return nil
	}
	return fmt.Errorf("%d connected sources, but this build cannot sync yet", n)
}
