// Package config holds the non-secret settings of an installation in a JSON file that is always
// written atomically (temp file in the same folder, fsync, rename, fsync of the folder), so a crash
// or a full disk never leaves a half-written file. Secrets (the installation secret, tokens) are
// never here: they live in the OS keyring (internal/secrets).
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultLighthouseURL is the public Lighthouse; --lighthouse-url / FASTEN_LIGHTHOUSE_URL override it.
const DefaultLighthouseURL = "https://lighthouse.fastenhealth.com"

// DefaultSyncInterval is how often connected sources are synced in the background.
const DefaultSyncInterval = 12 * time.Hour

// Window remembers the desktop window's geometry.
type Window struct {
	X         int  `json:"x"`
	Y         int  `json:"y"`
	Width     int  `json:"width"`
	Height    int  `json:"height"`
	Maximised bool `json:"maximised,omitempty"`
}

// Config is the settings file's content. Zero values mean "default".
type Config struct {
	InstallationID string    `json:"installation_id,omitempty"`
	LighthouseURL  string    `json:"lighthouse_url,omitempty"`
	AdminName      string    `json:"admin_name,omitempty"`
	AdminEmail     string    `json:"admin_email,omitempty"`
	RegisteredAt   time.Time `json:"registered_at,omitzero"`
	// OnboardingDone is set once the first-launch choice was made (registered or "import only").
	OnboardingDone bool    `json:"onboarding_done,omitempty"`
	SyncInterval   string  `json:"sync_interval,omitempty"` // Go duration, e.g. "12h"
	Autostart      bool    `json:"autostart,omitempty"`
	Window         *Window `json:"window,omitempty"`
}

// SyncEvery returns the configured sync interval, or the default when unset or invalid (an
// interval under 5 minutes is raised to 5 minutes so a typo cannot hammer a provider).
func (c Config) SyncEvery() time.Duration {
	d, err := time.ParseDuration(c.SyncInterval)
	if err != nil || d <= 0 {
		return DefaultSyncInterval
	}
	return max(d, 5*time.Minute)
}

// Store reads and writes one config file; safe for concurrent use within the process.
type Store struct {
	path string
	mu   sync.Mutex
}

// NewStore returns a Store for the file at path (it need not exist yet).
func NewStore(path string) *Store { return &Store{path: path} }

// Path is the file's location.
func (s *Store) Path() string { return s.path }

// Load reads the file; a missing file is an empty Config.
func (s *Store) Load() (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}

func (s *Store) load() (Config, error) {
	var c Config
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read settings %s: %w", s.path, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("settings file %s is damaged (%v); fix or remove it", s.path, err)
	}
	return c, nil
}

// Update loads the file, applies fn and writes the result atomically. If fn returns an error
// nothing is written.
func (s *Store) Update(fn func(*Config) error) (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.load()
	if err != nil {
		return c, err
	}
	if err := fn(&c); err != nil {
		return c, err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return c, err
	}
	return c, WriteFileAtomic(s.path, append(b, '\n'), 0o600)
}

// WriteFileAtomic replaces path with data so that readers see either the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // not supported everywhere (Windows); the rename is already durable there
		d.Close()
	}
	return nil
}
