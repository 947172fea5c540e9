package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/guard"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

const secretA = "a-random-secret-for-subscriber-A-0123456789"

func TestSubscribeVerifyAndSignedDelivery(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	code, body := e.hubPost(subscribeForm(s.url, "import.done, sync.done", s.secret))
	if code != http.StatusAccepted || body["state"] != StatePending {
		t.Fatalf("subscribe: %d %v", code, body)
	}
	q := s.nextVerify(t)
	if q.Get("hub.mode") != "subscribe" || q.Get("hub.topic") != "import.done,sync.done" || q.Get("hub.lease_seconds") != "86400" {
		t.Fatalf("verification query %v", q)
	}
	ch, err := base64.RawURLEncoding.DecodeString(q.Get("hub.challenge"))
	if err != nil || len(ch) < 16 {
		t.Fatalf("challenge %q carries fewer than 128 bits", q.Get("hub.challenge"))
	}
	sub := e.waitState(s.url, StateActive)
	if sub.LeaseExpires == nil || sub.LeaseSeconds != 86400 || len(sub.Events) != 2 {
		t.Fatalf("active subscription %+v", sub)
	}

	e.bus.Publish(events.TopicSourceStatus, events.SourceStatus{SourceID: 1, Status: "ok"}) // not subscribed
	e.bus.Publish(events.TopicImportDone, map[string]any{"source_id": 7, "counts": map[string]int{"Observation": 3}})
	d := s.next(t)
	ev, data := decodeEvent(t, d.body)
	if ev.Event != events.TopicImportDone || ev.ID == "" || ev.Timestamp.IsZero() || data["source_id"] != 7.0 {
		t.Fatalf("delivered %s", d.body)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(d.body, &raw)
	for _, k := range []string{"id", "event", "timestamp", "data"} {
		if _, ok := raw[k]; !ok || len(raw) != 4 {
			t.Fatalf("payload keys %v, want id, event, timestamp, data", raw)
		}
	}
	if !strings.HasPrefix(d.sig, "sha256=") || !d.valid {
		t.Fatalf("signature %q valid=%v", d.sig, d.valid)
	}
	if d.header.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", d.header.Get("Content-Type"))
	}
	// A subscriber holding a different secret rejects the delivery.
	if VerifySignature([]byte("some-other-secret-0123456789"), d.body, d.sig) {
		t.Fatal("a wrong secret verified the signature")
	}
	// A tampered body is rejected too.
	if VerifySignature([]byte(s.secret), append([]byte(" "), d.body...), d.sig) {
		t.Fatal("a changed body verified")
	}
	if s.postCount() != 1 {
		t.Fatalf("%d deliveries, want 1 (source.status is not subscribed)", s.postCount())
	}
}

func TestNeverSHA1(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	secret := []byte(secretA)
	m := hmac.New(sha1.New, secret)
	m.Write(body)
	sha1Header := "sha1=" + hex.EncodeToString(m.Sum(nil))
	if VerifySignature(secret, body, sha1Header) {
		t.Fatal("a correct SHA-1 signature was accepted")
	}
	sig := Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256= and 64 hex digits", sig)
	}
	if !VerifySignature(secret, body, sig) {
		t.Fatal("own signature does not verify")
	}
}

