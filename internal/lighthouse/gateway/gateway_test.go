package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRegister(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"), func(c *Config) { c.RegisterLimit = 100 })
		cases := []struct {
			name, user, email string
			status            int
		}{
			{"valid", "Ada Lovelace", "ada@example.org", http.StatusCreated},
			{"name trimmed", "  Ada  ", "ada@example.org", http.StatusCreated},
			{"name 200 runes", strings.Repeat("é", 200), "ada@example.org", http.StatusCreated},
			{"empty name", "   ", "ada@example.org", http.StatusBadRequest},
			{"name 201 runes", strings.Repeat("a", 201), "ada@example.org", http.StatusBadRequest},
			{"control char in name", "Ada\x00", "ada@example.org", http.StatusBadRequest},
			{"no at", "Ada", "ada.example.org", http.StatusBadRequest},
			{"no dot in domain", "Ada", "ada@localhost", http.StatusBadRequest},
			{"display name", "Ada", "Ada <ada@example.org>", http.StatusBadRequest},
			{"space", "Ada", "ada @example.org", http.StatusBadRequest},
			{"empty email", "Ada", "", http.StatusBadRequest},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": tc.user, "email": tc.email})
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.status != http.StatusCreated {
					if p := r.problem(t); p.Type != TypeBadRequest || p.Detail == "" {
						t.Errorf("problem %+v", p)
					}
					return
				}
				var out registerResponse
				r.decode(t, &out)
				if len(out.InstallationID) != 32 || len(out.InstallationSecret) != 43 {
					t.Errorf("id %q secret length %d", out.InstallationID, len(out.InstallationSecret))
				}
				in, err := e.g.store.installation(context.Background(), out.InstallationID)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256([]byte(out.InstallationSecret))
				if in.SecretHash != hex.EncodeToString(sum[:]) || in.Name != strings.TrimSpace(tc.user) || in.Email != tc.email {
					t.Errorf("stored %+v", in)
				}
			})
		}
		for _, body := range []string{`{"name":"Ada","email":"ada@example.org"} {}`, `{"name":`, `[]`, ``, strings.Repeat(" ", 70<<10) + "{}"} {
			r := e.raw("/v1/installations", body)
			if r.status/100 != 4 || r.problem(t).Type != TypeBadRequest {
				t.Errorf("body %.40q: %d %s", body, r.status, r.body)
			}
		}
	})
}

func TestRegisterIDsAreDistinctAndSecretNotStored(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "gw.db")
	e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"))
	a, b := e.register("A", "a@example.org"), e.register("B", "b@example.org")
	if a.id == b.id || a.secret == b.secret {
		t.Fatalf("not random: %v %v", a, b)
	}
	e.g.store.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	for _, f := range []string{dsn, dsn + "-wal"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.Contains(string(data), a.secret) || strings.Contains(string(data), b.secret) {
			t.Errorf("%s holds an installation secret", f)
		}
	}
}

func TestInstallationAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"))
		good := e.register("Ada", "ada@example.org")
		other := e.register("Bob", "bob@example.org")
		cases := []struct {
			name   string
			inst   creds
			hdr    []string
			status int
			typ    string
		}{
			{"ok", good, nil, http.StatusOK, ""},
			{"no id", creds{secret: good.secret}, nil, http.StatusUnauthorized, TypeInstallationUnknown},
			{"unknown id", creds{id: strings.Repeat("0", 32), secret: good.secret}, nil, http.StatusUnauthorized, TypeInstallationUnknown},
			{"no secret", creds{id: good.id}, nil, http.StatusUnauthorized, TypeInstallationAuthFailed},
			{"wrong secret", creds{id: good.id, secret: good.secret + "x"}, nil, http.StatusUnauthorized, TypeInstallationAuthFailed},
			{"another installation's secret", creds{id: good.id, secret: other.secret}, nil, http.StatusUnauthorized, TypeInstallationAuthFailed},
			{"basic instead of bearer", creds{id: good.id}, []string{"Authorization", "Basic " + good.secret}, http.StatusUnauthorized, TypeInstallationAuthFailed},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{"/v1/providers"} {
					r := e.call(http.MethodGet, path, tc.inst, nil, tc.hdr...)
					if r.status != tc.status {
						t.Fatalf("%s: status %d, want %d: %s", path, r.status, tc.status, r.body)
					}
					if tc.typ != "" {
						if p := r.problem(t); p.Type != tc.typ || p.Detail == "" {
							t.Errorf("problem %+v, want type %s", p, tc.typ)
						}
						if r.header.Get("WWW-Authenticate") == "" {
							t.Error("401 without WWW-Authenticate")
						}
					}
				}
				// connect and token need the same proof
				if tc.typ != "" {
					for _, path := range []string{"/v1/connect/demo", "/v1/token/demo"} {
						r := e.call(http.MethodPost, path, tc.inst, map[string]string{}, tc.hdr...)
						if r.status != tc.status || r.problem(t).Type != tc.typ {
							t.Errorf("%s: %d %s", path, r.status, r.body)
						}
					}
				}
			})
		}
	})
}

