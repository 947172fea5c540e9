// Command fasten-desktop is Fasten Desktop: a personal health record on your own computer.
// With no subcommand it opens the desktop window; see `fasten-desktop help` for the rest.
package main

import (
	"context"
	"embed"
	"io/fs"
	"os"
	"runtime/debug"

	"github.com/fastenhealth/fasten-desktop/internal/cli"
)

// frontend/dist holds the built frontend; gitkeep keeps the folder (and this embed) valid before
// the first frontend build.
//
//go:embed all:frontend/dist
var dist embed.FS

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	assets, err := fs.Sub(dist, "frontend/dist")
	if err != nil {
		panic(err)
	}
	os.Exit(cli.Main(os.Args[1:], cli.Env{
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Assets:  assets,
		Version: versionString(),
		Desktop: desktop(assets),
	}))
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

// desktop returns the function that opens the window (wired to app/ in the desktop shell issue).
func desktop(fs.FS) func(context.Context, cli.Common, bool) error { return nil }
