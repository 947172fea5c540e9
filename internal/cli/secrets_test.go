package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// headless runs the calling test again in a child process whose session bus address points at a
// socket that does not exist, like a server without a D-Bus session, and reports whether this is
// that child (then the test goes on). A child process because the D-Bus library keeps its first
// session bus connection for the life of the process: another test may have made one already.
// (Unsetting the address is not enough on a machine with dbus-x11: the library would autolaunch
// a session bus.) The child checks that the OS keyring is really unusable, so the test cannot
// pass because a keyring happened to be there.
func headless(t *testing.T) bool {
	t.Helper()
	if os.Getenv("FASTEN_TEST_NO_DBUS_CHILD") == "1" {
		_, err := secrets.NewKeyring(installation.KeyringService, secrets.WithTimeout(10*time.Second)).Get(context.Background(), "probe")
		if !errors.Is(err, secrets.ErrUnavailable) {
			t.Fatalf("the OS keyring is still usable without a D-Bus session (err %v)", err)
		}
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "FASTEN_TEST_NO_DBUS_CHILD=1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s without a D-Bus session: %v\n%s", t.Name(), err, out)
	}
	t.Logf("passed in a process without a D-Bus session")
	return false
}

// served is a `serve` command running in the test.
type served struct {
	base           string
	stdout, stderr *lockedBuffer
	done           chan error
	cancel         context.CancelFunc
}

func runServe(t *testing.T, args []string, vars map[string]string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan error, 1), cancel: cancel}
	vars["FASTEN_API_TOKEN"] = testToken
	env := Env{Stdout: s.stdout, Stderr: s.stderr, Version: "test", Getenv: func(k string) string { return vars[k] }}
	go func() { s.done <- serve(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), env) }()
	t.Cleanup(func() { s.stop(t) })
	re := regexp.MustCompile(`Fasten is running at (http://127\.0\.0\.1:\d+)/#token=`)
	deadline := time.After(2 * time.Minute)
	for {
		if m := re.FindStringSubmatch(s.stdout.String()); m != nil {
			s.base = m[1]
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			return s // stopped before serving: s.base is ""
		case <-deadline:
			t.Fatalf("serve printed no URL; stderr: %s", s.stderr)
		case <-time.After(20 * time.Millisecond): // polling the output with a deadline
		}
	}
}

func (s *served) stop(t *testing.T) error {
	s.cancel()
	err := <-s.done
	s.done <- err
	return err
}

