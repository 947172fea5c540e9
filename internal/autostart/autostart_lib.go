//go:build darwin || (windows && cgo)

package autostart

import (
	"fmt"
	"runtime"
	"strings"

	lib "github.com/emersion/go-autostart"
)

func (a *Autostart) app() *lib.App {
	// A copy: go-autostart's writers may modify Exec in place.
	return &lib.App{Name: a.name, DisplayName: a.displayName, Exec: append([]string(nil), a.exec...)}
}

// Enable registers the entry (a LaunchAgent on macOS, a Startup shortcut on Windows).
func (a *Autostart) Enable() error {
	if err := a.check(); err != nil {
		return err
	}
	if runtime.GOOS == "darwin" {
		// go-autostart writes the plist with text/template: no XML escaping.
		for _, arg := range a.exec {
			if strings.ContainsAny(arg, "&<>") {
				return fmt.Errorf("autostart: the program path %q cannot be registered (it holds &, < or >); move the app", arg)
			}
		}
	}
	if err := a.app().Enable(); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

// Disable removes the entry; it is not an error when there is none.
func (a *Autostart) Disable() error {
	app := a.app()
	if !app.IsEnabled() {
		return nil
	}
	if err := app.Disable(); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

// Enabled reports whether the entry exists.
func (a *Autostart) Enabled() bool { return a.app().IsEnabled() }
