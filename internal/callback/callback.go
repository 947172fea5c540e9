// Package callback is the loopback listener that receives the browser's redirect at the end of a
// sign-in (from the Lighthouse, or from a provider directly), following RFC 8252 §7.3 and
// ../shared/docs/SECURITY.md "Signing in to a provider":
//
//   - it binds 127.0.0.1 only (tcp4; never "localhost", never 0.0.0.0), on a port the OS picks,
//     and exists only while a sign-in is pending;
//   - it answers only GET /callback (plus the fixed result pages it redirects to) and requires the
//     Host header to be 127.0.0.1:<port>;
//   - a callback whose state is missing or not the expected one is answered with an error page and
//     no further processing (no token request), and the listener stays open for the real one;
//   - exactly one valid callback is accepted; it is handed to Options.Handle (the token exchange),
//     the app is notified at once (Wait, Done), the browser is sent with 303 See Other to /done (a
//     path without the code), and the listener closes once that page was fetched or a grace period
//     passed; a replayed callback is refused;
//   - every response carries Referrer-Policy: no-referrer, Cache-Control: no-store, a CSP of
//     default-src 'none' (inline styles only), nosniff and X-Frame-Options: DENY; the pages load
//     nothing and run no script.
package callback

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Result is what the browser brought back on a valid callback.
type Result struct {
	Code             string // the authorization code (secret until exchanged)
	State            string
	Iss              string // RFC 9207 issuer, when the server sent one
	Error            string // OAuth error code from the provider (access_denied, ...)
	ErrorDescription string
}

// String hides the code.
func (r Result) String() string {
	code := "none"
	if r.Code != "" {
		code = "[redacted]"
	}
	return fmt.Sprintf("Result{Code:%s, Iss:%q, Error:%q, ErrorDescription:%q}", code, r.Iss, r.Error, r.ErrorDescription)
}

// GoString hides the code from %#v.
func (r Result) GoString() string { return r.String() }

var (
	// ErrTimeout: no valid callback arrived within Options.Timeout.
	ErrTimeout = errors.New("the sign-in timed out: the provider did not send you back to Fasten in time")
	// ErrClosed: Close was called (the user cancelled) before a valid callback arrived.
	ErrClosed = errors.New("the sign-in was cancelled")
	// ErrAccessDenied is matched by a *ProviderError with code access_denied.
	ErrAccessDenied = errors.New("you declined to share your records")
	// ErrNoCode: a callback with a valid state but neither a code nor an error.
	ErrNoCode = errors.New("the provider sent you back without a sign-in code")
)

// ProviderError is an error the provider reported on the callback (RFC 6749 §4.1.2.1).
type ProviderError struct {
	Code        string
	Description string
}

func (e *ProviderError) Error() string {
	if e.Code == "access_denied" {
		return ErrAccessDenied.Error()
	}
	if e.Description != "" {
		return fmt.Sprintf("the provider could not complete the sign-in (%s: %s)", e.Code, e.Description)
	}
	return fmt.Sprintf("the provider could not complete the sign-in (%s)", e.Code)
}

// Is makes errors.Is(err, ErrAccessDenied) true for access_denied.
func (e *ProviderError) Is(target error) bool {
	return target == ErrAccessDenied && e.Code == "access_denied"
}

// Defaults.
const (
	DefaultTimeout   = 10 * time.Minute
	DefaultDoneGrace = 30 * time.Second
)

// Options configures Listen.
type Options struct {
	// Port to bind on 127.0.0.1; 0 (the default) lets the OS pick a free one. Tests may fix it.
	Port int
	// Timeout after which the listener closes and Wait returns ErrTimeout (default 10 minutes).
	Timeout time.Duration
	// DoneGrace is how long the listener keeps serving the result page after the accepted
	// callback when the browser does not fetch it (default 30 s).
	DoneGrace time.Duration
	// ExpectedState is the state this sign-in sent; compared in constant time. Either it or
	// CheckState is required.
	ExpectedState string
	// CheckState, when set, decides instead: it returns nil for a state that belongs to a pending,
	// unexpired sign-in (and should mark it used).
	CheckState func(state string) error
	// Handle is called synchronously, once, for the accepted callback with a code (not for a
	// provider error), typically to exchange the code. Its error is shown on the result page and
	// returned by Wait. ctx ends when the listener is closed.
	Handle func(ctx context.Context, r Result) error
	// Logger (default slog.Default()); codes and states are never logged.
	Logger *slog.Logger
}

// Listener is one pending sign-in's loopback listener.
type Listener struct {
	opts   Options
	ln     net.Listener
	srv    *http.Server
	port   int
	log    *slog.Logger
	ctx    context.Context // ends when the listener closes
	cancel context.CancelFunc

	mu       sync.Mutex
	claimed  bool  // a valid callback was accepted (or the sign-in ended): no other is processed
	page     *page // the page /done shows once the result is known
	res      Result
	err      error
	done     chan struct{} // closed when the outcome is known
	doneOnce sync.Once

	closed    chan struct{} // closed when the server has stopped
	closeOnce sync.Once
}

