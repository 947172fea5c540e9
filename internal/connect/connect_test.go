package connect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/connect"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// TestConnectEndToEnd runs the whole thing against go-keyring's interface backed by memory:
// register, the catalog, connect a patient of the demo hospital through the Lighthouse (the test
// plays the browser), tokens in the keyring, the source, a first Patient read, and no token in
// the logs or the SQLite files.
func TestConnectEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	endToEnd(t, e)
	// One token (a long one is split into chunks named key#a1, key#b1...).
	var tokens []string
	for _, k := range e.mem.keys("source-token-") {
		if !strings.Contains(k, "#") {
			tokens = append(tokens, k)
		}
	}
	if len(tokens) != 1 {
		t.Fatalf("keyring token entries: %v", e.mem.keys("source-token-"))
	}
}

// TestConnectEndToEndSystemKeyring is the same against the real system keyring (GNOME Keyring
// under dbus-run-session in CI). It runs only with FASTEN_REQUIRE_KEYRING=1.
func TestConnectEndToEndSystemKeyring(t *testing.T) {
	if os.Getenv("FASTEN_REQUIRE_KEYRING") != "1" {
		t.Skip("the system keyring variant runs only with FASTEN_REQUIRE_KEYRING=1 (e.g. dbus-run-session -- sh -c 'echo pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; FASTEN_REQUIRE_KEYRING=1 go test -race ./internal/connect/')")
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Fatal("FASTEN_REQUIRE_KEYRING=1 but there is no session D-Bus (DBUS_SESSION_BUS_ADDRESS is not set)")
	}
	service := "fasten-desktop-connect-test-" + time.Now().Format("150405.000000")
	kr := secrets.NewKeyring(service)
	ctx := context.Background()
	if _, err := kr.Get(ctx, "probe"); err != nil && !strings.Contains(err.Error(), "No saved sign-in") {
		t.Fatalf("FASTEN_REQUIRE_KEYRING=1 but the system keyring cannot be used: %v", err)
	}
	e := newEnv(t, envOptions{keyring: kr})
	t.Cleanup(func() {
		if in, err := e.inst.Installation(); err == nil && in != nil {
			kr.Delete(ctx, installation.SecretKey(in.InstallationID))
		}
		if srcs, err := e.store.ListSources(ctx, 0); err == nil {
			for _, s := range srcs {
				kr.Delete(ctx, s.TokenKey)
			}
		}
	})
	src := endToEnd(t, e)
	// The token really is in the system keyring, under the source's key.
	tok, err := smart.NewSecretTokenStore(secrets.NewKeyring(service), src.TokenKey).Load(ctx)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token in the system keyring: %v", err)
	}
}