func TestUserLimitPerProvider(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "fasten-desktop", "")
		e := newEnv(t, dsn, demoProviders(fp.fhirBase()))
		ada := e.register("Ada", "ada@example.org")
		bob := e.register("Bob", "bob@example.org")

		// "small" allows 3 users per installation.
		for i := 0; i < 3; i++ {
			if r := e.connect(ada, "small", connectBody(t, userKey(i), 50000)); r.status != http.StatusOK {
				t.Fatalf("user %d: %d %s", i, r.status, r.body)
			}
		}
		r := e.connect(ada, "small", connectBody(t, userKey(3), 50000))
		if r.status != http.StatusForbidden {
			t.Fatalf("4th user: %d %s", r.status, r.body)
		}
		p := r.problem(t)
		if p.Type != TypeUserLimitReached || p.Limit != 3 || p.ProviderName != "Small Clinic" ||
			p.Detail != "This installation has reached the limit of 3 users for Small Clinic." {
			t.Errorf("problem %+v", p)
		}
		// a known user reconnects
		if r := e.connect(ada, "small", connectBody(t, userKey(1), 50000)); r.status != http.StatusOK {
			t.Errorf("known user refused: %d %s", r.status, r.body)
		}
		// "demo" has its own limit of 10, counted separately
		for i := 0; i < 10; i++ {
			if r := e.connect(ada, "demo", connectBody(t, userKey(100+i), 50000)); r.status != http.StatusOK {
				t.Fatalf("demo user %d: %d %s", i, r.status, r.body)
			}
		}
		if r := e.connect(ada, "demo", connectBody(t, userKey(200), 50000)); r.status != http.StatusForbidden ||
			r.problem(t).Detail != "This installation has reached the limit of 10 users for Demo Hospital." {
			t.Errorf("11th demo user: %d %s", r.status, r.body)
		}
		// another installation has its own count
		if r := e.connect(bob, "small", connectBody(t, userKey(3), 50000)); r.status != http.StatusOK {
			t.Errorf("other installation refused: %d %s", r.status, r.body)
		}
		// unknown provider
		if r := e.connect(ada, "nope", connectBody(t, userKey(0), 50000)); r.status != http.StatusNotFound || r.problem(t).Type != TypeProviderUnknown {
			t.Errorf("unknown provider: %d %s", r.status, r.body)
		}
		var n int
		if err := e.g.store.read.QueryRow("SELECT COUNT(*) FROM user_keys WHERE installation_id = $1", ada.id).Scan(&n); err != nil || n != 13 {
			t.Errorf("stored user keys for ada = %d (%v), want 13", n, err)
		}
	})
}

