// Package control is the local control socket of the data folder's owner (see internal/owner):
// while the window or `serve` holds the folder, the command line's `import`, `sync` and `backup`
// ask it to do the work instead of opening the database themselves, so the folder keeps one
// writer, one spool and one token refresher. A second window asks it to show the first one.
//
// The socket is control.sock in the data folder: a Unix domain socket (AF_UNIX, also on
// Windows 10 and later), mode 0600 in a 0700 folder, so only the owner's OS user can connect; on
// Linux the server also checks the peer's user id. The protocol is HTTP/1.1 over that socket with
// JSON bodies; long operations answer a stream of JSON lines (progress, then a result or an
// error), and closing the connection cancels the operation, as Ctrl-C does for a direct run.
//
// Import passes file paths, not bytes: the client is the same user on the same machine (the
// socket proves it), so the owner opens the files itself, with the same checks and the same
// importer as a direct run, and nothing is copied through a spool.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

// SocketFile is the control socket's name in the data folder.
const SocketFile = "control.sock"

// SocketPath is the control socket of the data folder dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketFile) }

// maxSocketPath is the longest socket path every OS accepts (sun_path is 104 bytes on macOS).
const maxSocketPath = 103

// Handlers do the work in the owner. A nil handler answers 501 (e.g. Show in serve mode).
type Handlers struct {
	Import func(ctx context.Context, inputs []importer.Input, opt importer.Options) (*importer.Result, error)
	Sync   func(ctx context.Context, ids []int64) ([]syncer.RunResult, error)
	Backup func(ctx context.Context, dest string) (string, error) // returns the database's path
	// Restore checks a backup file, applies or discards a checked one (RestoreRequest.Action);
	// the result is JSON for the command line (restore.Pending, restore.Result or nothing).
	Restore func(ctx context.Context, req RestoreRequest) (any, error)
	// Show brings the window to the front; nil when the owner has no window.
	Show func()
	Log  *slog.Logger
}

// ImportRequest asks the owner to import files (absolute paths) as `import` would.
type ImportRequest struct {
	Files       []importer.Input `json:"files"`
	SkipInvalid bool             `json:"skip_invalid"`
	SourceID    int64            `json:"source_id"`
}

// SyncRequest asks the owner to sync its provider sources (or one) now and wait for the results.
type SyncRequest struct {
	SourceID int64 `json:"source_id"`
}

// BackupRequest asks the owner to back the database up to Dest (absolute, must not exist).
type BackupRequest struct {
	Dest string `json:"dest"`
}

// RestoreRequest is one step of `restore FILE` through the owner: "check" Path (absolute), then
// "apply" or "discard" the ID the check returned.
type RestoreRequest struct {
	Action string `json:"action"`
	Path   string `json:"path,omitempty"`
	ID     string `json:"id,omitempty"`
}

// SyncResult is a source's sync result; Plain marks a failure whose message is complete by itself
// (no sign-in saved, reconnect needed), as the command line prints it without "failed:".
type SyncResult struct {
	syncer.RunResult
	Plain bool `json:"plain"`
}

// SyncResults wraps a sync's results for the command line: Plain marks the failures that are
// a state of the source (no sign-in, reconnect needed), not an error of the run.
func SyncResults(results []syncer.RunResult) []SyncResult {
	out := make([]SyncResult, len(results))
	for i, res := range results {
		out[i] = SyncResult{RunResult: res, Plain: errors.Is(res.Err, syncer.ErrNoTokens) || errors.Is(res.Err, syncer.ErrReconnectNeeded)}
	}
	return out
}

// Error kinds on the wire.
const (
	KindRefused = "refused" // the input is not acceptable (importer.RefusedError)
	KindFailed  = "failed"  // anything else
)

// Error is a failure the owner reported.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// line is one JSON line of a streamed answer.
type line struct {
	Progress *importer.Progress `json:"progress,omitempty"`
	Result   json.RawMessage    `json:"result,omitempty"`
	Error    *Error             `json:"error,omitempty"`
}

// Hello is the owner's answer to a client that connects.
type Hello struct {
	PID    int  `json:"pid"`
	Window bool `json:"window"`
}

