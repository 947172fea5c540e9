package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// TestBackgroundRunsTheDueSync: a provider source connected earlier (through serve mode, the
// real Lighthouse flow and the real keyring) whose sync is due gets synced by
// `fasten-desktop --background`, which shows no window.
func TestBackgroundRunsTheDueSync(t *testing.T) {
	bin := desktopBin(t)
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Skip("needs a D-Bus session with a keyring; `make test` runs the tests under .ci/with-keyring.sh")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := t.TempDir()

	// The demo hospital and its Lighthouse.
	synthea, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		t.Fatal(err)
	}
	// The shared Synthea set (the built-in demo data holds only a few patients).
	_, sbLines := start(t, ctx, bin, os.Environ(), "sandbox", "--listen", "127.0.0.1:0", "--lighthouse-listen", "127.0.0.1:0", "--data", synthea)
	lhURL := strings.TrimPrefix(waitLine(t, sbLines, regexp.MustCompile(`^lighthouse_url=`), 60*time.Second), "lighthouse_url=")

	// Connect a patient through serve mode.
	tb := make([]byte, 32)
	rand.Read(tb)
	token := base64.RawURLEncoding.EncodeToString(tb)
	env := append(os.Environ(), "FASTEN_API_TOKEN="+token, "FASTEN_DATA_DIR="+data)
	serve, srvLines := start(t, ctx, bin, env, "serve", "--listen", "127.0.0.1:0", "--lighthouse-url", lhURL)
	line := waitLine(t, srvLines, regexp.MustCompile(`^Fasten is running at `), 60*time.Second)
	base := regexp.MustCompile(`http://[^/#]+`).FindString(line)
	call := func(method, path string, body any, out any) int {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	if c := call("POST", "/installation", map[string]string{"name": "Test Admin", "email": "admin@example.org"}, nil); c/100 != 2 {
		t.Fatalf("register: %d", c)
	}
	var started struct {
		ConnectID    string `json:"connect_id"`
		AuthorizeURL string `json:"authorize_url"`
	}
	if c := call("POST", "/connect", map[string]any{"provider": "demo"}, &started); c/100 != 2 || started.AuthorizeURL == "" {
		t.Fatalf("connect: %d %+v", c, started)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	back, err := sandbox.SignIn(ctx, hc, started.AuthorizeURL, patientID(t), true)
	if err != nil {
		t.Fatalf("portal: %v", err)
	}
	if resp, err := hc.Get(back.String()); err != nil { // Lighthouse callback -> the app's loopback listener
		t.Fatalf("callback: %v", err)
	} else {
		resp.Body.Close()
	}
	var sourceID int64
	waitFor(t, 60*time.Second, "the connect and its first sync", func() bool {
		var st struct {
			Status   string `json:"status"`
			SourceID int64  `json:"source_id"`
		}
		call("GET", "/connect/"+started.ConnectID, nil, &st)
		if st.SourceID == 0 {
			return false
		}
		sourceID = st.SourceID
		var src struct {
			Syncing  bool    `json:"syncing"`
			LastSync *string `json:"last_sync"`
		}
		call("GET", fmt.Sprintf("/sources/%d", sourceID), nil, &src)
		return !src.Syncing && src.LastSync != nil
	})
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	// Make the sync due, then start in the background.
	dbPath := filepath.Join(data, "fasten.db")
	sqldb, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	runs := func() (total, ok int) {
		sqldb.QueryRow(`SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM sync_runs WHERE source_id = ?`, sourceID).Scan(&total, &ok)
		return
	}
	_, okBefore := runs()
	if okBefore < 1 {
		t.Fatal("the first sync did not complete")
	}
	// Due means: the last sync and the last finished run are older than the interval (12 h).
	for _, q := range []string{`UPDATE sources SET last_sync = '2000-01-01T00:00:00Z' WHERE id = ?`,
		`UPDATE sync_runs SET started_at = '2000-01-01T00:00:00Z' WHERE source_id = ?`} {
		if _, err := sqldb.Exec(q, sourceID); err != nil {
			t.Fatal(err)
		}
	}
	display := xvfb(t)
	start(t, ctx, bin, desktopEnv(display, data), "--background", "--lighthouse-url", lhURL)
	waitFor(t, 90*time.Second, "the due sync in the background", func() bool {
		_, ok := runs()
		return ok > okBefore
	})
	var trigger string
	sqldb.QueryRow(`SELECT trigger_kind FROM sync_runs WHERE source_id = ? ORDER BY id DESC LIMIT 1`, sourceID).Scan(&trigger)
	if fastenWindowViewable(t, display) {
		t.Fatal("--background showed a window")
	}
	t.Logf("background sync done (trigger %s)", trigger)
}

// patientID is the Patient id inside one Synthea bundle (not the file's name).
func patientID(t *testing.T) string {
	p, err := shareddata.Path(shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct{ ResourceType, ID string }
		}
	}
	json.Unmarshal(b, &bundle)
	for _, e := range bundle.Entry {
		if e.Resource.ResourceType == "Patient" {
			return e.Resource.ID
		}
	}
	t.Fatal("no Patient in the bundle")
	return ""
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond) // polling with a deadline
	}
}