func TestConnectValidation(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"))
	ada := e.register("Ada", "ada@example.org")
	cases := []struct {
		name string
		edit func(*connectRequest)
	}{
		{"plain method", func(c *connectRequest) { c.CodeChallengeMethod = "plain" }},
		{"no method", func(c *connectRequest) { c.CodeChallengeMethod = "" }},
		{"short state", func(c *connectRequest) { c.State = "abc" }},
		{"state with a space", func(c *connectRequest) { c.State = strings.Repeat("a", 30) + " b" }},
		{"short challenge", func(c *connectRequest) { c.CodeChallenge = "abc" }},
		{"port 80", func(c *connectRequest) { c.RedirectPort = 80 }},
		{"port 70000", func(c *connectRequest) { c.RedirectPort = 70000 }},
		{"no user key", func(c *connectRequest) { c.UserKey = "" }},
		{"user key with slash", func(c *connectRequest) { c.UserKey = strings.Repeat("a", 20) + "/" }},
		{"scope with newline", func(c *connectRequest) { c.Scope = "openid\nfoo" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := connectBody(t, userKey(1), 50000)
			tc.edit(&req)
			r := e.connect(ada, "demo", req)
			if r.status != http.StatusBadRequest || r.problem(t).Type != TypeBadRequest {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	var n int
	e.g.store.read.QueryRow("SELECT COUNT(*) FROM user_keys").Scan(&n)
	if n != 0 {
		t.Errorf("refused requests stored %d user keys", n)
	}
}

func TestNearLimitWarningAndOutbox(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, demoProviders("https://fhir.example.org/r4"))
		ada := e.register("Ada", "ada@example.org")
		outbox := func() []outboxEntry {
			t.Helper()
			o, err := e.g.store.outbox(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		for i := 1; i <= 10; i++ { // demo: limit 10, warning from 8
			r := e.connect(ada, "demo", connectBody(t, userKey(i), 50000))
			if r.status != http.StatusOK {
				t.Fatalf("user %d: %d %s", i, r.status, r.body)
			}
			var resp connectResponse
			r.decode(t, &resp)
			wantOutbox := 0
			if i == 10 {
				wantOutbox = 2
			}
			if i >= 8 {
				wantOutbox = max(wantOutbox, 1)
				want := connectWarning{Type: TypeUserLimitNear, Count: i, Limit: 10,
					Detail: fmt.Sprintf("This installation uses %d of its 10 users for Demo Hospital.", i)}
				if resp.Warning == nil || *resp.Warning != want {
					t.Errorf("user %d: warning %+v, want %+v", i, resp.Warning, want)
				}
			} else if resp.Warning != nil {
				t.Errorf("user %d: unexpected warning %+v", i, resp.Warning)
			}
			if got := len(outbox()); got != wantOutbox {
				t.Fatalf("after user %d: %d outbox rows, want %d", i, got, wantOutbox)
			}
		}
		// a known user reconnecting still sees the warning; no second notification
		r := e.connect(ada, "demo", connectBody(t, userKey(3), 50000))
		var resp connectResponse
		r.decode(t, &resp)
		if resp.Warning == nil || resp.Warning.Count != 10 {
			t.Errorf("reconnect warning %+v", resp.Warning)
		}
		o := outbox()
		if len(o) != 2 {
			t.Fatalf("outbox %+v", o)
		}
		want := []outboxEntry{
			{InstallationID: ada.id, ProviderID: "demo", Kind: "user_limit_near", AdminEmail: "ada@example.org",
				Count: 8, Limit: 10, CreatedAt: "2026-03-01T12:00:00.000Z"},
			{InstallationID: ada.id, ProviderID: "demo", Kind: "user_limit_reached", AdminEmail: "ada@example.org",
				Count: 10, Limit: 10, CreatedAt: "2026-03-01T12:00:00.000Z"},
		}
		for i := range want {
			if o[i] != want[i] {
				t.Errorf("outbox row %d %+v, want %+v", i, o[i], want[i])
			}
		}
	})
}

func TestOutboxAgainWhenLimitChanges(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "gw.db")
	ps := demoProviders("https://fhir.example.org/r4")
	e := newEnv(t, dsn, ps)
	ada := e.register("Ada", "ada@example.org")
	for i := 1; i <= 8; i++ {
		e.connect(ada, "demo", connectBody(t, userKey(i), 50000))
	}
	e.srv.Close()
	e.g.Close()
	// The operator raises the limit to 20, then lowers it to 9: each new threshold is crossed
	// once, even by a known user's reconnect.
	for _, limit := range []int{20, 9} {
		ps[0].UserLimit = limit
		e2 := newEnv(t, dsn, ps)
		e2.connect(ada, "demo", connectBody(t, userKey(1), 50000))
		e2.connect(ada, "demo", connectBody(t, userKey(2), 50000))
		o, err := e2.g.store.outbox(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]int{20: 1, 9: 2}[limit]
		if len(o) != want {
			t.Errorf("limit %d: %d outbox rows, want %d", limit, len(o), want)
		}
	}
}

// TestConcurrentAdmission: 50 concurrent connects of 50 distinct user keys with limit 10 admit
// exactly 10, on SQLite with one gateway and on PostgreSQL with two gateways (two pools) sharing
// one database.
func TestConcurrentAdmission(t *testing.T) {
	for _, tc := range []struct {
		backend   backend
		instances int
	}{
		{backends[0], 1},
		{backends[1], 2},
	} {
		t.Run(fmt.Sprintf("%s/%d-instances", tc.backend.name, tc.instances), func(t *testing.T) {
			dsn := tc.backend.dsn(t)
			ps := demoProviders("https://fhir.example.org/r4")
			var envs []*env
			for i := 0; i < tc.instances; i++ {
				envs = append(envs, newEnv(t, dsn, ps))
			}
			ada := envs[0].register("Ada", "ada@example.org")

			const n = 50
			statuses := make([]int, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					statuses[i] = envs[i%len(envs)].connect(ada, "demo", connectBody(t, userKey(i), 50000)).status
				}()
			}
			close(start)
			wg.Wait()
			count := map[int]int{}
			for _, s := range statuses {
				count[s]++
			}
			if count[http.StatusOK] != 10 || count[http.StatusForbidden] != 40 {
				t.Errorf("statuses %v, want 10 x 200 and 40 x 403", count)
			}
			var keys, counter int
			st := envs[len(envs)-1].g.store
			st.read.QueryRow("SELECT COUNT(*) FROM user_keys").Scan(&keys)
			st.read.QueryRow("SELECT user_count FROM user_counters").Scan(&counter)
			if keys != 10 || counter != 10 {
				t.Errorf("stored %d user keys, counter %d; want 10", keys, counter)
			}
			if o, _ := st.outbox(context.Background()); len(o) != 2 {
				t.Errorf("%d outbox rows, want 2 (near and reached)", len(o))
			}
			if len(envs) == 2 {
				// One signing key for every instance: a ticket from one works on the other.
				var resp connectResponse
				envs[0].connect(ada, "demo", connectBody(t, userKey(0), 50000)).decode(t, &resp)
				if resp.AuthorizeURL == "" {
					// userKey(0) may have lost the race; use an admitted one
					for i := 0; i < n && resp.AuthorizeURL == ""; i++ {
						envs[0].connect(ada, "demo", connectBody(t, userKey(i), 50000)).decode(t, &resp)
					}
				}
				u, _ := url.Parse(resp.AuthorizeURL)
				other := envs[1].url + u.RequestURI()
				// demo uses discovery on an unreachable host: a valid ticket gets as far as
				// provider_error, an invalid one stops at ticket_invalid.
				r := envs[1].browse(other)
				if r.status != http.StatusBadGateway || r.problem(t).Type != TypeProviderError {
					t.Errorf("ticket from instance 1 on instance 2: %d %s", r.status, r.body)
				}
			}
		})
	}
}

func TestRegisterRateLimit(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"),
		func(c *Config) { c.RegisterLimit = 3 })
	for i := 0; i < 3; i++ {
		e.register("Ada", "ada@example.org")
		e.clock.Advance(time.Minute)
	}
	r := e.call(http.MethodPost, "/v1/installations", creds{}, map[string]string{"name": "Ada", "email": "ada@example.org"})
	if r.status != http.StatusTooManyRequests || r.problem(t).Type != TypeRateLimited {
		t.Fatalf("4th registration: %d %s", r.status, r.body)
	}
	// the first registration leaves the window 57 minutes from now
	if got := r.header.Get("Retry-After"); got != strconv.Itoa(57*60) {
		t.Errorf("Retry-After %q, want %d", got, 57*60)
	}
	if d := r.problem(t).Detail; d != "Too many installations were registered from this network. Try again in 57 minutes." {
		t.Errorf("detail %q", d)
	}
	e.clock.Advance(57 * time.Minute)
	e.register("Ada", "ada@example.org")
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(2, time.Hour)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		key   string
		at    time.Duration
		ok    bool
		retry time.Duration
	}{
		{"a", 0, true, 0},
		{"a", 10 * time.Minute, true, 0},
		{"a", 20 * time.Minute, false, 40 * time.Minute},
		{"b", 20 * time.Minute, true, 0},
		{"a", 60 * time.Minute, true, 0},
		{"a", 61 * time.Minute, false, 9 * time.Minute},
		{"a", 3 * time.Hour, true, 0},
	}
	for i, s := range steps {
		ok, retry := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || retry != s.retry {
			t.Errorf("step %d: allow = %v, %v; want %v, %v", i, ok, retry, s.ok, s.retry)
		}
	}
	if len(l.events) != 1 {
		t.Errorf("sweep kept %d keys, want 1", len(l.events))
	}
}

func TestClientKey(t *testing.T) {
	cases := []struct {
		remote, header, value, want string
	}{
		{"203.0.113.7:5555", "", "", "203.0.113.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", "", "2001:db8:1:2::/64"},
		{"10.0.0.1:80", "X-Forwarded-For", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"10.0.0.1:80", "X-Forwarded-For", "", "10.0.0.1"},
		{"10.0.0.1:80", "", "198.51.100.1", "10.0.0.1"}, // header not trusted
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.value != "" {
			r.Header.Set("X-Forwarded-For", tc.value)
		}
		if got := clientKey(r, tc.header); got != tc.want {
			t.Errorf("clientKey(%s, %s=%s) = %s, want %s", tc.remote, tc.header, tc.value, got, tc.want)
		}
	}
}

