//go:build windows || darwin

package prefs

import (
	"errors"
	"testing"
)

// Login entries are not XDG .desktop files here (the Run key, a LaunchAgent): the XDG test skips;
// this keeps the package's tests compiling for Windows and macOS.
func skipUnlessXDG(t *testing.T) { t.Skip("login entries on this platform are not XDG .desktop files") }

func xdgExecLine([]string) (string, error) {
	return "", errors.New("no XDG autostart on this platform")
}
