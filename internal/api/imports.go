package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
)

// ImportStatus is what GET /imports/{id} returns and what import.progress events carry (no PHI:
// sizes, counts and the file name the user chose).
type ImportStatus struct {
	ID         string             `json:"id"`
	State      string             `json:"state"` // running | done | failed | cancelled
	Phase      string             `json:"phase"` // receiving | checking | writing | finishing | done
	File       string             `json:"file"`
	BytesDone  int64              `json:"bytes_done"`
	BytesTotal int64              `json:"bytes_total"`
	Resources  int                `json:"resources"`
	Fraction   float64            `json:"fraction"`
	Result     *importer.Result   `json:"result,omitempty"`
	Error      string             `json:"error,omitempty"`
	cancel     context.CancelFunc `json:"-"`
	finished   time.Time
}

type tracker struct {
	mu   sync.Mutex
	m    map[string]*ImportStatus
	now  func() time.Time
	keep time.Duration
}

func newTracker(now func() time.Time) *tracker {
	return &tracker{m: map[string]*ImportStatus{}, now: now, keep: 15 * time.Minute}
}

var importIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

func (t *tracker) start(id string, cancel context.CancelFunc) (*ImportStatus, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, st := range t.m {
		if !st.finished.IsZero() && now.Sub(st.finished) > t.keep {
			delete(t.m, k)
		}
	}
	if _, ok := t.m[id]; ok {
		return nil, fmt.Errorf("an import with id %q exists already", id)
	}
	st := &ImportStatus{ID: id, State: "running", Phase: "receiving", cancel: cancel}
	t.m[id] = st
	return st, nil
}

func (t *tracker) update(id string, fn func(*ImportStatus)) ImportStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[id]
	if st == nil {
		return ImportStatus{}
	}
	fn(st)
	if st.State != "running" && st.finished.IsZero() {
		st.finished = t.now()
	}
	return *st
}

func (t *tracker) get(id string) (ImportStatus, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.m[id]
	if !ok {
		return ImportStatus{}, false
	}
	return *st, true
}

func (s *Server) getImport(w http.ResponseWriter, r *http.Request) {
	st, ok := s.imports.get(r.PathValue("id"))
	if !ok {
		WriteError(w, http.StatusNotFound, "not_found", "No import with this id is known (they are kept for 15 minutes).")
		return
	}
	WriteJSON(w, http.StatusOK, st)
}

func (s *Server) cancelImport(w http.ResponseWriter, r *http.Request) {
	var cancel context.CancelFunc
	st := s.imports.update(r.PathValue("id"), func(st *ImportStatus) { cancel = st.cancel })
	if st.ID == "" {
		WriteError(w, http.StatusNotFound, "not_found", "No import with this id is known.")
		return
	}
	if st.State == "running" && cancel != nil {
		cancel()
	}
	WriteJSON(w, http.StatusAccepted, st)
}

// countingBody reports how much of the upload has arrived.
type countingBody struct {
	r  io.Reader
	fn func(int64)
	n  int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}