func TestCatalog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "fasten-desktop", "")
		ps := demoProviders(fp.fhirBase())
		ps = append(ps, Provider{ID: "conf", Name: "Confidential Care", FHIRBase: fp.fhirBase(), ClientID: "c",
			ClientSecret: "super-secret-client-secret", Scopes: "openid", UserLimit: 20})
		e := newEnv(t, dsn, ps)
		ada := e.register("Ada", "ada@example.org")

		r := e.call(http.MethodGet, "/v1/providers", ada, nil)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if strings.Contains(string(r.body), "super-secret-client-secret") || strings.Contains(string(r.body), "client_secret") {
			t.Fatalf("catalog leaks the client secret: %s", r.body)
		}
		var got []catalogEntry
		r.decode(t, &got)
		want := []catalogEntry{
			{ID: "demo", Name: "Demo Hospital", FHIRBase: fp.fhirBase(), AuthorizeURL: fp.srv.URL + "/oauth/authorize",
				TokenURL: fp.srv.URL + "/oauth/token", Scopes: ps[0].Scopes, ClientID: "fasten-desktop", UserLimit: 10,
				RedirectURI: e.url + "/v1/callback/demo"},
			{ID: "small", Name: "Small Clinic", FHIRBase: fp.fhirBase(), AuthorizeURL: "https://small.example.org/authorize",
				TokenURL: "https://small.example.org/token", Scopes: ps[1].Scopes, ClientID: "fasten-small", UserLimit: 3,
				RedirectURI: e.url + "/v1/callback/small"},
			{ID: "conf", Name: "Confidential Care", FHIRBase: fp.fhirBase(), AuthorizeURL: fp.srv.URL + "/oauth/authorize",
				TokenURL: fp.srv.URL + "/oauth/token", Scopes: "openid", ClientID: "c", Confidential: true, UserLimit: 20,
				RedirectURI: e.url + "/v1/callback/conf"},
		}
		if len(got) != len(want) {
			t.Fatalf("catalog %+v", got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
		etag := r.header.Get("ETag")
		if etag == "" || r.header.Get("Cache-Control") != "private, no-cache" {
			t.Fatalf("headers %v", r.header)
		}
		cases := []struct {
			name, path, inm string
			status          int
		}{
			{"same etag", "/v1/providers", etag, http.StatusNotModified},
			{"weak etag", "/v1/providers", "W/" + etag, http.StatusNotModified},
			{"in a list", "/v1/providers", `"x", ` + etag, http.StatusNotModified},
			{"stale etag", "/v1/providers", `"stale"`, http.StatusOK},
			{"other query", "/v1/providers?q=clinic", etag, http.StatusOK},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.call(http.MethodGet, tc.path, ada, nil, "If-None-Match", tc.inm)
				if r.status != tc.status {
					t.Fatalf("%d %s", r.status, r.body)
				}
				if tc.status == http.StatusNotModified && (len(r.body) != 0 || r.header.Get("ETag") != etag) {
					t.Errorf("304 with body %q etag %q", r.body, r.header.Get("ETag"))
				}
			})
		}
		r = e.call(http.MethodGet, "/v1/providers?q=CLINIC", ada, nil)
		var filtered []catalogEntry
		r.decode(t, &filtered)
		if len(filtered) != 1 || filtered[0].ID != "small" || r.header.Get("ETag") == etag {
			t.Errorf("q=CLINIC: %+v etag %s", filtered, r.header.Get("ETag"))
		}
	})
}

// flow runs POST /v1/connect and the browser's GET /v1/connect?ticket=, returning the app's
// request, the gateway's redirect to the provider and the state the gateway sent there.
type flow struct {
	req       connectRequest
	verifier  string
	resp      connectResponse
	authorize *url.URL
	state     string
}

