package connect

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/callback"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// TestFailure: a failed sign-in's status carries the code of a known outcome and its sentence;
// anything else is shown as an id for the log line, never as the error's text.
func TestFailure(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code string
	}{
		{"cancelled", callback.ErrClosed, ErrCodeCancelled},
		{"timeout", callback.ErrTimeout, ErrCodeTimeout},
		{"keyring locked", installation.KeyringError(fmt.Errorf("save: %w", secrets.ErrLocked)), ErrCodeKeyringLocked},
		{"keyring unavailable", installation.KeyringError(secrets.ErrUnavailable), ErrCodeKeyring},
		{"wrong patient", problem(http.StatusConflict, ErrCodeWrongPatient, "You signed in as a different patient."), ErrCodeWrongPatient},
		{"internal", fmt.Errorf("Fasten could not save the new source: %w", errors.New("disk I/O error at /home/ada/.local/share/fasten/fasten.db")), ErrCodeFailed},
	}
	for _, c := range cases {
		code, msg, id := failure(c.err)
		if code != c.code || msg == "" {
			t.Errorf("%s: %q %q", c.name, code, msg)
		}
		if c.code == ErrCodeFailed {
			if id == "" || !strings.Contains(msg, id) || strings.Contains(msg, "/home/ada") || strings.Contains(msg, "disk I/O") {
				t.Errorf("%s: id %q, message %q", c.name, id, msg)
			}
		} else if id != "" {
			t.Errorf("%s: a known outcome got a log id", c.name)
		}
	}
}
