package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Publisher tells the window and browsers (events.Bus).
type Publisher interface {
	Publish(topic string, data any)
}

// ServiceOptions wire the backup and restore routes to the running app.
type ServiceOptions struct {
	DB  *db.DB
	Dir string // where checked copies wait (the data folder's spool)
	// Pause and Forget: see Options.
	Pause  func(ctx context.Context) (resume func(), err error)
	Forget func(ctx context.Context, tokenKeys []string)
	Events Publisher
	Log    *slog.Logger
	Now    func() time.Time
}

// Service serves backup and restore for the window, browsers and the control socket. One backup
// waits for confirmation at a time: preparing another discards the first.
type Service struct {
	opt     ServiceOptions
	mu      sync.Mutex // guards pending
	pending *pendingRestore
	apply   sync.Mutex // one restore at a time
}

type pendingRestore struct {
	id string
	p  *Prepared
}

// Pending is a checked backup waiting for confirmation.
type Pending struct {
	ID      string  `json:"id"`
	Summary Summary `json:"summary"`
}

// ErrNoPending answers a confirmation whose checked copy is not (or no longer) there.
var ErrNoPending = &httpkit.Kind{Status: http.StatusNotFound, Code: "not_found", Text: "this restore is no longer waiting (it was cancelled, done, or replaced by another); choose the backup again"}

// NewService returns the service.
func NewService(opt ServiceOptions) *Service {
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{opt: opt}
}

// Prepare checks a backup read from r (named name) and keeps it waiting for confirmation.
func (s *Service) Prepare(ctx context.Context, r io.Reader, name string) (Pending, error) {
	return s.keep(func() (*Prepared, error) { return Prepare(ctx, r, name, s.opt.Dir) })
}

// PrepareFile is Prepare for a file on this computer (the command line).
func (s *Service) PrepareFile(ctx context.Context, path string) (Pending, error) {
	return s.keep(func() (*Prepared, error) { return PrepareFile(ctx, path, s.opt.Dir) })
}

// keep prepares a copy in the spool and keeps it waiting, discarding the one waiting before.
func (s *Service) keep(prepare func() (*Prepared, error)) (Pending, error) {
	if err := os.MkdirAll(s.opt.Dir, 0o700); err != nil {
		return Pending{}, fmt.Errorf("restore: %w", err)
	}
	p, err := prepare()
	if err != nil {
		return Pending{}, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	id := "rst-" + hex.EncodeToString(b)
	s.mu.Lock()
	old := s.pending
	s.pending = &pendingRestore{id: id, p: p}
	s.mu.Unlock()
	if old != nil {
		old.p.Discard()
	}
	s.opt.Log.Info("backup checked, waiting for confirmation", "records", p.Summary.Total, "people", len(p.Summary.People))
	return Pending{ID: id, Summary: p.Summary}, nil
}

// Get returns the waiting restore id.
func (s *Service) Get(id string) (Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil || s.pending.id != id {
		return Pending{}, ErrNoPending
	}
	return Pending{ID: id, Summary: s.pending.p.Summary}, nil
}

// Discard drops the waiting restore id (nothing else changes).
func (s *Service) Discard(id string) error {
	s.mu.Lock()
	pr := s.pending
	if pr == nil || pr.id != id {
		s.mu.Unlock()
		return ErrNoPending
	}
	s.pending = nil
	s.mu.Unlock()
	pr.p.Discard()
	return nil
}

// Apply replaces the records with the waiting restore id's.
func (s *Service) Apply(ctx context.Context, id string) (Result, error) {
	s.apply.Lock()
	defer s.apply.Unlock()
	s.mu.Lock()
	pr := s.pending
	if pr == nil || pr.id != id {
		s.mu.Unlock()
		return Result{}, ErrNoPending
	}
	s.pending = nil
	s.mu.Unlock()
	start := time.Now()
	res, err := Apply(ctx, s.opt.DB, pr.p, Options{Pause: s.opt.Pause, Forget: s.opt.Forget, Now: s.opt.Now})
	if err != nil {
		// Still checked and waiting: the person may try again.
		s.mu.Lock()
		if s.pending == nil {
			s.pending = pr
		} else {
			pr.p.Discard()
		}
		s.mu.Unlock()
		s.opt.Log.Warn("restore failed; the records are as they were", "err", err)
		return res, err
	}
	s.opt.Log.Info("restored from a backup", "records", res.Summary.Total, "elapsed_ms", time.Since(start).Milliseconds())
	if s.opt.Events != nil {
		s.opt.Events.Publish("restore.done", map[string]any{"records": res.Summary.Total, "previous": res.Previous})
		s.opt.Events.Publish("resources.changed", map[string]any{"restored": true})
		s.opt.Events.Publish("profiles.changed", map[string]any{"restored": true})
	}
	return res, nil
}

// Close discards a waiting restore (the app is quitting).
func (s *Service) Close() {
	s.mu.Lock()
	pr := s.pending
	s.pending = nil
	s.mu.Unlock()
	if pr != nil {
		pr.p.Discard()
	}
}

// CleanDir removes what a restore cut off by a crash left behind: checked copies in spool and
// an unfinished copy of the previous records in the data folder (a finished one, without the
// leading dot, is kept).
func CleanDir(spool, data string) {
	a, _ := filepath.Glob(filepath.Join(spool, ".restore-*"))
	b, _ := filepath.Glob(filepath.Join(data, ".fasten-before-restore-*.tmp-*"))
	for _, p := range append(a, b...) {
		os.Remove(p)
	}
}

// Routes are the API's backup and restore endpoints:
//
//	GET    /backup          a checked copy of the database, as a download
//	POST   /restore         the backup file as the body (X-File-Name: its name) → 201 Pending
//	GET    /restore/{id}    the waiting restore
//	POST   /restore/{id}    confirm: replace the records → Result
//	DELETE /restore/{id}    cancel → 204
func (s *Service) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: http.MethodGet, Path: "/backup", Handler: s.getBackup},
		{Method: http.MethodPost, Path: "/restore", Handler: s.postRestore},
		{Method: http.MethodGet, Path: "/restore/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			p, err := s.Get(r.PathValue("id"))
			if err != nil {
				httpkit.Fail(w, r, s.opt.Log, err)
				return
			}
			httpkit.WriteJSON(w, http.StatusOK, p)
		}},
		{Method: http.MethodPost, Path: "/restore/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			res, err := s.Apply(r.Context(), r.PathValue("id"))
			if err != nil {
				httpkit.Fail(w, r, s.opt.Log, err)
				return
			}
			httpkit.WriteJSON(w, http.StatusOK, res)
		}},
		{Method: http.MethodDelete, Path: "/restore/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			if err := s.Discard(r.PathValue("id")); err != nil {
				httpkit.Fail(w, r, s.opt.Log, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}},
	}
}

