package people

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Route is httpkit.Route (the leaf HTTP kit every feature registers its routes with).
type Route = httpkit.Route

// Routes are the people endpoints (docs/openapi.yaml).
func (s *Service) Routes() []Route {
	return []Route{
		{Method: "GET", Path: "/profiles", Handler: s.getProfiles},
		{Method: "POST", Path: "/profiles", Handler: s.postProfile},
		{Method: "GET", Path: "/profiles/{id}", Handler: byID(s, s.Get)},
		{Method: "PATCH", Path: "/profiles/{id}", Handler: s.patchProfile},
		{Method: "DELETE", Path: "/profiles/{id}", Handler: byID(s, s.Delete)},
		{Method: "GET", Path: "/profiles/{id}/deletion", Handler: byID(s, s.PlanDelete)},
		{Method: "POST", Path: "/profiles/{id}/merge", Handler: s.postMerge},
		{Method: "GET", Path: "/merges", Handler: s.getMerges},
		{Method: "POST", Path: "/merges/{id}/undo", Handler: byID(s, s.Undo)},
		{Method: "POST", Path: "/merges/{id}/confirm", Handler: byID(s, s.Confirm)},
		{Method: "PUT", Path: "/sources/{id}/profile", Handler: s.putSourceProfile},
		{Method: "PUT", Path: "/sources/{id}/patients/{patient}/profile", Handler: s.putPatientProfile},
		{Method: "GET", Path: "/unlinked", Handler: s.getUnlinked},
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

func writeJSON(w http.ResponseWriter, status int, v any) { httpkit.WriteJSON(w, status, v) }

// fail answers err through the one mapper: people's errors carry their status.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpkit.Fail(w, r, s.log, err)
}

func idParam(r *http.Request, name string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not an id: %w", r.PathValue(name), ErrNotFound)
	}
	return n, nil
}

// decode reads a small JSON body strictly (httpkit.DecodeJSON: unknown fields and duplicate
// keys refused).
func decode(r *http.Request, v any) error {
	return httpkit.DecodeJSON(r, v, 1<<16, false)
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
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "counts must be true or false.")
		return
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "limit must be a positive number of people.")
			return
		}
		o.Limit = n
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
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", `Send {"from": <id of the person to merge into this one>}.`)
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
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "The patient must be a FHIR id, as in Patient/<id>.")
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
