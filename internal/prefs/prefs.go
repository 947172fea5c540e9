// Package prefs is the preferences feature: the user's choices about running in the background
// (start at login, how often connected providers are synced), served at /preferences. Both live
// in the settings file; the login entry itself (internal/autostart) is the truth about start at
// login. It is constructed with its dependencies (settings store, login entry, a function that
// applies a new interval to the running syncer) and knows nothing of the syncer itself.
package prefs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/autostart"
	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
)

// Limits and choices of the background sync interval.
const (
	MinSyncInterval = time.Hour
	MaxSyncInterval = 7 * 24 * time.Hour
)

// SyncIntervalChoices are the intervals Settings offers (any duration within the limits is
// accepted).
func SyncIntervalChoices() []time.Duration {
	return []time.Duration{time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 72 * time.Hour, MaxSyncInterval}
}

// LoginItem is the start-at-login entry; *autostart.Autostart implements it.
type LoginItem interface {
	Enable() error
	Disable() error
	Enabled() bool
}

// Options are the dependencies of a Preferences.
type Options struct {
	Config *config.Store // required
	// Login is the login entry; nil means starting at login is not possible here, and
	// LoginUnsupported says why (a sentence for the user).
	Login            LoginItem
	LoginUnsupported string
	// ApplyInterval changes the running syncer's interval at once (syncer.Syncer.SetInterval);
	// nil: a new interval applies from the next start.
	ApplyInterval func(time.Duration)
	// ActiveInterval is the interval the running syncer uses (the one it was started with).
	ActiveInterval time.Duration
	Log            *slog.Logger
}

// Preferences serves the user's choices about running in the background: start at login and
// how often connected providers are synced. Both live in the settings file; the login entry
// itself (internal/autostart) is the truth about start at login.
type Preferences struct {
	opt Options
	log *slog.Logger

	mu     sync.Mutex // one change at a time; guards active
	active time.Duration
}

// New returns a Preferences.
func New(opt Options) *Preferences {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Login == nil && opt.LoginUnsupported == "" {
		opt.LoginUnsupported = "Starting at login is not available in this copy of Fasten."
	}
	return &Preferences{opt: opt, log: opt.Log, active: opt.ActiveInterval}
}

// View is what GET /preferences answers.
type View struct {
	// Autostart: the login entry exists (not merely what the settings file remembers).
	Autostart          bool   `json:"autostart"`
	AutostartSupported bool   `json:"autostart_supported"`
	AutostartNote      string `json:"autostart_note,omitempty"` // why it is not supported
	// SyncInterval is the configured interval, SyncIntervalActive the one the running syncer
	// uses (they differ until the next start when it cannot change while running).
	SyncInterval        string   `json:"sync_interval"`
	SyncIntervalDefault string   `json:"sync_interval_default"`
	SyncIntervalActive  string   `json:"sync_interval_active"`
	SyncIntervalChoices []string `json:"sync_interval_choices"`
	SyncIntervalMin     string   `json:"sync_interval_min"`
	SyncIntervalMax     string   `json:"sync_interval_max"`
}

// Patch is the body of PATCH /preferences; absent fields are left alone.
type Patch struct {
	Autostart *bool `json:"autostart"`
	// SyncInterval is a Go duration ("6h", "90m") or a number of days ("1d", "7d"), from 1 hour
	// to 7 days; "" goes back to the default.
	SyncInterval *string `json:"sync_interval"`
}

// Error is a refused change; Status and Code are for the API (httpkit.Fail), Error() is the
// sentence for the user.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string     { return e.Msg }
func (e *Error) HTTPStatus() int   { return e.Status }
func (e *Error) ErrorCode() string { return e.Code }

// ParseSyncInterval reads an interval as the API accepts it: a Go duration or "<n>d", within
// MinSyncInterval..MaxSyncInterval. The error is a sentence for the user.
func ParseSyncInterval(s string) (time.Duration, error) {
	v := strings.TrimSpace(strings.ToLower(s))
	var d time.Duration
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" && !strings.ContainsAny(n, "hms") {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, errBadInterval(s)
		}
		d = time.Duration(days) * 24 * time.Hour
		if days > 366 {
			d = MaxSyncInterval + time.Hour // out of range, without overflow
		}
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, errBadInterval(s)
		}
	}
	switch {
	case d < MinSyncInterval:
		return 0, fmt.Errorf("Fasten syncs at most once an hour: choose 1h or longer (you asked for %q).", s)
	case d > MaxSyncInterval:
		return 0, fmt.Errorf("Fasten syncs at least once a week: choose 7d (168h) or shorter (you asked for %q).", s)
	}
	return d, nil
}

