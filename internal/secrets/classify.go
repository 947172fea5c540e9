package secrets

import (
	"errors"
	"reflect"
	"strings"

	"github.com/zalando/go-keyring"
)

// classify maps what go-keyring (and the D-Bus library under it) returns to this package's kinds.
//
// go-keyring passes D-Bus errors through unchanged. Their type (github.com/godbus/dbus/v5.Error)
// carries the error name in a Name field while Error() returns only the message, so the name is read
// by reflection rather than by adding a direct dependency on godbus. Message fragments cover the
// errors that are plain strings (no session bus, a dismissed unlock prompt, macOS `security`).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Op == "" {
			e.Op = op
		}
		return e
	}
	switch {
	case errors.Is(err, errAbandoned):
		return &Error{Kind: ErrTimeout, Op: op}
	case errors.Is(err, keyring.ErrNotFound):
		return &Error{Kind: ErrNotFound, Op: op}
	case errors.Is(err, keyring.ErrUnsupportedPlatform):
		return &Error{Kind: ErrUnavailable, Op: op, Err: err}
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return &Error{Kind: ErrTooLarge, Op: op, Err: err}
	}
	if name := dbusErrorName(err); name != "" {
		switch {
		case strings.HasSuffix(name, ".IsLocked"):
			return &Error{Kind: ErrLocked, Op: op, Err: err}
		case strings.HasPrefix(name, "org.freedesktop.DBus.Error.NoReply"),
			strings.HasPrefix(name, "org.freedesktop.DBus.Error.Timeout"):
			return &Error{Kind: ErrTimeout, Op: op, Err: err}
		default:
			// ServiceUnknown, NameHasNoOwner, Spawn.*, Secret.Error.NoSuchObject (no default
			// collection), AccessDenied, ...: there is no keyring we can use.
			return &Error{Kind: ErrUnavailable, Op: op, Err: err}
		}
	}
	msg := strings.ToLower(err.Error())
	for _, s := range lockedMessages {
		if strings.Contains(msg, s) {
			return &Error{Kind: ErrLocked, Op: op, Err: err}
		}
	}
	// No session bus, a refused socket, a missing `security` binary, or anything unrecognised: the
	// keyring cannot be used, and there is no plaintext fallback.
	return &Error{Kind: ErrUnavailable, Op: op, Err: err}
}

var lockedMessages = []string{
	"failed to unlock correct collection", // go-keyring: Secret Service unlock prompt dismissed
	"is locked",
	"interaction is not allowed", // macOS errSecInteractionNotAllowed
	"user canceled",              // macOS prompt cancelled
	"passphrase you entered is not correct",
}

// dbusErrorName returns the Name of a godbus Error anywhere in err's chain, or "".
func dbusErrorName(err error) string {
	for _, e := range chain(err) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			continue
		}
		f := v.FieldByName("Name")
		if f.IsValid() && f.Kind() == reflect.String && strings.HasPrefix(f.String(), "org.freedesktop.") {
			return f.String()
		}
	}
	return ""
}

// chain lists err and everything it wraps, depth first.
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > 32 {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}
