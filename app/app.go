// Package app is the desktop shell: the Wails window, its lifecycle, the single-instance lock,
// starting hidden, remembering the window's place, and the bridge between the in-process backend
// and the webview. It is the only package (with main.go) that imports Wails; everything it drives
// lives in internal/ and is tested without a display.
//
// The webview reaches the backend API through the asset server's Middleware: no TCP port is
// opened for the UI. Runtime calls (runtime.*) are made only from lifecycle hooks with the
// context Wails gives them.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wailsapp/wails/v2"
	"github.com/wailsapp/wails/v2/pkg/logger"
	"github.com/wailsapp/wails/v2/pkg/options"
	"github.com/wailsapp/wails/v2/pkg/options/assetserver"
	"github.com/wailsapp/wails/v2/pkg/options/linux"
	"github.com/wailsapp/wails/v2/pkg/runtime"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/restore"
)

// Options configure the window.
type Options struct {
	Backend    *backend.Backend
	Assets     fs.FS
	Icon       []byte    // PNG window icon (Linux; macOS and Windows take it from build/)
	Background bool      // start hidden and stay quiet (autostart at login)
	Started    time.Time // process start, for the readiness line
	Stdout     io.Writer // the readiness line goes here
	// Events, when set, is forwarded to the window as Wails events (topic -> payload).
	Events func(ctx context.Context, emit func(topic string, data any))
	// Services run while the window (or the hidden --background instance) lives: syncs and
	// webhook deliveries. The shell stops them and waits for them before the database closes.
	Services func(ctx context.Context) error
	// Control serves the data folder's control socket while the window lives (command-line
	// import/sync/backup and a second launch come through it); show brings the window to the
	// front.
	Control func(ctx context.Context, show func()) error
}

// Default window size when nothing is remembered.
const (
	defaultWidth  = 1200
	defaultHeight = 820
)

// Shell is the running desktop app.
type Shell struct {
	opt      Options
	log      *slog.Logger
	ctx      context.Context
	mu       sync.Mutex
	ready    bool
	cancel   context.CancelFunc
	services chan error
}

// Run opens the window and blocks until it is closed.
func Run(opt Options) error {
	if opt.Stdout == nil {
		opt.Stdout = os.Stdout
	}
	if opt.Started.IsZero() {
		opt.Started = time.Now()
	}
	s := &Shell{opt: opt, log: opt.Backend.Log.With("part", "app")}
	cfg, err := opt.Backend.Config.Load()
	if err != nil {
		return err
	}
	width, height := defaultWidth, defaultHeight
	if w := cfg.Window; w != nil && w.Width >= 640 && w.Height >= 480 && w.Width <= 10000 && w.Height <= 10000 {
		width, height = w.Width, w.Height
	}
	apiHandler := opt.Backend.API.Handler()
	return wails.Run(&options.App{
		Title:     "Fasten",
		Width:     width,
		Height:    height,
		MinWidth:  640,
		MinHeight: 480,
		AssetServer: &assetserver.Options{
			Assets: opt.Assets,
			// Middleware sees every request first (Handler would miss GETs under `wails dev`):
			// the API answers /api/, everything else is the embedded frontend.
			Middleware: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					guard.SetHeaders(w.Header())
					if strings.HasPrefix(r.URL.Path, "/api/") {
						apiHandler.ServeHTTP(w, r)
						return
					}
					next.ServeHTTP(w, r)
				})
			},
		},
		BackgroundColour: &options.RGBA{R: 248, G: 250, B: 252, A: 255},
		StartHidden:      opt.Background,
		SingleInstanceLock: &options.SingleInstanceLock{
			UniqueId:               instanceID(opt.Backend.Dirs.Data),
			OnSecondInstanceLaunch: s.secondInstance,
		},
		OnStartup:          s.startup,
		OnDomReady:         s.domReady,
		OnBeforeClose:      s.beforeClose,
		OnShutdown:         s.shutdown,
		Logger:             slogLogger{s.log},
		LogLevel:           logger.WARNING,
		LogLevelProduction: logger.WARNING,
		Linux: &linux.Options{
			ProgramName:         "fasten-desktop",
			Icon:                opt.Icon,
			WebviewGpuPolicy:    linux.WebviewGpuPolicyOnDemand,
			WindowIsTranslucent: false,
		},
		ErrorFormatter: func(err error) any { return err.Error() },
		// Bound methods: window.go.app.Shell.* in the frontend.
		Bind: []any{s},
	})
}