func errBadInterval(s string) error {
	return fmt.Errorf("%q is not a length of time: write it like 6h, 90m or 1d (from 1 hour to 7 days).", s)
}

// FormatSyncInterval writes d the way the settings file and the API keep it: whole hours as
// "12h", anything else as Go writes it without trailing zero units ("90m", "1h30m").
func FormatSyncInterval(d time.Duration) string {
	if d > 0 && d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Get returns the current preferences.
func (p *Preferences) Get() (View, error) {
	cfg, err := p.opt.Config.Load()
	if err != nil {
		return View{}, err
	}
	p.mu.Lock()
	active := p.active
	p.mu.Unlock()
	return p.view(cfg, active), nil
}

func (p *Preferences) view(cfg config.Config, active time.Duration) View {
	v := View{
		AutostartSupported:  p.opt.Login != nil,
		AutostartNote:       p.opt.LoginUnsupported,
		SyncInterval:        FormatSyncInterval(cfg.SyncEvery()),
		SyncIntervalDefault: FormatSyncInterval(config.DefaultSyncInterval),
		SyncIntervalMin:     FormatSyncInterval(MinSyncInterval),
		SyncIntervalMax:     FormatSyncInterval(MaxSyncInterval),
	}
	if p.opt.Login != nil {
		v.Autostart = p.opt.Login.Enabled()
		v.AutostartNote = ""
	}
	if active <= 0 {
		active = cfg.SyncEvery()
	}
	v.SyncIntervalActive = FormatSyncInterval(active)
	for _, d := range SyncIntervalChoices() {
		v.SyncIntervalChoices = append(v.SyncIntervalChoices, FormatSyncInterval(d))
	}
	return v
}

// Update applies a change: nothing is changed when any part of it is refused. Turning start at
// login on or off registers or removes the login entry, then records the choice in the
// settings file (the entry is put back as it was if the file cannot be written).
func (p *Preferences) Update(patch Patch) (View, error) {
	if patch.Autostart == nil && patch.SyncInterval == nil {
		return View{}, &Error{http.StatusBadRequest, "bad_request", `Nothing to change: send {"autostart": true|false} and/or {"sync_interval": "12h"}.`}
	}
	var interval time.Duration // 0: back to the default
	if patch.SyncInterval != nil && strings.TrimSpace(*patch.SyncInterval) != "" {
		d, err := ParseSyncInterval(*patch.SyncInterval)
		if err != nil {
			return View{}, &Error{http.StatusBadRequest, "invalid_sync_interval", err.Error()}
		}
		interval = d
	}
	if patch.Autostart != nil && *patch.Autostart && p.opt.Login == nil {
		return View{}, &Error{http.StatusConflict, "autostart_unsupported", p.opt.LoginUnsupported}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	undo := func() {}
	if patch.Autostart != nil && p.opt.Login != nil {
		was := p.opt.Login.Enabled()
		on := *patch.Autostart
		var err error
		if on {
			err = p.opt.Login.Enable()
		} else {
			err = p.opt.Login.Disable()
		}
		if err != nil {
			if errors.Is(err, autostart.ErrUnsupported) {
				return View{}, &Error{http.StatusConflict, "autostart_unsupported", err.Error() + "."}
			}
			verb := "register Fasten to start when you log in"
			if !on {
				verb = "remove Fasten from the programs that start when you log in"
			}
			return View{}, &Error{http.StatusInternalServerError, "autostart_failed", fmt.Sprintf("Could not %s: %v", verb, err)}
		}
		if was != on {
			undo = func() {
				if on {
					p.opt.Login.Disable()
				} else {
					p.opt.Login.Enable()
				}
			}
		}
	}
	cfg, err := p.opt.Config.Update(func(c *config.Config) error {
		if patch.Autostart != nil {
			c.Autostart = *patch.Autostart
		}
		if patch.SyncInterval != nil {
			c.SyncInterval = ""
			if interval > 0 {
				c.SyncInterval = FormatSyncInterval(interval)
			}
		}
		return nil
	})
	if err != nil {
		undo()
		return View{}, fmt.Errorf("save the preferences: %w", err)
	}
	if patch.SyncInterval != nil {
		d := cfg.SyncEvery()
		if p.opt.ApplyInterval != nil {
			p.opt.ApplyInterval(d)
			p.active = d
		}
		p.log.Info("sync interval changed", "interval", FormatSyncInterval(d), "active", FormatSyncInterval(p.active))
	}
	if patch.Autostart != nil {
		p.log.Info("start at login changed", "enabled", *patch.Autostart)
	}
	return p.view(cfg, p.active), nil
}

// Routes are the preferences endpoints, relative to httpkit.Prefix:
//
//	GET   /preferences  200 View
//	PATCH /preferences  {autostart?, sync_interval?} 200 View; 400 invalid_sync_interval
//	                    or bad_request; 409 autostart_unsupported; 500 autostart_failed
func (p *Preferences) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: http.MethodGet, Path: "/preferences", Handler: p.getPreferences},
		{Method: http.MethodPatch, Path: "/preferences", Handler: p.patchPreferences},
	}
}