func (e *env) startFlow(t *testing.T, inst creds, provider string, port int) flow {
	t.Helper()
	var f flow
	f.req = connectBody(t, userKey(1), port)
	var challenge string
	f.verifier, challenge = pkce(t)
	f.req.CodeChallenge = challenge
	r := e.connect(inst, provider, f.req)
	if r.status != http.StatusOK {
		t.Fatalf("connect: %d %s", r.status, r.body)
	}
	r.decode(t, &f.resp)
	r = e.browse(f.resp.AuthorizeURL)
	if r.status != http.StatusFound {
		t.Fatalf("GET ticket: %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	f.authorize = loc
	f.state = loc.Query().Get("state")
	return f
}

func TestBrowserRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "fasten-desktop", "")
		e := newEnv(t, dsn, demoProviders(fp.fhirBase()))
		ada := e.register("Ada", "ada@example.org")

		// The app's loopback callback listener.
		got := make(chan url.Values, 1)
		cb := newLoopbackListener(t, got)

		f := e.startFlow(t, ada, "demo", cb.port)
		if f.resp.RedirectURI != e.url+"/v1/callback/demo" || !strings.HasPrefix(f.resp.AuthorizeURL, e.url+"/v1/connect/demo?ticket=") {
			t.Errorf("connect response %+v", f.resp)
		}
		if want := e.clock.Now().Add(10 * time.Minute); !f.resp.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %v, want %v", f.resp.ExpiresAt, want)
		}
		// the gateway's redirect to the provider
		if f.authorize.Scheme+"://"+f.authorize.Host+f.authorize.Path != fp.srv.URL+"/oauth/authorize" {
			t.Errorf("authorize target %s", f.authorize)
		}
		aq := f.authorize.Query()
		wantQ := map[string]string{
			"response_type": "code", "client_id": "fasten-desktop", "redirect_uri": e.url + "/v1/callback/demo",
			"scope": "launch/patient openid fhirUser offline_access patient/*.read", "aud": fp.fhirBase(),
			"code_challenge": f.req.CodeChallenge, "code_challenge_method": "S256",
		}
		for k, v := range wantQ {
			if aq.Get(k) != v {
				t.Errorf("authorize %s = %q, want %q", k, aq.Get(k), v)
			}
		}
		if f.state == "" || f.state == f.req.State || strings.Contains(f.state, f.req.State) {
			t.Errorf("provider state %q must be the gateway's signed value, not the app state", f.state)
		}

		// provider login: it redirects the browser to the gateway callback
		r := e.browse(f.authorize.String())
		if r.status != http.StatusFound {
			t.Fatalf("provider authorize: %d", r.status)
		}
		cbURL := r.header.Get("Location")
		if !strings.HasPrefix(cbURL, e.url+"/v1/callback/demo?") {
			t.Fatalf("provider redirected to %s", cbURL)
		}
		pq, _ := url.Parse(cbURL)
		code := pq.Query().Get("code")

		// the gateway callback sends the browser to exactly the app's loopback listener
		r = e.browse(cbURL)
		if r.status != http.StatusFound {
			t.Fatalf("callback: %d %s", r.status, r.body)
		}
		want := fmt.Sprintf("http://127.0.0.1:%d/callback?code=%s&state=%s&iss=%s", cb.port,
			url.QueryEscape(code), url.QueryEscape(f.req.State), url.QueryEscape(fp.fhirBase()))
		if loc := r.header.Get("Location"); loc != want {
			t.Errorf("callback Location\n got %s\nwant %s", loc, want)
		}
		if r.header.Get("Referrer-Policy") != "no-referrer" || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("callback headers %v", r.header)
		}

		// the ticket works once only
		if r := e.browse(f.resp.AuthorizeURL, "Accept", "application/json"); r.status != http.StatusBadRequest || r.problem(t).Type != TypeTicketInvalid {
			t.Errorf("ticket used twice: %d %s", r.status, r.body)
		}

		// and a real browser following every redirect lands on the listener with code and state
		var fresh connectResponse
		e.connect(ada, "demo", f.req).decode(t, &fresh)
		resp, err := http.Get(fresh.AuthorizeURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		select {
		case q := <-got:
			if q.Get("state") != f.req.State || q.Get("code") == "" || q.Get("iss") != fp.fhirBase() {
				t.Errorf("loopback listener got %v", q)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the loopback listener was never called")
		}

		// the provider's error comes back the same way
		f2 := e.startFlow(t, ada, "demo", cb.port)
		errURL := e.url + "/v1/callback/demo?" + url.Values{"error": {"access_denied"}, "error_description": {"The user said no"},
			"state": {f2.state}}.Encode()
		r = e.browse(errURL)
		want = fmt.Sprintf("http://127.0.0.1:%d/callback?error=access_denied&error_description=The+user+said+no&state=%s",
			cb.port, url.QueryEscape(f2.req.State))
		if r.status != http.StatusFound || r.header.Get("Location") != want {
			t.Errorf("error callback: %d %s", r.status, r.header.Get("Location"))
		}
	})
}

type loopbackListener struct{ port int }

func newLoopbackListener(t *testing.T, got chan<- url.Values) loopbackListener {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case got <- r.URL.Query():
			default:
			}
		}
		w.Write([]byte("ok"))
	})}
	ts := newTCPServer(t, srv)
	return loopbackListener{port: ts}
}

