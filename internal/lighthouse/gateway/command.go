package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// Environment variables with the SMTP credentials (never flags, never logged).
const (
	EnvSMTPUsername = "FASTEN_SMTP_USERNAME"
	EnvSMTPPassword = "FASTEN_SMTP_PASSWORD"
)

// Command runs the gateway from the command line (the `lighthouse` subcommand):
//
//	--listen ADDR --db PATH|postgres://... --providers FILE [--public-url URL]
//	[--client-ip-header NAME] [--smtp-addr HOST:PORT --smtp-from ADDR] [--metrics-listen ADDR]
//	[--tls-cert FILE --tls-key FILE | --acme-domain NAME [--acme-cache DIR]]
//
// or `lighthouse admin --db DB installations|revoke ID|unrevoke ID|outbox|rotate-key`.
//
// It logs the line "lighthouse listening on http(s)://ADDR" to stderr once it accepts
// connections, serves until ctx ends, then shuts down gracefully. Request logs go to stderr.
// getenv reads the SMTP credentials (nil means os.Getenv).
func Command(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "admin" {
		return adminCommand(ctx, args[1:], stdout, stderr)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := flag.NewFlagSet("lighthouse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9500", "address to listen on")
	db := fs.String("db", "", "SQLite database file, or a postgres:// DSN (required)")
	providersFile := fs.String("providers", "", "providers JSON file (required)")
	publicURL := fs.String("public-url", "", "external base URL providers redirect to (default http://ADDR on loopback; required otherwise)")
	ipHeader := fs.String("client-ip-header", "", "header with the client IP set by a trusted reverse proxy (e.g. X-Forwarded-For)")
	smtpAddr := fs.String("smtp-addr", "", "SMTP server HOST:PORT for administrator notifications (credentials from "+EnvSMTPUsername+" and "+EnvSMTPPassword+")")
	smtpFrom := fs.String("smtp-from", "", "sender address of administrator notifications")
	outboxInterval := fs.Duration("outbox-interval", outboxPoll, "how often to look for notifications to send")
	metricsListen := fs.String("metrics-listen", "", "serve /metrics, /healthz and /readyz on this separate (private) address instead of the public one")
	tlsCert := fs.String("tls-cert", "", "TLS certificate chain file (PEM); with --tls-key, serve HTTPS")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM)")
	acmeDomain := fs.String("acme-domain", "", "serve HTTPS with certificates from Let's Encrypt for this domain (TLS-ALPN-01 on --listen, which must be reachable on port 443)")
	acmeCache := fs.String("acme-cache", "", "folder keeping ACME certificates and the account key (default: next to the SQLite database, or ./lighthouse-acme)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lighthouse --listen ADDR --db PATH|postgres://... --providers FILE [--public-url URL] [flags]")
		fmt.Fprintln(fs.Output(), "       lighthouse admin --db PATH|postgres://... installations|revoke ID|unrevoke ID|outbox|rotate-key")
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
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("lighthouse: --tls-cert and --tls-key go together")
	}
	if *tlsCert != "" && *acmeDomain != "" {
		return errors.New("lighthouse: choose --tls-cert/--tls-key or --acme-domain, not both")
	}
	if (*smtpAddr == "") != (*smtpFrom == "") {
		return errors.New("lighthouse: --smtp-addr and --smtp-from go together")
	}
	if *smtpFrom != "" && !plausibleEmail(*smtpFrom) {
		return fmt.Errorf("lighthouse: --smtp-from %q is not an email address", *smtpFrom)
	}
	providers, err := LoadProviders(*providersFile)
	if err != nil {
		return fmt.Errorf("lighthouse: %w", err)
	}

	var tlsConfig *tls.Config
	scheme := "http"
	switch {
	case *tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("lighthouse: TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	case *acmeDomain != "":
		cache := *acmeCache
		if cache == "" {
			cache = "lighthouse-acme"
			if !isPostgresDSN(*db) {
				cache = *db + "-acme"
			}
		}
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(*acmeDomain),
			Cache:      autocert.DirCache(cache), // created 0700; keys written 0600
		}
		tlsConfig = m.TLSConfig()
		tlsConfig.MinVersion = tls.VersionTLS12
		scheme = "https"
		if *publicURL == "" {
			*publicURL = "https://" + *acmeDomain
		}
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
		*publicURL = scheme + "://" + addr
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := Config{
		DB: *db, Providers: providers, PublicURL: *publicURL, Logger: logger, ClientIPHeader: *ipHeader,
		SeparateMetrics: *metricsListen != "", OutboxInterval: *outboxInterval,
	}
	if *smtpAddr != "" {
		if _, _, err := net.SplitHostPort(*smtpAddr); err != nil {
			return fmt.Errorf("lighthouse: --smtp-addr %q must be HOST:PORT", *smtpAddr)
		}
		hello := "localhost"
		if u, err := url.Parse(*publicURL); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
			hello = u.Hostname()
		}
		cfg.Mailer = &SMTPMailer{Addr: *smtpAddr, From: *smtpFrom, HelloName: hello,
			Username: getenv(EnvSMTPUsername), Password: getenv(EnvSMTPPassword)}
	}
	g, err := New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("lighthouse: %w", err)
	}
	defer g.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)

	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
			TLSConfig:         tlsConfig,
		}
	}
	srv := newServer(g.Handler())
	servers := []*http.Server{srv}
	metricsAt := ""
	if *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("lighthouse: --metrics-listen: %w", err)
		}
		msrv := newServer(g.MetricsHandler())
		msrv.TLSConfig = nil // a private address: plain HTTP for the scraper
		servers = append(servers, msrv)
		go func() { errs <- msrv.Serve(mln) }()
		metricsAt = displayAddr(*metricsListen, mln.Addr())
	}
	if tlsConfig != nil {
		go func() { errs <- srv.Serve(tls.NewListener(ln, tlsConfig)) }()
	} else {
		go func() { errs <- srv.Serve(ln) }()
	}
	fmt.Fprintf(stderr, "lighthouse listening on %s://%s\n", scheme, addr)
	if metricsAt != "" {
		fmt.Fprintf(stderr, "lighthouse metrics on http://%s/metrics\n", metricsAt)
	}
	// Background work starts after the ready line, which scripts wait for as the first line.
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := g.Run(ctx); err != nil {
			errs <- err
		}
	}()
	// Stop the background work before the database closes (defers run last first).
	defer func() { cancel(); <-runDone }()

	select {
	case err := <-errs:
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("lighthouse: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	var errShutdown error
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); err != nil {
			errShutdown = errors.Join(errShutdown, fmt.Errorf("lighthouse: shutdown: %w", err))
		}
	}
	return errShutdown
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
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
