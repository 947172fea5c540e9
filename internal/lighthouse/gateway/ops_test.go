package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func withMailer(m Mailer) envOption { return func(c *Config) { c.Mailer = m } }

func deliver(t *testing.T, g *Gateway) int {
	t.Helper()
	n, err := g.deliverOutbox(context.Background())
	if err != nil {
		t.Fatalf("deliverOutbox: %v", err)
	}
	return n
}

// Reaching 80% and 100% of a limit sends one message each to the administrator; reconnects and
// repeated deliveries send nothing more.
func TestNotificationsSentOncePerThreshold(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		smtpd := newSMTPServer(t)
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"),
			withMailer(&SMTPMailer{Addr: smtpd.addr, From: "lighthouse@example.net"}))
		ada := e.register("Ada Lovelace", "ada@example.org")
		for i := 1; i <= 7; i++ {
			e.connect(ada, "demo", connectBody(t, userKey(i), 50000))
		}
		if n := deliver(t, e.g); n != 0 || len(smtpd.received()) != 0 {
			t.Fatalf("below 80%%: %d sent", n)
		}
		e.connect(ada, "demo", connectBody(t, userKey(8), 50000))
		e.connect(ada, "demo", connectBody(t, userKey(8), 50000))
		if n := deliver(t, e.g); n != 1 {
			t.Fatalf("at 80%%: %d sent, want 1", n)
		}
		e.connect(ada, "demo", connectBody(t, userKey(9), 50000))
		e.connect(ada, "demo", connectBody(t, userKey(10), 50000))
		e.connect(ada, "demo", connectBody(t, userKey(3), 50000))
		if r := e.connect(ada, "demo", connectBody(t, userKey(11), 50000)); r.status != http.StatusForbidden {
			t.Fatalf("11th user: %d", r.status)
		}
		if n := deliver(t, e.g) + deliver(t, e.g); n != 1 {
			t.Fatalf("at 100%%: %d sent, want 1", n)
		}
		msgs := smtpd.received()
		if len(msgs) != 2 {
			t.Fatalf("%d messages, want 2", len(msgs))
		}
		for i, want := range []struct{ subject, count string }{
			{"Fasten Lighthouse: Demo Hospital is near its user limit (8 of 10)", "8 of its 10 users for Demo Hospital"},
			{"Fasten Lighthouse: Demo Hospital user limit reached (10 of 10)", "limit of 10 users for Demo Hospital: 10 people"},
		} {
			m := msgs[i]
			text := decodeMail(t, m.data)
			if m.to != "ada@example.org" || m.from != "lighthouse@example.net" {
				t.Errorf("message %d: from %s to %s", i, m.from, m.to)
			}
			if !strings.Contains(text, "Subject: "+want.subject) {
				t.Errorf("message %d subject: %s", i, text)
			}
			for _, part := range []string{want.count, "Hello Ada Lovelace,", "What you can do:", "delete people", "raise the limit", ada.id} {
				if !strings.Contains(text, part) {
					t.Errorf("message %d lacks %q:\n%s", i, part, text)
				}
			}
			for k := 1; k <= 11; k++ {
				if strings.Contains(m.data, userKey(k)) {
					t.Errorf("message %d holds user key %d", i, k)
				}
			}
		}
		rows, err := e.g.store.outboxAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.SentAt == "" || r.Attempts != 1 {
				t.Errorf("row %+v not marked sent once", r)
			}
		}
		if got := counterValue(t, scrape(t, e.url+"/metrics"), "lighthouse_notifications_total", map[string]string{"outcome": "sent"}); got != 2 {
			t.Errorf("notifications sent metric %v, want 2", got)
		}
	})
}

// decodeMail undoes the quoted-printable body and the encoded subject for assertions.
func decodeMail(t *testing.T, data string) string {
	t.Helper()
	data = strings.ReplaceAll(data, "=\r\n", "")
	data = strings.ReplaceAll(data, "=3D", "=")
	data = strings.ReplaceAll(data, "\r\n", "\n")
	if i := strings.Index(data, "Subject: =?utf-8?q?"); i >= 0 {
		end := strings.Index(data[i:], "?=\n")
		enc := data[i+len("Subject: =?utf-8?q?") : i+end]
		dec := strings.NewReplacer("_", " ", "=3A", ":", "=28", "(", "=29", ")").Replace(enc)
		data = data[:i] + "Subject: " + dec + data[i+end+2:]
	}
	return data
}