// BackupName is the file name offered for a backup made now.
func BackupName(now time.Time) string {
	return "fasten-backup-" + now.Format("2006-01-02") + ".db"
}

func (s *Service) getBackup(w http.ResponseWriter, r *http.Request) {
	if err := os.MkdirAll(s.opt.Dir, 0o700); err != nil {
		httpkit.Fail(w, r, s.opt.Log, err)
		return
	}
	tmp, err := os.MkdirTemp(s.opt.Dir, ".backup-")
	if err != nil {
		httpkit.Fail(w, r, s.opt.Log, err)
		return
	}
	defer os.RemoveAll(tmp)
	name := BackupName(s.opt.Now())
	path := filepath.Join(tmp, name)
	if err := s.opt.DB.Backup(r.Context(), path); err != nil {
		httpkit.Fail(w, r, s.opt.Log, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		httpkit.Fail(w, r, s.opt.Log, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		httpkit.Fail(w, r, s.opt.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
	w.Header().Set("Cache-Control", "no-store")
	if _, err := io.Copy(w, f); err != nil && !errors.Is(err, context.Canceled) {
		s.opt.Log.Warn("backup download cut off", "err", err)
	}
}

func (s *Service) postRestore(w http.ResponseWriter, r *http.Request) {
	// The file comes as multipart/form-data in the field "file", like an import (the API takes
	// no other non-JSON bodies); it is streamed to the checked copy, never held in memory.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		httpkit.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the backup as multipart/form-data in a field named \"file\".")
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		httpkit.Fail(w, r, s.opt.Log, httpkit.BadRequest("restore: %v", err))
		return
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			httpkit.Fail(w, r, s.opt.Log, httpkit.BadRequest("restore: no file was sent (a field named \"file\")"))
			return
		}
		if err != nil {
			httpkit.Fail(w, r, s.opt.Log, httpkit.BadRequest("restore: the upload was cut off (%v); nothing was changed", err))
			return
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		p, err := s.Prepare(r.Context(), part, httpkit.FileName(part.FileName(), "the backup"))
		part.Close()
		if err != nil {
			httpkit.Fail(w, r, s.opt.Log, err)
			return
		}
		httpkit.WriteJSON(w, http.StatusCreated, p)
		return
	}
}