func TestNoOpenRedirect(t *testing.T) {
	fp := newFakeProvider(t, "fasten-desktop", "")
	dsn := filepath.Join(t.TempDir(), "gw.db")
	e := newEnv(t, dsn, demoProviders(fp.fhirBase()))
	ada := e.register("Ada", "ada@example.org")
	// a second gateway with its own database, hence its own signing key
	stranger := newEnv(t, filepath.Join(t.TempDir(), "other.db"), demoProviders(fp.fhirBase()))
	sAda := stranger.register("Ada", "ada@example.org")

	fresh := func() flow { return e.startFlow(t, ada, "demo", 50123) }
	ticketOf := func(f flow) string {
		u, _ := url.Parse(f.resp.AuthorizeURL)
		return u.Query().Get("ticket")
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	connectURL := func(provider string, q url.Values) string {
		return e.url + "/v1/connect/" + provider + "?" + q.Encode()
	}
	callbackURL := func(provider string, q url.Values) string {
		return e.url + "/v1/callback/" + provider + "?" + q.Encode()
	}

	cases := []struct {
		name string
		url  func() string
		typ  string
	}{
		{"ticket payload tampered", func() string {
			return connectURL("demo", url.Values{"ticket": {flip(ticketOf(fresh()), 5)}})
		}, TypeTicketInvalid},
		{"ticket signature tampered", func() string {
			t := ticketOf(fresh())
			return connectURL("demo", url.Values{"ticket": {flip(t, len(t)-3)}})
		}, TypeTicketInvalid},
		{"ticket with a bit of its ciphertext flipped", func() string {
			t := ticketOf(fresh())
			kid, body, _ := strings.Cut(t, ".")
			raw, _ := base64Decode(body)
			raw[20] ^= 1
			return connectURL("demo", url.Values{"ticket": {kid + "." + base64Encode(raw)}})
		}, TypeTicketInvalid},
		{"ticket under another key ID", func() string {
			_, body, _ := strings.Cut(ticketOf(fresh()), ".")
			return connectURL("demo", url.Values{"ticket": {"k2." + body}})
		}, TypeTicketInvalid},
		{"ticket from another gateway", func() string {
			var resp connectResponse
			stranger.connect(sAda, "demo", connectBody(t, userKey(1), 50123)).decode(t, &resp)
			u, _ := url.Parse(resp.AuthorizeURL)
			return e.url + u.RequestURI()
		}, TypeTicketInvalid},
		{"ticket expired", func() string {
			u := fresh().resp.AuthorizeURL
			e.clock.Advance(10*time.Minute + time.Second)
			return u
		}, TypeTicketInvalid},
		{"ticket for another provider", func() string {
			return connectURL("small", url.Values{"ticket": {ticketOf(fresh())}})
		}, TypeTicketInvalid},
		{"state used as ticket", func() string {
			return connectURL("demo", url.Values{"ticket": {fresh().state}})
		}, TypeTicketInvalid},
		{"no ticket", func() string { return connectURL("demo", nil) }, TypeTicketInvalid},
		{"ticket twice", func() string {
			tk := ticketOf(fresh())
			return connectURL("demo", url.Values{"ticket": {tk, tk}})
		}, TypeBadRequest},
		{"state payload tampered", func() string {
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {flip(fresh().state, 5)}})
		}, TypeStateInvalid},
		{"state with a bit of its ciphertext flipped", func() string {
			st := fresh().state
			kid, body, _ := strings.Cut(st, ".")
			raw, _ := base64Decode(body)
			raw[len(raw)-1] ^= 1
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {kid + "." + base64Encode(raw)}})
		}, TypeStateInvalid},
		{"state expired", func() string {
			st := fresh().state
			e.clock.Advance(10*time.Minute + time.Second)
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {st}})
		}, TypeStateInvalid},
		{"state for another provider", func() string {
			return callbackURL("small", url.Values{"code": {"c"}, "state": {fresh().state}})
		}, TypeStateInvalid},
		{"ticket used as state", func() string {
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {ticketOf(fresh())}})
		}, TypeStateInvalid},
		{"app state used as state", func() string {
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {fresh().req.State}})
		}, TypeStateInvalid},
		{"no state", func() string { return callbackURL("demo", url.Values{"code": {"c"}}) }, TypeStateInvalid},
		{"two states", func() string {
			st := fresh().state
			return callbackURL("demo", url.Values{"code": {"c"}, "state": {st, st}})
		}, TypeBadRequest},
		{"neither code nor error", func() string {
			return callbackURL("demo", url.Values{"state": {fresh().state}})
		}, TypeBadRequest},
		{"unknown provider callback", func() string {
			return callbackURL("evil", url.Values{"code": {"c"}, "state": {fresh().state}})
		}, TypeProviderUnknown},
	}
	for _, param := range []string{"redirect_uri", "redirect_port", "port", "host", "scheme"} {
		value := map[string]string{"redirect_uri": "https://evil.example/cb", "redirect_port": "8080", "port": "80",
			"host": "evil.example", "scheme": "https"}[param]
		cases = append(cases,
			struct {
				name string
				url  func() string
				typ  string
			}{"connect with " + param, func() string {
				return connectURL("demo", url.Values{"ticket": {ticketOf(fresh())}, param: {value}})
			}, TypeBadRequest},
			struct {
				name string
				url  func() string
				typ  string
			}{"callback with " + param, func() string {
				return callbackURL("demo", url.Values{"code": {"c"}, "state": {fresh().state}, param: {value}})
			}, TypeBadRequest},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []string{"application/json", "text/html,application/xhtml+xml,*/*;q=0.8"} {
				u := tc.url()
				r := e.browse(u, "Accept", accept)
				if r.header.Get("Location") != "" || r.status/100 == 3 {
					t.Fatalf("redirected to %q", r.header.Get("Location"))
				}
				want := http.StatusBadRequest
				if tc.typ == TypeProviderUnknown {
					want = http.StatusNotFound
				}
				if r.status != want {
					t.Errorf("status %d, want %d: %s", r.status, want, r.body)
				}
				if strings.HasPrefix(accept, "text/html") {
					if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<h1>") {
						t.Errorf("browser got %s: %s", r.header.Get("Content-Type"), r.body)
					}
				} else if p := r.problem(t); p.Type != tc.typ {
					t.Errorf("type %s, want %s (%s)", p.Type, tc.typ, p.Detail)
				}
			}
		})
	}

	// Hostile values inside the code and iss stay query values on the fixed loopback target.
	t.Run("hostile code and iss", func(t *testing.T) {
		f := fresh()
		code := "x&port=80#@evil.example:443/?redirect_uri=https://evil.example"
		r := e.browse(callbackURL("demo", url.Values{"code": {code}, "state": {f.state}, "iss": {"https://evil.example"}}))
		loc, err := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || err != nil {
			t.Fatalf("%d %v", r.status, err)
		}
		if loc.Scheme != "http" || loc.Host != "127.0.0.1:50123" || loc.Path != "/callback" || loc.Fragment != "" ||
			loc.Query().Get("code") != code || len(loc.Query()) != 3 {
			t.Errorf("Location %s", loc)
		}
	})
}

func base64Decode(s string) ([]byte, error) { return base64RawURL.DecodeString(s) }
func base64Encode(b []byte) string          { return base64RawURL.EncodeToString(b) }