// An SMTP outage delays a notification, with backoff, and it is delivered once the server is
// back; a temporary refusal at the end of DATA is not taken as delivered.
func TestNotificationOutageDelaysThenDelivers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		smtpd := newSMTPServer(t)
		smtpd.set(func(s *smtpServer) { s.down = true })
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"),
			withMailer(&SMTPMailer{Addr: smtpd.addr, From: "lighthouse@example.net", Timeout: 5 * time.Second}))
		ada := e.register("Ada", "ada@example.org")
		for i := 1; i <= 3; i++ {
			e.connect(ada, "small", connectBody(t, userKey(i), 50000)) // limit 3: one "reached"
		}
		if n := deliver(t, e.g); n != 0 {
			t.Fatalf("delivered %d during the outage", n)
		}
		if c := smtpd.connections(); c != 1 {
			t.Fatalf("%d connection attempts, want 1", c)
		}
		// Before the backoff (30 s) ends nothing is tried.
		e.clock.Advance(20 * time.Second)
		deliver(t, e.g)
		if c := smtpd.connections(); c != 1 {
			t.Fatalf("retried before the backoff: %d connections", c)
		}
		// The server answers, but refuses the message for now: still pending, next wait 60 s.
		smtpd.set(func(s *smtpServer) { s.down, s.refuse = false, true })
		e.clock.Advance(11 * time.Second)
		if n := deliver(t, e.g); n != 0 {
			t.Fatalf("a refused message counted as delivered")
		}
		rows, _ := e.g.store.outboxAll(context.Background())
		if len(rows) != 1 || rows[0].SentAt != "" || rows[0].Attempts != 2 || !strings.Contains(rows[0].LastError, "451") {
			t.Fatalf("after refusal: %+v", rows)
		}
		smtpd.set(func(s *smtpServer) { s.refuse = false })
		e.clock.Advance(59 * time.Second)
		if n := deliver(t, e.g); n != 0 {
			t.Fatalf("retried before the doubled backoff")
		}
		e.clock.Advance(2 * time.Second)
		if n := deliver(t, e.g); n != 1 || len(smtpd.received()) != 1 {
			t.Fatalf("after the outage: %d sent, %d received", n, len(smtpd.received()))
		}
		if n := deliver(t, e.g); n != 0 || len(smtpd.received()) != 1 {
			t.Fatal("sent twice")
		}
		m := scrape(t, e.url+"/metrics")
		if f := counterValue(t, m, "lighthouse_notifications_total", map[string]string{"outcome": "failed"}); f != 2 {
			t.Errorf("failed metric %v, want 2", f)
		}
	})
}

// Two gateway instances on one database, delivering at the same time, send each notification
// exactly once.
func TestTwoInstancesSendEachNotificationOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		smtpd := newSMTPServer(t)
		smtpd.set(func(s *smtpServer) { s.delay = 5 * time.Millisecond })
		mailer := &SMTPMailer{Addr: smtpd.addr, From: "lighthouse@example.net"}
		ps := demoProviders("https://fhir.example.org/r4")
		a := newEnv(t, dsn, ps, withMailer(mailer))
		b := newEnv(t, dsn, ps, withMailer(mailer))
		const installations = 6
		for i := 0; i < installations; i++ {
			in := a.register("Admin", fmt.Sprintf("admin%d@example.org", i))
			for k := 1; k <= 3; k++ {
				b.connect(in, "small", connectBody(t, userKey(k), 50000)) // "reached" at 3
				a.connect(in, "demo", connectBody(t, userKey(k), 50000))
			}
			for k := 4; k <= 8; k++ {
				a.connect(in, "demo", connectBody(t, userKey(k), 50000)) // "near" at 8
			}
		}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			g := []*Gateway{a.g, b.g}[w%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					if _, err := g.deliverOutbox(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		msgs := smtpd.received()
		seen := map[string]int{}
		for _, m := range msgs {
			subject := m.data[strings.Index(m.data, "Subject:"):]
			subject = subject[:strings.Index(subject, "\r\n")]
			seen[m.to+" "+subject]++
		}
		if len(msgs) != 2*installations || len(seen) != 2*installations {
			t.Errorf("%d messages, %d distinct; want %d each", len(msgs), len(seen), 2*installations)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s sent %d times", k, n)
			}
		}
	})
}

