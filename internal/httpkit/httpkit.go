// Package httpkit is the small HTTP toolkit every feature registers its API routes with: the
// Route type, JSON responses, the one error shape, FHIR OperationOutcomes, strict JSON bodies and
// the one mapping from errors to responses. It is a leaf: it imports nothing of the app, so any
// package (records, people, syncer, connect, events...) may use it without import cycles.
//
// Errors carry their own HTTP status and code (StatusError, or an error type with HTTPStatus and
// ErrorCode methods). Fail answers those with their status and message; anything else is a 500
// that never echoes the error text to the client: the error is logged with a short id, and the
// client gets the id to quote.
package httpkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
)

// Prefix is where the API lives.
const Prefix = "/api/v1"

// Route is one API endpoint. Path is relative to Prefix and uses net/http patterns ({id}).
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Registrar is anything that collects routes (the API server).
type Registrar interface {
	Add(routes ...Route)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// ErrorBody is the JSON error shape.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable code and a human message (and, for a 500, the id in the log).
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

// WriteError writes {"error": {"code", "message"}}.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, ErrorBody{ErrorDetail{Code: code, Message: msg}})
}

// OutcomeSystem names our error codes inside OperationOutcome.details.
const OutcomeSystem = "https://fastenhealth.com/fasten-desktop/errors"

// WriteOutcome writes a FHIR OperationOutcome for a refused payload.
func WriteOutcome(w http.ResponseWriter, status int, code, msg string, location string) {
	issue := map[string]any{
		"severity":    "error",
		"code":        "invalid",
		"details":     map[string]any{"coding": []map[string]string{{"system": OutcomeSystem, "code": code}}, "text": msg},
		"diagnostics": msg,
	}
	if location != "" {
		issue["location"] = []string{location}
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"resourceType": "OperationOutcome", "issue": []any{issue}})
}

// Coded is an error that knows its HTTP status and stable code. Its Error() text is shown to the
// user as is, so it must be written for them.
type Coded interface {
	error
	HTTPStatus() int
	ErrorCode() string
}

// Outcome is an error about a FHIR payload: answered as an OperationOutcome naming the position.
type Outcome interface {
	Coded
	OutcomeLocation() string
}

// StatusError is the plain Coded error.
type StatusError struct {
	Status int
	Code   string
	Msg    string
	Err    error // optional cause (not shown)
}

func (e *StatusError) Error() string     { return e.Msg }
func (e *StatusError) Unwrap() error     { return e.Err }
func (e *StatusError) HTTPStatus() int   { return e.Status }
func (e *StatusError) ErrorCode() string { return e.Code }

// Errorf returns a StatusError with a formatted message.
func Errorf(status int, code, format string, args ...any) *StatusError {
	return &StatusError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 bad_request with msg.
func BadRequest(format string, args ...any) *StatusError {
	return Errorf(http.StatusBadRequest, "bad_request", format, args...)
}

// Kind is a sentinel error with a status and code, for errors.Is and for wrapping with %w: the
// response's message is then the whole wrapped text ("source 4: not found"), capitalised.
type Kind struct {
	Status int
	Code   string
	Text   string
}

func (k *Kind) Error() string     { return k.Text }
func (k *Kind) HTTPStatus() int   { return k.Status }
func (k *Kind) ErrorCode() string { return k.Code }

// OutcomeKind is a Kind about a FHIR payload (answered as an OperationOutcome without a position).
type OutcomeKind struct{ Kind }

// OutcomeLocation is empty: the payload as a whole.
func (k *OutcomeKind) OutcomeLocation() string { return "" }

// isKind reports whether c is a sentinel whose message is the whole wrapped text.
func isKind(c error) bool {
	switch c.(type) {
	case *Kind, *OutcomeKind:
		return true
	}
	return false
}

// Fail answers err: a Coded error with its status, code and message; a cancelled request with
// 499; a too-large body with 413; anything else with a 500 whose message is an id that the log
// line carries (never the error text, which may name internal paths).
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var oc Outcome
	var c Coded
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &oc):
		msg := oc.Error()
		if isKind(oc) {
			msg = sentence(err.Error())
		}
		WriteOutcome(w, oc.HTTPStatus(), oc.ErrorCode(), msg, oc.OutcomeLocation())
	case errors.As(err, &c):
		msg := c.Error()
		if isKind(c) {
			msg = sentence(err.Error())
		}
		if c.HTTPStatus() >= 500 && log != nil {
			log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "code", c.ErrorCode(), "err", err)
		}
		WriteError(w, c.HTTPStatus(), c.ErrorCode(), msg)
	case errors.As(err, &mbe):
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The request is larger than the limit of %d MiB.", max(1, mbe.Limit>>20)))
	case errors.Is(err, context.Canceled):
		WriteError(w, 499, "cancelled", "The request was cancelled; nothing was changed.")
	default:
		id := newID()
		if log != nil {
			log.Error("request failed", "error_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		}
		WriteJSON(w, http.StatusInternalServerError, ErrorBody{ErrorDetail{
			Code: "internal", ID: id,
			Message: "Something went wrong on our side. Nothing you had was lost; the details are in the log under error " + id + ".",
		}})
	}
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MaxBody is the default cap on a JSON request body.
const MaxBody = 64 << 10

// DecodeJSON reads a small JSON body strictly: at most limit bytes (MaxBody when 0), unknown
// fields refused, duplicate keys refused (the importer's rule for FHIR applies to every body),
// nothing after the value. An empty body is an error unless allowEmpty, when v is left alone.
func DecodeJSON(r *http.Request, v any, limit int64, allowEmpty bool) error {
	if limit <= 0 {
		limit = MaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return Errorf(http.StatusRequestEntityTooLarge, "too_large", "The request body is larger than %d KiB.", limit>>10)
		}
		return BadRequest("The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return BadRequest("The request needs a JSON body.")
	}
	if err := CheckDuplicateKeys(body); err != nil {
		return BadRequest("The request body is not the JSON this endpoint expects: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("The request body is not the JSON this endpoint expects: %v", err)
	}
	if dec.More() {
		return BadRequest("The request body holds more than one JSON value.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return BadRequest("The request body has data after the JSON value.")
	}
	return nil
}

// CheckDuplicateKeys refuses JSON in which an object names the same key twice.
func CheckDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > 64 {
			return errors.New("nested too deeply")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		switch d {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if seen[k] {
					return fmt.Errorf("the key %q appears twice", k)
				}
				seen[k] = true
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
		case '[':
			for dec.More() {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return walk(0)
}

// FileName keeps the base of an uploaded file's name (the browser's, which may carry a path),
// for messages only, never to open anything; fallback when it has none.
func FileName(name, fallback string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" || name == "" {
		return fallback
	}
	if len(name) > 200 {
		name = name[:200]
	}
	return name
}
