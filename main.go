// Command fasten-desktop is Fasten Desktop: a personal health record on your own computer.
// With no subcommand it opens the desktop window; see `fasten-desktop help` for the rest.
package main

import (
	"context"
	"embed"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	"github.com/fastenhealth/fasten-desktop/app"
	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/cli"
	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
)

// frontend/dist holds the built frontend; gitkeep keeps the folder (and this embed) valid before
// the first frontend build.
//
//go:embed all:frontend/dist
var dist embed.FS

//go:embed build/appicon.png
var icon []byte

// version is set at build time with -ldflags "-X main.version=..." (`make build` and `make dist`
// use `git describe --tags --always --dirty`).
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
	if v != "dev" {
		return v // stamped by the build
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

var started = time.Now()

// desktop opens the window on the in-process backend.
func desktop(assets fs.FS) func(context.Context, cli.Common, bool, *owner.Lock) error {
	if !app.DesktopBuild {
		return nil
	}
	// The command line took the data folder's lock before calling this (a second launch hands
	// over to the first through the control socket and never gets here).
	return func(ctx context.Context, c cli.Common, background bool, lock *owner.Lock) error {
		b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: versionString(), Lock: lock})
		if err != nil {
			return err
		}
		defer b.Close()
		return app.Run(app.Options{
			Backend: b, Assets: assets, Icon: icon, Background: background, Started: started,
			// Syncs and webhook deliveries run while the window (or the hidden background
			// instance) lives; every bus event also reaches the window as a Wails event.
			// --background also runs the due syncs: the syncer does them at start.
			Services: b.Run,
			Control: func(ctx context.Context, show func()) error {
				return cli.RunControl(ctx, b, show)
			},
			Events: func(ctx context.Context, emit func(topic string, data any)) {
				b.Bus.Forward(ctx, func(ev events.Event) { emit(ev.Event, ev) })
			},
		})
	}
}