func TestRunLogsOnceThatNotificationsAreQueued(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.g.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), "queued in the outbox, not sent") {
		if time.Now().After(deadline) {
			t.Fatalf("no notice in the log:\n%s", e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(e.logs.String(), "not sent"); n != 1 {
		t.Errorf("notice logged %d times", n)
	}
}

// Forgetting a user key frees its slot; it is idempotent and per installation.
func TestForgetFreesSlot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"))
		ada := e.register("Ada", "ada@example.org")
		bob := e.register("Bob", "bob@example.org")
		for i := 1; i <= 3; i++ {
			e.connect(ada, "small", connectBody(t, userKey(i), 50000))
		}
		e.connect(bob, "small", connectBody(t, userKey(2), 50000))
		if r := e.connect(ada, "small", connectBody(t, userKey(4), 50000)); r.status != http.StatusForbidden {
			t.Fatalf("4th user: %d", r.status)
		}
		usage := func(id string) int {
			list, err := e.g.store.installations(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range list {
				if in.ID == id {
					for _, u := range in.Usage {
						if u.ProviderID == "small" {
							return u.Count
						}
					}
				}
			}
			return -1
		}
		forget := func(inst creds, provider, key string) reply {
			return e.call(http.MethodDelete, "/v1/users/"+provider+"/"+key, inst, nil)
		}
		for i := 0; i < 2; i++ { // idempotent
			if r := forget(ada, "small", userKey(2)); r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("forget %d: %d %s", i, r.status, r.body)
			}
		}
		if got := usage(ada.id); got != 2 {
			t.Errorf("count after forget %d, want 2", got)
		}
		if got := usage(bob.id); got != 1 {
			t.Errorf("bob's count %d changed", got)
		}
		if r := e.connect(ada, "small", connectBody(t, userKey(4), 50000)); r.status != http.StatusOK {
			t.Fatalf("after forget the freed slot is refused: %d %s", r.status, r.body)
		}
		if r := forget(ada, "demo", userKey(9)); r.status != http.StatusNoContent {
			t.Errorf("forget never seen: %d", r.status)
		}
		for _, tc := range []struct {
			inst          creds
			provider, key string
			status        int
			typ           string
		}{
			{ada, "nowhere", userKey(1), http.StatusNotFound, TypeProviderUnknown},
			{ada, "small", "short", http.StatusBadRequest, TypeBadRequest},
			{creds{}, "small", userKey(1), http.StatusUnauthorized, TypeInstallationUnknown},
			{creds{ada.id, "wrong"}, "small", userKey(1), http.StatusUnauthorized, TypeInstallationAuthFailed},
		} {
			r := forget(tc.inst, tc.provider, tc.key)
			if r.status != tc.status || r.problem(t).Type != tc.typ {
				t.Errorf("forget %s/%s: %d %s", tc.provider, tc.key, r.status, r.body)
			}
		}
		if got := usage(ada.id); got != 3 {
			t.Errorf("final count %d, want 3", got)
		}
		if strings.Contains(e.logs.String(), userKey(2)) {
			t.Error("the access log holds a user key")
		}
	})
}