// TestVerificationOutcomes: only a 2xx whose body is exactly the challenge activates.
func TestVerificationOutcomes(t *testing.T) {
	elsewhere := newSubscriber(t, "unused-secret-0123456789")
	cases := []struct {
		name   string
		answer func(q url.Values) (int, string)
		want   string
	}{
		{"exact echo", func(q url.Values) (int, string) { return 200, q.Get("hub.challenge") }, StateActive},
		{"no echo", func(q url.Values) (int, string) { return 200, "ok" }, StateFailed},
		{"empty body", func(q url.Values) (int, string) { return 200, "" }, StateFailed},
		{"echo plus newline", func(q url.Values) (int, string) { return 200, q.Get("hub.challenge") + "\n" }, StateFailed},
		{"echo plus bytes", func(q url.Values) (int, string) { return 200, q.Get("hub.challenge") + "x" }, StateFailed},
		{"prefix of echo", func(q url.Values) (int, string) { c := q.Get("hub.challenge"); return 200, c[:len(c)-1] }, StateFailed},
		{"echo with 404", func(q url.Values) (int, string) { return 404, q.Get("hub.challenge") }, StateFailed},
		{"echo with 500", func(q url.Values) (int, string) { return 500, q.Get("hub.challenge") }, StateFailed},
		{"redirect to an echoing server", func(q url.Values) (int, string) { return 302, elsewhere.url + "?" + q.Encode() }, StateFailed},
	}
	e := newEnv(t)
	var subs []*hook
	for i, c := range cases {
		s := newSubscriber(t, "secret-for-case-"+strconv.Itoa(i)+"-0123456789")
		s.setVerify(c.answer)
		subs = append(subs, s)
		if code, body := e.hubPost(subscribeForm(s.url, "import.done", s.secret)); code != http.StatusAccepted {
			t.Fatalf("%s: subscribe %d %v", c.name, code, body)
		}
	}
	for i, c := range cases {
		got := e.waitSub(subs[i].url, "a verdict", func(s Subscription) bool { return s.State != StatePending })
		if got.State != c.want {
			t.Errorf("%s: state %s, want %s (%s)", c.name, got.State, c.want, got.LastError)
		}
	}
	if elsewhere.checkCount() != 0 {
		t.Fatal("the hub followed a redirect during verification")
	}
	// A failed subscription receives nothing: after the active one got the event, none of the
	// failed ones has (dispatch handles every subscription before the next event).
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 1})
	subs[0].next(t)
	for i, s := range subs[1:] {
		if s.postCount() != 0 {
			t.Errorf("%s: a subscription that was never confirmed got a delivery", cases[i+1].name)
		}
	}
	// Each verification used its own challenge.
	seen := map[string]bool{}
	for _, s := range subs {
		s.mu.Lock()
		checks := append([]url.Values(nil), s.checks...)
		s.mu.Unlock()
		for _, q := range checks {
			if seen[q.Get("hub.challenge")] {
				t.Fatal("a challenge was used twice")
			}
			seen[q.Get("hub.challenge")] = true
		}
	}
}

func TestCheckCallback(t *testing.T) {
	cases := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/hook", true},
		{"http://127.9.9.9:8080/hook", true},
		{"http://[::1]:8080/hook", true},
		{"http://localhost:8080/hook?x=1", true},
		{"http://LOCALHOST/hook", true},
		{"https://example.com/hook", true},
		{"https://192.168.1.20/hook", true},
		{"http://192.168.1.20/hook", false},
		{"http://10.0.0.1:8080/hook", false},
		{"http://0.0.0.0:8080/hook", false},
		{"http://example.com/hook", false},
		{"http://127.0.0.1.nip.io/hook", false},
		{"http://localhost.evil.test/hook", false},
		{"ftp://127.0.0.1/hook", false},
		{"ws://127.0.0.1/hook", false},
		{"http://user:pw@127.0.0.1/hook", false},
		{"http://127.0.0.1/hook#frag", false},
		{"/relative/hook", false},
		{"", false},
		{"https://" + strings.Repeat("a", MaxCallback) + ".test/", false},
	}
	for _, c := range cases {
		_, err := CheckCallback(c.url)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

func TestNonLoopbackHTTPRefusedAtSubscribe(t *testing.T) {
	e := newEnv(t)
	for _, cb := range []string{"http://192.168.1.20/hook", "http://example.com/hook"} {
		code, body := e.hubPost(subscribeForm(cb, "import.done", secretA))
		if code != http.StatusBadRequest {
			t.Fatalf("%s: %d %v", cb, code, body)
		}
	}
	if n := len(e.hub.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions after refusals", n)
	}
}

// TestLocalhostDialsOnlyLoopback: an http callback is only ever connected to on a loopback
// address, whatever the name resolves to.
func TestLocalhostDialsOnlyLoopback(t *testing.T) {
	plain, _ := newClients(nil)
	_, err := plain.Get("http://192.0.2.1:9/")
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("plain client dialled a non-loopback address: %v", err)
	}
}

func TestHTTPSCallbackAccepted(t *testing.T) {
	s := newSubscriber(t, secretA)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(tlsSrv.Close)
	s.url = tlsSrv.URL + "/hook"
	e := newEnv(t, func(c *Config) { c.RootCAs = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs })
	e.activate(s, "sync.done")
	e.bus.Publish(events.TopicSyncDone, events.SyncDone{SourceID: 3, Added: 2})
	d := s.next(t)
	if !d.valid {
		t.Fatal("bad signature over https")
	}
}

