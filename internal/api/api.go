// Package api is the backend HTTP API under /api/v1 that the frontend uses, in the desktop window
// (through the Wails asset server: no TCP) and in a browser against serve mode (behind
// internal/guard). Every error is JSON with a stable code and a human message; a refused FHIR
// payload answers with a FHIR OperationOutcome that names the position.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Prefix is where the API lives.
const Prefix = httpkit.Prefix

// Publisher receives the API's events (import progress and results, source changes). The events
// package implements it; nil drops events.
type Publisher interface {
	Publish(topic string, data any)
}

// Config holds the API's dependencies.
type Config struct {
	Store     *records.Store
	Importer  *importer.Importer
	Log       *slog.Logger
	Version   string
	SpoolDir  string // where uploads are written while they are imported
	MaxUpload int64  // bytes; default 2 GiB
	MaxFiles  int    // files in one upload; default 1,000
	Events    Publisher
	// Syncing reports whether a source is being synced right now (from the syncer); optional.
	Syncing func(sourceID int64) bool
	// DeleteSource deletes a source and its records and says what went; default: the store's.
	// The backend routes provider sources through disconnect so their tokens leave the keyring.
	DeleteSource func(ctx context.Context, id int64) (map[string]int, error)
	Now          func() time.Time
}

// Server serves the API.
type Server struct {
	cfg         Config
	routes      []Route
	imports     *tracker
	createSpool func(dir, pattern string) (spoolFile, error)
}

// New builds the API with its core routes; other packages add theirs with Add.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 2 << 30
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, imports: newTracker(cfg.Now), createSpool: createSpool}
	s.Add(
		Route{Method: "GET", Path: "/health", Handler: s.health},
		Route{Method: "POST", Path: "/imports", Handler: s.postImport},
		Route{Method: "GET", Path: "/imports/{id}", Handler: s.getImport},
		Route{Method: "DELETE", Path: "/imports/{id}", Handler: s.cancelImport},
		Route{Method: "GET", Path: "/sources", Handler: s.listSources},
		Route{Method: "GET", Path: "/sources/{id}", Handler: s.getSource},
		Route{Method: "PATCH", Path: "/sources/{id}", Handler: s.patchSource},
		Route{Method: "DELETE", Path: "/sources/{id}", Handler: s.deleteSource},
		Route{Method: "GET", Path: "/resources/counts", Handler: s.counts},
		Route{Method: "GET", Path: "/resources", Handler: s.listResources},
		Route{Method: "GET", Path: "/resources/{type}/{id}", Handler: s.getResource},
		Route{Method: "GET", Path: "/resources/{type}/{id}/attachments/{n}", Handler: s.getAttachment},
		Route{Method: "GET", Path: "/timeline", Handler: s.timeline},
		Route{Method: "GET", Path: "/search", Handler: s.search},
		Route{Method: "GET", Path: "/summary", Handler: s.summary},
		Route{Method: "GET", Path: "/export", Handler: s.export},
	)
	return s
}

// Add registers more routes (connect, sync, profiles, hub, events...).
func (s *Server) Add(routes ...Route) { s.routes = append(s.routes, routes...) }

// Routes lists every route (the OpenAPI test checks each is documented).
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Publish sends an event if a publisher is configured.
func (s *Server) Publish(topic string, data any) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(topic, data)
	}
}

// Handler returns the API as an http.Handler for paths under Prefix; other paths get 404 JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routes {
		mux.HandleFunc(r.Method+" "+Prefix+r.Path, r.Handler)
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "not_found", "There is no such API endpoint.")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		_, pattern := mux.Handler(r)
		if pattern == "" && strings.HasPrefix(r.URL.Path, Prefix+"/") {
			// A known path with another method gets 405 from the mux; unknown paths 404 JSON.
		}
		mux.ServeHTTP(w, r)
	})
}

// --- responses ------------------------------------------------------------------------------
// The response helpers live in internal/httpkit; these names stay for the routes' callers.

// Route is httpkit.Route.
type Route = httpkit.Route

// ErrorBody and ErrorDetail are httpkit's error shape.
type (
	ErrorBody   = httpkit.ErrorBody
	ErrorDetail = httpkit.ErrorDetail
)

// OutcomeSystem names our error codes inside OperationOutcome.details.
const OutcomeSystem = httpkit.OutcomeSystem

// WriteJSON, WriteError and WriteOutcome are httpkit's.
var (
	WriteJSON    = httpkit.WriteJSON
	WriteError   = httpkit.WriteError
	WriteOutcome = httpkit.WriteOutcome
)