// SaveExport asks where to save an export (everything; one source when sourceID > 0; one person
// when profileID > 0) with the system's save dialog and writes the FHIR Bundle there atomically (a
// temporary file in the same folder, then a rename). It returns the path, or "" when the person
// cancelled. A webview cannot save a download by itself, so the window uses this instead of a Blob
// link.
func (s *Shell) SaveExport(sourceID, profileID int64) (string, error) {
	if s.ctx == nil {
		return "", errors.New("the window is not ready yet")
	}
	name := "fasten-export-" + time.Now().Format("2006-01-02")
	if sourceID > 0 {
		name += fmt.Sprintf("-source-%d", sourceID)
	}
	path, err := runtime.SaveFileDialog(s.ctx, runtime.SaveDialogOptions{
		Title:           "Save your records",
		DefaultFilename: name + ".json",
		Filters:         []runtime.FileFilter{{DisplayName: "FHIR Bundle (*.json)", Pattern: "*.json"}},
	})
	if err != nil || path == "" {
		return "", err
	}
	if err := exportTo(s.ctx, s.opt.Backend, path, records.Filter{SourceID: sourceID, ProfileID: profileID}); err != nil {
		return "", err
	}
	s.log.Info("export saved", "source", sourceID)
	return path, nil
}

// SaveBackup asks where to save a backup (a checked copy of the database, as the backup command
// writes) with the system's save dialog and writes it. It returns the path, or "" when the
// person cancelled. A file the person chose to replace in the dialog is replaced only once the
// new copy is complete and checked (a rename over it).
func (s *Shell) SaveBackup() (string, error) {
	if s.ctx == nil {
		return "", errors.New("the window is not ready yet")
	}
	path, err := runtime.SaveFileDialog(s.ctx, runtime.SaveDialogOptions{
		Title:           "Save a backup of your records",
		DefaultFilename: restore.BackupName(time.Now()),
		Filters:         []runtime.FileFilter{{DisplayName: "Fasten backup (*.db)", Pattern: "*.db"}},
	})
	if err != nil || path == "" {
		return "", err
	}
	dest := path
	if _, err := os.Lstat(path); err == nil {
		dest = filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.new-%d", filepath.Base(path), time.Now().UnixNano()))
	}
	if err := s.opt.Backend.DB.Backup(s.ctx, dest); err != nil {
		return "", err
	}
	if dest != path {
		if err := os.Rename(dest, path); err != nil {
			os.Remove(dest)
			return "", fmt.Errorf("could not replace %s: %w", path, err)
		}
	}
	s.log.Info("backup saved")
	return path, nil
}

// SaveDocument asks where to save a document the page already holds (the International Patient
// Summary, as JSON) with the system's save dialog and writes it atomically. It returns the path,
// or "" when the person cancelled.
func (s *Shell) SaveDocument(defaultName, content string) (string, error) {
	if s.ctx == nil {
		return "", errors.New("the window is not ready yet")
	}
	path, err := runtime.SaveFileDialog(s.ctx, runtime.SaveDialogOptions{
		Title:           "Save the summary",
		DefaultFilename: filepath.Base(defaultName),
		Filters:         []runtime.FileFilter{{DisplayName: "FHIR document (*.json)", Pattern: "*.json"}},
	})
	if err != nil || path == "" {
		return "", err
	}
	if err := writeAtomic(path, []byte(content)); err != nil {
		return "", err
	}
	s.log.Info("document saved")
	return path, nil
}

// SaveAttachment asks where to save the n-th attachment of a record (the same bytes the API serves
// at /resources/{type}/{id}/attachments/{n}) with the system's save dialog and writes it
// atomically. It returns the path, or "" when the person cancelled. The window's webview does not
// save Blob downloads, so "Save a copy" comes here.
func (s *Shell) SaveAttachment(typ, id string, sourceID int64, n int, defaultName string) (string, error) {
	if s.ctx == nil {
		return "", errors.New("the window is not ready yet")
	}
	a, err := s.opt.Backend.Store.Attachment(s.ctx, typ, id, sourceID, n)
	if err != nil {
		return "", err
	}
	path, err := runtime.SaveFileDialog(s.ctx, runtime.SaveDialogOptions{
		Title:           "Save a copy of the attachment",
		DefaultFilename: filepath.Base(defaultName),
	})
	if err != nil || path == "" {
		return "", err
	}
	if err := writeAtomic(path, a.Data); err != nil {
		return "", err
	}
	s.log.Info("attachment saved", "type", typ)
	return path, nil
}

