package installation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// The errors of this package (and of internal/connect) carry their HTTP status and stable code
// (httpkit.Coded), so the routes answer them with httpkit.Fail; their text is a sentence for the
// user.

// CodeNotRegistered is the code of every "register first" refusal.
const CodeNotRegistered = "not_registered"

// ErrNotRegistered: no installation is registered with the Lighthouse in use.
var ErrNotRegistered error = &httpkit.StatusError{Status: http.StatusConflict, Code: CodeNotRegistered,
	Msg: "Register this installation to connect providers."}

// problem is a refusal with a status, a stable code and a sentence for the user.
func problem(status int, code, msg string) error {
	return &httpkit.StatusError{Status: status, Code: code, Msg: msg}
}

// KeyringError gives an error of the keyring (package secrets) its status and code: 503
// keyring_locked, keyring_unavailable or keyring_error, with the keyring's own sentence. It
// still matches the secrets errors (errors.Is). Any other error is returned as it is.
func KeyringError(err error) error {
	code := ""
	switch {
	case err == nil:
		return nil
	case errors.Is(err, secrets.ErrLocked): // ErrTimeout matches too
		code = "keyring_locked"
	case errors.Is(err, secrets.ErrUnavailable):
		code = "keyring_unavailable"
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrCorrupt), errors.Is(err, secrets.ErrTooLarge):
		code = "keyring_error"
	default:
		return err
	}
	return &httpkit.StatusError{Status: http.StatusServiceUnavailable, Code: code, Msg: err.Error(), Err: err}
}

// LighthouseError gives an error of Lighthouse client c its status and code: the Lighthouse's
// own problems keep their words (user limit 403, installation rejected 409, unknown provider 404,
// rate limited 429, refused 400, else 502 lighthouse_error); a transport failure (network, DNS,
// refused, timeout) becomes 502 lighthouse_unreachable naming the Lighthouse's host. A cancelled
// request is returned as it is. The result still matches the cause (errors.Is / errors.As).
func LighthouseError(c *lighthouse.Client, err error) error {
	var coded httpkit.Coded
	if err == nil || errors.Is(err, context.Canceled) || errors.As(err, &coded) {
		return err
	}
	var le *lighthouse.Error
	if errors.As(err, &le) {
		status, code := http.StatusBadGateway, "lighthouse_error"
		switch le.Type {
		case lighthouse.TypeUserLimitReached:
			status, code = http.StatusForbidden, "user_limit_reached"
		case lighthouse.TypeInstallationRevoked:
			status, code = http.StatusForbidden, "installation_revoked"
		case lighthouse.TypeInstallationUnknown, lighthouse.TypeInstallationAuthFailed:
			status, code = http.StatusConflict, "installation_rejected"
		case lighthouse.TypeProviderUnknown:
			status, code = http.StatusNotFound, "provider_unknown"
		case lighthouse.TypeRateLimited:
			status, code = http.StatusTooManyRequests, "rate_limited"
		case lighthouse.TypeBadRequest:
			status, code = http.StatusBadRequest, "lighthouse_refused"
		}
		return &httpkit.StatusError{Status: status, Code: code, Msg: le.Error(), Err: err}
	}
	host := c.BaseURL()
	if u, perr := url.Parse(host); perr == nil && u.Host != "" {
		host = u.Host
	}
	return &httpkit.StatusError{Status: http.StatusBadGateway, Code: "lighthouse_unreachable", Err: err,
		Msg: fmt.Sprintf("Fasten could not reach the Lighthouse at %s. Check your internet connection and the Lighthouse address in Settings, then try again.", host)}
}
