package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/api"
	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/owner"
)

func level(c Common) slog.Level {
	if c.Verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func serve(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("serve", env, &c)
	listen := fs.String("listen", "127.0.0.1:9300", "address to listen on (loopback only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	token := env.Getenv("FASTEN_API_TOKEN")
	if token == "" {
		var err error
		if token, err = guard.NewToken(); err != nil {
			return err
		}
	} else if err := guard.CheckToken(token); err != nil {
		return fmt.Errorf("FASTEN_API_TOKEN: %w", err)
	}
	// The data folder first: a second serve (or a serve next to the window) stops here, before
	// it listens or touches anything in the folder.
	dirs, err := folder(c, env)
	if err != nil {
		return err
	}
	lock, err := owner.Acquire(dirs.Data, "serve")
	if err != nil {
		var he *owner.HeldError
		if errors.As(err, &he) {
			return fmt.Errorf("%w.\n%s", he, heldHint(he.Holder))
		}
		return err
	}
	defer lock.Release()
	ln, err := guard.LoopbackListen(*listen, false)
	if err != nil {
		return err
	}
	defer ln.Close()
	// The OS keyring, or the encrypted secrets file when a passphrase was given (secrets.go).
	keyring, note, err := secretsStore(ctx, c, env)
	if err != nil {
		return err
	}
	printSecretsNote(env.Stderr, note)
	b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), LogToStderr: true, Getenv: env.Getenv, Keyring: keyring, Lock: lock})
	if err != nil {
		return err
	}
	defer b.Close()
	addr := ln.Addr().(*net.TCPAddr)
	port := addr.Port
	h, err := guard.Wrap(b.Handler(env.Assets), guard.Config{
		Token: token,
		Port:  port,
		// The address it listens on is its own name too (--listen 127.0.0.2:PORT).
		ExtraHosts:  []string{hostName(addr.IP)},
		UploadPaths: []string{api.Prefix + "/imports"},
		Open: func(r *http.Request) bool {
			// Health and the static frontend need no token; an SSE request with a valid
			// single-use ticket (for EventSource, which cannot send headers) neither.
			return r.URL.Path == api.Prefix+"/health" || !strings.HasPrefix(r.URL.Path, "/api/") || b.Stream.TicketRequest(r)
		},
		FormPaths: []string{api.Prefix + "/hub"},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(b.Log.Handler(), slog.LevelWarn),
	}
	// Background services (syncs, webhook deliveries) stop before the server shuts down, so SSE
	// streams end and Shutdown does not wait for them.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(runCtx) }()
	// import, sync and backup on the command line come through the control socket.
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- RunControl(runCtx, b, nil) }()
	defer func() { stopRun(); <-ctlDone }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	base := "http://" + hostName(addr.IP) + ":" + strconv.Itoa(port) + "/"
	fmt.Fprintf(env.Stdout, "Fasten is running at %s#token=%s\n", base, token)
	fmt.Fprintf(env.Stdout, "Open that link in your browser. Keep it private: it opens your health records. Data: %s\n", b.Dirs.Data)
	b.Log.Info("serving", "url", base, "data", b.Dirs.Data)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case <-ctx.Done():
	}
	b.Log.Info("stopping")
	stopRun()
	<-runDone
	sctx, cancel := context.WithTimeout(context.Background(), backend.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// hostName is ip as it appears in a URL's host: IPv6 in brackets.
func hostName(ip net.IP) string {
	if ip.To4() == nil {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}
