package people

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Route is one HTTP endpoint, relative to the API prefix (/api/v1); the backend registers them
// as api.Routes (this package cannot import api: api imports the importer, which imports this).
type Route struct {
	Method  string
	Path    string
	Handler http.HandlerFunc
}

// Routes are the people endpoints (docs/openapi.yaml).
func (s *Service) Routes() []Route {
	return []Route{
		{"GET", "/profiles", s.getProfiles},
		{"POST", "/profiles", s.postProfile},
		{"GET", "/profiles/{id}", byID(s, s.Get)},
		{"PATCH", "/profiles/{id}", s.patchProfile},
		{"DELETE", "/profiles/{id}", byID(s, s.Delete)},
		{"GET", "/profiles/{id}/deletion", byID(s, s.PlanDelete)},
		{"POST", "/profiles/{id}/merge", s.postMerge},
		{"GET", "/merges", s.getMerges},
		{"POST", "/merges/{id}/undo", byID(s, s.Undo)},
		{"POST", "/merges/{id}/confirm", byID(s, s.Confirm)},
		{"PUT", "/sources/{id}/profile", s.putSourceProfile},
		{"PUT", "/sources/{id}/patients/{patient}/profile", s.putPatientProfile},
		{"GET", "/unlinked", s.getUnlinked},
	}
}

// byID is a handler that calls fn with the {id} of the path and answers its result as JSON.
func byID[T any](s *Service, fn func(context.Context, int64) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r, "id")
		if err == nil {
			var v T
			if v, err = fn(r.Context(), id); err == nil {
				writeJSON(w, http.StatusOK, v)
				return
			}
		}
		s.fail(w, r, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *InvalidError
	switch {
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, "bad_request", ie.Msg)
	case errors.Is(err, ErrNotFound):
		msg := err.Error()
		writeError(w, http.StatusNotFound, "not_found", strings.ToUpper(msg[:1])+msg[1:]+".")
	case errors.Is(err, ErrChanged):
		writeError(w, http.StatusConflict, "changed", "The records changed while deleting; nothing was deleted. Please try again.")
	case errors.Is(err, records.ErrDiskFull):
		writeError(w, http.StatusInsufficientStorage, "disk_full", err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "cancelled", "The request was cancelled; nothing was changed.")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "Something went wrong on our side: "+err.Error())
	}
}

func idParam(r *http.Request, name string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not an id: %w", r.PathValue(name), ErrNotFound)
	}
	return n, nil
}

// decode reads a small JSON body strictly.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<16))
	if err != nil {
		return invalid("The request body is too large.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("The request body is not the JSON this endpoint expects: %v", err)
	}
	return nil
}

// profileBody reads {"profile_id": N|null}: the field is required, null means nobody.
type profileBody struct {
	ProfileID json.RawMessage `json:"profile_id"`
}

func (b profileBody) value() (*int64, error) {
	if len(b.ProfileID) == 0 {
		return nil, invalid(`Send {"profile_id": <person id>} (or null for nobody).`)
	}
	if string(b.ProfileID) == "null" {
		return nil, nil
	}
	var n int64
	if err := json.Unmarshal(b.ProfileID, &n); err != nil || n <= 0 {
		return nil, invalid("profile_id must be a person's id or null.")
	}
	return &n, nil
}

func (s *Service) getProfiles(w http.ResponseWriter, r *http.Request) {
	o := ListOptions{}
	switch r.URL.Query().Get("counts") {
	case "", "0", "false":
	case "1", "true":
		o.Counts = true
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "counts must be true or false.")
		return
	}
	list, err := s.List(r.Context(), o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Service) postProfile(w http.ResponseWriter, r *http.Request) {
	var in Input
	if err := decode(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.Create(r.Context(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Service) patchProfile(w http.ResponseWriter, r *http.Request) {
	id, err := idParam(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in Input
	if err := decode(r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.Update(r.Context(), id, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Service) postMerge(w http.ResponseWriter, r *http.Request) {
	into, err := idParam(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body struct {
		From int64 `json:"from"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.From <= 0 {
		writeError(w, http.StatusBadRequest, "bad_request", `Send {"from": <id of the person to merge into this one>}.`)
		return
	}
	m, err := s.Merge(r.Context(), into, body.From)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Service) getMerges(w http.ResponseWriter, r *http.Request) {
	list, err := s.PendingMerges(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Service) putSourceProfile(w http.ResponseWriter, r *http.Request) {
	id, err := idParam(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body profileBody
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	prof, err := body.value()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.ReassignSource(r.Context(), id, prof)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) putPatientProfile(w http.ResponseWriter, r *http.Request) {
	id, err := idParam(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	patient := r.PathValue("patient")
	if !fhir.ValidID(patient) {
		writeError(w, http.StatusBadRequest, "bad_request", "The patient must be a FHIR id, as in Patient/<id>.")
		return
	}
	var body profileBody
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	prof, err := body.value()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.ReassignPatient(r.Context(), id, "Patient/"+patient, prof)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) getUnlinked(w http.ResponseWriter, r *http.Request) {
	u, err := s.Unlinked(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}
