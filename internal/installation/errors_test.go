package installation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// TestErrorsCarryTheirStatus: the keyring's and the Lighthouse's errors get the status and code
// the API answers with, keep their cause for errors.Is, and a transport failure names only the
// Lighthouse's host.
func TestErrorsCarryTheirStatus(t *testing.T) {
	lc := lighthouse.New("https://lighthouse.example.org:8443/base", nil)
	refused := &httpkit.StatusError{Status: http.StatusBadGateway, Code: "lighthouse_error", Msg: "mismatch"}
	cases := []struct {
		name   string
		err    error
		status int
		code   string
		cause  error
	}{
		{"locked", installation.KeyringError(fmt.Errorf("get: %w", secrets.ErrLocked)), 503, "keyring_locked", secrets.ErrLocked},
		{"unavailable", installation.KeyringError(secrets.ErrUnavailable), 503, "keyring_unavailable", secrets.ErrUnavailable},
		{"corrupt", installation.KeyringError(secrets.ErrCorrupt), 503, "keyring_error", secrets.ErrCorrupt},
		{"user limit", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeUserLimitReached, Status: 403, Detail: "full"}), 403, "user_limit_reached", nil},
		{"installation unknown", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeInstallationUnknown, Status: 401}), 409, "installation_rejected", nil},
		{"provider unknown", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeProviderUnknown, Status: 404}), 404, "provider_unknown", nil},
		{"rate limited", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeRateLimited, Status: 429}), 429, "rate_limited", nil},
		{"bad request", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeBadRequest, Status: 400}), 400, "lighthouse_refused", nil},
		{"other", installation.LighthouseError(lc, &lighthouse.Error{Type: lighthouse.TypeStateInvalid, Status: 400}), 502, "lighthouse_error", nil},
		{"unreachable", installation.LighthouseError(lc, errors.New("dial tcp 10.1.2.3:8443: connection refused")), 502, "lighthouse_unreachable", nil},
		{"already coded", installation.LighthouseError(lc, refused), 502, "lighthouse_error", refused},
	}
	for _, c := range cases {
		var coded httpkit.Coded
		if !errors.As(c.err, &coded) || coded.HTTPStatus() != c.status || coded.ErrorCode() != c.code {
			t.Errorf("%s: %v is not %d %s", c.name, c.err, c.status, c.code)
			continue
		}
		if c.cause != nil && !errors.Is(c.err, c.cause) {
			t.Errorf("%s: the cause is lost", c.name)
		}
	}
	msg := installation.LighthouseError(lc, errors.New("dial tcp 10.1.2.3:8443: connection refused")).Error()
	if !strings.Contains(msg, "could not reach the Lighthouse at lighthouse.example.org:8443") || strings.Contains(msg, "10.1.2.3") {
		t.Errorf("unreachable: %q", msg)
	}
	if err := installation.LighthouseError(lc, context.Canceled); err != context.Canceled {
		t.Errorf("a cancelled request became %v", err)
	}
	plain := errors.New("something else")
	if installation.KeyringError(plain) != plain || installation.KeyringError(nil) != nil {
		t.Error("KeyringError changed an error that is not the keyring's")
	}
}

// TestRegisterFailures: a keyring that cannot be used refuses registering with 503 before the
// Lighthouse issues a secret; a settings file that cannot be read is a 500 that names a log id,
// never the error (which names the file's path).
func TestRegisterFailures(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.kr.SetUnavailable(true)
	var ae apiError
	if code := e.call("POST", "/installation", map[string]string{"name": "Ada", "email": "ada@example.org"}, &ae); code != 503 || ae.Error.Code != "keyring_unavailable" {
		t.Fatalf("keyring unavailable: %d %+v", code, ae)
	}
	e.kr.SetUnavailable(false)

	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker")
	must(t, os.WriteFile(blocker, nil, 0o600))
	kr := secretstest.New()
	inst, err := installation.New(installation.Options{Config: config.NewStore(filepath.Join(blocker, "settings.json")), Keyring: kr, LighthouseOverride: e.lhURL})
	must(t, err)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", httpkit.Prefix+"/installation", strings.NewReader(`{"name": "Ada", "email": "ada@example.org"}`))
	serve(inst).ServeHTTP(w, r)
	json.Unmarshal(w.Body.Bytes(), &ae)
	if w.Code != 500 || ae.Error.Code != "internal" || ae.Error.ID == "" || !strings.Contains(ae.Error.Message, ae.Error.ID) || strings.Contains(ae.Error.Message, "blocker") {
		t.Fatalf("unreadable settings: %d %s", w.Code, w.Body)
	}
}
