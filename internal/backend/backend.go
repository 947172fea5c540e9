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
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
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
	// (secrets.NewKeyring(connect.KeyringService)); there is no other fallback. Tests inject a
	// fake store here explicitly.
	Keyring secrets.Store
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

	// Keyring keeps the installation secret and provider tokens (the OS keyring unless a test
	// injected one).
	Keyring secrets.Store
	// Connect serves registration, settings, the provider catalog, connect and disconnect, and
	// hands out token managers (TokenManagerFor). Connect.LighthouseURL() is the Lighthouse in
	// use now: a change in Settings applies without a restart, unlike LighthouseURL above.
	Connect *connect.Service
	// Bus carries events to the window (Wails events), to browsers (SSE) and to webhooks (Hub).
	Bus *events.Bus
	Hub *events.Hub
	// Syncer keeps provider sources up to date; Run starts it.
	Syncer *syncer.Syncer
	// HTTP is the client for providers and the Lighthouse: its requests carry the app's
	// User-Agent (fasten-desktop/<version>). The one-shot `sync` command uses it too.
	HTTP *http.Client
	// People serves the household's people (profiles): listing, editing, merge with undo,
	// re-assignment, deletion; the importer and the connect flow match patients with it.
	People *people.Service
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
	b := &Backend{Dirs: dirs, Config: config.NewStore(dirs.ConfigFile())}
	b.Log, b.logFile, err = openLog(dirs.Logs, opt.LogLevel, opt.LogToStderr)
	if err != nil {
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
	b.Store = records.New(b.DB)
	b.Importer = importer.New(b.Store, b.Log.With("part", "importer"), importer.Limits{})
	spool := filepath.Join(dirs.Data, "spool")
	cleanSpool(spool)
	b.Bus = events.NewBus(events.BusOptions{Log: b.Log.With("part", "events")})
	b.API = api.New(api.Config{
		Store:        b.Store,
		Importer:     b.Importer,
		Log:          b.Log.With("part", "api"),
		Version:      opt.Version,
		SpoolDir:     spool,
		Events:       b.Bus,
		Syncing:      func(id int64) bool { return b.Syncer != nil && b.Syncer.Syncing(id) },
		DeleteSource: b.deleteSource,
	})
	b.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: useragent.Transport(useragent.String(opt.Version), nil)}
	b.Keyring = opt.Keyring
	if b.Keyring == nil {
		b.Keyring = secrets.NewKeyring(connect.KeyringService)
	}
	b.People = people.New(people.Options{
		Store:  b.Store,
		Log:    b.Log.With("part", "people"),
		Events: b.Bus,
		// Deleting a person removes the provider sources that held only their records: forget
		// the sign-in first (tokens out of the keyring) and stop a running sync.
		Disconnect: func(ctx context.Context, id int64) error {
			b.Syncer.Cancel(id)
			_, err := b.Connect.Disconnect(ctx, id, false)
			return err
		},
	})
	for _, r := range b.People.Routes() {
		b.API.Add(api.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	b.Connect, err = connect.New(connect.Options{
		Store:              b.Store,
		Config:             b.Config,
		Keyring:            b.Keyring,
		LighthouseOverride: override,
		Log:                b.Log.With("part", "connect"),
		Events:             b.Bus,
		People:             b.People,

		HTTPClient:           b.HTTP, // User-Agent: fasten-desktop/<version>
		LighthouseHTTPClient: b.HTTP,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	b.API.Add(b.Connect.Routes()...)
	b.Syncer = syncer.New(syncer.Config{
		Store:    b.Store,
		Tokens:   b.Connect.TokenManagerFor,
		HTTP:     &http.Client{Transport: b.HTTP.Transport}, // the syncer sets its own timeouts
		Events:   b.Bus,
		Log:      b.Log.With("part", "syncer"),
		Interval: cfg.SyncEvery(),
	})
	b.Connect.SetOnConnected(func(id int64) {
		if err := b.Syncer.Enqueue(context.Background(), id, syncer.TriggerConnect); err != nil {
			b.Log.Warn("could not start the first sync", "source_id", id, "err", err)
		}
	})
	b.API.Add(b.Syncer.Routes()...)
	b.Hub, err = events.NewHub(ctx, events.HubConfig{
		Bus:     b.Bus,
		DB:      b.DB,
		Secrets: b.Keyring,
		Log:     b.Log.With("part", "hub"),
		Resource: func(ctx context.Context, ref events.ResourceRef) (json.RawMessage, error) {
			it, err := b.Store.Get(ctx, ref.Type, ref.ID, ref.SourceID)
			return it.Resource, err
		},
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	b.API.Add(b.Hub.Routes()...)
	b.API.Add(b.PreferenceRoutes()...) // start at login, sync interval (prefs.go)
	return b, nil
}

// Run runs the background services (scheduled and on-demand syncs, webhook deliveries and
// lease expiry) until ctx ends. Serve mode and the desktop window run it; one-shot commands
// (import, sync) do not.
func (b *Backend) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, run := range []func(context.Context) error{b.Syncer.Run, b.Hub.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
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
	if b.DB != nil {
		errs = append(errs, b.DB.Close())
	}
	if b.logFile != nil {
		errs = append(errs, b.logFile.Close())
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