// A revoked installation gets installation_revoked on every request, browser steps included,
// until it is unrevoked; the admin command lists installations and the outbox.
func TestRevokeAndAdminCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "conf", "s3cret")
		ps := append(demoProviders(fp.fhirBase()), Provider{ID: "conf", Name: "Conf Clinic", FHIRBase: fp.fhirBase(),
			ClientID: "conf", ClientSecret: "s3cret", Scopes: "openid", UserLimit: 5})
		e := newEnv(t, dsn, ps)
		ada := e.register("Ada Lovelace", "ada@example.org")
		bob := e.register("Bob", "bob@example.org")
		for i := 1; i <= 3; i++ {
			e.connect(ada, "small", connectBody(t, userKey(i), 50000))
		}
		var pending connectResponse
		e.connect(ada, "demo", connectBody(t, userKey(1), 50000)).decode(t, &pending)
		f := e.startFlow(t, ada, "demo", 50000) // a provider state already issued

		admin := func(args ...string) string {
			t.Helper()
			var out bytes.Buffer
			if err := Command(context.Background(), append([]string{"admin", "--db", dsn}, args...), &out, &out, nil); err != nil {
				t.Fatalf("admin %v: %v\n%s", args, err, out.String())
			}
			return out.String()
		}
		out := admin("installations")
		for _, want := range []string{ada.id, "Ada Lovelace", "ada@example.org", "active", "small 3/3", "demo 1/10", "2026-03-01 12:00Z", bob.id} {
			if !strings.Contains(out, want) {
				t.Errorf("installations lacks %q:\n%s", want, out)
			}
		}
		pf := filepath.Join(t.TempDir(), "providers.json")
		os.WriteFile(pf, []byte(`[{"id":"small","name":"Small Clinic","fhir_base":"https://fhir.example.org/r4","client_id":"c","scopes":"openid","user_limit":5}]`), 0o600)
		if out := admin("--providers", pf, "installations"); !strings.Contains(out, "small 3/5") || !strings.Contains(out, "demo 1/10") {
			t.Errorf("installations with current limits:\n%s", out)
		}
		if !strings.Contains(admin("outbox"), "pending  user_limit_reached") {
			t.Errorf("outbox:\n%s", admin("outbox"))
		}
		admin("revoke", ada.id)
		if !strings.Contains(admin("installations"), "revoked") {
			t.Error("installations does not show the revocation")
		}
		revoked := func(r reply, what string) {
			t.Helper()
			if r.status != http.StatusForbidden || r.problem(t).Type != TypeInstallationRevoked {
				t.Errorf("%s: %d %s", what, r.status, r.body)
			} else if d := r.problem(t).Detail; !strings.Contains(d, "suspended") {
				t.Errorf("%s: detail %q", what, d)
			}
		}
		revoked(e.connect(ada, "demo", connectBody(t, userKey(1), 50000)), "connect")
		if n := counterValue(t, scrape(t, e.url+"/metrics"), "lighthouse_connects_total",
			map[string]string{"result": "refused", "reason": TypeInstallationRevoked}); n != 1 {
			t.Errorf("revoked connects metric %v, want 1", n)
		}
		revoked(e.call(http.MethodPost, "/v1/token/conf", ada, map[string]string{"grant_type": "refresh_token", "refresh_token": "rt"}), "token")
		revoked(e.call(http.MethodGet, "/v1/providers", ada, nil), "providers")
		revoked(e.call(http.MethodDelete, "/v1/users/small/"+userKey(1), ada, nil), "forget")
		revoked(e.browse(pending.AuthorizeURL, "Accept", "application/json"), "connect link")
		revoked(e.browse(e.url+"/v1/callback/demo?"+url.Values{"code": {"c"}, "state": {f.state}}.Encode(), "Accept", "application/json"), "callback")
		if r := e.connect(bob, "demo", connectBody(t, userKey(1), 50000)); r.status != http.StatusOK {
			t.Errorf("another installation is affected: %d", r.status)
		}
		admin("unrevoke", ada.id)
		if r := e.connect(ada, "demo", connectBody(t, userKey(1), 50000)); r.status != http.StatusOK {
			t.Errorf("after unrevoke: %d %s", r.status, r.body)
		}
		var out2 bytes.Buffer
		if err := Command(context.Background(), []string{"admin", "--db", dsn, "revoke", "nope"}, &out2, &out2, nil); err == nil {
			t.Error("revoking an unknown installation succeeded")
		}
		if err := Command(context.Background(), []string{"admin", "--db", dsn, "frobnicate"}, &out2, &out2, nil); err == nil {
			t.Error("unknown admin command succeeded")
		}
	})
}

// --- metrics and health ---

