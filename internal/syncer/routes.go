package syncer

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Routes are the syncer's API endpoints, relative to api.Prefix:
//
//	POST /sources/{id}/sync       202 {"source_id", "queued"}: queued now, or false when it already was (coalesced)
//	POST /sync                    202 {"source_ids": [...]}: every source now queued or syncing
//	GET  /sources/{id}/sync-runs  200 [Run...], newest first; ?limit= (default 50, max 500)
func (s *Syncer) Routes() []api.Route {
	return []api.Route{
		{Method: http.MethodPost, Path: "/sources/{id}/sync", Handler: s.postSourceSync},
		{Method: http.MethodPost, Path: "/sync", Handler: s.postSyncAll},
		{Method: http.MethodGet, Path: "/sources/{id}/sync-runs", Handler: s.getRuns},
	}
}

func sourceID(r *http.Request) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return n, err == nil && n > 0
}

func (s *Syncer) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, records.ErrNotFound):
		api.WriteError(w, http.StatusNotFound, "not_found", "There is no such source.")
	case errors.Is(err, ErrNotProvider):
		api.WriteError(w, http.StatusConflict, "conflict", "This source is a file import; there is nothing to sync.")
	case errors.Is(err, ErrReconnectNeeded):
		api.WriteError(w, http.StatusConflict, "reconnect_needed", message(err))
	default:
		s.log.Error("sync request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		api.WriteError(w, http.StatusInternalServerError, "internal", "Something went wrong on our side: "+message(err))
	}
}

func (s *Syncer) postSourceSync(w http.ResponseWriter, r *http.Request) {
	id, ok := sourceID(r)
	if !ok {
		api.WriteError(w, http.StatusNotFound, "not_found", "There is no such source.")
		return
	}
	queued, err := s.enqueue(r.Context(), id, TriggerManual)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"source_id": id, "queued": queued})
}

func (s *Syncer) postSyncAll(w http.ResponseWriter, r *http.Request) {
	ids, err := s.enqueueAll(r.Context(), TriggerManual)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if ids == nil {
		ids = []int64{}
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"source_ids": ids})
}

func (s *Syncer) getRuns(w http.ResponseWriter, r *http.Request) {
	id, ok := sourceID(r)
	if !ok {
		api.WriteError(w, http.StatusNotFound, "not_found", "There is no such source.")
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			api.WriteError(w, http.StatusBadRequest, "bad_request", "limit must be a whole number from 1 to 500.")
			return
		}
		limit = n
	}
	if _, err := s.cfg.Store.GetSource(r.Context(), id); err != nil {
		s.writeErr(w, r, err)
		return
	}
	runs, err := s.Runs(r.Context(), id, limit)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, runs)
}
