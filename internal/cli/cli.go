// Package cli implements the fasten-desktop command line: serve, import, sync, lighthouse,
// sandbox, version, and the flags every command shares. main.go hands it the embedded frontend and
// the function that opens the desktop window (the only part that needs Wails).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
)

// Env is what the commands need from the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
	Assets         fs.FS // the built frontend (frontend/dist)
	Version        string
	// Desktop opens the window on the data folder lock holds (the command line took it); nil in
	// builds without a window. It is not called when another process holds the folder.
	Desktop func(ctx context.Context, c Common, background bool, lock *owner.Lock) error
}

// Common are the flags every command accepts.
type Common struct {
	DataDir       string
	LighthouseURL string
	Verbose       bool
}

func (c *Common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "", "where the database, settings and logs live (or FASTEN_DATA_DIR)")
	fs.StringVar(&c.LighthouseURL, "lighthouse-url", "", "the Lighthouse auth gateway (or FASTEN_LIGHTHOUSE_URL)")
	fs.BoolVar(&c.Verbose, "verbose", false, "log more")
}

const usage = `Fasten Desktop: your health records, on your computer.

Usage:
  fasten-desktop [--background]            open the desktop window (--background: start hidden and sync)
  fasten-desktop serve [--listen ADDR]     run the app for a browser on 127.0.0.1 (default 127.0.0.1:9300)
  fasten-desktop import [--json] [--skip-invalid] [--source ID] FILE...
                                           import FHIR files (Bundle JSON, NDJSON, a resource, zip, .gz)
  fasten-desktop sync [--source ID]        sync connected providers once, then exit
  fasten-desktop backup FILE               write a checked copy of the record database to FILE
  fasten-desktop restore [--yes] FILE      replace the records with a backup's (checked and shown
                                           first; the current ones are kept in a file beside them)
  fasten-desktop lighthouse --listen ADDR --db PATH|postgres://... --providers FILE [--public-url URL]
                                           run the reference Lighthouse auth gateway
                                           (more flags: lighthouse --help; docs/lighthouse-operations.md)
  fasten-desktop lighthouse admin --db DB installations|revoke ID|unrevoke ID|outbox|rotate-key
                                           the Lighthouse operator's commands
  fasten-desktop sandbox [--listen ADDR] [--data DIR]
                                           run the demo hospital (built-in demo patients, or the
                                           Synthea bundles in DIR) and a Lighthouse on loopback
  fasten-desktop version                   print the version

Every command accepts --data-dir DIR (or FASTEN_DATA_DIR) and --lighthouse-url URL
(or FASTEN_LIGHTHOUSE_URL). One process at a time owns a data folder: while the window or serve
runs, import, sync, backup and restore are done by it; a second serve or window does not start on it.
`

// Main runs the command line and returns the exit status.
func Main(args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = os.Stdin
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "":
		err = desktop(ctx, args, env)
	case "serve":
		err = serve(ctx, args, env)
	case "import":
		err = importCmd(ctx, args, env)
	case "sync":
		err = syncCmd(ctx, args, env)
	case "backup":
		err = backupCmd(ctx, args, env)
	case "restore":
		err = restoreCmd(ctx, args, env)
	case "lighthouse":
		err = lighthouseCmd(ctx, args, env)
	case "sandbox":
		err = sandboxCmd(ctx, args, env)
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "fasten-desktop %s\n", env.Version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(env.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(env.Stderr, "fasten-desktop: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "fasten-desktop: %v\n", err)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(env.Stderr, "fasten-desktop: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func newFlags(name string, env Env, c *Common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c.register(fs)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func desktop(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("fasten-desktop", env, &c)
	background := fs.Bool("background", false, "start hidden, run the due syncs and stay in the background")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (see fasten-desktop help)", fs.Arg(0))}
	}
	if env.Desktop == nil {
		return errors.New("this build has no desktop window; use `fasten-desktop serve` and open the printed link in a browser")
	}
	dirs, err := folder(c, env)
	if err != nil {
		return err
	}
	lock, err := owner.Acquire(dirs.Data, owner.CommandWindow)
	var he *owner.HeldError
	switch {
	case errors.As(err, &he):
		return handOver(ctx, env, dirs.Data, he, *background)
	case err != nil:
		return err
	}
	defer lock.Release()
	return env.Desktop(ctx, c, *background, lock)
}

// handOverWait bounds how long a second window waits for a first one that is still starting.
const handOverWait = 15 * time.Second

// handOver is a second launch while another process holds the data folder: a window is brought
// to the front (an autostart launch changes nothing); anything else (serve, a command) is named,
// and the launch fails: two processes never share a data folder.
func handOver(ctx context.Context, env Env, dir string, he *owner.HeldError, background bool) error {
	if he.Holder.Command != owner.CommandWindow {
		return fmt.Errorf("%w.\n%s", he, heldHint(he.Holder))
	}
	if background {
		fmt.Fprintln(env.Stdout, "Fasten is already running.")
		return nil
	}
	deadline := time.Now().Add(handOverWait)
	for {
		cl, err := control.Dial(ctx, dir)
		if err == nil {
			if ok, err := cl.Show(ctx); err == nil && ok {
				fmt.Fprintln(env.Stdout, "Fasten is already open: its window was brought to the front.")
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w, and its window did not answer: %v", he, err)
		}
		t := time.NewTimer(claimPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
