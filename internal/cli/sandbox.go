package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse/gateway"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

// Demo provider ids in the sandbox's Lighthouse catalog.
const (
	DemoProvider             = "demo"
	DemoConfidentialProvider = "demo-confidential"
	demoScopes               = "launch/patient openid fhirUser offline_access patient/*.rs"
)

// Sandbox is a running demo hospital plus a Lighthouse, both on loopback.
type Sandbox struct {
	Hospital      *sandbox.Server
	Gateway       *gateway.Gateway
	FHIRBase      string
	LighthouseURL string
	close         []func()
}

// StartSandbox starts the demo hospital on hospitalAddr and a Lighthouse on lighthouseAddr (use
// 127.0.0.1:0 for free ports). The Lighthouse keeps its state in dir.
func StartSandbox(ctx context.Context, hospitalAddr, lighthouseAddr, dir string, cfg sandbox.Config) (*Sandbox, error) {
	sb := &Sandbox{}
	fail := func(err error) (*Sandbox, error) { sb.Close(); return nil, err }
	hl, err := guard.LoopbackListen(hospitalAddr, false)
	if err != nil {
		return fail(err)
	}
	ll, err := guard.LoopbackListen(lighthouseAddr, false)
	if err != nil {
		hl.Close()
		return fail(err)
	}
	hospitalURL := "http://" + hl.Addr().String()
	sb.LighthouseURL = "http://" + ll.Addr().String()
	secret, err := guard.NewToken()
	if err != nil {
		return fail(err)
	}
	if cfg.Clients == nil {
		cfg.Clients = []sandbox.Client{
			{ID: sandbox.DefaultClientID, AllowLoopbackRedirects: true},
			{ID: sandbox.DefaultClientID + "-confidential", Secret: secret, AllowLoopbackRedirects: true},
		}
	}
	cfg.BaseURL = hospitalURL
	sb.Hospital, err = sandbox.New(cfg)
	if err != nil {
		return fail(err)
	}
	sb.FHIRBase = sb.Hospital.FHIRBase()
	sb.Gateway, err = gateway.New(ctx, gateway.Config{
		DB:        filepath.Join(dir, "lighthouse.db"),
		PublicURL: sb.LighthouseURL,
		Providers: []gateway.Provider{
			{ID: DemoProvider, Name: "Demo Hospital (sandbox)", FHIRBase: sb.FHIRBase, ClientID: sandbox.DefaultClientID, Scopes: demoScopes, UserLimit: 10},
			{ID: DemoConfidentialProvider, Name: "Demo Hospital, confidential client (sandbox)", FHIRBase: sb.FHIRBase,
				ClientID: sandbox.DefaultClientID + "-confidential", ClientSecret: secret, Scopes: demoScopes, UserLimit: 10},
		},
	})
	if err != nil {
		return fail(err)
	}
	for _, s := range []struct {
		l net.Listener
		h http.Handler
	}{{hl, sb.Hospital.Handler()}, {ll, sb.Gateway.Handler()}} {
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(s.l)
		sb.close = append(sb.close, func() { srv.Close() })
	}
	sb.close = append(sb.close, func() { sb.Gateway.Close() })
	return sb, nil
}

// Close stops both servers.
func (sb *Sandbox) Close() {
	for i := len(sb.close) - 1; i >= 0; i-- {
		sb.close[i]()
	}
}

func sandboxCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("sandbox", env, &c)
	listen := fs.String("listen", "127.0.0.1:9400", "address of the demo hospital")
	lh := fs.String("lighthouse-listen", "127.0.0.1:0", "address of the sandbox Lighthouse")
	data := fs.String("data", "", "a folder of Synthea patient-*.json bundles to serve instead of the built-in demo patients")
	if err := parse(fs, args); err != nil {
		return err
	}
	// The built-in demo data set needs no files beside the binary; --data serves a folder.
	var d *sandbox.Data
	var err error
	if *data != "" {
		d, err = sandbox.LoadData(*data, time.Time{})
	} else {
		d, err = sandbox.LoadDemoData(time.Time{})
	}
	if err != nil {
		return fmt.Errorf("demo hospital data: %w", err)
	}
	dir, err := os.MkdirTemp("", "fasten-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sb, err := StartSandbox(ctx, *listen, *lh, dir, sandbox.Config{Data: d})
	if err != nil {
		return err
	}
	defer sb.Close()
	fmt.Fprintf(env.Stdout, "fhir_base=%s\nlighthouse_url=%s\n", sb.FHIRBase, sb.LighthouseURL)
	fmt.Fprintf(env.Stderr, "The demo hospital and a Lighthouse are running. Start the app with --lighthouse-url %s and connect \"Demo Hospital (sandbox)\". Ctrl-C stops them.\n", sb.LighthouseURL)
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