// Server serves the control socket.
type Server struct {
	h   Handlers
	ln  net.Listener
	srv *http.Server
	dir string
}

// Listen creates the control socket in the data folder dir. The caller must hold the folder
// (owner.Lock): a socket file left by a crashed owner is removed first.
func Listen(dir string, h Handlers) (*Server, error) {
	p := SocketPath(dir)
	if len(p) > maxSocketPath {
		return nil, fmt.Errorf("the control socket path %s is longer than %d bytes; commands will wait for this process instead of going through it", p, maxSocketPath)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove the old control socket: %w", err)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	// The folder is 0700 already; the socket itself is the owner's only as well.
	if runtime.GOOS != "windows" {
		if err := os.Chmod(p, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("restrict the control socket: %w", err)
		}
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{h: h, ln: &peerListener{Listener: ln, log: h.Log}, dir: dir}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hello", s.hello)
	mux.HandleFunc("POST /v1/import", s.importFiles)
	mux.HandleFunc("POST /v1/sync", s.sync)
	mux.HandleFunc("POST /v1/backup", s.backup)
	mux.HandleFunc("POST /v1/restore", s.restore)
	mux.HandleFunc("POST /v1/show", s.show)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.Log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return SocketPath(s.dir) }

// Run serves until ctx ends, then closes the socket and waits for the requests in progress
// (their contexts are cancelled with ctx, so an import through the socket stops and rolls back).
func (s *Server) Run(ctx context.Context) error {
	base, cancel := context.WithCancel(ctx)
	defer cancel()
	s.srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancel()
	sctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	err := s.srv.Shutdown(sctx)
	<-errc
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func failed(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, line{Error: &Error{Kind: kind, Message: msg}})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		failed(w, http.StatusBadRequest, KindFailed, "bad control request: "+err.Error())
		return false
	}
	return true
}

func (s *Server) hello(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Hello{PID: os.Getpid(), Window: s.h.Show != nil})
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	if s.h.Show == nil {
		writeJSON(w, http.StatusOK, map[string]bool{"window": false})
		return
	}
	s.h.Show()
	writeJSON(w, http.StatusOK, map[string]bool{"window": true})
}

// stream writes JSON lines and flushes each.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	mu chan struct{}
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	st := &stream{w: w, rc: http.NewResponseController(w), mu: make(chan struct{}, 1)}
	return st
}

func (st *stream) send(l line) {
	b, err := json.Marshal(l)
	if err != nil {
		return
	}
	st.mu <- struct{}{}
	defer func() { <-st.mu }()
	st.w.Write(append(b, '\n'))
	st.rc.Flush()
}

func (s *Server) importFiles(w http.ResponseWriter, r *http.Request) {
	if s.h.Import == nil {
		failed(w, http.StatusNotImplemented, KindFailed, "this Fasten process does not import")
		return
	}
	var req ImportRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Files) == 0 {
		failed(w, http.StatusBadRequest, KindFailed, "import needs at least one file")
		return
	}
	for _, f := range req.Files {
		if !filepath.IsAbs(f.Path) || f.Name == "" {
			failed(w, http.StatusBadRequest, KindFailed, "import: file paths must be absolute and named")
			return
		}
	}
	st := newStream(w)
	res, err := s.h.Import(r.Context(), req.Files, importer.Options{
		SkipInvalid: req.SkipInvalid, SourceID: req.SourceID,
		Progress: func(p importer.Progress) { st.send(line{Progress: &p}) },
	})
	if err != nil {
		kind := KindFailed
		var re *importer.RefusedError
		if errors.As(err, &re) {
			kind = KindRefused
		}
		st.send(line{Error: &Error{Kind: kind, Message: err.Error()}})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		st.send(line{Error: &Error{Kind: KindFailed, Message: err.Error()}})
		return
	}
	st.send(line{Result: b})
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	if s.h.Sync == nil {
		failed(w, http.StatusNotImplemented, KindFailed, "this Fasten process does not sync")
		return
	}
	var req SyncRequest
	if !decode(w, r, &req) {
		return
	}
	var ids []int64
	if req.SourceID != 0 {
		ids = []int64{req.SourceID}
	}
	st := newStream(w)
	results, err := s.h.Sync(r.Context(), ids)
	if err != nil {
		st.send(line{Error: &Error{Kind: KindFailed, Message: err.Error()}})
		return
	}
	b, _ := json.Marshal(SyncResults(results))
	st.send(line{Result: b})
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.h.Backup == nil {
		failed(w, http.StatusNotImplemented, KindFailed, "this Fasten process does not back up")
		return
	}
	var req BackupRequest
	if !decode(w, r, &req) {
		return
	}
	if !filepath.IsAbs(req.Dest) {
		failed(w, http.StatusBadRequest, KindFailed, "backup: the destination must be an absolute path")
		return
	}
	st := newStream(w)
	dbPath, err := s.h.Backup(r.Context(), req.Dest)
	if err != nil {
		st.send(line{Error: &Error{Kind: KindFailed, Message: err.Error()}})
		return
	}
	b, _ := json.Marshal(map[string]string{"database": dbPath})
	st.send(line{Result: b})
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	if s.h.Restore == nil {
		failed(w, http.StatusNotImplemented, KindFailed, "this Fasten process does not restore backups")
		return
	}
	var req RestoreRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Action == "check" && !filepath.IsAbs(req.Path) {
		failed(w, http.StatusBadRequest, KindFailed, "restore: the backup's path must be absolute")
		return
	}
	st := newStream(w)
	out, err := s.h.Restore(r.Context(), req)
	if err != nil {
		st.send(line{Error: &Error{Kind: KindFailed, Message: err.Error()}})
		return
	}
	b, _ := json.Marshal(out)
	st.send(line{Result: b})
}