func TestTokenSwap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		fp := newFakeProvider(t, "conf client", "s3cr:et/+&")
		fp.tokenBody = `{"access_token":"at-123","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-456","patient":"p1"}`
		ps := demoProviders(fp.fhirBase())
		ps = append(ps, Provider{ID: "conf", Name: "Confidential Care", FHIRBase: fp.fhirBase(), ClientID: "conf client",
			ClientSecret: "s3cr:et/+&", Scopes: "openid", UserLimit: 5})
		e := newEnv(t, dsn, ps)
		ada := e.register("Ada", "ada@example.org")

		f := e.startFlow(t, ada, "conf", 50200)
		r := e.browse(f.authorize.String())
		cb, _ := url.Parse(r.header.Get("Location"))
		code := cb.Query().Get("code")

		swap := func(body map[string]string) reply { return e.call(http.MethodPost, "/v1/token/conf", ada, body) }
		r = swap(map[string]string{"grant_type": "authorization_code", "code": code, "code_verifier": f.verifier,
			"redirect_uri": e.url + "/v1/callback/conf"})
		if r.status != http.StatusOK || string(r.body) != fp.tokenBody {
			t.Fatalf("swap: %d %s", r.status, r.body)
		}
		if r.header.Get(UpstreamHeader) != "provider" || r.header.Get("Cache-Control") != "no-store" ||
			r.header.Get("Content-Type") != "application/json" {
			t.Errorf("swap headers %v", r.header)
		}
		fp.mu.Lock()
		form := fp.tokenForms[len(fp.tokenForms)-1]
		fp.mu.Unlock()
		if form.Get("redirect_uri") != e.url+"/v1/callback/conf" || form.Get("client_secret") != "" {
			t.Errorf("token form %v", form)
		}

		cases := []struct {
			name   string
			path   string
			body   map[string]string
			status int
			typ    string // "" means relayed from the provider
			relay  string
		}{
			{"refresh", "/v1/token/conf", map[string]string{"grant_type": "refresh_token", "refresh_token": "rt-456"}, 200, "", fp.tokenBody},
			{"bad verifier relayed", "/v1/token/conf", map[string]string{"grant_type": "authorization_code", "code": code, "code_verifier": "wrong"},
				400, "", `{"error":"invalid_grant","error_description":"bad code or verifier"}`},
			{"public provider", "/v1/token/demo", map[string]string{"grant_type": "refresh_token", "refresh_token": "x"}, 400, TypeProviderNotConfidential, ""},
			{"unknown provider", "/v1/token/nope", map[string]string{"grant_type": "refresh_token", "refresh_token": "x"}, 404, TypeProviderUnknown, ""},
			{"other redirect_uri", "/v1/token/conf", map[string]string{"grant_type": "authorization_code", "code": code, "code_verifier": f.verifier,
				"redirect_uri": "http://127.0.0.1:9999/callback"}, 400, TypeBadRequest, ""},
			{"bad grant", "/v1/token/conf", map[string]string{"grant_type": "password"}, 400, TypeBadRequest, ""},
			{"no code", "/v1/token/conf", map[string]string{"grant_type": "authorization_code"}, 400, TypeBadRequest, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.call(http.MethodPost, tc.path, ada, tc.body)
				if r.status != tc.status {
					t.Fatalf("%d %s", r.status, r.body)
				}
				if tc.typ == "" {
					if string(r.body) != tc.relay || r.header.Get(UpstreamHeader) != "provider" {
						t.Errorf("relayed %s (%v)", r.body, r.header)
					}
				} else if p := r.problem(t); p.Type != tc.typ || r.header.Get(UpstreamHeader) != "" {
					t.Errorf("problem %+v", p)
				}
			})
		}
		t.Run("wrong client secret is the provider's 401", func(t *testing.T) {
			fp.mu.Lock()
			fp.clientSecret = "rotated"
			fp.mu.Unlock()
			defer func() { fp.mu.Lock(); fp.clientSecret = "s3cr:et/+&"; fp.mu.Unlock() }()
			r := swap(map[string]string{"grant_type": "refresh_token", "refresh_token": "rt-456"})
			if r.status != http.StatusUnauthorized || string(r.body) != `{"error":"invalid_client"}` {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	})
}

func TestTokenSwapProviderDown(t *testing.T) {
	ps := []Provider{{ID: "conf", Name: "Confidential Care", FHIRBase: "http://127.0.0.1:1/fhir", ClientID: "c",
		ClientSecret: "s", Scopes: "openid", UserLimit: 5, AuthorizeURL: "http://127.0.0.1:1/a", TokenURL: "http://127.0.0.1:1/t"}}
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), ps)
	ada := e.register("Ada", "ada@example.org")
	r := e.call(http.MethodPost, "/v1/token/conf", ada, map[string]string{"grant_type": "refresh_token", "refresh_token": "rt-secret-value"})
	if r.status != http.StatusBadGateway {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Type != TypeProviderError || p.Detail != "Confidential Care could not be reached to complete the sign-in. Try again later." {
		t.Errorf("%+v", p)
	}
	e.srv.Close()
	if strings.Contains(e.logs.String(), "rt-secret-value") {
		t.Error("log holds the refresh token")
	}
}