func (p *Preferences) getPreferences(w http.ResponseWriter, r *http.Request) {
	v, err := p.Get()
	if err != nil {
		httpkit.Fail(w, r, p.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, v)
}

func (p *Preferences) patchPreferences(w http.ResponseWriter, r *http.Request) {
	var patch Patch
	if err := httpkit.DecodeJSON(r, &patch, 4<<10, false); err != nil {
		httpkit.Fail(w, r, p.log, err)
		return
	}
	v, err := p.Update(patch)
	if err != nil {
		httpkit.Fail(w, r, p.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, v)
}

// LoginEntry is the start-at-login entry of this program for the data folder dataDir (the entry
// runs this program with --background, and with --data-dir when dataDir is not the default
// folder), or nil and the reason (a sentence for the user) when this build or system cannot
// start at login. For Options.Login and Options.LoginUnsupported.
func LoginEntry(dataDir string) (LoginItem, string) {
	info, _ := debug.ReadBuildInfo()
	var settings []debug.BuildSetting
	if info != nil {
		settings = info.Settings
	}
	if ok, why := LoginSupport(runtime.GOOS, settings); !ok {
		return nil, why
	}
	cmd, err := autostart.Command()
	if err != nil {
		return nil, "Fasten cannot find its own program file, so it cannot register itself to start at login: " + err.Error()
	}
	return autostart.New("fasten-desktop", "Fasten Desktop", LoginCommand(cmd, dataDir, defaultDataDir())), ""
}

// LoginCommand is the login entry's command line: cmd (the program and --background) plus
// --data-dir when dataDir is not the default data folder, so the background instance opens the
// same records as the app that registered it.
func LoginCommand(cmd []string, dataDir, defaultDir string) []string {
	out := append([]string(nil), cmd...)
	if dataDir != "" && filepath.Clean(dataDir) != filepath.Clean(defaultDir) {
		out = append(out, "--data-dir", dataDir)
	}
	return out
}

// defaultDataDir is the data folder Fasten uses without --data-dir and FASTEN_DATA_DIR (a login
// session does not carry the variable).
func defaultDataDir() string {
	d, err := paths.Resolve("", func(k string) string {
		if k == "FASTEN_DATA_DIR" {
			return ""
		}
		return os.Getenv(k)
	})
	if err != nil {
		return ""
	}
	return d.Data
}

// LoginSupport reports whether this build of the program can be started at login with
// --background, from its build settings (runtime/debug): the login entry starts the desktop
// window hidden, so the program must have the window (built with the Wails "desktop" or "dev"
// tag), and on Windows the entry is written through cgo. The reason is a sentence for the user.
func LoginSupport(goos string, settings []debug.BuildSetting) (bool, string) {
	tags, cgo := "", ""
	for _, s := range settings {
		switch s.Key {
		case "-tags":
			tags = s.Value
		case "CGO_ENABLED":
			cgo = s.Value
		}
	}
	window := false
	for _, t := range strings.Split(tags, ",") {
		if t = strings.TrimSpace(t); t == "desktop" || t == "dev" {
			window = true
		}
	}
	switch {
	case !window:
		return false, "This copy of Fasten has no window (a server build), so it cannot start hidden when you log in. Use the desktop app for that, or run “fasten-desktop sync” on a schedule (cron or a systemd timer)."
	case goos == "windows" && cgo == "0":
		return false, "This Windows build of Fasten cannot register itself to start at login (it was built without cgo)."
	case goos != "linux" && goos != "darwin" && goos != "windows" && goos != "freebsd" && goos != "openbsd" && goos != "netbsd":
		return false, "Starting at login is not supported on " + goos + "."
	}
	return true, ""
}
