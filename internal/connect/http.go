package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Routes are the service's API endpoints (relative to httpkit.Prefix).
func (s *Service) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: "GET", Path: "/providers", Handler: s.getProviders},
		{Method: "POST", Path: "/connect", Handler: s.postConnect},
		{Method: "GET", Path: "/connect/{connect_id}", Handler: s.getConnect},
		{Method: "DELETE", Path: "/connect/{connect_id}", Handler: s.deleteConnect},
		{Method: "POST", Path: "/sources/{id}/disconnect", Handler: s.postDisconnect},
		{Method: "POST", Path: "/sources/{id}/reconnect", Handler: s.postReconnect},
	}
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
	sess, err := s.inst.Session(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := sess.Client.Providers(ctx, q)
	if err != nil {
		return nil, installation.LighthouseError(sess.Client, err)
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
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "The search text is too long.")
		return
	}
	ps, err := s.Providers(r.Context(), q)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, ps)
}

func (s *Service) postConnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Provider string          `json:"provider"`
		Profile  json.RawMessage `json:"profile"`
	}
	if err := httpkit.DecodeJSON(r, &body, 0, true); err != nil {
		httpkit.Fail(w, r, s.log, err)
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
			httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "profile must be a profile id.")
			return
		}
	}
	started, err := s.Connect(r.Context(), req)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, started)
}

func (s *Service) getConnect(w http.ResponseWriter, r *http.Request) {
	st, err := s.Status(r.PathValue("connect_id"))
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, st)
}

func (s *Service) deleteConnect(w http.ResponseWriter, r *http.Request) {
	st, err := s.Cancel(r.Context(), r.PathValue("connect_id"))
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, st)
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
		httpkit.Fail(w, r, s.log, err)
		return
	}
	var body struct {
		DeleteRecords bool `json:"delete_records"`
	}
	if err := httpkit.DecodeJSON(r, &body, 0, true); err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	out, err := s.Disconnect(r.Context(), id, body.DeleteRecords)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) postReconnect(w http.ResponseWriter, r *http.Request) {
	id, err := sourceID(r)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	started, err := s.Reconnect(r.Context(), id)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, started)
}
