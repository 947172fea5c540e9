// Package paths decides where Fasten Desktop keeps its database, config file and logs on each
// operating system, with an override for tests, portable installs and servers.
package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// AppDirName is the folder name used under the per-OS base directories.
const AppDirName = "fasten-desktop"

// Dirs are the three places the app writes to.
type Dirs struct {
	Data   string // the SQLite database and import spool
	Config string // config.json (non-secret settings)
	Logs   string // log files
}

// DB is the path of the record database.
func (d Dirs) DB() string { return filepath.Join(d.Data, "fasten.db") }

// ConfigFile is the path of the settings file.
func (d Dirs) ConfigFile() string { return filepath.Join(d.Config, "config.json") }

// Env is how Resolve reads the environment; tests pass a map.
type Env func(key string) string

// Resolve returns the directories for this OS. When override is not empty (the --data-dir flag,
// else FASTEN_DATA_DIR) everything lives under it: data in it, config in it, logs in override/logs.
func Resolve(override string, getenv Env) (Dirs, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if override == "" {
		override = getenv("FASTEN_DATA_DIR")
	}
	if override != "" {
		abs, err := filepath.Abs(override)
		if err != nil {
			return Dirs{}, fmt.Errorf("data directory %q: %w", override, err)
		}
		return Dirs{Data: abs, Config: abs, Logs: filepath.Join(abs, "logs")}, nil
	}
	return forOS(runtime.GOOS, getenv)
}

func forOS(goos string, getenv Env) (Dirs, error) {
	home := getenv("HOME")
	switch goos {
	case "windows":
		base := getenv("LocalAppData")
		if base == "" {
			if up := getenv("USERPROFILE"); up != "" {
				base = filepath.Join(up, "AppData", "Local")
			}
		}
		if base == "" {
			return Dirs{}, errors.New("cannot find %LocalAppData%; pass --data-dir")
		}
		root := filepath.Join(base, "Fasten Desktop")
		return Dirs{Data: filepath.Join(root, "data"), Config: root, Logs: filepath.Join(root, "logs")}, nil
	case "darwin":
		if home == "" {
			return Dirs{}, errors.New("cannot find the home directory; pass --data-dir")
		}
		root := filepath.Join(home, "Library", "Application Support", "Fasten Desktop")
		return Dirs{Data: root, Config: root, Logs: filepath.Join(home, "Library", "Logs", "Fasten Desktop")}, nil
	default: // Linux and other Unix: XDG base directories
		xdg := func(key, fallback string) (string, error) {
			if v := getenv(key); v != "" && filepath.IsAbs(v) {
				return filepath.Join(v, AppDirName), nil
			}
			if home == "" {
				return "", fmt.Errorf("cannot find the home directory for %s; pass --data-dir", key)
			}
			return filepath.Join(home, fallback, AppDirName), nil
		}
		data, err := xdg("XDG_DATA_HOME", filepath.Join(".local", "share"))
		if err != nil {
			return Dirs{}, err
		}
		conf, err := xdg("XDG_CONFIG_HOME", ".config")
		if err != nil {
			return Dirs{}, err
		}
		state, err := xdg("XDG_STATE_HOME", filepath.Join(".local", "state"))
		if err != nil {
			return Dirs{}, err
		}
		return Dirs{Data: data, Config: conf, Logs: filepath.Join(state, "logs")}, nil
	}
}

// Ensure creates the directories with mode 0700 (records are private to the user) and tightens
// the mode of directories that already exist with looser permissions.
func (d Dirs) Ensure() error {
	for _, dir := range []string{d.Data, d.Config, d.Logs} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if runtime.GOOS != "windows" {
			if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
				if err := os.Chmod(dir, 0o700); err != nil {
					return fmt.Errorf("restrict %s: %w", dir, err)
				}
			}
		}
	}
	return nil
}
