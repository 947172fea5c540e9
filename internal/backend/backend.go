// Package backend assembles the Fasten backend from its parts (data directory, settings, database,
// record store, importer, API, static frontend) so that serve mode, the desktop window and the
// command line run the very same thing.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/connect"
	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/events/sse"
	"github.com/fastenhealth/fasten-desktop/internal/events/webhooks"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/ips"
	"github.com/fastenhealth/fasten-desktop/internal/own"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/prefs"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/restore"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
	"github.com/fastenhealth/fasten-desktop/internal/useragent"
)

// Options choose where and how the backend runs.
type Options struct {
	DataDir       string // --data-dir; "" = FASTEN_DATA_DIR or the per-OS default
	LighthouseURL string // --lighthouse-url; "" = FASTEN_LIGHTHOUSE_URL, the config file, or the public one
	Version       string
	LogLevel      slog.Level
	LogToStderr   bool
	Getenv        func(string) string
	// Keyring keeps the installation secret and provider tokens. nil means the OS keyring
	// (secrets.NewKeyring(installation.KeyringService)); there is no other fallback. Tests inject a
	// fake store here explicitly.
	Keyring secrets.Store
	// Lock is the data folder, already held (internal/owner). nil: Open takes it as its first
	// step (for Command) and Close lets it go; a folder held by another process is an
	// *owner.HeldError before anything in it is touched.
	Lock    *owner.Lock
	Command string
}

// Backend is the running backend.
type Backend struct {
	Dirs          paths.Dirs
	Config        *config.Store
	DB            *db.DB
	Store         *records.Store
	Importer      *importer.Importer
	API           *api.Server
	Log           *slog.Logger
	LighthouseURL string
	logFile       *os.File
	// Lock holds the data folder; ownLock: Open took it, so Close releases it.
	Lock    *owner.Lock
	ownLock bool

	// Keyring keeps the installation secret and provider tokens (the OS keyring unless a test
	// injected one).
	Keyring secrets.Store
	// Installation serves the registration with the Lighthouse and its settings;
	// Installation.LighthouseURL() is the Lighthouse in use now: a change in Settings applies
	// without a restart, unlike LighthouseURL above.
	Installation *installation.Service
	// Tokens hands out the provider sources' token managers (the syncer's and the flow's).
	Tokens *connect.Tokens
	// Connect serves the provider catalog, connect, disconnect and reconnect.
	Connect *connect.Service
	// Bus carries events to the window (Wails events), to browsers (Stream, SSE) and to webhooks
	// (Hub).
	Bus    *events.Bus
	Stream *sse.Stream
	Hub    *webhooks.Hub
	// Syncer keeps provider sources up to date; Run starts it.
	Syncer *syncer.Syncer
	// HTTP is the client for providers and the Lighthouse: its requests carry the app's
	// User-Agent (fasten-desktop/<version>). The one-shot `sync` command uses it too.
	HTTP *http.Client
	// People serves the household's people (profiles): listing, editing, merge with undo,
	// re-assignment, deletion; the importer and the connect flow match patients with it.
	People *people.Service
	// Prefs serves start at login and the sync interval (/preferences).
	Prefs *prefs.Preferences
	// Restore serves backups (a download) and restores (check, confirm, replace) to the API,
	// the window and the control socket.
	Restore *restore.Service
}