func endToEnd(t *testing.T, e *env) records.Source {
	ctx := context.Background()

	// Before registering: settings say so; the catalog and connect ask to register.
	var st installation.Settings
	e.call("GET", "/settings", nil, &st)
	if st.OnboardingDone || st.Installation != nil || st.LighthouseURL != e.lhURL || st.LighthouseURLSource != installation.URLFromSettings {
		t.Fatalf("settings before registering: %+v", st)
	}
	var ae apiError
	if code := e.call("GET", "/installation", nil, &ae); code != http.StatusNotFound {
		t.Fatalf("GET /installation before registering: %d", code)
	}
	if code := e.call("GET", "/providers", nil, &ae); code != http.StatusConflict || ae.Error.Code != "not_registered" ||
		ae.Error.Message != "Register this installation to connect providers." {
		t.Fatalf("providers before registering: %d %+v", code, ae)
	}
	if code := e.call("POST", "/connect", map[string]string{"provider": demo}, &ae); code != http.StatusConflict || ae.Error.Code != "not_registered" {
		t.Fatalf("connect before registering: %d %+v", code, ae)
	}

	// Register.
	in := e.register()
	if in.InstallationID == "" || in.LighthouseURL != e.lhURL || in.Name != "Ada Lovelace" || in.Email != "ada@example.org" || in.RegisteredAt == nil {
		t.Fatalf("installation %+v", in)
	}
	var got installation.Installation
	if code := e.call("GET", "/installation", nil, &got); code != http.StatusOK || got.InstallationID != in.InstallationID {
		t.Fatalf("GET /installation: %d %+v", code, got)
	}
	e.call("GET", "/settings", nil, &st)
	if !st.OnboardingDone || st.Installation == nil || st.Installation.InstallationID != in.InstallationID {
		t.Fatalf("settings after registering: %+v", st)
	}
	cfg, err := e.cfg.Load()
	must(t, err)
	if cfg.InstallationID != in.InstallationID || cfg.AdminEmail != "ada@example.org" || cfg.LighthouseURL != e.lhURL {
		t.Fatalf("settings file: %+v", cfg)
	}
	secretJSON, err := e.kr.Get(ctx, installation.SecretKey(in.InstallationID))
	must(t, err)
	var stored struct {
		Secret string `json:"secret"`
	}
	must(t, json.Unmarshal(secretJSON, &stored))
	settingsFile, err := os.ReadFile(e.cfg.Path())
	must(t, err)
	if stored.Secret == "" || bytes.Contains(settingsFile, []byte(stored.Secret)) {
		t.Fatal("the installation secret is missing from the keyring or present in the settings file")
	}

	// The catalog.
	var providers []connect.CatalogEntry
	if code := e.call("GET", "/providers?q=demo", nil, &providers); code != http.StatusOK || len(providers) != 2 || providers[0].ID != demo || providers[0].Name != hospitalName {
		t.Fatalf("providers: %d %+v", code, providers)
	}

	// Connect a patient.
	p := e.patient()
	started := e.startConnect(demo, "")
	if !strings.HasPrefix(started.AuthorizeURL, e.lhURL+"/v1/connect/demo?ticket=") || started.ProviderName != hospitalName {
		t.Fatalf("started %+v", started)
	}
	if s := e.status(started.ConnectID); s.Status != connect.StatusPending || s.SourceID != nil || s.Error != nil {
		t.Fatalf("status while pending: %+v", s)
	}
	cb := e.portal(started.AuthorizeURL, p.ID, true)
	if cb.Scheme != "http" || cb.Hostname() != "127.0.0.1" || cb.Path != "/callback" || cb.Query().Get("code") == "" {
		t.Fatalf("the Lighthouse sent the browser to %s", cb.Redacted())
	}
	code, path, page := deliver(t, cb.String())
	if code != http.StatusOK || path != "/done" || !strings.Contains(page, "You&#39;re connected") {
		t.Fatalf("result page %d %s:\n%s", code, path, page)
	}
	fin := e.waitStatus(started.ConnectID)
	if fin.Status != connect.StatusConnected || fin.SourceID == nil || fin.Error != nil || fin.PatientName != p.Name || !fin.SyncStarted {
		t.Fatalf("final status %+v (want patient %q)", fin, p.Name)
	}
	select {
	case id := <-e.connected:
		if id != *fin.SourceID {
			t.Fatalf("OnConnected(%d), want %d", id, *fin.SourceID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnConnected was not called")
	}
	if ev := e.events.all(); len(ev) == 0 || !strings.HasPrefix(ev[len(ev)-1], "source.status ") || !strings.Contains(ev[len(ev)-1], `"status":"connected"`) {
		t.Fatalf("events %v", ev)
	}
	waitClosed(t, cb.Host) // the listener is gone once the result page was shown

	// The source.
	src := e.source(*fin.SourceID)
	if src.Kind != records.KindProvider || src.Status != records.StatusConnected || src.Name != hospitalName ||
		*src.ProviderID != demo || *src.FHIRBase != e.hospital.FHIRBase() || *src.PatientID != p.ID ||
		src.Scopes == nil || !strings.Contains(*src.Scopes, "patient/") || src.TokenURL != e.hospitalTS.URL+"/auth/token" ||
		src.ClientID != "fasten-desktop" || src.Confidential || !strings.HasPrefix(src.TokenKey, "source-token-") {
		t.Fatalf("source %+v", src)
	}

	// The tokens are in the keyring under the source's key.
	tok, err := smart.NewSecretTokenStore(e.kr, src.TokenKey).Load(ctx)
	if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" || tok.Patient != p.ID {
		t.Fatalf("stored token %v: %v", tok, err)
	}

	// A first fetch of the Patient with the stored token.
	code, body, err := e.fhirGet(src, "Patient/"+p.ID)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET Patient: %d %v", code, err)
	}
	var pt struct{ ResourceType, ID string }
	if json.Unmarshal(body, &pt) != nil || pt.ResourceType != "Patient" || pt.ID != p.ID {
		t.Fatalf("Patient read: %.200s", body)
	}

	// A refresh (rotates the refresh token) through the same manager.
	tm, err := e.svc.TokenManagerFor(ctx, src)
	must(t, err)
	tok2, err := tm.Refresh(ctx, "")
	if err != nil || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}

	// No token value anywhere but the keyring.
	dbb := e.dbBytes()
	logs := e.logs.String()
	if !strings.Contains(logs, "provider connected") {
		t.Fatalf("the logs were not captured:\n%s", logs)
	}
	for name, v := range map[string]string{
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"refreshed access token": tok2.AccessToken, "rotated refresh token": tok2.RefreshToken,
		"installation secret": stored.Secret,
	} {
		if len(v) < 16 {
			t.Fatalf("%s is suspiciously short", name)
		}
		if bytes.Contains(dbb, []byte(v)) {
			t.Errorf("the %s is in the SQLite files", name)
		}
		if strings.Contains(logs, v) {
			t.Errorf("the %s is in the logs", name)
		}
	}
	return src
}