func (s *Server) postImport(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Import-Id")
	if id == "" {
		id = fmt.Sprintf("imp-%d", s.cfg.Now().UnixNano())
	} else if !importIDRE.MatchString(id) {
		WriteError(w, http.StatusBadRequest, "bad_request", "X-Import-Id must be 8 to 64 letters, digits, '-' or '_'.")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the files as multipart/form-data in fields named \"file\".")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// A cancel (DELETE /imports/{id}) must also stop a body read that is waiting for a client
	// that sends nothing more: a read deadline in the past unblocks it. The controller may only
	// be used while this handler runs.
	var rcMu sync.Mutex
	returned := false
	go func() {
		<-ctx.Done()
		rcMu.Lock()
		defer rcMu.Unlock()
		if !returned {
			http.NewResponseController(w).SetReadDeadline(time.Now())
		}
	}()
	defer func() {
		rcMu.Lock()
		returned = true
		rcMu.Unlock()
	}()
	if _, err := s.imports.start(id, cancel); err != nil {
		WriteError(w, http.StatusConflict, "conflict", capitalise(err.Error()))
		return
	}
	total := r.ContentLength
	publish := func(st ImportStatus) {
		st.Result = nil
		s.Publish("import.progress", st)
	}
	lastPub := time.Time{}
	body := &countingBody{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload), fn: func(n int64) {
		st := s.imports.update(id, func(st *ImportStatus) {
			st.BytesDone, st.BytesTotal = n, total
			if total > 0 {
				st.Fraction = 0.3 * float64(n) / float64(total)
			}
		})
		if now := time.Now(); now.Sub(lastPub) > 100*time.Millisecond {
			lastPub = now
			publish(st)
		}
	}}
	r.Body = io.NopCloser(body)

	finish := func(state string, res *importer.Result, err error) {
		st := s.imports.update(id, func(st *ImportStatus) {
			st.State, st.Result = state, res
			if state == "done" {
				st.Phase, st.Fraction = "done", 1
			}
			if err != nil {
				st.Error = err.Error()
			}
		})
		if res != nil {
			s.Publish("import.done", res)
			s.Publish("resources.changed", map[string]any{"source_id": res.SourceID, "counts": res.Counts, "added": res.Added, "updated": res.Updated})
		} else {
			publish(st)
		}
	}

	spool := s.cfg.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		err = spoolError(err)
		finish("failed", nil, err)
		s.fail(w, r, err)
		return
	}
	var inputs []importer.Input
	defer func() {
		for _, in := range inputs {
			os.Remove(in.Path)
		}
	}()
	var opt importer.Options
	files := 0
	mr, err := r.MultipartReader()
	if err != nil {
		finish("failed", nil, err)
		WriteError(w, http.StatusBadRequest, "bad_request", "The upload is not valid multipart/form-data: "+err.Error())
		return
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			finish(stateFor(ctx, err), nil, err)
			s.uploadFailed(w, r, err)
			return
		}
		switch part.FormName() {
		case "file":
			if files++; files > s.cfg.MaxFiles {
				err := httpkit.Errorf(http.StatusRequestEntityTooLarge, "too_large", "At most %d files can be imported at once; this upload holds more. Put them in a zip, or import them in several goes.", s.cfg.MaxFiles)
				finish("failed", nil, err)
				s.fail(w, r, err)
				return
			}
			f, err := s.createSpool(spool, "upload-*")
			if err != nil {
				err = spoolError(err)
				finish("failed", nil, err)
				s.fail(w, r, err)
				return
			}
			inputs = append(inputs, importer.Input{Name: httpkit.FileName(part.FileName(), "upload"), Path: f.Name()})
			_, err = io.Copy(f, part)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if isDiskErr(err) {
					err = spoolError(err)
				}
				finish(stateFor(ctx, err), nil, err)
				s.uploadFailed(w, r, err)
				return
			}
		case "skip_invalid", "skipInvalid":
			v, _ := io.ReadAll(io.LimitReader(part, 16))
			opt.SkipInvalid, _ = strconv.ParseBool(strings.TrimSpace(string(v)))
		case "source_id":
			v, _ := io.ReadAll(io.LimitReader(part, 32))
			id, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			if err != nil || id <= 0 {
				err := httpkit.BadRequest("source_id must be the number of a file source (it was %q).", truncate(strings.TrimSpace(string(v)), 20))
				finish("failed", nil, err)
				s.fail(w, r, err)
				return
			}
			opt.SourceID = id
		default:
			io.Copy(io.Discard, io.LimitReader(part, 1<<20))
		}
	}
	if len(inputs) == 0 {
		finish("failed", nil, errors.New("no files"))
		WriteError(w, http.StatusBadRequest, "bad_request", "No file was sent: put the files in multipart fields named \"file\".")
		return
	}
	s.imports.update(id, func(st *ImportStatus) { st.File = inputs[0].Name })
	lastPub = time.Time{}
	opt.Progress = func(p importer.Progress) {
		st := s.imports.update(id, func(st *ImportStatus) {
			st.Phase, st.File, st.BytesDone, st.BytesTotal, st.Resources = p.Phase, p.File, p.BytesDone, p.BytesTotal, p.Resources
			if p.Phase == "done" {
				st.Phase = "finishing" // "done" only with the state (finish)
			}
			st.Fraction = min(0.99, 0.3+0.7*p.Fraction)
		})
		publish(st)
	}
	res, err := s.cfg.Importer.Import(ctx, inputs, opt)
	if err != nil {
		finish(stateFor(ctx, err), nil, err)
		s.fail(w, r, err)
		return
	}
	finish("done", res, nil)
	WriteJSON(w, http.StatusOK, res)
}

func stateFor(ctx context.Context, err error) string {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return "failed"
}

func (s *Server) uploadFailed(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	var coded httpkit.Coded
	if errors.As(err, &mbe) || errors.As(err, &coded) {
		s.fail(w, r, err)
		return
	}
	if r.Context().Err() != nil {
		s.fail(w, r, context.Canceled)
		return
	}
	WriteError(w, http.StatusBadRequest, "bad_request", "The upload broke off: "+err.Error())
}

// spoolFile is where an uploaded file waits while it is imported.
type spoolFile interface {
	io.Writer
	Close() error
	Name() string
}

func createSpool(dir, pattern string) (spoolFile, error) { return os.CreateTemp(dir, pattern) }

// isDiskErr reports a full disk or a read-only or missing folder under the upload.
func isDiskErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist)
}

// spoolError says in the user's terms why an upload could not be stored, without the folder's
// path (the log has it).
func spoolError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &httpkit.StatusError{Status: http.StatusInsufficientStorage, Code: "disk_full", Err: err,
			Msg: "The disk that holds your Fasten data folder is full. Free some space and try again; nothing was imported."}
	case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission):
		return &httpkit.StatusError{Status: http.StatusInsufficientStorage, Code: "data_folder_read_only", Err: err,
			Msg: "Fasten cannot write to its data folder (it is read-only or not yours). Nothing was imported."}
	case errors.Is(err, fs.ErrNotExist):
		return &httpkit.StatusError{Status: http.StatusInsufficientStorage, Code: "data_folder_missing", Err: err,
			Msg: "Fasten's data folder is missing (was it moved or on a disk that is no longer connected?). Nothing was imported."}
	}
	return fmt.Errorf("store the upload: %w", err)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