// Open prepares everything; Close undoes it.
func Open(ctx context.Context, opt Options) (*Backend, error) {
	getenv := opt.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dirs, err := paths.Resolve(opt.DataDir, getenv)
	if err != nil {
		return nil, err
	}
	if err := dirs.Ensure(); err != nil {
		return nil, err
	}
	// First of all, own the data folder: nothing below (spool cleanup, migrations, checkpoint,
	// interrupted syncs) may run while another process uses it.
	b := &Backend{Dirs: dirs, Config: config.NewStore(dirs.ConfigFile()), Lock: opt.Lock}
	if b.Lock == nil {
		if b.Lock, err = owner.Acquire(dirs.Data, firstNonEmpty(opt.Command, "serve")); err != nil {
			return nil, err
		}
		b.ownLock = true
	} else if b.Lock.Dir() != dirs.Data {
		return nil, fmt.Errorf("backend: the held lock is for %s, not the data folder %s", b.Lock.Dir(), dirs.Data)
	}
	b.Log, b.logFile, err = openLog(dirs.Logs, opt.LogLevel, opt.LogToStderr)
	if err != nil {
		b.Close()
		return nil, err
	}
	cfg, err := b.Config.Load()
	if err != nil {
		b.Close()
		return nil, err
	}
	override := firstNonEmpty(opt.LighthouseURL, getenv("FASTEN_LIGHTHOUSE_URL"))
	b.LighthouseURL = firstNonEmpty(override, cfg.LighthouseURL, config.DefaultLighthouseURL)
	b.DB, err = db.Open(ctx, dirs.DB(), db.Options{})
	if err != nil {
		b.Close()
		return nil, err
	}
	// From here on a plain sequence: each part is built once, after everything it needs.
	b.Store = records.New(b.DB)
	b.Importer = importer.New(b.Store, b.Log.With("part", "importer"), importer.Limits{})
	spool := filepath.Join(dirs.Data, "spool")
	cleanSpool(spool)
	b.Bus = events.NewBus(events.BusOptions{Log: b.Log.With("part", "events")})
	// Requests to providers and the Lighthouse carry User-Agent: fasten-desktop/<version>.
	b.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: useragent.Transport(useragent.String(opt.Version), nil)}
	b.Keyring = opt.Keyring
	if b.Keyring == nil {
		b.Keyring = secrets.NewKeyring(installation.KeyringService)
	}
	if b.Installation, err = installation.New(installation.Options{
		Config:             b.Config,
		Keyring:            b.Keyring,
		LighthouseOverride: override,
		Log:                b.Log.With("part", "installation"),
		HTTPClient:         b.HTTP,
	}); err != nil {
		b.Close()
		return nil, err
	}
	if b.Tokens, err = connect.NewTokens(connect.TokensOptions{
		Keyring:      b.Keyring,
		Installation: b.Installation,
		Log:          b.Log.With("part", "tokens"),
		HTTPClient:   b.HTTP,
	}); err != nil {
		b.Close()
		return nil, err
	}
	b.Syncer = syncer.New(syncer.Config{
		Store:    b.Store,
		DB:       b.DB,
		Tokens:   b.Tokens.ManagerFor,
		HTTP:     &http.Client{Transport: b.HTTP.Transport}, // the syncer sets its own timeouts
		Events:   b.Bus,
		Log:      b.Log.With("part", "syncer"),
		Interval: cfg.SyncEvery(),
	})
	b.People = people.New(people.Options{
		Store:  b.Store,
		Log:    b.Log.With("part", "people"),
		Events: b.Bus,
		// Deleting a person removes the provider sources that held only their records: stop a
		// running sync and take the sign-in out of the keyring first.
		Disconnect: b.forgetSignIn,
		// A deleted or merged person's user keys stop counting at the Lighthouse.
		ForgetUsers: func(ctx context.Context, profileID int64, providers []string) {
			for _, p := range providers {
				if err := b.Installation.ForgetUser(ctx, p, profileID); err != nil {
					b.Log.Warn("the Lighthouse could not forget a user; their slot stays counted", "provider", p, "err", err)
				}
			}
		},
	})
	if b.Connect, err = connect.New(connect.Options{
		Store:        b.Store,
		Installation: b.Installation,
		Tokens:       b.Tokens,
		Keyring:      b.Keyring,
		Log:          b.Log.With("part", "connect"),
		Events:       b.Bus,
		People:       b.People,
		HTTPClient:   b.HTTP,
		// A new or reconnected source gets its first sync at once.
		OnConnected: func(id int64) {
			if err := b.Syncer.Enqueue(context.Background(), id, syncer.TriggerConnect); err != nil {
				b.Log.Warn("could not start the first sync", "source_id", id, "err", err)
			}
		},
	}); err != nil {
		b.Close()
		return nil, err
	}
	if b.Stream, err = sse.New(sse.Options{Bus: b.Bus, Log: b.Log.With("part", "sse")}); err != nil {
		b.Close()
		return nil, err
	}
	if b.Hub, err = webhooks.New(ctx, webhooks.Config{
		Bus:     b.Bus,
		DB:      b.DB,
		Secrets: b.Keyring,
		Log:     b.Log.With("part", "hub"),
		Resource: func(ctx context.Context, ref events.ResourceRef) (json.RawMessage, error) {
			it, err := b.Store.Get(ctx, ref.Type, ref.ID, ref.SourceID)
			return it.Resource, err
		},
	}); err != nil {
		b.Close()
		return nil, err
	}
	login, loginUnsupported := prefs.LoginEntry(dirs.Data)
	b.Prefs = prefs.New(prefs.Options{
		Config:           b.Config,
		Login:            login,
		LoginUnsupported: loginUnsupported,
		ApplyInterval:    b.Syncer.SetInterval,
		ActiveInterval:   cfg.SyncEvery(),
		Log:              b.Log.With("part", "preferences"),
	})
	restore.CleanDir(spool, dirs.Data)
	b.Restore = restore.NewService(restore.ServiceOptions{
		DB:  b.DB,
		Dir: spool,
		// No sync may write into the records while they are replaced.
		Pause: b.Syncer.Pause,
		// The replaced provider sources' sign-ins leave the keyring (the restored sources ask for
		// a new sign-in; their tokens were never in the backup).
		Forget: func(ctx context.Context, keys []string) {
			for _, k := range keys {
				if err := b.Keyring.Delete(ctx, k); err != nil && !errors.Is(err, secrets.ErrNotFound) {
					b.Log.Warn("a replaced source's sign-in stays in the keyring", "err", err)
				}
			}
		},
		Events: b.Bus,
		Log:    b.Log.With("part", "restore"),
	})
	// The API last: every feature registers its routes through httpkit.
	b.API = api.New(api.Config{
		Store:        b.Store,
		Importer:     b.Importer,
		Log:          b.Log.With("part", "api"),
		Version:      opt.Version,
		SpoolDir:     spool,
		Events:       b.Bus,
		Syncing:      b.Syncer.Syncing,
		DeleteSource: b.deleteSource,
	})
	for _, f := range []interface{ Routes() []httpkit.Route }{b.People, b.Installation, b.Syncer, b.Connect, b.Stream, b.Hub, b.Prefs, b.Restore} {
		b.API.Add(f.Routes()...)
	}
	b.API.Add(ips.NewBuilder(b.Store, nil).Routes(b.Log.With("part", "ips"))...)
	b.API.Add(own.New(own.Options{Store: b.Store, Log: b.Log.With("part", "own"), Events: b.Bus}).Routes()...)
	return b, nil
}

