//go:build windows && !cgo

package autostart

// go-autostart creates the Windows Startup shortcut through cgo (COM); without cgo there is no way.

// Enable reports ErrUnsupported.
func (a *Autostart) Enable() error { return ErrUnsupported }

// Disable reports ErrUnsupported.
func (a *Autostart) Disable() error { return ErrUnsupported }

// Enabled is always false.
func (a *Autostart) Enabled() bool { return false }