func scrape(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams
}

func counterValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// /metrics parses as Prometheus text and its counters match a scripted run.
func TestMetricsMatchScriptedRun(t *testing.T) {
	fp := newFakeProvider(t, "fasten-desktop", "")
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders(fp.fhirBase()))
	ada := e.register("Ada", "ada@example.org")
	e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": "", "email": "x"})
	const connects, limit = 7, 3 // "small": limit 3
	for i := 1; i <= connects; i++ {
		e.connect(ada, "small", connectBody(t, userKey(i), 50000))
	}
	e.connect(ada, "small", connectBody(t, "bad key", 50000))
	e.connect(creds{ada.id, "wrong"}, "small", connectBody(t, userKey(1), 50000))
	f := e.startFlow(t, ada, "demo", 50000)
	e.browse(f.authorize.String())
	e.browse(e.url + "/v1/callback/demo?" + url.Values{"code": {"c"}, "state": {f.state}}.Encode())
	e.browse(e.url + "/v1/callback/demo?" + url.Values{"code": {"c"}, "state": {"forged"}}.Encode())

	fams := scrape(t, e.url+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"lighthouse_registrations_total", map[string]string{"outcome": "created"}, 1},
		{"lighthouse_registrations_total", map[string]string{"outcome": "invalid"}, 1},
		{"lighthouse_connects_total", map[string]string{"result": "admitted"}, limit + 1}, // + the demo flow
		{"lighthouse_connects_total", map[string]string{"result": "refused", "reason": TypeUserLimitReached}, connects - limit},
		{"lighthouse_connects_total", map[string]string{"result": "refused", "reason": TypeBadRequest}, 1},
		{"lighthouse_connects_total", map[string]string{"result": "refused", "reason": TypeInstallationAuthFailed}, 1},
		{"lighthouse_callbacks_total", map[string]string{"outcome": "code"}, 1},
		{"lighthouse_callbacks_total", map[string]string{"outcome": TypeStateInvalid}, 1},
		{"lighthouse_http_request_duration_seconds", map[string]string{"route": "POST /v1/connect/{provider}", "code": "200"}, limit + 1},
		{"lighthouse_http_request_duration_seconds", map[string]string{"route": "POST /v1/connect/{provider}", "code": "403"}, connects - limit},
	} {
		if got := counterValue(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["lighthouse_http_request_duration_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Error("latency is not a histogram")
	}
	// health
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		if r := e.browse(e.url + path); r.status != want {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	e.g.store.read.Close() // the database goes away
	if r := e.browse(e.url + "/readyz"); r.status != http.StatusServiceUnavailable || r.problem(t).Type != TypeUnavailable {
		t.Errorf("readyz without a database: %d %s", r.status, r.body)
	}
	if r := e.browse(e.url + "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
}

func TestSeparateMetrics(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"),
		func(c *Config) { c.SeparateMetrics = true })
	if r := e.browse(e.url + "/metrics"); r.status != http.StatusNotFound {
		t.Errorf("public /metrics: %d", r.status)
	}
	private := newTestServer(t, e.g.MetricsHandler())
	scrape(t, private+"/metrics")
	if r := e.browse(private + "/readyz"); r.status != http.StatusOK {
		t.Errorf("private readyz: %d", r.status)
	}
}

// The command serves HTTPS with the operator's certificate and metrics on a private address.
func TestCommandTLSAndMetricsListen(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	line := startCommand(t, "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "gw.db"), "--providers", writeProvidersFile(t, dir),
		"--tls-cert", certFile, "--tls-key", keyFile, "--metrics-listen", "127.0.0.1:0")
	base, ok := strings.CutPrefix(line, "lighthouse listening on ")
	if !ok || !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("ready line %q", line)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Post(base+"/v1/installations", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.TLS == nil {
		t.Errorf("register over TLS: %d", resp.StatusCode)
	}
	resp, err = hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics with --metrics-listen: %d", resp.StatusCode)
	}
	if _, err := http.Get(strings.Replace(base, "https", "http", 1) + "/healthz"); err == nil {
		// a plain HTTP request to a TLS port gets a 400 from net/http, not an answer of ours
		resp, _ := http.Get(strings.Replace(base, "https", "http", 1) + "/healthz")
		if resp != nil && resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the TLS port")
		}
	}
	for _, args := range [][]string{
		{"--tls-cert", certFile},
		{"--tls-cert", certFile, "--tls-key", keyFile, "--acme-domain", "lh.example.org"},
		{"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", keyFile},
		{"--smtp-addr", "127.0.0.1:25"},
		{"--smtp-addr", "127.0.0.1:25", "--smtp-from", "not an address"},
	} {
		args = append([]string{"--db", filepath.Join(dir, "gw.db"), "--providers", writeProvidersFile(t, dir), "--listen", "127.0.0.1:0"}, args...)
		if err := Command(context.Background(), args, &syncBuffer{}, &syncBuffer{}, nil); err == nil {
			t.Errorf("Command(%v) succeeded", args)
		}
	}
}

// The metrics line printed by --metrics-listen names a working private endpoint.
func TestCommandMetricsListenLine(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- Command(ctx, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "gw.db"), "--providers", writeProvidersFile(t, dir),
			"--metrics-listen", "127.0.0.1:0"}, &syncBuffer{}, stderr, func(string) string { return "" })
	}()
	defer func() { cancel(); <-done }()
	var metricsURL string
	for metricsURL == "" {
		select {
		case line := <-stderr.lines:
			if u, ok := strings.CutPrefix(line, "lighthouse metrics on "); ok {
				metricsURL = u
			}
		case err := <-done:
			t.Fatalf("Command: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no metrics line")
		}
	}
	fams := scrape(t, metricsURL)
	if _, ok := fams["lighthouse_registrations_total"]; !ok {
		t.Error("no registrations metric")
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lighthouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// --- tickets ---

// Issue 14 item 22: the ticket and the provider state are encrypted (the browser and the provider
// learn neither the app state, the PKCE challenge, the installation nor the port), and a ticket
// works once, on any instance sharing the database.
func TestIssue14_22_TicketsEncryptedAndSingleUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "fasten-desktop", "")
		a := newEnv(t, dsn, demoProviders(fp.fhirBase()))
		b := newEnv(t, dsn, demoProviders(fp.fhirBase()))
		ada := a.register("Ada", "ada@example.org")
		f := a.startFlow(t, ada, "demo", 50123)
		u, _ := url.Parse(f.resp.AuthorizeURL)
		ticket := u.Query().Get("ticket")
		secrets := []string{f.req.State, f.req.CodeChallenge, ada.id, "50123", "fasten-desktop"}
		for name, token := range map[string]string{"ticket": ticket, "state": f.state} {
			views := []string{token}
			for _, part := range strings.Split(token, ".") {
				if raw, err := base64.RawURLEncoding.DecodeString(part); err == nil {
					views = append(views, string(raw))
				}
			}
			for _, v := range views {
				for _, s := range secrets[:4] {
					if strings.Contains(v, s) {
						t.Errorf("the %s reveals %q", name, s)
					}
				}
			}
		}
		// Used once on a: on b the ticket is refused.
		rb := b.browse(strings.Replace(f.resp.AuthorizeURL, a.url, b.url, 1), "Accept", "application/json")
		if rb.status != http.StatusBadRequest || rb.problem(t).Type != TypeTicketInvalid {
			t.Errorf("ticket replayed on another instance: %d %s", rb.status, rb.body)
		}
		cb := "/v1/callback/demo?" + url.Values{"code": {"c"}, "state": {f.state}}.Encode()
		if r := b.browse(b.url + cb); r.status != http.StatusFound {
			t.Fatalf("first callback on b: %d %s", r.status, r.body)
		}
		// used-ticket records go once expired
		a.clock.Advance(flowTTL + time.Second)
		if err := a.g.store.purgeUsedTickets(context.Background(), a.clock.Now()); err != nil {
			t.Fatal(err)
		}
		var n int
		a.g.store.read.QueryRow("SELECT COUNT(*) FROM used_tickets").Scan(&n)
		if n != 0 {
			t.Errorf("%d used tickets kept after expiry", n)
		}
	})
}