// TestLogsHoldNoSecrets runs every endpoint through a full flow and checks that no secret value
// reaches the log, while the log does record the requests.
func TestLogsHoldNoSecrets(t *testing.T) {
	fp := newFakeProvider(t, "conf-client", "client-secret-xyz")
	fp.tokenBody = `{"access_token":"access-token-abc","token_type":"Bearer","refresh_token":"refresh-token-def","patient":"p"}`
	ps := append(demoProviders(fp.fhirBase()), Provider{ID: "conf", Name: "Confidential Care", FHIRBase: fp.fhirBase(),
		ClientID: "conf-client", ClientSecret: "client-secret-xyz", Scopes: "openid", UserLimit: 5})
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), ps)
	ada := e.register("Ada", "ada@example.org")
	f := e.startFlow(t, ada, "conf", 50300)
	r := e.browse(f.authorize.String())
	cbURL := r.header.Get("Location")
	cb, _ := url.Parse(cbURL)
	code := cb.Query().Get("code")
	if r := e.browse(cbURL); r.status != http.StatusFound {
		t.Fatalf("callback %d", r.status)
	}
	r = e.call(http.MethodPost, "/v1/token/conf", ada, map[string]string{"grant_type": "authorization_code", "code": code,
		"code_verifier": f.verifier})
	if r.status != http.StatusOK {
		t.Fatalf("swap %d %s", r.status, r.body)
	}
	e.call(http.MethodPost, "/v1/token/conf", ada, map[string]string{"grant_type": "refresh_token", "refresh_token": "refresh-token-def"})
	e.call(http.MethodGet, "/v1/providers", creds{id: ada.id, secret: "wrong-secret-guess"}, nil)
	e.browse(e.url + "/v1/callback/conf?code=" + code + "&state=" + f.state[:20])
	e.call(http.MethodDelete, "/v1/users/conf/"+f.req.UserKey, ada, nil)

	e.srv.Close() // waits for in-flight handlers, whose log lines come after their responses
	logs := e.logs.String()
	u, _ := url.Parse(f.resp.AuthorizeURL)
	secrets := map[string]string{
		"installation secret": ada.secret, "code": code, "app state": f.req.State, "ticket": u.Query().Get("ticket"),
		"provider state": f.state, "code verifier": f.verifier, "client secret": "client-secret-xyz",
		"access token": "access-token-abc", "refresh token": "refresh-token-def", "wrong secret": "wrong-secret-guess",
		"user key": f.req.UserKey,
	}
	for name, v := range secrets {
		if v == "" {
			t.Fatalf("%s is empty: the test would prove nothing", name)
		}
		if strings.Contains(logs, v) {
			t.Errorf("the log holds the %s", name)
		}
	}
	for _, want := range []string{"path=/v1/connect/conf", "path=/v1/callback/conf", "path=/v1/token/conf", "status=302",
		"installation_id=" + ada.id, "method=POST", "duration=", "client=127.0.0.1", "path=/v1/users/{provider}/{user_key} "} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestDiscoveryWithoutS256Refused(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"authorization_endpoint":"https://p.example/a","token_endpoint":"https://p.example/t","code_challenge_methods_supported":["plain"]}`))
	})
	p := newTestServer(t, mux)
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders(p+"/fhir"))
	ada := e.register("Ada", "ada@example.org")
	var resp connectResponse
	e.connect(ada, "demo", connectBody(t, userKey(1), 50000)).decode(t, &resp)
	r := e.browse(resp.AuthorizeURL)
	if r.status != http.StatusBadGateway || r.problem(t).Type != TypeProviderError {
		t.Errorf("%d %s", r.status, r.body)
	}
}

func TestNewReopensAndKeepsKey(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "gw.db")
	ps := demoProviders("https://fhir.example.org/r4")
	g1, err := New(context.Background(), Config{DB: dsn, Providers: ps, PublicURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := g1.sealer.seal(context.Background(), purposeTicket, flowClaims{Installation: "i", Provider: "demo",
		AppState: "s", Port: 50000, Expires: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	g1.Close()
	g2, err := New(context.Background(), Config{DB: dsn, Providers: ps, PublicURL: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if _, err := g2.sealer.open(context.Background(), purposeTicket, ticket, "demo"); err != nil {
		t.Errorf("the ticket key changed across restarts: %v", err)
	}
	if g2.public != "http://127.0.0.1:1" {
		t.Errorf("public %q", g2.public)
	}
	for _, bad := range []Config{
		{DB: dsn, Providers: ps, PublicURL: "127.0.0.1:1"},
		{DB: dsn, Providers: ps, PublicURL: "ftp://x"},
		{DB: dsn, Providers: nil, PublicURL: "http://x"},
		{DB: "", Providers: ps, PublicURL: "http://x"},
	} {
		if g, err := New(context.Background(), bad); err == nil {
			g.Close()
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestLoadProviders(t *testing.T) {
	dir := t.TempDir()
	good := `[{"id":"demo","name":"Demo Hospital","fhir_base":"http://127.0.0.1:9400/fhir","client_id":"fasten-desktop",
		"scopes":"launch/patient openid fhirUser offline_access patient/*.read","user_limit":10},
		{"id":"conf","name":"C","fhir_base":"https://c.example/fhir","client_id":"c","client_secret":"s","scopes":"openid",
		"user_limit":2,"authorize_url":"https://c.example/a","token_url":"https://c.example/t"}]`
	cases := []struct {
		name, text string
		ok         bool
	}{
		{"good", good, true},
		{"empty", `[]`, false},
		{"not an array", `{}`, false},
		{"unknown field", strings.Replace(good, `"user_limit":10`, `"user_limit":10,"limit":3`, 1), false},
		{"duplicate id", strings.Replace(good, `"id":"conf"`, `"id":"demo"`, 1), false},
		{"bad id", strings.Replace(good, `"id":"demo"`, `"id":"Demo/1"`, 1), false},
		{"zero limit", strings.Replace(good, `"user_limit":10`, `"user_limit":0`, 1), false},
		{"relative fhir_base", strings.Replace(good, `http://127.0.0.1:9400/fhir`, `/fhir`, 1), false},
		{"only authorize_url", strings.Replace(good, `,"token_url":"https://c.example/t"`, ``, 1), false},
		{"no client_id", strings.Replace(good, `"client_id":"c",`, ``, 1), false},
		{"trailing data", good + " []", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			ps, err := LoadProviders(path)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (len(ps) != 2 || ps[0].Confidential() || !ps[1].Confidential() || ps[0].UserLimit != 10) {
				t.Errorf("%+v", ps)
			}
		})
	}
	if _, err := LoadProviders(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "gw.db"), demoProviders("https://fhir.example.org/r4"))
	r := e.call(http.MethodGet, "/v2/anything", creds{}, nil)
	if r.status != http.StatusNotFound || r.problem(t).Type != TypeNotFound {
		t.Errorf("%d %s", r.status, r.body)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	providers := filepath.Join(dir, "providers.json")
	os.WriteFile(providers, []byte(`[{"id":"demo","name":"Demo Hospital","fhir_base":"http://127.0.0.1:9400/fhir",
		"client_id":"fasten-desktop","scopes":"openid","user_limit":10}]`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- Command(ctx, []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "gw.db"), "--providers", providers},
			&syncBuffer{}, stderr, nil)
	}()
	var base string
	select {
	case line := <-stderr.lines:
		var ok bool
		if base, ok = strings.CutPrefix(line, "lighthouse listening on "); !ok || !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("first stderr line %q", line)
		}
	case err := <-done:
		t.Fatalf("Command returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line")
	}
	resp, err := http.Post(base+"/v1/installations", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("register via Command: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Command: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Command did not stop")
	}

	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0"},
		{"--db", filepath.Join(dir, "x.db"), "--providers", filepath.Join(dir, "missing.json")},
		{"--db", filepath.Join(dir, "x.db"), "--providers", providers, "extra"},
	} {
		if err := Command(context.Background(), args, &syncBuffer{}, &syncBuffer{}, nil); err == nil {
			t.Errorf("Command(%v) succeeded", args)
		}
	}
}