// Run runs the background services (scheduled and on-demand syncs, webhook deliveries and
// lease expiry, SSE ticket expiry; SSE streams end when it returns) until ctx ends. Serve mode and the desktop window run it; one-shot commands
// (import, sync) do not.
func (b *Backend) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	runs := []func(context.Context) error{b.Syncer.Run, b.Hub.Run, b.Stream.Run}
	errs := make([]error, len(runs))
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forgetSignIn stops a provider source's sync and takes its sign-in out of the keyring (people
// call it before deleting a person's provider sources).
func (b *Backend) forgetSignIn(ctx context.Context, id int64) error {
	b.Syncer.Cancel(id)
	src, err := b.Store.GetSource(ctx, id)
	if err != nil {
		return err
	}
	return b.Tokens.Remove(ctx, src)
}

// deleteSource deletes a source and its records; a provider source is disconnected first, so its
// tokens leave the keyring, and a running sync of it is stopped.
func (b *Backend) deleteSource(ctx context.Context, id int64) (map[string]int, error) {
	src, err := b.Store.GetSource(ctx, id)
	if err != nil {
		return nil, err
	}
	b.Syncer.Cancel(id)
	if src.Kind == records.KindProvider {
		out, err := b.Connect.Disconnect(ctx, id, true)
		return out.Counts, err
	}
	return b.Store.DeleteSource(ctx, id)
}

// cleanSpool removes uploads a crash left behind.
func cleanSpool(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "upload-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Close closes the database cleanly (checkpointing the WAL) and the log.
func (b *Backend) Close() error {
	var errs []error
	if b.Connect != nil {
		errs = append(errs, b.Connect.Close())
	}
	if b.Restore != nil {
		b.Restore.Close()
	}
	if b.DB != nil {
		errs = append(errs, b.DB.Close())
	}
	if b.logFile != nil {
		errs = append(errs, b.logFile.Close())
	}
	if b.ownLock {
		errs = append(errs, b.Lock.Release()) // last: the folder is clean now
	}
	return errors.Join(errs...)
}

func openLog(dir string, level slog.Level, toStderr bool) (*slog.Logger, *os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "fasten.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open the log file: %w", err)
	}
	var w io.Writer = f
	if toStderr {
		w = io.MultiWriter(f, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), f, nil
}

// Handler serves the API under /api/ and the frontend (from assets, a built frontend/dist) for
// everything else, with index.html for the app's own routes.
func (b *Backend) Handler(assets fs.FS) http.Handler {
	apiH := b.API.Handler()
	static := Static(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiH.ServeHTTP(w, r)
			return
		}
		static.ServeHTTP(w, r)
	})
}

// Static serves a single-page app from assets.
func Static(assets fs.FS) http.Handler {
	if assets == nil {
		assets = emptyFS{}
	}
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if p == "" {
			p = "index.html"
		}
		if _, err := fs.Stat(assets, p); err != nil {
			if path.Ext(p) != "" && p != "index.html" {
				http.NotFound(w, r)
				return
			}
			// An app route such as /timeline: the page handles it.
			if _, err := fs.Stat(assets, "index.html"); err != nil {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, notBuilt)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
			return
		}
		if strings.HasPrefix(p, "assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

const notBuilt = `<!doctype html><meta charset="utf-8"><title>Fasten</title>
<p>The Fasten frontend is not part of this build. Run <code>make build</code> (it builds the frontend into
frontend/dist before the Go binary). The API is available under /api/v1.</p>`

type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ShutdownTimeout bounds a graceful stop.
const ShutdownTimeout = 10 * time.Second