// Client talks to the owner of a data folder.
type Client struct {
	hc    *http.Client
	Hello Hello
}

// ErrNoSocket means nothing answers on the folder's control socket (no owner, an owner without
// one, or one that is starting or stopping).
var ErrNoSocket = errors.New("no Fasten process answers on the control socket")

// Dial connects to the control socket of the data folder dir.
func Dial(ctx context.Context, dir string) (*Client, error) {
	p := SocketPath(dir)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSocket, err)
	}
	var d net.Dialer
	c := &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", p)
		},
		DisableKeepAlives: true,
	}}}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, "http://fasten-control/v1/hello", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSocket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&c.Hello) != nil {
		return nil, fmt.Errorf("%w: unexpected answer %s", ErrNoSocket, resp.Status)
	}
	return c, nil
}

// call posts body and reads the streamed answer: progress lines go to progress, the result into
// out.
func (c *Client) call(ctx context.Context, path string, body any, progress func(importer.Progress), out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://fasten-control"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("the running Fasten process did not answer: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("the running Fasten process answered something unexpected: %w", err)
		}
		switch {
		case l.Error != nil:
			return l.Error
		case l.Progress != nil:
			if progress != nil {
				progress(*l.Progress)
			}
		case l.Result != nil:
			return json.Unmarshal(l.Result, out)
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the running Fasten process stopped answering: %w", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("the running Fasten process ended the request without a result (did it stop?)")
}

// Import imports files through the owner.
func (c *Client) Import(ctx context.Context, req ImportRequest, progress func(importer.Progress)) (*importer.Result, error) {
	var res importer.Result
	if err := c.call(ctx, "/v1/import", req, progress, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Sync syncs through the owner.
func (c *Client) Sync(ctx context.Context, req SyncRequest) ([]SyncResult, error) {
	var res []SyncResult
	if err := c.call(ctx, "/v1/sync", req, nil, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// Backup backs the database up through the owner and returns the database's path.
func (c *Client) Backup(ctx context.Context, req BackupRequest) (string, error) {
	var res struct {
		Database string `json:"database"`
	}
	if err := c.call(ctx, "/v1/backup", req, nil, &res); err != nil {
		return "", err
	}
	return res.Database, nil
}

// Restore runs one step of a restore through the owner; out receives its JSON result.
func (c *Client) Restore(ctx context.Context, req RestoreRequest, out any) error {
	return c.call(ctx, "/v1/restore", req, nil, out)
}

// Show asks the owner to bring its window to the front; false when it has none.
func (c *Client) Show(ctx context.Context) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://fasten-control/v1/show", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var res struct {
		Window bool `json:"window"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return false, err
	}
	return res.Window, nil
}
