package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Command runs the gateway from the command line (the `lighthouse` subcommand):
//
//	--listen ADDR --db PATH|postgres://... --providers FILE [--public-url URL] [--client-ip-header NAME]
//
// It logs the line "lighthouse listening on http://ADDR" to stderr once it accepts connections,
// serves until ctx ends, then shuts down gracefully. Request logs go to stderr.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lighthouse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9500", "address to listen on")
	db := fs.String("db", "", "SQLite database file, or a postgres:// DSN (required)")
	providersFile := fs.String("providers", "", "providers JSON file (required)")
	publicURL := fs.String("public-url", "", "external base URL providers redirect to (default http://ADDR)")
	ipHeader := fs.String("client-ip-header", "", "header with the client IP set by a trusted reverse proxy (e.g. X-Forwarded-For)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lighthouse --listen ADDR --db PATH|postgres://... --providers FILE [--public-url URL]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("lighthouse: unexpected argument %q", fs.Arg(0))
	}
	if *db == "" || *providersFile == "" {
		fs.Usage()
		return errors.New("lighthouse: --db and --providers are required")
	}
	providers, err := LoadProviders(*providersFile)
	if err != nil {
		return fmt.Errorf("lighthouse: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("lighthouse: %w", err)
	}
	defer ln.Close()
	addr := displayAddr(*listen, ln.Addr())
	if *publicURL == "" {
		if !loopbackListen(*listen) {
			return fmt.Errorf("lighthouse: listening on %s reaches beyond this computer: give --public-url, the address providers and browsers use to reach this gateway (e.g. https://lighthouse.example.org)", addr)
		}
		*publicURL = "http://" + addr
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	g, err := New(ctx, Config{
		DB: *db, Providers: providers, PublicURL: *publicURL, Logger: logger, ClientIPHeader: *ipHeader,
	})
	if err != nil {
		return fmt.Errorf("lighthouse: %w", err)
	}
	defer g.Close()

	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "lighthouse listening on http://%s\n", addr)

	select {
	case err := <-served:
		return fmt.Errorf("lighthouse: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("lighthouse: shutdown: %w", err)
	}
	return nil
}

// displayAddr is the address the gateway listens on, with the actual port (for :0). An
// unspecified host stays as given (0.0.0.0, [::]): the gateway answers on every interface, and the
// line it prints says so (issue 14 item 17).
func displayAddr(listen string, actual net.Addr) string {
	host, _, err := net.SplitHostPort(listen)
	_, port, err2 := net.SplitHostPort(actual.String())
	if err != nil || err2 != nil {
		return actual.String()
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port)
}

// loopbackListen reports whether the listen address binds only a loopback interface.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
