//go:build !windows && !darwin

package autostart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Dir is the XDG autostart folder: $XDG_CONFIG_HOME/autostart when XDG_CONFIG_HOME is an absolute
// path, else $HOME/.config/autostart.
func (a *Autostart) Dir() (string, error) {
	if x := a.getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "autostart"), nil
	}
	home := a.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("autostart: no home folder: %w", err)
		}
	}
	return filepath.Join(home, ".config", "autostart"), nil
}

// Path is the entry's file.
func (a *Autostart) Path() (string, error) {
	dir, err := a.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, a.name+".desktop"), nil
}

// Enable writes the entry (replacing an older one, e.g. after the program moved).
func (a *Autostart) Enable() error {
	if err := a.check(); err != nil {
		return err
	}
	content, err := a.desktopEntry()
	if err != nil {
		return err
	}
	path, err := a.Path()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return writeAtomic(path, []byte(content), 0o644)
}

// Disable removes the entry; it is not an error when there is none.
func (a *Autostart) Disable() error {
	path, err := a.Path()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

// Enabled reports whether the entry exists.
func (a *Autostart) Enabled() bool {
	path, err := a.Path()
	if err != nil {
		return false
	}
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func (a *Autostart) desktopEntry() (string, error) {
	args := a.exec
	if strings.Contains(args[0], "%") {
		// GLib checks that the program exists before it turns "%%" into "%", so it refuses such an
		// entry; env runs the program instead.
		args = append([]string{"/usr/bin/env"}, args...)
	}
	exec, err := ExecLine(args)
	if err != nil {
		return "", err
	}
	name := a.displayName
	if name == "" {
		name = a.name
	}
	var b strings.Builder
	b.WriteString("[Desktop Entry]\n")
	b.WriteString("Type=Application\n")
	b.WriteString("Version=1.5\n")
	b.WriteString("Name=" + escapeString(name) + "\n")
	b.WriteString("Comment=" + escapeString("Keeps your health records in sync in the background") + "\n")
	b.WriteString("Exec=" + exec + "\n")
	b.WriteString("TryExec=" + escapeString(a.exec[0]) + "\n")
	b.WriteString("Terminal=false\n")
	b.WriteString("NoDisplay=true\n")
	b.WriteString("X-GNOME-Autostart-enabled=true\n")
	return b.String(), nil
}

// reserved are the characters that make an Exec argument need quotes (Desktop Entry
// Specification, "The Exec key").
const reserved = " \t\n\"'\\><~|&;$*?#()`"

// ExecLine builds the value of an Exec key for args: each argument quoted when it is empty or holds
// a reserved character ('"', '`', '$' and '\' then backslash-escaped inside the quotes), '%'
// written as "%%", and the result escaped as a string value (a backslash becomes "\\"). Arguments
// must be UTF-8 without control characters.
func ExecLine(args []string) (string, error) {
	parts := make([]string, 0, len(args))
	for _, arg := range args {
		if !utf8.ValidString(arg) || strings.ContainsFunc(arg, unicode.IsControl) {
			return "", fmt.Errorf("autostart: the program path %q cannot be written in a desktop entry", arg)
		}
		arg = strings.ReplaceAll(arg, "%", "%%")
		if arg == "" || strings.ContainsAny(arg, reserved) {
			var q strings.Builder
			q.WriteByte('"')
			for _, r := range arg {
				if r == '"' || r == '`' || r == '$' || r == '\\' {
					q.WriteByte('\\')
				}
				q.WriteRune(r)
			}
			q.WriteByte('"')
			arg = q.String()
		}
		parts = append(parts, arg)
	}
	return escapeString(strings.Join(parts, " ")), nil
}

// escapeString applies the escapes of a string value: \\, \n, \t, \r (and a leading space as \s).
func escapeString(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' && i == 0:
			b.WriteString(`\s`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}
