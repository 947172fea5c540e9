package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
)

func importCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("import", env, &c)
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout")
	skip := fs.Bool("skip-invalid", false, "import the valid resources and list the invalid ones instead of refusing the file")
	source := fs.Int64("source", 0, "import into this existing file source")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"import needs at least one FILE"}
	}
	var inputs []importer.Input
	for _, a := range fs.Args() {
		p, err := filepath.Abs(a)
		if err != nil {
			return err
		}
		if err := importer.CheckFile(p, a); err != nil {
			return err
		}
		inputs = append(inputs, importer.Input{Name: filepath.Base(a), Path: p})
	}
	lock, client, err := claim(ctx, c, env, "import")
	if err != nil {
		return err
	}
	bar := newBar(env.Stderr)
	var res *importer.Result
	if client != nil {
		// The window or serve holds the folder: it imports, with the same importer and checks.
		res, err = client.Import(ctx, control.ImportRequest{Files: inputs, SkipInvalid: *skip, SourceID: *source}, bar.update)
	} else {
		defer lock.Release()
		var b *backend.Backend
		b, err = backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), Getenv: env.Getenv, Lock: lock})
		if err != nil {
			return err
		}
		defer b.Close()
		res, err = b.Importer.Import(ctx, inputs, importer.Options{SkipInvalid: *skip, SourceID: *source, Progress: bar.update})
	}
	bar.finish()
	if err != nil {
		return importError(err)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	}
	printResult(env.Stdout, res)
	return nil
}

func printResult(w io.Writer, res *importer.Result) {
	fmt.Fprintf(w, "Imported %d resources (%d new, %d updated, %d unchanged) in %.1fs.\n",
		res.Resources, res.Added, res.Updated, res.Unchanged, float64(res.DurationMS)/1000)
	types := make([]string, 0, len(res.Counts))
	for t := range res.Counts {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return res.Counts[types[i]] > res.Counts[types[j]] })
	for _, t := range types {
		fmt.Fprintf(w, "  %-28s %7d\n", t, res.Counts[t])
	}
	for _, s := range res.Sources {
		if s.SourceID != 0 {
			reused := ""
			if s.ReusedSource {
				reused = " (already imported before: updated in place)"
			}
			fmt.Fprintf(w, "Source %d: %s%s\n", s.SourceID, s.File, reused)
		}
	}
	if res.SkippedTotal > 0 {
		fmt.Fprintf(w, "Skipped %d invalid resources:\n", res.SkippedTotal)
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "  %s, %s: %s\n", s.File, s.Position, s.Message)
		}
		if res.SkippedTotal > len(res.Skipped) {
			fmt.Fprintf(w, "  ... and %d more\n", res.SkippedTotal-len(res.Skipped))
		}
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "Note: %s\n", warn)
	}
}

// bar draws a progress bar on a terminal (and nothing when stderr is not one).
type bar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	drawn bool
	start time.Time
}

func newBar(w io.Writer) *bar {
	b := &bar{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

func (b *bar) update(p importer.Progress) {
	if !b.tty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	const width = 30
	n := int(p.Fraction * width)
	file := p.File
	if len(file) > 32 {
		file = "..." + file[len(file)-29:]
	}
	fmt.Fprintf(b.w, "\r[%s%s] %3.0f%% %-8s %7.1f/%.1f MB %8d resources  %-32s",
		strings.Repeat("#", n), strings.Repeat(" ", width-n), p.Fraction*100, p.Phase,
		float64(p.BytesDone)/1e6, float64(p.BytesTotal)/1e6, p.Resources, file)
	b.drawn = true
}

func (b *bar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
