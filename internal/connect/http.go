package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Routes are the service's API endpoints (relative to api.Prefix), for api.Server.Add.
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Method: "GET", Path: "/installation", Handler: s.getInstallation},
		{Method: "POST", Path: "/installation", Handler: s.postInstallation},
		{Method: "GET", Path: "/settings", Handler: s.getSettings},
		{Method: "PATCH", Path: "/settings", Handler: s.patchSettings},
		{Method: "GET", Path: "/providers", Handler: s.getProviders},
		{Method: "POST", Path: "/connect", Handler: s.postConnect},
		{Method: "GET", Path: "/connect/{connect_id}", Handler: s.getConnect},
		{Method: "DELETE", Path: "/connect/{connect_id}", Handler: s.deleteConnect},
		{Method: "POST", Path: "/sources/{id}/disconnect", Handler: s.postDisconnect},
		{Method: "POST", Path: "/sources/{id}/reconnect", Handler: s.postReconnect},
	}
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, records.ErrNotFound) {
		api.WriteError(w, http.StatusNotFound, "not_found", capitalise(err.Error())+".")
		return
	}
	status, code, msg := describe(err)
	if status >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	api.WriteError(w, status, code, msg)
}

// decode reads a small JSON body; an empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
	if err != nil {
		return &problem{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "The request body is too large."}
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &problem{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf("The request body is not the JSON this endpoint expects: %v", err)}
	}
	return nil
}

func (s *Service) getInstallation(w http.ResponseWriter, r *http.Request) {
	in, err := s.Installation()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if in == nil {
		api.WriteError(w, http.StatusNotFound, codeNotRegistered, "This installation is not registered with the Lighthouse yet.")
		return
	}
	api.WriteJSON(w, http.StatusOK, in)
}

func (s *Service) postInstallation(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	in, err := s.Register(r.Context(), body.Name, body.Email)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, in)
}

func (s *Service) getSettings(w http.ResponseWriter, r *http.Request) {
	st, err := s.Settings()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func (s *Service) patchSettings(w http.ResponseWriter, r *http.Request) {
	var p SettingsPatch
	if err := decode(r, &p); err != nil {
		s.fail(w, r, err)
		return
	}
	if p.LighthouseURL == nil && p.OnboardingDone == nil {
		api.WriteError(w, http.StatusBadRequest, "bad_request", `Nothing to change: send {"lighthouse_url": "..."} or {"onboarding_done": true}.`)
		return
	}
	st, err := s.UpdateSettings(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

// CatalogEntry is a provider as GET /providers lists it.
type CatalogEntry struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	FHIRBase     string `json:"fhir_base"`
	Confidential bool   `json:"confidential"`
	UserLimit    int    `json:"user_limit"`
}

// Providers returns the Lighthouse catalog, filtered by q (cached and revalidated by the client).
func (s *Service) Providers(ctx context.Context, q string) ([]CatalogEntry, error) {
	lc, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := lc.Providers(ctx, q)
	if err != nil {
		return nil, lighthouseErr(lc, err)
	}
	out := make([]CatalogEntry, 0, len(ps))
	for _, p := range ps {
		out = append(out, catalogEntry(p))
	}
	return out, nil
}

func catalogEntry(p lighthouse.Provider) CatalogEntry {
	return CatalogEntry{ID: p.ID, Name: p.Name, FHIRBase: p.FHIRBase, Confidential: p.Confidential, UserLimit: p.UserLimit}
}

func (s *Service) getProviders(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		api.WriteError(w, http.StatusBadRequest, "bad_request", "The search text is too long.")
		return
	}
	ps, err := s.Providers(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, ps)
}

func (s *Service) postConnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Provider string          `json:"provider"`
		Profile  json.RawMessage `json:"profile"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	req := ConnectRequest{Provider: body.Provider}
	if len(body.Profile) > 0 && string(body.Profile) != "null" {
		var str string
		var num json.Number
		switch {
		case json.Unmarshal(body.Profile, &str) == nil:
			req.Profile = str
		case json.Unmarshal(body.Profile, &num) == nil:
			req.Profile = num.String()
		default:
			api.WriteError(w, http.StatusBadRequest, "bad_request", "profile must be a profile id.")
			return
		}
	}
	started, err := s.Connect(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, started)
}

func (s *Service) getConnect(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.PathValue("connect_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func (s *Service) deleteConnect(w http.ResponseWriter, r *http.Request) {
	st, err := s.Cancel(r.Context(), r.PathValue("connect_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func sourceID(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("source %q: %w", r.PathValue("id"), records.ErrNotFound)
	}
	return n, nil
}

func (s *Service) postDisconnect(w http.ResponseWriter, r *http.Request) {
	id, err := sourceID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body struct {
		DeleteRecords bool `json:"delete_records"`
	}
	if err := decode(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.Disconnect(r.Context(), id, body.DeleteRecords)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) postReconnect(w http.ResponseWriter, r *http.Request) {
	id, err := sourceID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	started, err := s.Reconnect(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, started)
}
