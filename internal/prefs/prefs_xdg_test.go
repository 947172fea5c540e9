//go:build !windows && !darwin

package prefs

import (
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/autostart"
)

// Login entries are XDG .desktop files on Linux and the BSDs (TestPreferencesAutostart).
func skipUnlessXDG(*testing.T) {}

func xdgExecLine(args []string) (string, error) { return autostart.ExecLine(args) }