// TestConfidentialProvider connects a provider whose code and refresh go through the
// Lighthouse's token swap (the Lighthouse adds the client secret).
func TestConfidentialProvider(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	p := e.patient()
	fin := e.connectPatient(demoConfidential, p)
	src := e.source(*fin.SourceID)
	if !src.Confidential || src.ClientID != "fasten-desktop-confidential" || *src.ProviderID != demoConfidential {
		t.Fatalf("source %+v", src)
	}
	if n := tokenCalls(e.hospital, "authorization_code"); n != 1 {
		t.Fatalf("%d code exchanges", n)
	}
	tm, err := e.svc.TokenManagerFor(context.Background(), src)
	must(t, err)
	if _, err := tm.Refresh(context.Background(), ""); err != nil {
		t.Fatalf("refresh through the Lighthouse: %v", err)
	}
	if n := tokenCalls(e.hospital, "refresh_token"); n != 1 {
		t.Fatalf("%d refresh calls", n)
	}
	if code, _, err := e.fhirGet(src, "Patient/"+p.ID); err != nil || code != 200 {
		t.Fatalf("Patient read: %d %v", code, err)
	}
}

// TestListenerLoopbackOnlyAndClosed: the sign-in listener is reachable on 127.0.0.1 only while
// the sign-in is pending, and is gone after the callback.
func TestListenerLoopbackOnlyAndClosed(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	started := e.startConnect(demo, "")
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
	if cb.Hostname() != "127.0.0.1" {
		t.Fatalf("callback host %s", cb.Hostname())
	}
	port := cb.Port()
	if !dialable("127.0.0.1:" + port) {
		t.Fatal("the listener is not reachable on 127.0.0.1 while the sign-in is pending")
	}
	if dialable("[::1]:" + port) {
		t.Error("the listener answers on [::1]")
	}
	if ip := nonLoopbackIP(); ip != "" {
		if dialable(net.JoinHostPort(ip, port)) {
			t.Errorf("the listener answers on %s", ip)
		}
	} else {
		t.Log("no non-loopback address on this machine to check against")
	}
	deliver(t, cb.String())
	if st := e.waitStatus(started.ConnectID); st.Status != connect.StatusConnected {
		t.Fatalf("status %+v", st)
	}
	waitClosed(t, "127.0.0.1:"+port)
}

func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// TestCancelAndTimeout: DELETE /connect/{id} closes the listener and says cancelled; a sign-in
// the browser never completes times out.
func TestCancelAndTimeout(t *testing.T) {
	e := newEnv(t, envOptions{timeout: 300 * time.Millisecond})
	e.register()

	started := e.startConnect(demo, "")
	var st connect.ConnectStatus
	if code := e.call("DELETE", "/connect/"+started.ConnectID, nil, &st); code != http.StatusOK {
		t.Fatalf("cancel: HTTP %d", code)
	}
	// The timeout may have won the race in a slow run; either way it is over and said so.
	if st.Status != connect.StatusCancelled && st.ErrorCode != connect.ErrCodeTimeout {
		t.Fatalf("after cancel: %+v", st)
	}

	started = e.startConnect(demo, "")
	st = e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeTimeout || st.Error == nil || !strings.Contains(*st.Error, "timed out") {
		t.Fatalf("timeout: %+v", st)
	}
	// Its browser arrives too late: nobody listens any more.
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
	waitClosed(t, cb.Host)
	if e.sourceCount() != 0 || tokenCalls(e.hospital, "authorization_code") != 0 {
		t.Fatal("a late callback was used")
	}
}

// TestStartingAgainCancelsTheOlderSignIn: a second connect for the same provider and person
// closes the first one's listener.
func TestStartingAgainCancelsTheOlderSignIn(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	first := e.startConnect(demo, "")
	second := e.startConnect(demo, "")
	if st := e.waitStatus(first.ConnectID); st.Status != connect.StatusCancelled {
		t.Fatalf("first: %+v", st)
	}
	if st := e.status(second.ConnectID); st.Status != connect.StatusPending {
		t.Fatalf("second: %+v", st)
	}
}