// Rotating the ticket key: the new key seals on every instance, tickets under the old key keep
// working on any instance until they expire, and the old key opens nothing once retired past the
// ticket lifetime.
func TestTicketKeyRotationAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "fasten-desktop", "")
		// the admin command rotates at the real time
		clock := &testClock{now: time.Now().UTC()}
		withClock := func(c *Config) { c.Now = clock.Now }
		a := newEnv(t, dsn, demoProviders(fp.fhirBase()), withClock)
		b := newEnv(t, dsn, demoProviders(fp.fhirBase()), withClock)
		ada := a.register("Ada", "ada@example.org")
		var before connectResponse
		a.connect(ada, "demo", connectBody(t, userKey(1), 50000)).decode(t, &before)
		oldKey, _ := a.g.sealer.currentKey(context.Background())

		var out bytes.Buffer
		if err := Command(context.Background(), []string{"admin", "--db", dsn, "rotate-key"}, &out, &out, nil); err != nil {
			t.Fatalf("rotate-key: %v %s", err, out.String())
		}
		newID := strings.Fields(strings.TrimPrefix(out.String(), "new ticket key "))[0]
		if len(newID) != 12 {
			t.Fatalf("rotate-key said %q", out.String())
		}
		// Once the instances re-read the keys (keyReload), both seal with the new key.
		clock.Advance(keyReload)
		for _, e := range []*env{a, b} {
			var resp connectResponse
			e.connect(ada, "demo", connectBody(t, userKey(1), 50000)).decode(t, &resp)
			u, _ := url.Parse(resp.AuthorizeURL)
			if kid, _, _ := strings.Cut(u.Query().Get("ticket"), "."); kid != newID {
				t.Errorf("after rotation a ticket is sealed with key %q, want %q", kid, newID)
			}
			if r := e.browse(resp.AuthorizeURL); r.status != http.StatusFound {
				t.Errorf("new ticket: %d %s", r.status, r.body)
			}
		}
		// The ticket sealed before the rotation works on the other instance.
		if r := b.browse(strings.Replace(before.AuthorizeURL, a.url, b.url, 1)); r.status != http.StatusFound {
			t.Errorf("old ticket after rotation: %d %s", r.status, r.body)
		}
		// Past its window the old key opens nothing, even a token claiming a later expiry.
		clock.Advance(flowTTL + time.Second)
		forged, err := sealWith(oldKey, purposeTicket, flowClaims{Installation: ada.id, Provider: "demo",
			AppState: "app-state-0123456789abcdef", Port: 50000, Expires: clock.Now().Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if r := b.browse(b.url+"/v1/connect/demo?ticket="+url.QueryEscape(forged), "Accept", "application/json"); r.status != http.StatusBadRequest {
			t.Errorf("retired key still opens tickets: %d %s", r.status, r.body)
		}
	})
}