func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("could not write to %s: %w", filepath.Dir(path), err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("could not write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("could not write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("could not write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("could not save %s: %w", path, err)
	}
	return nil
}

func exportTo(ctx context.Context, b *backend.Backend, path string, f records.Filter) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("could not write to %s: %w", filepath.Dir(path), err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = b.Store.Export(ctx, tmp, f, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("could not write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("could not write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("could not save %s: %w", path, err)
	}
	return nil
}

// instanceID is one lock per data folder: two installations (or test runs) do not collide, a
// second launch on the same data focuses the first window.
func instanceID(dataDir string) string {
	h := sha256.Sum256([]byte(dataDir))
	return "com.fastenhealth.fasten-desktop." + hex.EncodeToString(h[:6])
}

func (s *Shell) startup(ctx context.Context) {
	s.ctx = ctx
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	runtime.EventsOn(ctx, "ui.ready", func(data ...any) { s.uiReady(data...) })
	if s.opt.Events != nil {
		go s.opt.Events(bg, func(topic string, data any) { runtime.EventsEmit(ctx, topic, data) })
	}
	if s.opt.Services != nil || s.opt.Control != nil {
		s.services = make(chan error, 1)
		go func() { s.services <- s.runServices(bg) }()
	}
	s.log.Info("window started", "background", s.opt.Background)
}

// runServices runs Services and Control side by side until ctx ends.
func (s *Shell) runServices(ctx context.Context) error {
	var wg sync.WaitGroup
	var errs [2]error
	if s.opt.Services != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs[0] = s.opt.Services(ctx) }()
	}
	if s.opt.Control != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs[1] = s.opt.Control(ctx, s.show) }()
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

// show brings the window to the front (a second launch asked for it).
func (s *Shell) show() {
	if s.ctx == nil {
		return
	}
	runtime.WindowUnminimise(s.ctx)
	runtime.WindowShow(s.ctx)
}

func (s *Shell) domReady(ctx context.Context) {
	cfg, err := s.opt.Backend.Config.Load()
	if err != nil || cfg.Window == nil {
		return
	}
	w := cfg.Window
	if w.Maximised {
		runtime.WindowMaximise(ctx)
	} else if w.X >= 0 && w.Y >= 0 && w.X < 10000 && w.Y < 10000 {
		runtime.WindowSetPosition(ctx, w.X, w.Y)
	}
}

// uiReady prints one line when the frontend first reports a rendered view (the desktop smoke test
// and the start-up figure use it).
func (s *Shell) uiReady(data ...any) {
	view := "unknown"
	if len(data) > 0 {
		if m, ok := data[0].(map[string]any); ok {
			if v, ok := m["view"].(string); ok {
				view = v
			}
		}
	}
	s.mu.Lock()
	first := !s.ready
	s.ready = true
	s.mu.Unlock()
	if first {
		fmt.Fprintf(s.opt.Stdout, "fasten: ui-ready view=%s elapsed_ms=%d\n", view, time.Since(s.opt.Started).Milliseconds())
	}
}

// secondInstance: a second launch shows this window. Its arguments are untrusted (anything can
// start the program): none of them is acted on, except that an autostart launch (--background)
// of an app that is already running changes nothing.
func (s *Shell) secondInstance(d options.SecondInstanceData) {
	for _, a := range d.Args {
		if a == "--background" || a == "-background" {
			return
		}
	}
	s.show()
}

func (s *Shell) beforeClose(ctx context.Context) bool {
	x, y := runtime.WindowGetPosition(ctx)
	w, h := runtime.WindowGetSize(ctx)
	maxed := runtime.WindowIsMaximised(ctx)
	_, err := s.opt.Backend.Config.Update(func(c *config.Config) error {
		win := &config.Window{X: x, Y: y, Width: w, Height: h, Maximised: maxed}
		if maxed && c.Window != nil { // keep the restored size for next time
			win.X, win.Y, win.Width, win.Height = c.Window.X, c.Window.Y, c.Window.Width, c.Window.Height
		}
		c.Window = win
		return nil
	})
	if err != nil {
		s.log.Warn("could not remember the window size", "err", err)
	}
	return false
}

func (s *Shell) shutdown(ctx context.Context) {
	if s.cancel != nil {
		s.cancel()
	}
	if s.services != nil {
		select {
		case err := <-s.services:
			if err != nil {
				s.log.Warn("background services ended with an error", "err", err)
			}
		case <-time.After(15 * time.Second):
			s.log.Warn("background services did not stop in time; closing anyway (an unfinished sync page is rolled back)")
		}
	}
	s.log.Info("window closed")
}

// slogLogger sends Wails' own log lines to our log.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Print(m string)   { l.l.Info(m) }
func (l slogLogger) Trace(m string)   { l.l.Debug(m) }
func (l slogLogger) Debug(m string)   { l.l.Debug(m) }
func (l slogLogger) Info(m string)    { l.l.Info(m) }
func (l slogLogger) Warning(m string) { l.l.Warn(m) }
func (l slogLogger) Error(m string)   { l.l.Error(m) }
func (l slogLogger) Fatal(m string)   { l.l.Error(m) }