// fail maps an error to a response (httpkit.Fail: errors carry their status).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The upload is larger than the limit of %d MiB.", s.cfg.MaxUpload>>20))
		return
	}
	httpkit.Fail(w, r, s.cfg.Log, err)
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// --- parameters -----------------------------------------------------------------------------

func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s must be a whole number", records.ErrBadQuery, name)
	}
	return n, nil
}

func filter(r *http.Request) (records.Filter, error) {
	src, err := queryInt(r, "source")
	if err != nil {
		return records.Filter{}, err
	}
	prof, err := queryInt(r, "profile")
	return records.Filter{SourceID: src, ProfileID: prof}, err
}

func pathID(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: %q is not a source id", records.ErrNotFound, r.PathValue("id"))
	}
	return n, nil
}

// --- handlers -------------------------------------------------------------------------------

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) withSyncing(src *records.Source) {
	if s.cfg.Syncing != nil {
		src.Syncing = s.cfg.Syncing(src.ID)
	}
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	srcs, err := s.cfg.Store.ListSources(r.Context(), f.ProfileID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range srcs {
		s.withSyncing(&srcs[i])
	}
	WriteJSON(w, http.StatusOK, srcs)
}

func (s *Server) getSource(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	src, err := s.cfg.Store.GetSource(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.withSyncing(&src)
	WriteJSON(w, http.StatusOK, src)
}

func (s *Server) patchSource(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body struct {
		Name *string `json:"name"`
	}
	if err := decodeBody(r, &body); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if body.Name == nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "Nothing to change: send {\"name\": \"...\"}.")
		return
	}
	src, err := s.cfg.Store.RenameSource(r.Context(), id, *body.Name)
	if err != nil {
		if !errors.Is(err, records.ErrNotFound) {
			WriteError(w, http.StatusBadRequest, "bad_request", capitalise(err.Error()))
			return
		}
		s.fail(w, r, err)
		return
	}
	s.Publish("source.status", map[string]any{"source_id": id, "status": src.Status, "name": src.Name})
	WriteJSON(w, http.StatusOK, src)
}

func (s *Server) deleteSource(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	del := s.cfg.Store.DeleteSource
	if s.cfg.DeleteSource != nil {
		del = s.cfg.DeleteSource
	}
	counts, err := del(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	s.Publish("resources.changed", map[string]any{"source_id": id, "deleted": total, "counts": counts})
	WriteJSON(w, http.StatusOK, map[string]any{"deleted": total, "counts": counts})
}

func (s *Server) counts(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.cfg.Store.Counts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, c)
}

// pageParams reads the filter and the page size of a list request.
func pageParams(r *http.Request) (records.Filter, int, error) {
	f, err := filter(r)
	if err != nil {
		return f, 0, err
	}
	n, err := queryInt(r, "limit")
	return f, int(n), err
}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	f, limit, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	if q.Get("type") == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "The type parameter is required, e.g. ?type=Observation.")
		return
	}
	page, err := s.cfg.Store.List(r.Context(), records.ListQuery{
		Type: q.Get("type"), Filter: f, Code: q.Get("code"), Sort: q.Get("sort"), Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, page)
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) {
	typ, src, err := resourceParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	it, err := s.cfg.Store.Detail(r.Context(), typ, r.PathValue("id"), src)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, it)
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	f, limit, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	var types []string
	for _, t := range strings.Split(q.Get("types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	page, err := s.cfg.Store.Timeline(r.Context(), records.TimelineQuery{Types: types, Filter: f, Q: q.Get("q"), Cursor: q.Get("cursor"), Limit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, page)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	f, limit, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := s.cfg.Store.Search(r.Context(), q.Get("q"), f, q.Get("cursor"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, page)
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sum, err := s.cfg.Store.Summary(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, sum)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	f, err := filter(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.cfg.Now().UTC()
	name := "fasten-export-" + now.Format("2006-01-02")
	if f.SourceID != 0 {
		if _, err := s.cfg.Store.GetSource(r.Context(), f.SourceID); err != nil {
			s.fail(w, r, err)
			return
		}
		name += "-source-" + strconv.FormatInt(f.SourceID, 10)
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
	if err := s.cfg.Store.Export(r.Context(), w, f, now.Format(time.RFC3339)); err != nil {
		// Headers are gone; the truncated body will not parse, which is the honest signal.
		s.cfg.Log.Error("export failed", "err", err)
	}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("The request body is not the JSON this endpoint expects: %v", err)
	}
	return nil
}