func (s *served) call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+"/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// TestServeHeadlessWithSecretsFile is the home-server acceptance: with no D-Bus session and
// FASTEN_SECRETS_PASSPHRASE set, serve registers an installation and connects the demo hospital
// (the built-in demo data), whose first sync stores the patient's records; the secrets file holds
// the installation secret and the tokens, none of them in clear; a wrong passphrase is refused with
// a clear message and changes nothing.
func TestServeHeadlessWithSecretsFile(t *testing.T) {
	if !headless(t) {
		return
	}
	ctx := context.Background()
	demo, err := sandbox.LoadDemoData(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := StartSandbox(ctx, "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), sandbox.Config{Data: demo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	var raul sandbox.PatientInfo
	for _, p := range sb.Hospital.Patients() {
		if p.Name == "Raúl Fernández" {
			raul = p
		}
	}
	if raul.ID == "" {
		t.Fatal("Raúl Fernández is not among the demo patients")
	}

	data := t.TempDir()
	const pass = "a long home-server passphrase"
	// Created here with a low scrypt work factor (opening uses the one in the file), so the test
	// does not spend its time in scrypt under -race; serve creates it with age's default.
	if _, err := secrets.OpenFileStore(filepath.Join(data, SecretsFileName), []byte(pass), secrets.WithScryptWorkFactor(10)); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data-dir", data, "--lighthouse-url", sb.LighthouseURL}
	s := runServe(t, args, map[string]string{PassphraseEnv: pass})
	if s.base == "" {
		t.Fatalf("serve stopped: %v; stderr: %s", <-s.done, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "encrypted file "+filepath.Join(data, SecretsFileName)) {
		t.Errorf("serve did not say where sign-ins are kept; stderr: %s", s.stderr)
	}

	var inst struct {
		InstallationID string `json:"installation_id"`
	}
	s.call(t, "POST", "/installation", map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"}, http.StatusCreated, &inst)
	var started struct {
		ConnectID    string `json:"connect_id"`
		AuthorizeURL string `json:"authorize_url"`
	}
	s.call(t, "POST", "/connect", map[string]string{"provider": DemoProvider}, http.StatusOK, &started)
	// The browser: the Lighthouse, the demo hospital's portal (sign in as Raúl, Allow), back
	// through the Lighthouse to the app's one-time listener.
	noFollow := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	back, err := sandbox.SignIn(ctx, noFollow, started.AuthorizeURL, raul.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noFollow.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("the Lighthouse answered %d: %v", resp.StatusCode, err)
	}
	if resp, err = (&http.Client{Timeout: time.Minute}).Get(loc.String()); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var st struct {
		Status   string `json:"status"`
		SourceID *int64 `json:"source_id"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		s.call(t, "GET", "/connect/"+url.PathEscape(started.ConnectID), nil, http.StatusOK, &st)
		if st.Status != "pending" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the connect status with a deadline
	}
	if st.Status != "connected" || st.SourceID == nil {
		t.Fatalf("connect status %+v", st)
	}
	// The first sync runs by itself and stores every resource of the patient.
	type source struct {
		ID            int64 `json:"id"`
		ResourceCount int   `json:"resource_count"`
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var list []source
		s.call(t, "GET", "/sources", nil, http.StatusOK, &list)
		if len(list) == 1 && list[0].ResourceCount == raul.Resources {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sources %+v; want one with %d resources", list, raul.Resources)
		}
		time.Sleep(50 * time.Millisecond) // polling the sync with a deadline
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// The app's requests to the provider (discovery, token, FHIR) carry its User-Agent. The
	// portal pages are the browser's (this test) and the Lighthouse discovers the provider too.
	seen := map[string]bool{}
	for _, r := range sb.Hospital.Requests() {
		ours := r.UserAgent == "fasten-desktop/test"
		switch {
		case strings.HasSuffix(r.Path, "/.well-known/smart-configuration"):
			seen["discovery"] = seen["discovery"] || ours
		case r.Path == "/auth/token" || strings.HasPrefix(r.Path, "/fhir/"):
			seen[r.Path] = true
			if !ours {
				t.Errorf("%s %s: User-Agent %q", r.Method, r.Path, r.UserAgent)
			}
		}
	}
	if !seen["discovery"] || !seen["/auth/token"] || len(seen) < 3 {
		t.Errorf("requests with the app's User-Agent: %v", seen)
	}

	// The secrets file holds the installation secret and the tokens, none of it in clear.
	path := filepath.Join(data, SecretsFileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fstore, err := secrets.OpenFileStore(path, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, filepath.Join(data, "fasten.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := records.New(d).ListSources(ctx, 0)
	d.Close()
	if err != nil || len(srcs) != 1 || srcs[0].TokenKey == "" {
		t.Fatalf("sources %+v, %v", srcs, err)
	}
	var secretStrings []string
	for _, key := range []string{installation.SecretKey(inst.InstallationID), srcs[0].TokenKey} {
		v, err := fstore.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s is not in the secrets file: %v", key, err)
		}
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for _, f := range []string{"secret", "access_token", "refresh_token"} {
			if s, _ := m[f].(string); len(s) >= 16 {
				secretStrings = append(secretStrings, s)
			}
		}
	}
	if len(secretStrings) < 3 {
		t.Fatalf("found %d secret values (installation secret, access and refresh token)", len(secretStrings))
	}
	for _, sec := range append(secretStrings, pass, inst.InstallationID) {
		for _, form := range []string{sec, base64.StdEncoding.EncodeToString([]byte(sec)), base64.RawURLEncoding.EncodeToString([]byte(sec))} {
			if bytes.Contains(raw, []byte(form[:16])) {
				t.Fatalf("the secrets file contains a secret in clear or base64")
			}
		}
	}

	// A wrong passphrase: serve stops before listening, says why, and the file is unchanged.
	s2 := runServe(t, args, map[string]string{PassphraseEnv: "not the passphrase"})
	err = s2.stop(t)
	if s2.base != "" || err == nil || !errors.Is(err, secrets.ErrWrongPassphrase) || !strings.Contains(err.Error(), "passphrase does not open") {
		t.Fatalf("wrong passphrase: serve at %q, err %v", s2.base, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
		t.Fatal("the secrets file changed after a wrong passphrase")
	}
	if _, err := fstore.Get(ctx, srcs[0].TokenKey); err != nil {
		t.Fatalf("the token is gone: %v", err)
	}
}

// TestServeWithoutKeyringSaysHowToUseTheFile: no D-Bus session and no passphrase: serve still
// starts (imports work), never creates a secrets file, and both its startup message and the
// error of registering say exactly how to enable the encrypted file.
func TestServeWithoutKeyringSaysHowToUseTheFile(t *testing.T) {
	if !headless(t) {
		return
	}
	data := t.TempDir()
	s := runServe(t, []string{"--data-dir", data, "--lighthouse-url", "http://127.0.0.1:9"}, map[string]string{})
	if s.base == "" {
		t.Fatalf("serve stopped: %v", <-s.done)
	}
	if msg := s.stderr.String(); !strings.Contains(msg, "system keyring is not available") || !strings.Contains(msg, PassphraseEnv) || !strings.Contains(msg, PassphraseCredential) {
		t.Errorf("startup message: %s", msg)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	s.call(t, "POST", "/installation", map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"}, http.StatusServiceUnavailable, &e)
	if e.Error.Code != "keyring_unavailable" || !strings.Contains(e.Error.Message, PassphraseEnv) || !strings.Contains(e.Error.Message, "docs/home-server.md") {
		t.Errorf("register error %+v", e.Error)
	}
	if _, err := os.Stat(filepath.Join(data, SecretsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a secrets file was created without a passphrase (%v)", err)
	}
}

func TestSecretsPassphraseFromSystemdCredential(t *testing.T) {
	dir := t.TempDir()
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if p, _, err := secretsPassphrase(get(map[string]string{"CREDENTIALS_DIRECTORY": dir})); p != nil || err != nil {
		t.Fatalf("no credential file: %q, %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(dir, PassphraseCredential), []byte("from systemd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, from, err := secretsPassphrase(get(map[string]string{"CREDENTIALS_DIRECTORY": dir}))
	if err != nil || string(p) != "from systemd" || !strings.Contains(from, "systemd credential") {
		t.Fatalf("credential: %q %q %v", p, from, err)
	}
	// The environment variable wins.
	if p, from, _ := secretsPassphrase(get(map[string]string{"CREDENTIALS_DIRECTORY": dir, PassphraseEnv: "env"})); string(p) != "env" || from != PassphraseEnv {
		t.Fatalf("env: %q %q", p, from)
	}
	if err := os.WriteFile(filepath.Join(dir, PassphraseCredential), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secretsPassphrase(get(map[string]string{"CREDENTIALS_DIRECTORY": dir})); err == nil {
		t.Fatal("an empty credential was accepted")
	}
}
