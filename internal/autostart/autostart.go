// Package autostart registers Fasten Desktop to start when the user logs in, hidden and syncing:
// the entry runs the current binary (os.Executable, symlinks resolved) with --background.
//
// Linux and the other XDG desktops: a Desktop Entry file $XDG_CONFIG_HOME/autostart/<name>.desktop
// (default ~/.config/autostart), written by this package. github.com/emersion/go-autostart is not
// used there: its XDG writer quotes Exec with Go's strconv.Quote, which is not the Desktop Entry
// quoting. It does not double '%', so a program path holding '%' gets a bogus field code (GLib then
// silently starts nothing; checked with gio launch); it leaves '$' and '`' unescaped inside
// quotes, applies only one level of backslash escaping (so '"' comes out as the invalid string
// escape \"), and writes control characters as Go escapes; GLib tolerates those, stricter parsers
// need not. It also reads XDG_CONFIG_HOME once, in a package init, and rewrites the caller's Exec
// slice in place. The file here follows the Desktop Entry Specification 1.5: arguments with
// reserved characters are double-quoted with '"', '`', '$' and '\' backslash-escaped, '%' is
// doubled, and then the string-value escaping (backslash doubled) is applied; it is written
// atomically. GLib also refuses a correctly escaped program path holding '%' (it checks that the
// program exists before it undoes "%%"), so such a program is started through /usr/bin/env. A test
// hands the entry to GLib's parser (gio launch) when gio is installed.
//
// macOS (a LaunchAgent plist in ~/Library/LaunchAgents) and Windows (a shortcut in the Startup
// folder) go through go-autostart. Its plist is not XML-escaped, so a path holding '&', '<' or
// '>' is refused rather than written broken. Its Windows code needs cgo: a Windows build without
// cgo reports ErrUnsupported.
package autostart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BackgroundFlag is the argument the login entry passes.
const BackgroundFlag = "--background"

// ErrUnsupported: this build cannot register a login item on this system.
var ErrUnsupported = errors.New("starting at login is not supported in this build")

// Autostart is one login entry.
type Autostart struct {
	name        string   // file name without extension, e.g. "fasten-desktop"
	displayName string   // e.g. "Fasten Desktop"
	exec        []string // program and arguments
	getenv      func(string) string
}

// New describes a login entry named name (a file name: letters, digits, '-', '_', '.') that runs
// exec. Use Command for exec.
func New(name, displayName string, exec []string) *Autostart {
	return &Autostart{name: name, displayName: displayName, exec: append([]string(nil), exec...), getenv: os.Getenv}
}

// Default is the Fasten Desktop entry: "fasten-desktop" running Command().
func Default() (*Autostart, error) {
	cmd, err := Command()
	if err != nil {
		return nil, err
	}
	return New("fasten-desktop", "Fasten Desktop", cmd), nil
}

// Command is the command line of the login entry: the running binary, symlinks resolved, with
// --background.
func Command() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the program file: %w", err)
	}
	return commandFor(exe)
}

func commandFor(exe string) ([]string, error) {
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return nil, fmt.Errorf("find the program file: %w", err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, fmt.Errorf("find the program file: %w", err)
	}
	return []string{real, BackgroundFlag}, nil
}

// Exec returns the entry's command line.
func (a *Autostart) Exec() []string { return append([]string(nil), a.exec...) }

func (a *Autostart) check() error {
	if a.name == "" || strings.ContainsAny(a.name, `/\`) || a.name == "." || a.name == ".." {
		return fmt.Errorf("autostart: bad entry name %q", a.name)
	}
	if len(a.exec) == 0 || a.exec[0] == "" {
		return errors.New("autostart: no command")
	}
	return nil
}
