package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/cli"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// raulFile is Raúl Fernández's Synthea bundle (215 resources), the patient the Playwright specs
// use too.
const raulFile = "patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json"

func raulPath(t *testing.T) string {
	t.Helper()
	p, err := shareddata.Path(shareddata.Synthea, raulFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readBundle counts a Bundle's entries by resourceType with plain encoding/json, independently
// of the importer, and returns its Patient's id.
func readBundle(t *testing.T, path string) (counts map[string]int, patientID string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	counts = map[string]int{}
	for _, e := range b.Entry {
		counts[e.Resource.ResourceType]++
		if e.Resource.ResourceType == "Patient" {
			patientID = e.Resource.ID
		}
	}
	return counts, patientID
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestImportDoneWebhook: a subscriber subscribes through POST /hub with the API token (a form),
// echoes the challenge and becomes active; an import through POST /imports of a Synthea file then
// reaches it as a signed import.done whose counts are the HTTP answer's and the file's own. The
// same event reaches the page's live stream (GET /events with the bearer header).
func TestImportDoneWebhook(t *testing.T) {
	a := startApp(t, "")
	sub := newSubscriber(t)
	s := a.subscribe(sub, "import.done,resources.changed")
	if s.Callback != sub.callback || strings.Join(s.Events, ",") != "import.done,resources.changed" {
		t.Fatalf("subscription %+v", s)
	}
	sub.mu.Lock()
	intent := sub.intents[0]
	sub.mu.Unlock()
	if intent.Get("hub.mode") != "subscribe" || intent.Get("hub.topic") != "import.done,resources.changed" ||
		len(intent.Get("hub.challenge")) < 22 || intent.Get("hub.lease_seconds") != "3600" {
		t.Errorf("intent verification %v", intent)
	}
	stream := a.openEvents(t)

	path := raulPath(t)
	want, _ := readBundle(t, path)
	raw := a.importFile(path)
	var res struct {
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
		Added    int            `json:"added"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(res.Counts, want) || res.Added != total(want) || res.SourceID == 0 {
		t.Fatalf("import answer %s, file counts %v", raw, want)
	}

	d := sub.next("import.done", nil)
	var data struct {
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
		Added    int            `json:"added"`
	}
	if err := json.Unmarshal(d.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.SourceID != res.SourceID || !maps.Equal(data.Counts, res.Counts) || data.Added != res.Added {
		t.Errorf("import.done data %s; the import answered %s", d.Data, raw)
	}
	if d.ID == "" || d.Timestamp.IsZero() || !strings.HasPrefix(d.Signature, "sha256=") || len(d.Signature) != len("sha256=")+64 {
		t.Errorf("delivery id %q timestamp %v signature %q", d.ID, d.Timestamp, d.Signature)
	}
	// Another secret (a subscriber that got a forged or misdirected POST) rejects the body.
	if validSignature([]byte(randomHex(24)), d.Body, d.Signature) || validSignature(sub.secret, append(d.Body, ' '), d.Signature) {
		t.Error("the signature verifies with another secret or another body")
	}
	t.Logf("import.done delivered %v after the event's timestamp", d.Received.Sub(d.Timestamp).Round(time.Microsecond))

	rc := sub.next("resources.changed", func(d delivery) bool { return strings.Contains(string(d.Data), `"source_id":`) })
	var changed struct {
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
	}
	json.Unmarshal(rc.Data, &changed)
	if changed.SourceID != res.SourceID || !maps.Equal(changed.Counts, want) {
		t.Errorf("resources.changed %s", rc.Data)
	}
	if n := sub.rejectedCount(); n != 0 {
		t.Errorf("%d deliveries had a bad signature", n)
	}

	// The page's live stream saw the same import.
	ev := nextSSE(t, stream, "import.done")
	var live struct {
		SourceID int64          `json:"source_id"`
		Counts   map[string]int `json:"counts"`
	}
	json.Unmarshal(ev.Data, &live)
	if live.SourceID != res.SourceID || !maps.Equal(live.Counts, want) {
		t.Errorf("SSE import.done %s", ev.Data)
	}
	var counts map[string]int
	a.call("GET", "/resources/counts", nil, http.StatusOK, &counts)
	if !maps.Equal(counts, want) {
		t.Errorf("stored counts %v, want %v", counts, want)
	}
	deadline := time.Now().Add(waitFor)
	for {
		subs := a.subscriptions()
		if len(subs) == 1 && subs[0].Delivered >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions %+v", subs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSyncDoneWebhook: register, connect the sandbox's demo patient through the real connect flow
// (the test plays the browser at the demo hospital's portal and the Lighthouse), the first sync
// runs by itself, and the subscriber receives a signed sync.done whose counts are what the
// sandbox holds for that patient.
func TestSyncDoneWebhook(t *testing.T) {
	ctx := context.Background()
	sb, err := cli.StartSandbox(ctx, "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	fileCounts, raulID := readBundle(t, raulPath(t))
	patient, ok := sb.Hospital.Patient(raulID)
	if !ok || patient.Resources != total(fileCounts) {
		t.Fatalf("the sandbox's patient %s: %+v (the file has %d resources)", raulID, patient, total(fileCounts))
	}

	a := startApp(t, sb.LighthouseURL)
	sub := newSubscriber(t)
	a.subscribe(sub, "sync.started,sync.done,sync.failed,source.status")
	stream := a.openEvents(t)

	a.call("POST", "/installation", map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"}, http.StatusCreated, nil)
	var started struct {
		ConnectID    string `json:"connect_id"`
		AuthorizeURL string `json:"authorize_url"`
	}
	a.call("POST", "/connect", map[string]string{"provider": cli.DemoProvider}, http.StatusOK, &started)

	// The browser: the Lighthouse, the portal (sign in as the patient, Allow), back through the
	// Lighthouse to the app's one-time listener on 127.0.0.1.
	noFollow := &http.Client{Timeout: waitFor, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	back, err := sandbox.SignIn(ctx, noFollow, started.AuthorizeURL, patient.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noFollow.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Hostname() != "127.0.0.1" {
		t.Fatalf("the Lighthouse answered %d, to %v (%v)", resp.StatusCode, loc, err)
	}
	resp, err = (&http.Client{Timeout: waitFor}).Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "connected") {
		t.Fatalf("the result page: %d %.300s", resp.StatusCode, page)
	}
	var st struct {
		Status      string `json:"status"`
		SourceID    *int64 `json:"source_id"`
		SyncStarted bool   `json:"sync_started"`
	}
	deadline := time.Now().Add(waitFor)
	for {
		a.call("GET", "/connect/"+url.PathEscape(started.ConnectID), nil, http.StatusOK, &st)
		if st.Status != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connect is still pending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Status != "connected" || st.SourceID == nil || !st.SyncStarted {
		t.Fatalf("connect status %+v", st)
	}
	id := *st.SourceID

	type syncData struct {
		SourceID  int64          `json:"source_id"`
		RunID     int64          `json:"run_id"`
		Trigger   string         `json:"trigger"`
		Added     int            `json:"added"`
		Updated   int            `json:"updated"`
		Unchanged int            `json:"unchanged"`
		Counts    map[string]int `json:"counts"`
	}
	forSource := func(d delivery) bool {
		var v syncData
		return json.Unmarshal(d.Data, &v) == nil && v.SourceID == id
	}
	var begun, done syncData
	json.Unmarshal(sub.next("sync.started", forSource).Data, &begun)
	d := sub.next("sync.done", forSource)
	json.Unmarshal(d.Data, &done)
	if begun.Trigger != "connect" || begun.RunID == 0 || done.RunID != begun.RunID {
		t.Errorf("sync.started %+v, sync.done %+v", begun, done)
	}
	if !maps.Equal(done.Counts, patient.Counts) || done.Added != patient.Resources || done.Updated != 0 || done.Unchanged != 0 {
		t.Errorf("sync.done %s; the sandbox holds %d resources for the patient: %v", d.Data, patient.Resources, patient.Counts)
	}
	if validSignature([]byte(randomHex(24)), d.Body, d.Signature) {
		t.Error("the sync.done signature verifies with another secret")
	}
	t.Logf("sync.done delivered %v after the event's timestamp", d.Received.Sub(d.Timestamp).Round(time.Microsecond))
	if n := sub.rejectedCount(); n != 0 {
		t.Errorf("%d deliveries had a bad signature", n)
	}

	// What the app stored and shows agrees.
	var counts map[string]int
	a.call("GET", "/resources/counts?source="+jsonInt(id), nil, http.StatusOK, &counts)
	if !maps.Equal(counts, patient.Counts) {
		t.Errorf("stored %v, want %v", counts, patient.Counts)
	}
	var runs []struct {
		ID      int64  `json:"id"`
		Trigger string `json:"trigger"`
		Status  string `json:"status"`
		Added   int    `json:"added"`
	}
	a.call("GET", "/sources/"+jsonInt(id)+"/sync-runs", nil, http.StatusOK, &runs)
	if len(runs) != 1 || runs[0].ID != done.RunID || runs[0].Status != "ok" || runs[0].Trigger != "connect" || runs[0].Added != patient.Resources {
		t.Errorf("sync runs %+v", runs)
	}
	// And the page's live stream had the same sync.
	ev := nextSSE(t, stream, "sync.done")
	var live syncData
	json.Unmarshal(ev.Data, &live)
	if live.RunID != done.RunID || !maps.Equal(live.Counts, patient.Counts) {
		t.Errorf("SSE sync.done %s", ev.Data)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestSubscribeNeedsToken: the guard refuses a hub request without the API token (also a wrong
// one, or one in the query string); the callback is never contacted and nothing is subscribed.
func TestSubscribeNeedsToken(t *testing.T) {
	a := startApp(t, "")
	sub := newSubscriber(t)
	form := url.Values{
		"hub.mode": {"subscribe"}, "hub.callback": {sub.callback}, "hub.events": {"import.done"},
		"hub.secret": {string(sub.secret)},
	}
	for _, tc := range []struct {
		name  string
		query string
		auth  string
	}{
		{"no token", "", ""},
		{"wrong token", "", "Bearer " + strings.Repeat("0", 64)},
		{"token in the query", "?access_token=" + a.token + "&token=" + a.token, ""},
		{"token without Bearer", "", a.token},
	} {
		req, _ := http.NewRequest("POST", a.url+"/api/v1/hub"+tc.query, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `"unauthorized"`) {
			t.Errorf("%s: HTTP %d %s", tc.name, resp.StatusCode, b)
		}
	}
	// Listing subscriptions needs the token too.
	if resp, _ := a.request("GET", "/hub/subscriptions", "", nil, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /hub/subscriptions without the token: %d", resp.StatusCode)
	}
	if subs := a.subscriptions(); len(subs) != 0 {
		t.Errorf("subscriptions %+v", subs)
	}
	// With the token the same form is accepted (so the refusals above were about the token).
	a.subscribe(sub, "import.done")
	sub.mu.Lock()
	n := len(sub.intents)
	sub.mu.Unlock()
	if n != 1 {
		t.Errorf("the callback was contacted %d times, want once (for the accepted request)", n)
	}
}