// The mailer upgrades with STARTTLS when offered (verifying the certificate) and authenticates
// with the credentials from the environment; they never reach the logs or the outbox.
func TestSMTPMailerSTARTTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	smtpd := newSMTPServer(t)
	smtpd.set(func(s *smtpServer) {
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.auth = "mailer\x00pa55-w0rd-secret"
	})
	mailer := &SMTPMailer{Addr: smtpd.addr, From: "lighthouse@example.net", Username: "mailer", Password: "pa55-w0rd-secret",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"), withMailer(mailer))
	ada := e.register("Ada", "ada@example.org")
	for i := 1; i <= 3; i++ {
		e.connect(ada, "small", connectBody(t, userKey(i), 50000))
	}
	if n := deliver(t, e.g); n != 1 {
		t.Fatalf("sent %d", n)
	}
	m := smtpd.received()[0]
	if !m.tls || m.user != "mailer" {
		t.Errorf("message sent with tls=%v user=%q", m.tls, m.user)
	}

	// A wrong password fails the delivery (kept for retry) without the password anywhere.
	e.connect(ada, "demo", connectBody(t, userKey(1), 50000))
	for i := 2; i <= 8; i++ {
		e.connect(ada, "demo", connectBody(t, userKey(i), 50000))
	}
	mailer.Password = "wrong-secret-value"
	if n := deliver(t, e.g); n != 0 {
		t.Fatalf("sent %d with a wrong password", n)
	}
	rows, _ := e.g.store.outboxAll(context.Background())
	var failed bool
	for _, r := range rows {
		if strings.Contains(r.LastError, "authentication failed") {
			failed = true
		}
		if strings.Contains(r.LastError, "secret") {
			t.Errorf("last error holds the password: %q", r.LastError)
		}
	}
	if !failed {
		t.Errorf("no authentication failure recorded: %+v", rows)
	}
	if strings.Contains(e.logs.String(), "secret-value") || strings.Contains(e.logs.String(), "pa55") {
		t.Error("the log holds the SMTP password")
	}
	// A server certificate that does not verify stops the delivery before any credential is sent.
	mailer.Password, mailer.TLSConfig = "pa55-w0rd-secret", nil
	e.clock.Advance(time.Hour)
	before := smtpd.connections()
	if n := deliver(t, e.g); n != 0 {
		t.Fatalf("sent %d to an unverified server", n)
	}
	if smtpd.connections() == before {
		t.Fatal("no delivery attempted")
	}
	rows, _ = e.g.store.outboxAll(context.Background())
	if last := rows[len(rows)-1]; !strings.Contains(last.LastError, "STARTTLS") || !strings.Contains(last.LastError, "certificate") {
		t.Errorf("unverified server: last error %q", last.LastError)
	}
	// With the right settings it goes out.
	mailer.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	e.clock.Advance(time.Hour)
	if n := deliver(t, e.g); n != 1 || len(smtpd.received()) != 2 {
		t.Errorf("after fixing the settings: %d sent", n)
	}
}

