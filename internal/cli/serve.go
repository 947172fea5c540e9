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
	b, err := backend.Open(ctx, backend.Options{DataDir: c.DataDir, LighthouseURL: c.LighthouseURL, Version: env.Version, LogLevel: level(c), LogToStderr: true, Getenv: env.Getenv, Keyring: keyring})
	if err != nil {
		return err
	}
	defer b.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	h, err := guard.Wrap(b.Handler(env.Assets), guard.Config{
		Token: token,
		Port:  port,
		Open: func(r *http.Request) bool {
			// Health and the static frontend need no token; an SSE request with a valid
			// single-use ticket (for EventSource, which cannot send headers) neither.
			return r.URL.Path == api.Prefix+"/health" || !strings.HasPrefix(r.URL.Path, "/api/") || b.Hub.TicketRequest(r)
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
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	base := "http://" + host + ":" + strconv.Itoa(port) + "/"
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