func TestSecretRules(t *testing.T) {
	e := newEnv(t)
	a := newSubscriber(t, secretA)
	e.activate(a, "import.done")
	cases := []struct {
		name   string
		secret string
		want   int
	}{
		{"missing", "", http.StatusBadRequest},
		{"200 bytes", strings.Repeat("s", 200), http.StatusBadRequest},
		{"500 bytes", strings.Repeat("s", 500), http.StatusBadRequest},
		{"too short", "short", http.StatusBadRequest},
		{"used by another subscription", secretA, http.StatusConflict},
		{"199 bytes", randomText(199), http.StatusAccepted},
		// Issue 14.19: long enough but guessable.
		{"one character repeated", strings.Repeat("t", 64), http.StatusBadRequest},
		{"a sequence", "abcdefghijklmnopqrstuvwxyz", http.StatusBadRequest},
		{"two characters in turn", strings.Repeat("ab", 20), http.StatusBadRequest},
	}
	for _, c := range cases {
		s := newSubscriber(t, c.secret)
		code, body := e.hubPost(subscribeForm(s.url, "import.done", c.secret))
		if code != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.want)
		}
	}
	// The same subscriber renewing with its own secret is not a duplicate.
	if code, body := e.hubPost(subscribeForm(a.url, "import.done", secretA)); code != http.StatusAccepted {
		t.Fatalf("renewal with the same secret: %d %v", code, body)
	}
	// A secret waiting for verification is taken too.
	b := newSubscriber(t, "pending-secret-0123456789")
	block := make(chan struct{})
	b.setVerify(func(q url.Values) (int, string) { <-block; return 200, q.Get("hub.challenge") })
	if code, _ := e.hubPost(subscribeForm(b.url, "import.done", b.secret)); code != http.StatusAccepted {
		t.Fatal("subscribe b")
	}
	c := newSubscriber(t, b.secret)
	if code, _ := e.hubPost(subscribeForm(c.url, "import.done", b.secret)); code != http.StatusConflict {
		t.Fatalf("a pending subscription's secret was accepted again: %d", code)
	}
	close(block)
}

