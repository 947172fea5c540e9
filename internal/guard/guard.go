// Package guard protects anything of ours that listens on TCP (serve mode) from the other
// programs and web pages on the same machine: a 256-bit bearer token on every API request (never
// from a query string, compared in constant time), an exact Host check against DNS rebinding, an
// Origin / Sec-Fetch-Site check against cross-site requests, content types that a plain HTML form
// cannot send for state-changing requests, no CORS, and protective headers on every response.
package guard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config says what a request must look like.
type Config struct {
	// Token is the bearer token API requests must carry.
	Token string
	// Port is the port the server listens on; Host headers must name it.
	Port int
	// ExtraHosts are more host names accepted in the Host header (a name the user configured).
	ExtraHosts []string
	// Open are path prefixes that need no token (health, the static frontend).
	Open func(r *http.Request) bool
	// FormPaths may receive application/x-www-form-urlencoded bodies (the WebSub hub).
	FormPaths []string
	// UploadPaths receive large bodies (POST, exact path): instead of BodyTimeout for the whole
	// body they get UploadIdle between reads.
	UploadPaths []string
	// BodyTimeout bounds reading a request body (default DefaultBodyTimeout); UploadIdle is the
	// longest pause inside an upload's body (default DefaultUploadIdle).
	BodyTimeout time.Duration
	UploadIdle  time.Duration
}

// Body read deadlines of serve mode (headers have the server's ReadHeaderTimeout).
const (
	DefaultBodyTimeout = 30 * time.Second
	DefaultUploadIdle  = 60 * time.Second
)

// MinTokenLen is the shortest token accepted: 43 base64url characters carry 256 bits.
const MinTokenLen = 43

// NewToken returns a random 256-bit token, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CheckToken refuses tokens too short to be unguessable.
func CheckToken(tok string) error {
	if len(tok) < MinTokenLen {
		return fmt.Errorf("the API token must be at least %d characters (256 bits, e.g. 32 random bytes in base64url); got %d", MinTokenLen, len(tok))
	}
	return nil
}

// CSP is the Content-Security-Policy of the app's pages: nothing from elsewhere, no inline script.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"font-src 'self' data:; connect-src 'self'; object-src 'none'; frame-src 'none'; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'self'"

// SetHeaders adds the protective headers every response carries.
func SetHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", CSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// Wrap returns next behind the checks.
func Wrap(next http.Handler, cfg Config) (http.Handler, error) {
	if err := CheckToken(cfg.Token); err != nil {
		return nil, err
	}
	if cfg.Port <= 0 {
		return nil, errors.New("guard: the port is required for the Host check")
	}
	hosts := map[string]bool{}
	p := strconv.Itoa(cfg.Port)
	for _, h := range append([]string{"127.0.0.1", "localhost", "[::1]"}, cfg.ExtraHosts...) {
		hosts[strings.ToLower(h)+":"+p] = true
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.UploadIdle <= 0 {
		cfg.UploadIdle = DefaultUploadIdle
	}
	token := []byte(cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetHeaders(w.Header())
		host := strings.ToLower(r.Host)
		if !hosts[host] {
			deny(w, http.StatusForbidden, "forbidden_host", "This server only answers requests addressed to 127.0.0.1, [::1] or localhost on its own port.")
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			deny(w, http.StatusForbidden, "cross_site", "Requests from other sites are refused.")
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && strings.ToLower(origin) != "http://"+host {
			deny(w, http.StatusForbidden, "foreign_origin", "Requests from other origins are refused.")
			return
		}
		if r.Method == http.MethodOptions {
			deny(w, http.StatusForbidden, "no_cors", "Cross-origin requests are not supported.")
			return
		}
		if cfg.Open == nil || !cfg.Open(r) {
			if subtle.ConstantTimeCompare(bearer(r), token) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fasten"`)
				deny(w, http.StatusUnauthorized, "unauthorized", "Missing or wrong API token: open the link that `fasten-desktop serve` printed.")
				return
			}
		}
		if changes(r.Method) && !bodyAllowed(r, cfg.FormPaths) {
			deny(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send JSON (application/json) or files (multipart/form-data).")
			return
		}
		stop := bodyDeadline(w, r, cfg)
		defer stop()
		next.ServeHTTP(w, r)
	}), nil
}

// bearer is the credential of an Authorization header with the Bearer scheme, whose name is
// case-insensitive (RFC 7235 section 2.1), or nil.
func bearer(r *http.Request) []byte {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	return []byte(strings.TrimLeft(cred, " "))
}

// bodyDeadline gives a request's body a read deadline: BodyTimeout for the whole body, cleared
// once the body is read to its end (the server then watches the connection for a client that
// goes away, which a deadline would turn into a cancelled request). On an upload path the body
// instead is cut off after UploadIdle without progress: a timer that only ever shortens the
// deadline, so a handler that ends a read itself (cancelling an upload) is never overridden.
// Requests without a body get none. The returned stop must run when the handler has returned.
func bodyDeadline(w http.ResponseWriter, r *http.Request, cfg Config) (stop func()) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return func() {}
	}
	rc := http.NewResponseController(w)
	if r.Method == http.MethodPost && slices.Contains(cfg.UploadPaths, r.URL.Path) {
		b := &idleBody{ReadCloser: r.Body, rc: rc, idle: cfg.UploadIdle, last: time.Now()}
		b.timer = time.AfterFunc(cfg.UploadIdle, b.check)
		r.Body = b
		return b.stop
	}
	if rc.SetReadDeadline(time.Now().Add(cfg.BodyTimeout)) != nil {
		return func() {} // not a connection with deadlines (a test recorder)
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
	return func() {}
}

// deadlineBody clears the body's read deadline at its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (d *deadlineBody) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	if err == io.EOF && !d.done {
		d.done = true
		d.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// idleBody ends an upload whose client sent nothing for idle.
type idleBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	timer *time.Timer

	mu      sync.Mutex
	last    time.Time // start or end of the latest read
	stopped bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.touch()
	n, err := b.ReadCloser.Read(p)
	b.touch()
	if err != nil {
		b.stop()
	}
	return n, err
}

func (b *idleBody) touch() {
	b.mu.Lock()
	b.last = time.Now()
	b.mu.Unlock()
}

func (b *idleBody) check() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	if quiet := time.Since(b.last); quiet < b.idle {
		b.timer.Reset(b.idle - quiet)
		return
	}
	b.stopped = true
	b.rc.SetReadDeadline(time.Now()) // the blocked read fails now
}

func (b *idleBody) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.timer.Stop()
}

func changes(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		return false
	}
	return true
}

// bodyAllowed accepts JSON or multipart bodies (a plain HTML form can send neither with a
// foreign page's credentials), an empty body, and form bodies only where listed.
func bodyAllowed(r *http.Request, formPaths []string) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return r.ContentLength == 0
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/fhir+json", "multipart/form-data":
		return true
	case "application/x-www-form-urlencoded":
		for _, p := range formPaths {
			if r.URL.Path == p {
				return true
			}
		}
	}
	return false
}

// deny answers a refused request and closes the connection at once, without reading a body the
// client may be sending one byte at a time.
func deny(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Connection", "close")
	http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`+"\n", code, msg)
}

// LoopbackListen listens on addr and refuses addresses that are not loopback unless allowRemote.
func LoopbackListen(addr string, allowRemote bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !allowRemote {
		ip := net.ParseIP(host)
		if host == "" || ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("refusing to listen on %q: serve binds loopback addresses only (127.0.0.1 or [::1]); the records would be reachable from the network", addr)
		}
	}
	return net.Listen("tcp", addr)
}