// Listen binds 127.0.0.1 and starts serving. The listener stops on the accepted callback (after
// its result page), on Options.Timeout, when ctx ends, or on Close.
func Listen(ctx context.Context, opts Options) (*Listener, error) {
	if opts.ExpectedState == "" && opts.CheckState == nil {
		return nil, errors.New("callback: Options needs ExpectedState or CheckState")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("callback: invalid port %d", opts.Port)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DoneGrace <= 0 {
		opts.DoneGrace = DefaultDoneGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// "tcp4" and the IP literal: never a name that could resolve to another interface.
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		return nil, fmt.Errorf("open the sign-in listener on 127.0.0.1: %w", err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Listener{
		opts:   opts,
		ln:     ln,
		port:   ln.Addr().(*net.TCPAddr).Port,
		log:    log,
		ctx:    lctx,
		cancel: cancel,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // Handle (the token exchange) runs inside the request
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return lctx },
	}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Warn("sign-in listener stopped", "err", err)
		}
	}()
	go l.watch(ctx)
	l.log.Info("sign-in listener open", "addr", ln.Addr().String())
	return l, nil
}

// watch ends the sign-in on timeout or when the Listen context ends.
func (l *Listener) watch(ctx context.Context) {
	timer := time.NewTimer(l.opts.Timeout)
	defer timer.Stop()
	select {
	case <-timer.C:
		// A callback accepted just before the deadline is still being handled: its own flow
		// (result page, grace period) closes the listener.
		if l.abandon(ErrTimeout) {
			l.log.Info("sign-in listener closed without a callback", "reason", "timeout")
			l.shutdown(false)
		}
	case <-ctx.Done():
		if l.abandon(fmt.Errorf("%w: %w", ErrClosed, context.Cause(ctx))) {
			l.log.Info("sign-in listener closed without a callback", "reason", "cancelled")
		}
		l.shutdown(false)
	case <-l.done:
	case <-l.closed:
	}
}

// abandon ends a sign-in that has not accepted a callback; it returns false when one was accepted
// (then the running Handle decides the outcome).
func (l *Listener) abandon(err error) bool {
	l.mu.Lock()
	if l.claimed {
		l.mu.Unlock()
		return false
	}
	l.claimed = true
	l.mu.Unlock()
	l.finish(Result{}, err)
	return true
}

func (l *Listener) finish(r Result, err error) {
	l.doneOnce.Do(func() {
		l.mu.Lock()
		l.res, l.err = r, err
		l.mu.Unlock()
		close(l.done)
	})
}

// shutdown stops the server: gracefully (pending responses, such as the result page, are
// completed) or at once.
func (l *Listener) shutdown(graceful bool) {
	l.closeOnce.Do(func() {
		if graceful {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = l.srv.Shutdown(ctx)
			cancel()
		}
		_ = l.srv.Close()
		// srv.Close only closes listeners Serve has registered; when Close comes right after
		// Listen, the Serve goroutine may not have started yet, so close the socket here too.
		_ = l.ln.Close()
		l.cancel()
		close(l.closed)
	})
}

// Port is the TCP port the listener is bound to on 127.0.0.1.
func (l *Listener) Port() int { return l.port }

// Addr is the listener's address (127.0.0.1:port).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// RedirectURI is http://127.0.0.1:<port>/callback.
func (l *Listener) RedirectURI() string {
	return "http://127.0.0.1:" + strconv.Itoa(l.port) + "/callback"
}

// Done is closed as soon as the sign-in has an outcome (accepted callback handled, provider error,
// timeout, cancellation); Wait then returns at once.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Closed is closed once the listener has stopped accepting connections.
func (l *Listener) Closed() <-chan struct{} { return l.closed }

// Wait blocks until the sign-in has an outcome or ctx ends. The outcome is the accepted callback's
// Result with nil or Handle's error (wrapped), a *ProviderError (errors.Is ErrAccessDenied for a
// refusal), ErrNoCode, ErrTimeout or ErrClosed. Every call returns the same outcome.
func (l *Listener) Wait(ctx context.Context) (Result, error) {
	select {
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.res, l.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Close cancels a pending sign-in (Wait returns ErrClosed) and stops the listener. It is
// idempotent and safe to call after the sign-in ended.
func (l *Listener) Close() error {
	l.abandon(ErrClosed)
	l.shutdown(false)
	return nil
}

func (l *Listener) stateOK(state string) bool {
	if l.opts.CheckState != nil {
		return l.opts.CheckState(state) == nil
	}
	return subtle.ConstantTimeCompare([]byte(state), []byte(l.opts.ExpectedState)) == 1
}
