package guard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const tok = "Zx4Qm9Tb2Wr7Lp0Kd5Hs8Vn3Yc6Fg1Jt-Ue_Ao4Ri7Sk"

func handler(t *testing.T) http.Handler {
	t.Helper()
	h, err := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), Config{
		Token: tok, Port: 9300,
		Open: func(r *http.Request) bool {
			return r.URL.Path == "/api/v1/health" || !strings.HasPrefix(r.URL.Path, "/api/")
		},
		FormPaths: []string{"/api/v1/hub"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestGuard(t *testing.T) {
	h := handler(t)
	auth := "Bearer " + tok
	cases := []struct {
		name, method, path, host string
		hdr                      map[string]string
		body                     string
		want                     int
	}{
		{"health open", "GET", "/api/v1/health", "127.0.0.1:9300", nil, "", 200},
		{"frontend open", "GET", "/", "127.0.0.1:9300", nil, "", 200},
		{"no token", "GET", "/api/v1/sources", "127.0.0.1:9300", nil, "", 401},
		{"wrong token", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": "Bearer nope"}, "", 401},
		{"token in query ignored", "GET", "/api/v1/sources?token=" + tok, "127.0.0.1:9300", nil, "", 401},
		{"token ok", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth}, "", 200},
		{"localhost ok", "GET", "/api/v1/sources", "localhost:9300", map[string]string{"Authorization": auth}, "", 200},
		{"ipv6 ok", "GET", "/api/v1/sources", "[::1]:9300", map[string]string{"Authorization": auth}, "", 200},
		{"evil host", "GET", "/api/v1/sources", "evil.test", map[string]string{"Authorization": auth}, "", 403},
		{"evil host with port", "GET", "/api/v1/health", "evil.test:9300", nil, "", 403},
		{"empty host", "GET", "/api/v1/health", "", nil, "", 403},
		{"wrong port", "GET", "/api/v1/health", "127.0.0.1:80", nil, "", 403},
		{"foreign origin", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Origin": "http://evil.test"}, "", 403},
		{"other local port origin", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Origin": "http://127.0.0.1:8080"}, "", 403},
		{"own origin", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Origin": "http://127.0.0.1:9300"}, "", 200},
		{"cross-site fetch", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "cross-site"}, "", 403},
		{"same-site fetch", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "same-site"}, "", 403},
		{"same-origin fetch", "GET", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "same-origin"}, "", 200},
		{"preflight", "OPTIONS", "/api/v1/sources", "127.0.0.1:9300", map[string]string{"Origin": "http://127.0.0.1:9300"}, "", 403},
		{"json post", "POST", "/api/v1/sync", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Content-Type": "application/json"}, "{}", 200},
		{"empty post", "POST", "/api/v1/sync", "127.0.0.1:9300", map[string]string{"Authorization": auth}, "", 200},
		{"text/plain post", "POST", "/api/v1/sync", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, "x", 415},
		{"form post elsewhere", "POST", "/api/v1/sync", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}, "a=b", 415},
		{"form post to hub", "POST", "/api/v1/hub", "127.0.0.1:9300", map[string]string{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}, "a=b", 200},
		{"body without type", "PATCH", "/api/v1/sources/1", "127.0.0.1:9300", map[string]string{"Authorization": auth}, "{}", 415},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		r.Host = c.host
		if c.body == "" {
			r.ContentLength = 0
		}
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: got %d want %d (%s)", c.name, w.Code, c.want, w.Body)
		}
		for _, hd := range []string{"X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy"} {
			if w.Header().Get(hd) == "" {
				t.Errorf("%s: missing %s", c.name, hd)
			}
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header present", c.name)
		}
	}
}

func TestTokens(t *testing.T) {
	a, _ := NewToken()
	b, _ := NewToken()
	if a == b || len(a) != 43 || CheckToken(a) != nil {
		t.Fatalf("tokens %q %q", a, b)
	}
	if CheckToken("short") == nil {
		t.Fatal("short token accepted")
	}
	if _, err := Wrap(http.NotFoundHandler(), Config{Token: "short", Port: 1}); err == nil {
		t.Fatal("Wrap accepted a short token")
	}
}

func TestLoopbackListen(t *testing.T) {
	l, err := LoopbackListen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.168.1.1:0", "example.com:80"} {
		if l, err := LoopbackListen(addr, false); err == nil {
			l.Close()
			t.Errorf("%s accepted", addr)
		}
	}
}
