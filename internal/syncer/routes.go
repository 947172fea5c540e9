package syncer

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Routes are the syncer's API endpoints, relative to httpkit.Prefix:
//
//	POST /sources/{id}/sync       202 {"source_id", "queued"}: queued now, or false when it already was (coalesced)
//	POST /sync                    202 {"source_ids": [...]}: every source now queued or syncing
//	GET  /sources/{id}/sync-runs  200 [Run...], newest first; ?limit= (default 50, max 500)
func (s *Syncer) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: http.MethodPost, Path: "/sources/{id}/sync", Handler: s.postSourceSync},
		{Method: http.MethodPost, Path: "/sync", Handler: s.postSyncAll},
		{Method: http.MethodGet, Path: "/sources/{id}/sync-runs", Handler: s.getRuns},
	}
}

func sourceID(r *http.Request) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return n, err == nil && n > 0
}

// errNoSource answers a sync request for a source that does not exist.
var errNoSource = httpkit.Errorf(http.StatusNotFound, "not_found", "There is no such source.")

func (s *Syncer) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, records.ErrNotFound) {
		err = errNoSource
	}
	httpkit.Fail(w, r, s.log, err)
}

func (s *Syncer) postSourceSync(w http.ResponseWriter, r *http.Request) {
	id, ok := sourceID(r)
	if !ok {
		s.writeErr(w, r, errNoSource)
		return
	}
	queued, err := s.enqueue(r.Context(), id, TriggerManual)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusAccepted, map[string]any{"source_id": id, "queued": queued})
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
	httpkit.WriteJSON(w, http.StatusAccepted, map[string]any{"source_ids": ids})
}

func (s *Syncer) getRuns(w http.ResponseWriter, r *http.Request) {
	id, ok := sourceID(r)
	if !ok {
		s.writeErr(w, r, errNoSource)
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.writeErr(w, r, httpkit.BadRequest("limit must be a whole number from 1 to 500."))
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
	httpkit.WriteJSON(w, http.StatusOK, runs)
}
