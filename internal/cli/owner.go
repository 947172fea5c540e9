package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
)

// claimPoll is how often a command waiting for the data folder looks again.
const claimPoll = 200 * time.Millisecond

// folder resolves the data folder (creating it 0700): the only thing done before the lock.
func folder(c Common, env Env) (paths.Dirs, error) {
	dirs, err := paths.Resolve(c.DataDir, env.Getenv)
	if err != nil {
		return dirs, err
	}
	return dirs, dirs.Ensure()
}

// claim is how a one-shot command (import, sync, backup) gets at the data folder: it takes the
// folder's lock when the folder is free (then lock is set and the command runs here), or finds the
// running owner's control socket (then client is set and the work is done there). When the holder
// serves no socket (another one-shot command, or an owner still starting), it waits, saying so
// once on stderr.
func claim(ctx context.Context, c Common, env Env, command string) (*owner.Lock, *control.Client, error) {
	dirs, err := folder(c, env)
	if err != nil {
		return nil, nil, err
	}
	var client *control.Client
	told := false
	l, err := owner.Wait(ctx, dirs.Data, command, claimPoll, func(he *owner.HeldError) bool {
		if cl, err := control.Dial(ctx, dirs.Data); err == nil {
			client = cl
			return true
		}
		if !told {
			told = true
			fmt.Fprintf(env.Stderr, "%v.\nWaiting until it is done with the folder (Ctrl-C to stop)...\n", he)
		}
		return false
	})
	if client != nil {
		return nil, client, nil
	}
	return l, nil, err
}

// ControlHandlers is what the owner of a data folder (serve, the window) does for the command
// line through its control socket: the same importer, syncer and backup as a direct run. show
// brings the window to the front (nil in serve mode).
func ControlHandlers(b *backend.Backend, show func()) control.Handlers {
	return control.Handlers{
		Import: func(ctx context.Context, inputs []importer.Input, opt importer.Options) (*importer.Result, error) {
			res, err := b.Importer.Import(ctx, inputs, opt)
			if res != nil && b.Bus != nil {
				// The window and browsers refresh as after an upload.
				b.Bus.Publish("import.done", res)
				b.Bus.Publish("resources.changed", map[string]any{"source_id": res.SourceID, "counts": res.Counts, "added": res.Added, "updated": res.Updated})
			}
			return res, err
		},
		// The running syncer: a source it is syncing already is joined, not synced twice, and
		// tokens are refreshed by this process only.
		Sync: b.Syncer.RunOnce,
		Backup: func(ctx context.Context, dest string) (string, error) {
			return b.DB.Path, b.DB.Backup(ctx, dest)
		},
		Restore: func(ctx context.Context, req control.RestoreRequest) (any, error) {
			switch req.Action {
			case "check":
				return b.Restore.PrepareFile(ctx, req.Path)
			case "apply":
				return b.Restore.Apply(ctx, req.ID)
			case "discard":
				return struct{}{}, b.Restore.Discard(req.ID)
			}
			return nil, fmt.Errorf("restore: unknown step %q", req.Action)
		},
		Show: show,
		Log:  b.Log.With("part", "control"),
	}
}

// RunControl serves the data folder's control socket until ctx ends. A socket that cannot be
// made (a path too long for AF_UNIX) is logged: commands then wait for this process instead.
func RunControl(ctx context.Context, b *backend.Backend, show func()) error {
	srv, err := control.Listen(b.Dirs.Data, ControlHandlers(b, show))
	if err != nil {
		b.Log.Warn("no control socket", "err", err)
		return nil
	}
	return srv.Run(ctx)
}

// refusedOrFailed words an import error the same for a direct run and one through the owner.
func importError(err error) error {
	var re *importer.RefusedError
	var ce *control.Error
	if errors.As(err, &re) || (errors.As(err, &ce) && ce.Kind == control.KindRefused) {
		return fmt.Errorf("refused: %v\nNothing was imported. Fix the file, or use --skip-invalid to import the valid resources", err)
	}
	return fmt.Errorf("import failed: %w (nothing was imported)", err)
}

// heldHint is what to do about a data folder another process holds.
func heldHint(h owner.Holder) string {
	switch h.Command {
	case "serve":
		return "Open the link it printed, or stop it first."
	case owner.CommandWindow:
		return "Use its window, or quit it first."
	case "":
		return "Try again when it has finished."
	}
	return "Try again when it has finished (or stop it)."
}