// The command sends notifications with the credentials from the environment, names itself by the
// public host in EHLO, and logs neither the credentials nor anything of the message.
func TestCommandSendsNotificationsWithEnvCredentials(t *testing.T) {
	smtpd := newSMTPServer(t)
	smtpd.set(func(s *smtpServer) { s.auth, s.authClear = "mailer\x00env-pa55word", true })
	dir := t.TempDir()
	pf := filepath.Join(dir, "providers.json")
	os.WriteFile(pf, []byte(`[{"id":"one","name":"One Clinic","fhir_base":"https://fhir.example.org/r4","client_id":"c",
		"scopes":"openid","user_limit":1,"authorize_url":"https://fhir.example.org/a","token_url":"https://fhir.example.org/t"}]`), 0o600)
	vars := map[string]string{EnvSMTPUsername: "mailer", EnvSMTPPassword: "env-pa55word"}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	lines := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- Command(ctx, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "gw.db"), "--providers", pf,
			"--public-url", "https://lighthouse.example.org", "--smtp-addr", smtpd.addr, "--smtp-from", "lighthouse@example.org",
			"--outbox-interval", "50ms"}, &syncBuffer{}, io.MultiWriter(stderr, lines), func(k string) string { return vars[k] })
	}()
	var base string
	select {
	case line := <-lines.lines:
		base = "http://" + strings.TrimPrefix(line, "lighthouse listening on http://")
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line")
	}
	e := &env{t: t, url: base}
	ada := e.register("Ada", "ada@example.org")
	if r := e.connect(ada, "one", connectBody(t, userKey(1), 50000)); r.status != http.StatusOK {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(smtpd.received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing sent:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := smtpd.received()[0]
	if m.user != "mailer" || m.to != "ada@example.org" || !strings.Contains(m.data, "One Clinic user limit reached (1 of 1)") {
		t.Errorf("message %+v", m)
	}
	smtpd.mu.Lock()
	hellos := smtpd.hellos
	smtpd.mu.Unlock()
	if len(hellos) == 0 || hellos[0] != "lighthouse.example.org" {
		t.Errorf("EHLO %v", hellos)
	}
	logs := stderr.String()
	for _, secret := range []string{"env-pa55word", userKey(1), ada.secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("stderr holds %q", secret)
		}
	}
	if !strings.Contains(logs, "notification sent") || strings.Contains(logs, "not sent") {
		t.Errorf("logs:\n%s", logs)
	}
}