func TestOtherParameters(t *testing.T) {
	e := newEnv(t)
	cb := "http://127.0.0.1:1/hook"
	cases := []struct {
		name string
		form url.Values
		want int
	}{
		{"unknown event", subscribeForm(cb, "import.done,patient-open", secretA), http.StatusBadRequest},
		{"no events", subscribeForm(cb, " , ", secretA), http.StatusBadRequest},
		{"bad lease", subscribeForm(cb, "import.done", secretA, "hub.lease_seconds", "-5"), http.StatusBadRequest},
		{"lease not a number", subscribeForm(cb, "import.done", secretA, "hub.lease_seconds", "1d"), http.StatusBadRequest},
		{"bad include", subscribeForm(cb, "import.done", secretA, "hub.include", "everything"), http.StatusBadRequest},
		{"bad mode", url.Values{"hub.mode": {"publish"}, "hub.callback": {cb}}, http.StatusBadRequest},
		{"repeated parameter", url.Values{"hub.mode": {"subscribe"}, "hub.callback": {cb, cb}, "hub.events": {"import.done"}, "hub.secret": {secretA}}, http.StatusBadRequest},
		{"unsubscribe unknown", url.Values{"hub.mode": {"unsubscribe"}, "hub.callback": {cb}}, http.StatusNotFound},
	}
	for _, c := range cases {
		if code, body := e.hubPost(c.form); code != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.want)
		}
	}
	r := httptest.NewRequest("POST", httpkit.Prefix+"/hub", strings.NewReader(`{"hub.mode":"subscribe"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	if w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d", w.Code)
	}
}

func TestKeyringUnavailableRefusesSubscribing(t *testing.T) {
	e := newEnv(t)
	e.secrets.SetUnavailable(true)
	s := newSubscriber(t, secretA)
	code, body := e.hubPost(subscribeForm(s.url, "import.done", s.secret))
	if code != http.StatusServiceUnavailable || body["error"].(map[string]any)["code"] != "keyring_unavailable" {
		t.Fatalf("%d %v", code, body)
	}
	msg := body["error"].(map[string]any)["message"].(string)
	if !strings.Contains(msg, "keyring") || strings.Contains(msg, secretA) {
		t.Fatalf("message %q", msg)
	}
	if n := len(e.hub.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions kept", n)
	}
	var rows int
	e.db.Read.QueryRow(`SELECT count(*) FROM hub_subscriptions`).Scan(&rows)
	if rows != 0 || s.checkCount() != 0 {
		t.Fatalf("rows %d, verification requests %d", rows, len(s.checks))
	}
}

// TestSubscribingNeedsTheToken puts the routes behind the serve-mode guard, configured the way
// serve mode wires it.
func TestSubscribingNeedsTheToken(t *testing.T) {
	e := newEnv(t)
	srv, token := guarded(t, e)
	s := newSubscriber(t, secretA)
	form := subscribeForm(s.url, "import.done", s.secret).Encode()
	for _, auth := range []string{"", "Bearer wrong-token", "Bearer " + token} {
		req, _ := http.NewRequest("POST", srv.URL+httpkit.Prefix+"/hub", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusUnauthorized
		if auth == "Bearer "+token {
			want = http.StatusAccepted
		} else if n := len(e.hub.Subscriptions()); n != 0 {
			t.Fatalf("an unauthenticated request created %d subscriptions", n)
		}
		if resp.StatusCode != want {
			t.Fatalf("auth %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	e.waitState(s.url, StateActive)
	// The token in the query string does not count either.
	resp, err := http.Get(srv.URL + httpkit.Prefix + "/hub/subscriptions?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token in query: %d", resp.StatusCode)
	}
}

func TestLeases(t *testing.T) {
	exp := time.Time{}
	e := newEnv(t, func(c *Config) { c.TokenExpiry = func() time.Time { return exp } })
	cases := []struct {
		ask, want string
	}{
		{"", "86400"},
		{"60", "60"},
		{"999999999999", "604800"},
		{"604801", "604800"},
	}
	for i, c := range cases {
		s := newSubscriber(t, "lease-secret-"+strconv.Itoa(i)+"-0123456789")
		extra := []string{}
		if c.ask != "" {
			extra = []string{"hub.lease_seconds", c.ask}
		}
		code, body := e.hubPost(subscribeForm(s.url, "import.done", s.secret, extra...))
		if code != http.StatusAccepted || body["lease_seconds"] != mustFloat(c.want) {
			t.Fatalf("ask %q: %d %v", c.ask, code, body)
		}
		if got := s.nextVerify(t).Get("hub.lease_seconds"); got != c.want {
			t.Errorf("ask %q: verification says %s, want %s", c.ask, got, c.want)
		}
		e.waitState(s.url, StateActive)
	}
	// Never beyond the API token's expiry.
	exp = e.clock.Now().Add(time.Hour)
	s := newSubscriber(t, "token-capped-secret-0123456789")
	e.hubPost(subscribeForm(s.url, "import.done", s.secret, "hub.lease_seconds", "86400"))
	if got := s.nextVerify(t).Get("hub.lease_seconds"); got != "3600" && got != "3599" {
		t.Fatalf("lease %s beyond the token's expiry in an hour", got)
	}
}

func mustFloat(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }

func TestExpiredLeaseStopsDeliveries(t *testing.T) {
	e := newEnv(t)
	short := newSubscriber(t, "short-lease-secret-0123456789")
	long := newSubscriber(t, "long-lease-secret-0123456789")
	e.activate(short, "sync.done", "hub.lease_seconds", "60")
	e.activate(long, "sync.done")
	e.bus.Publish(events.TopicSyncDone, events.SyncDone{SourceID: 1})
	short.next(t)
	long.next(t)

	e.clock.Advance(61 * time.Second)
	e.bus.Publish(events.TopicSyncDone, events.SyncDone{SourceID: 2})
	long.next(t) // the event has been dispatched to every subscription
	if short.postCount() != 1 {
		t.Fatalf("the expired subscription got %d deliveries, want 1", short.postCount())
	}
	got := e.waitState(short.url, StateExpired)
	if got.LeaseExpires == nil || got.LeaseExpires.After(e.clock.Now()) {
		t.Fatalf("expired subscription %+v", got)
	}
	e.waitSaved(got.ID, StateExpired)
	for _, v := range e.secrets.Values() {
		if v == short.secret {
			t.Fatal("an expired subscription's secret is still in the keyring")
		}
	}
}

func TestUnsubscribeIsVerified(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	e.activate(s, "import.done")
	s.nextVerify(t)
	unsub := url.Values{"hub.mode": {"unsubscribe"}, "hub.callback": {s.url}}

	// The subscriber does not confirm: nothing changes.
	s.setVerify(func(url.Values) (int, string) { return 404, "" })
	if code, body := e.hubPost(unsub); code != http.StatusAccepted {
		t.Fatalf("unsubscribe: %d %v", code, body)
	}
	if q := s.nextVerify(t); q.Get("hub.mode") != "unsubscribe" || q.Get("hub.challenge") == "" {
		t.Fatalf("unsubscribe verification %v", q)
	}
	got := e.waitSub(s.url, "the refusal recorded", func(x Subscription) bool { return x.LastError != "" })
	if got.State != StateActive {
		t.Fatalf("state %s after an unconfirmed unsubscribe", got.State)
	}

	// The subscriber confirms: the subscription and its secret are gone.
	s.setVerify(func(q url.Values) (int, string) { return 200, q.Get("hub.challenge") })
	e.hubPost(unsub)
	e.waitSub(s.url, "removal", func(x Subscription) bool { return x.ID == "" })
	e.waitSaved(got.ID, "") // the row is gone
	if len(e.secrets.Values()) != 0 {
		t.Fatal("the secret is still in the keyring")
	}
}

func TestRetriesThenDeadLetter(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	e.activate(s, "import.done")
	s.setPost(func() int { return 500 })
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 9})
	var ids []string
	for range 3 {
		ev, _ := decodeEvent(t, s.next(t).body)
		ids = append(ids, ev.ID)
	}
	got := e.waitState(s.url, StateDead)
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("retries carried different ids %v", ids)
	}
	if got.Failures != 3 || len(got.DeadLetters) != 1 || got.DeadLetters[0].EventID != ids[0] || got.DeadLetters[0].Attempts != 3 {
		t.Fatalf("dead subscription %+v", got)
	}
	if !strings.Contains(got.LastError, "500") {
		t.Fatalf("last error %q", got.LastError)
	}
	// Dead: no more deliveries.
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 10})
	control := newSubscriber(t, "control-secret-0123456789")
	e.activate(control, "import.done")
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 11})
	control.next(t)
	if s.postCount() != 3 {
		t.Fatalf("%d posts to a dead subscription, want 3", s.postCount())
	}
	// Kept and visible after a restart, with its dead letter.
	e.stop()
	e.start()
	got = e.sub(s.url)
	if got.State != StateDead || len(got.DeadLetters) != 1 || got.DeadLetters[0].EventID != ids[0] {
		t.Fatalf("after restart %+v", got)
	}
	// Subscribing again revives it.
	s.setPost(func() int { return 200 })
	e.activate(s, "import.done")
}

func TestGoneEndsSubscription(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	e.activate(s, "import.done")
	s.setPost(func() int { return http.StatusGone })
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 1})
	s.next(t)
	if got := e.waitState(s.url, StateDead); !strings.Contains(got.LastError, "410") {
		t.Fatalf("%+v", got)
	}
	if s.postCount() != 1 {
		t.Fatalf("410 was retried: %d posts", s.postCount())
	}
}

func TestDeliveryRedirectNotFollowed(t *testing.T) {
	e := newEnv(t)
	target := newSubscriber(t, secretA)
	s := newSubscriber(t, "redirecting-secret-0123456789")
	e.activate(s, "import.done")
	s.setPost(func() int { return http.StatusTemporaryRedirect })
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 1})
	got := e.waitState(s.url, StateDead)
	if !strings.Contains(got.LastError, "redirect") {
		t.Fatalf("%+v", got)
	}
	if target.postCount() != 0 || s.postCount() != 3 {
		t.Fatalf("posts: redirecting %d, target %d", s.postCount(), target.postCount())
	}
}

func TestResourceInclusionNeedsBothFlags(t *testing.T) {
	var fetched []events.ResourceRef
	e := newEnv(t, func(c *Config) {
		c.Resource = func(ctx context.Context, ref events.ResourceRef) (json.RawMessage, error) {
			fetched = append(fetched, ref)
			return json.RawMessage(`{"resourceType":"` + ref.Type + `","id":"` + ref.ID + `"}`), nil
		}
	})
	cases := []struct {
		name           string
		include, allow bool
	}{
		{"neither", false, false},
		{"asked, not allowed", true, false},
		{"allowed, not asked", false, true},
		{"asked and allowed", true, true},
	}
	var subs []*hook
	for i, c := range cases {
		s := newSubscriber(t, "inclusion-secret-"+strconv.Itoa(i)+"-0123456789")
		subs = append(subs, s)
		var extra []string
		if c.include {
			extra = []string{"hub.include", "resource"}
		}
		info := e.activate(s, "resources.changed", extra...)
		if info.IncludeResources != c.include || info.AllowedResources {
			t.Fatalf("%s: %+v", c.name, info)
		}
		if c.allow {
			w := e.do("PATCH", "/hub/subscriptions/"+info.ID, `{"allow_resources": true}`)
			if w.Code != 200 || !strings.Contains(w.Body.String(), `"allowed_resources":true`) {
				t.Fatalf("%s: patch %d %s", c.name, w.Code, w.Body)
			}
		}
	}
	e.bus.Publish(events.TopicResourcesChanged, events.ResourcesChanged{SourceID: 2, Added: 1, Counts: map[string]int{"Observation": 1},
		Refs: []events.ResourceRef{{Type: "Observation", ID: "obs-1", SourceID: 2}}})
	for i, c := range cases {
		_, data := decodeEvent(t, subs[i].next(t).body)
		res, has := data["resources"]
		if has != (c.include && c.allow) {
			t.Errorf("%s: resources present = %v", c.name, has)
		}
		if data["refs"] == nil {
			t.Errorf("%s: refs missing", c.name)
		}
		if has {
			list := res.([]any)
			if len(list) != 1 || list[0].(map[string]any)["id"] != "obs-1" {
				t.Errorf("%s: resources %v", c.name, res)
			}
		}
	}
	if len(fetched) != 1 {
		t.Fatalf("resources fetched %d times, want once (only for the allowed subscription)", len(fetched))
	}
}

func TestSubscriptionsSurviveRestartWithoutSecretInSQLite(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	info := e.activate(s, "import.done", "hub.include", "resource")
	e.do("PATCH", "/hub/subscriptions/"+info.ID, `{"allow_resources": true}`)

	// A pending one at shutdown becomes failed at the next start.
	p := newSubscriber(t, "pending-at-shutdown-0123456789")
	hold := make(chan struct{})
	p.setVerify(func(q url.Values) (int, string) { <-hold; return 200, q.Get("hub.challenge") })
	e.hubPost(subscribeForm(p.url, "import.done", p.secret))
	p.nextVerify(t)
	e.stop()
	close(hold)

	rows, err := e.db.Read.Query(`SELECT * FROM hub_subscriptions`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		for i, v := range vals {
			if str, ok := v.(string); ok && (strings.Contains(str, secretA) || strings.Contains(str, p.secret)) {
				t.Fatalf("column %s holds the secret", cols[i])
			}
		}
	}
	rows.Close()
	if n != 2 {
		t.Fatalf("%d rows", n)
	}

	e.start()
	got := e.sub(s.url)
	if got.ID != info.ID || got.State != StateActive || !got.IncludeResources || !got.AllowedResources || got.LeaseExpires == nil {
		t.Fatalf("after restart %+v", got)
	}
	if pg := e.sub(p.url); pg.State != StateFailed {
		t.Fatalf("pending at shutdown is %s", pg.State)
	}
	e.bus.Publish(events.TopicImportDone, map[string]int{"source_id": 4})
	if d := s.next(t); !d.valid {
		t.Fatal("after restart the delivery is not signed with the subscriber's secret")
	}
}

func TestListAndDelete(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	info := e.activate(s, "import.done,sync.failed")
	w := e.do("GET", "/hub/subscriptions", "")
	if w.Code != 200 || strings.Contains(w.Body.String(), secretA) {
		t.Fatalf("list %d %s", w.Code, w.Body)
	}
	var list []Subscription
	json.Unmarshal(w.Body.Bytes(), &list)
	if len(list) != 1 || list[0].ID != info.ID || list[0].State != StateActive || list[0].Callback != s.url {
		t.Fatalf("list %+v", list)
	}
	for _, k := range []string{`"id"`, `"callback"`, `"events"`, `"state"`, `"lease_expires"`, `"include_resources"`, `"allowed_resources"`, `"failures"`} {
		if !strings.Contains(w.Body.String(), k) {
			t.Errorf("list lacks %s", k)
		}
	}
	if w := e.do("DELETE", "/hub/subscriptions/nope", ""); w.Code != 404 {
		t.Fatalf("delete unknown: %d", w.Code)
	}
	if w := e.do("PATCH", "/hub/subscriptions/"+info.ID, `{"colour": "red"}`); w.Code != 400 {
		t.Fatalf("patch with an unknown field: %d", w.Code)
	}
	if w := e.do("DELETE", "/hub/subscriptions/"+info.ID, ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if len(e.hub.Subscriptions()) != 0 || len(e.secrets.Values()) != 0 {
		t.Fatal("subscription or secret left after delete")
	}
	// The subscriber is told (WebSub "denied"), best effort.
	select {
	case q := <-s.denied:
		if q.Get("hub.topic") != "import.done,sync.failed" || q.Get("hub.reason") == "" {
			t.Fatalf("denied notice %v", q)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no denied notice")
	}
}

// guarded serves the env's API behind the real serve-mode guard, wired as the lead wires it.
func guarded(t *testing.T, e *env) (*httptest.Server, string) {
	t.Helper()
	token, err := guard.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	h, err := guard.Wrap(e.handler, guard.Config{
		Token: token, Port: port,
		Open: func(r *http.Request) bool {
			return r.URL.Path == httpkit.Prefix+"/health"
		},
		FormPaths: []string{httpkit.Prefix + "/hub"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, token
}

// TestCallbackQueryKept: WebSub keeps the callback's own query string, for verification (the hub
// parameters are appended) and for deliveries.
func TestCallbackQueryKept(t *testing.T) {
	e := newEnv(t)
	s := newSubscriber(t, secretA)
	s.url += "?user=me&hub.mode=mine"
	e.activate(s, "import.done")
	s.mu.Lock()
	q := s.checks[0]
	s.mu.Unlock()
	if q.Get("user") != "me" || q["hub.mode"][0] != "mine" || q["hub.mode"][1] != "subscribe" || q.Get("hub.challenge") == "" {
		t.Fatalf("verification query %v", q)
	}
	e.bus.Publish(events.TopicImportDone, 1)
	if d := s.next(t); !d.valid {
		t.Fatal("delivery to a callback with a query")
	}
}

// TestSlowCallbackQueueDropsOldest: a callback that stalls keeps the newest QueueSize events.
func TestSlowCallbackQueueDropsOldest(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.QueueSize = 2 })
	slow := newSubscriber(t, secretA)
	control := newSubscriber(t, "control-secret-0123456789")
	e.activate(slow, "import.done")
	e.activate(control, "sync.done")
	release := make(chan struct{})
	inPost := make(chan struct{}, 8)
	slow.setPost(func() int { inPost <- struct{}{}; <-release; return 204 })

	e.bus.Publish(events.TopicImportDone, map[string]int{"n": 1})
	<-inPost // event 1 is being delivered; the queue is empty
	for n := 2; n <= 5; n++ {
		e.bus.Publish(events.TopicImportDone, map[string]int{"n": n})
	}
	e.bus.Publish(events.TopicSyncDone, events.SyncDone{SourceID: 1}) // dispatched after events 2..5
	control.next(t)
	close(release)
	var got []int
	for range 3 {
		_, data := decodeEvent(t, slow.next(t).body)
		got = append(got, int(data["n"].(float64)))
	}
	if got[0] != 1 || got[1] != 4 || got[2] != 5 {
		t.Fatalf("delivered %v, want 1, 4, 5", got)
	}
	if d := e.sub(slow.url).Dropped; d != 2 {
		t.Fatalf("dropped %d, want 2", d)
	}
}

// randomText is n characters of random hex.
func randomText(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
