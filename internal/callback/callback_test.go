package callback_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/callback"
)

const state = "expected-state-0123456789abcdefghijklmnopqrstu"

type handled struct {
	mu      sync.Mutex
	results []callback.Result
	err     error
}

func (h *handled) handle(ctx context.Context, r callback.Result) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.results = append(h.results, r)
	return h.err
}

func (h *handled) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.results)
}

func listen(t *testing.T, opts callback.Options) (*callback.Listener, *handled) {
	t.Helper()
	h := &handled{}
	if opts.ExpectedState == "" && opts.CheckState == nil {
		opts.ExpectedState = state
	}
	if opts.Handle == nil {
		opts.Handle = h.handle
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	l, err := callback.Listen(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, h
}

// noFollow does not follow redirects, to look at the 303 itself.
var noFollow = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

var follow = &http.Client{Timeout: 10 * time.Second}

type response struct {
	status int
	header http.Header
	body   string
	final  *url.URL
}

func do(t *testing.T, c *http.Client, method, u string, host string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), final: resp.Request.URL}
}

func callbackURL(l *callback.Listener, q url.Values) string {
	return l.RedirectURI() + "?" + q.Encode()
}

func waitClosed(t *testing.T, l *callback.Listener) {
	t.Helper()
	select {
	case <-l.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("listener did not close")
	}
	// The port no longer accepts connections.
	conn, err := net.DialTimeout("tcp4", l.Addr().String(), time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("dial %s succeeded after the listener closed", l.Addr())
	}
}

func TestBoundToLoopbackOnly(t *testing.T) {
	l, _ := listen(t, callback.Options{})
	addr := l.Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.IP.To4() == nil || addr.Port != l.Port() || l.Port() == 0 {
		t.Fatalf("bound to %v (port %d), want 127.0.0.1 and an ephemeral port", addr, l.Port())
	}
	if want := "http://127.0.0.1:" + strconv.Itoa(l.Port()) + "/callback"; l.RedirectURI() != want {
		t.Errorf("RedirectURI %q, want %q", l.RedirectURI(), want)
	}
	// Other local addresses on the same port: another loopback address, IPv6 loopback, and every
	// address of every interface.
	others := []string{"127.0.0.2", "::1"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.Equal(net.IPv4(127, 0, 0, 1)) && !ipn.IP.IsLinkLocalUnicast() {
				others = append(others, ipn.IP.String())
			}
		}
	}
	for _, ip := range others {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(l.Port())), time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("dial %s:%d succeeded: the listener is reachable beyond 127.0.0.1", ip, l.Port())
		}
	}
	// And 127.0.0.1 itself works.
	if r := do(t, noFollow, "GET", "http://"+l.Addr().String()+"/nothing", ""); r.status != http.StatusNotFound {
		t.Errorf("GET on 127.0.0.1: %d", r.status)
	}
}

func TestFixedPort(t *testing.T) {
	probe, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	l, _ := listen(t, callback.Options{Port: port})
	if l.Port() != port {
		t.Fatalf("Port %d, want %d", l.Port(), port)
	}
}

func TestListenNeedsAState(t *testing.T) {
	if _, err := callback.Listen(context.Background(), callback.Options{}); err == nil {
		t.Fatal("Listen without ExpectedState or CheckState succeeded")
	}
}

func TestOneValidCallback(t *testing.T) {
	l, h := listen(t, callback.Options{})
	q := url.Values{"code": {"the-code-SECRET"}, "state": {state}, "iss": {"https://ehr.example/fhir"}}

	// The callback itself: handled at once, then 303 to a path without the code.
	r := do(t, noFollow, "GET", callbackURL(l, q), "")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/done" {
		t.Fatalf("callback answered %d Location %q, want 303 to /done", r.status, r.header.Get("Location"))
	}
	if strings.Contains(r.header.Get("Location"), "SECRET") || strings.Contains(r.body, "SECRET") {
		t.Error("the code is in the redirect")
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("the app was not notified when the callback was answered")
	}
	res, err := l.Wait(context.Background())
	if err != nil || res.Code != "the-code-SECRET" || res.State != state || res.Iss != "https://ehr.example/fhir" {
		t.Fatalf("Wait: %v, %v", res, err)
	}
	if h.count() != 1 || h.results[0].Code != "the-code-SECRET" {
		t.Fatalf("Handle called %d times", h.count())
	}
	if s := res.String() + " " + strings.Join([]string{res.GoString()}, ""); strings.Contains(s, "SECRET") {
		t.Errorf("Result formatting shows the code: %s", s)
	}

	// The browser follows to /done and gets the friendly page; then the listener closes.
	page := do(t, follow, "GET", "http://"+l.Addr().String()+"/done", "")
	if page.status != http.StatusOK || !strings.Contains(page.body, "You&#39;re connected") || !strings.Contains(page.body, "You can close this tab and return to Fasten") {
		t.Errorf("/done: %d\n%s", page.status, page.body)
	}
	waitClosed(t, l)
	// Wait keeps returning the same outcome.
	if res2, err2 := l.Wait(context.Background()); err2 != nil || res2 != res {
		t.Errorf("second Wait: %v %v", res2, err2)
	}
}

func TestFollowingTheRedirectEndsOnDone(t *testing.T) {
	l, _ := listen(t, callback.Options{})
	r := do(t, follow, "GET", callbackURL(l, url.Values{"code": {"c0de-SECRET"}, "state": {state}}), "")
	if r.status != http.StatusOK || r.final.Path != "/done" || r.final.RawQuery != "" {
		t.Fatalf("browser ended on %d %s, want 200 on /done without a query", r.status, r.final)
	}
	waitClosed(t, l)
}

func TestReplayedCallbackIsRefused(t *testing.T) {
	l, h := listen(t, callback.Options{DoneGrace: time.Hour})
	u := callbackURL(l, url.Values{"code": {"c1"}, "state": {state}})
	if r := do(t, noFollow, "GET", u, ""); r.status != http.StatusSeeOther {
		t.Fatalf("first callback: %d", r.status)
	}
	// /done not fetched yet: the listener is still open during the grace period.
	for _, replay := range []string{u, callbackURL(l, url.Values{"code": {"c2"}, "state": {state}})} {
		r := do(t, follow, "GET", replay, "")
		if r.status != http.StatusConflict || r.final.Path != "/error/already-used" || !strings.Contains(r.body, "already finished") {
			t.Errorf("replay answered %d at %s", r.status, r.final)
		}
	}
	if h.count() != 1 {
		t.Errorf("Handle called %d times, want 1", h.count())
	}
	if res, _ := l.Wait(context.Background()); res.Code != "c1" {
		t.Errorf("outcome changed by the replay: %v", res)
	}
}

func TestStateProblemsDoNotEndTheSignIn(t *testing.T) {
	expired := "expired-state-abcdefghijklmnopqrstuvwxyz0123456789"
	check := func(s string) error {
		if s == state {
			return nil
		}
		return errors.New("unknown or expired")
	}
	tests := []struct {
		name   string
		q      url.Values
		path   string
		phrase string
	}{
		{"missing state", url.Values{"code": {"c"}}, "/error/missing-state", "missing its security check"},
		{"empty state", url.Values{"code": {"c"}, "state": {""}}, "/error/missing-state", "missing its security check"},
		{"wrong state", url.Values{"code": {"c"}, "state": {"attacker"}}, "/error/invalid-state", "not valid or has expired"},
		{"expired state", url.Values{"code": {"c"}, "state": {expired}}, "/error/invalid-state", "not valid or has expired"},
		{"two states", url.Values{"code": {"c"}, "state": {state, "x"}}, "/error/invalid-state", "not valid or has expired"},
		{"two codes", url.Values{"code": {"c", "d"}, "state": {state}}, "/error/invalid-state", "not valid or has expired"},
		{"provider error with wrong state", url.Values{"error": {"access_denied"}, "state": {"attacker"}}, "/error/invalid-state", "not valid or has expired"},
	}
	for _, opts := range []callback.Options{{ExpectedState: state}, {CheckState: check}} {
		l, h := listen(t, opts)
		for _, tc := range tests {
			r := do(t, follow, "GET", callbackURL(l, tc.q), "")
			if r.status != http.StatusBadRequest || r.final.Path != tc.path || r.final.RawQuery != "" || !strings.Contains(r.body, tc.phrase) {
				t.Errorf("%s: %d at %s\n%s", tc.name, r.status, r.final, r.body)
			}
		}
		if h.count() != 0 {
			t.Fatalf("Handle called %d times for invalid callbacks", h.count())
		}
		select {
		case <-l.Done():
			t.Fatal("an invalid callback ended the sign-in")
		default:
		}
		// The real callback still works.
		if r := do(t, follow, "GET", callbackURL(l, url.Values{"code": {"real"}, "state": {state}}), ""); r.status != http.StatusOK {
			t.Fatalf("valid callback after stray ones: %d", r.status)
		}
		if res, err := l.Wait(context.Background()); err != nil || res.Code != "real" || h.count() != 1 {
			t.Fatalf("Wait: %v %v, Handle calls %d", res, err, h.count())
		}
	}
}

func TestProviderErrors(t *testing.T) {
	tests := []struct {
		name       string
		q          url.Values
		wantErr    error
		status     int
		phrase     string
		notPresent string
	}{
		{"access denied", url.Values{"error": {"access_denied"}, "error_description": {"User said no"}, "state": {state}},
			callback.ErrAccessDenied, http.StatusForbidden, "You declined to share your records", ""},
		{"provider problem, description escaped", url.Values{"error": {"server_error"}, "error_description": {`<script>alert(1)</script> <img src="https://evil.example/x">`}, "state": {state}},
			nil, http.StatusBadRequest, "The provider said: server_error: &lt;script&gt;alert(1)&lt;/script&gt;", "<script>"},
		{"no code", url.Values{"state": {state}}, callback.ErrNoCode, http.StatusBadRequest, "without a sign-in code", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, h := listen(t, callback.Options{})
			r := do(t, follow, "GET", callbackURL(l, tc.q), "")
			if r.status != tc.status || r.final.Path != "/done" || !strings.Contains(r.body, tc.phrase) || (tc.notPresent != "" && strings.Contains(r.body, tc.notPresent)) {
				t.Errorf("page %d at %s:\n%s", r.status, r.final, r.body)
			}
			_, err := l.Wait(context.Background())
			var pe *callback.ProviderError
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Wait: %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && (!errors.As(err, &pe) || pe.Code != "server_error" || errors.Is(err, callback.ErrAccessDenied)):
				t.Errorf("Wait: %v, want a *ProviderError server_error", err)
			}
			if h.count() != 0 {
				t.Errorf("Handle called for a callback without a code")
			}
			waitClosed(t, l)
		})
	}
}

func TestHandleErrorIsShown(t *testing.T) {
	exchangeErr := errors.New(`the provider rejected the sign-in (invalid_grant: PKCE <verification> failed)`)
	l, _ := listen(t, callback.Options{Handle: func(context.Context, callback.Result) error { return exchangeErr }})
	r := do(t, follow, "GET", callbackURL(l, url.Values{"code": {"c"}, "state": {state}}), "")
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "could not finish connecting") ||
		!strings.Contains(r.body, "PKCE &lt;verification&gt; failed") {
		t.Errorf("page %d:\n%s", r.status, r.body)
	}
	if _, err := l.Wait(context.Background()); !errors.Is(err, exchangeErr) {
		t.Errorf("Wait: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	l, h := listen(t, callback.Options{Timeout: 20 * time.Millisecond})
	_, err := l.Wait(context.Background())
	if !errors.Is(err, callback.ErrTimeout) {
		t.Fatalf("Wait: %v, want ErrTimeout", err)
	}
	waitClosed(t, l)
	if h.count() != 0 {
		t.Error("Handle called")
	}
}

func TestCloseAndCancel(t *testing.T) {
	l, _ := listen(t, callback.Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Wait(context.Background()); !errors.Is(err, callback.ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	waitClosed(t, l)

	ctx, cancel := context.WithCancel(context.Background())
	l2, err := callback.Listen(ctx, callback.Options{ExpectedState: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := l2.Wait(context.Background()); !errors.Is(err, callback.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after the Listen context ended: %v", err)
	}
	waitClosed(t, l2)

	// Wait honours its own context.
	l3, _ := listen(t, callback.Options{})
	wctx, wcancel := context.WithCancel(context.Background())
	wcancel()
	if _, err := l3.Wait(wctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
}

func TestClosesAfterGraceWhenDoneIsNotFetched(t *testing.T) {
	l, _ := listen(t, callback.Options{DoneGrace: 20 * time.Millisecond})
	if r := do(t, noFollow, "GET", callbackURL(l, url.Values{"code": {"c"}, "state": {state}}), ""); r.status != http.StatusSeeOther {
		t.Fatalf("callback: %d", r.status)
	}
	waitClosed(t, l)
}

func TestWrongHostAndMethod(t *testing.T) {
	l, h := listen(t, callback.Options{})
	valid := callbackURL(l, url.Values{"code": {"c"}, "state": {state}})
	port := strconv.Itoa(l.Port())
	for _, host := range []string{"localhost:" + port, "evil.example:" + port, "127.0.0.1", "[::1]:" + port} {
		if r := do(t, noFollow, "GET", valid, host); r.status != http.StatusForbidden {
			t.Errorf("Host %q: %d, want 403", host, r.status)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if r := do(t, noFollow, m, valid, ""); r.status != http.StatusNotFound {
			t.Errorf("%s /callback: %d, want 404", m, r.status)
		}
	}
	if h.count() != 0 {
		t.Fatal("Handle called")
	}
}

// TestHeadersOnEveryResponse checks the security headers and the self-contained pages on every
// kind of response the listener gives.
func TestHeadersOnEveryResponse(t *testing.T) {
	l, _ := listen(t, callback.Options{DoneGrace: time.Hour})
	base := "http://" + l.Addr().String()
	var responses []response
	add := func(method, u, host string) { responses = append(responses, do(t, noFollow, method, u, host)) }
	add("GET", base+"/", "")
	add("GET", base+"/done", "") // before any result
	add("GET", base+"/favicon.ico", "")
	add("POST", base+"/callback", "")
	add("GET", base+"/callback", "localhost:"+strconv.Itoa(l.Port()))
	add("GET", base+"/callback?code=c&state=wrong", "")
	add("GET", base+"/callback?code=c", "")
	for _, p := range []string{"/error/missing-state", "/error/invalid-state", "/error/already-used"} {
		add("GET", base+p, "")
	}
	add("GET", base+"/callback?code=c&state="+state, "") // the 303
	add("GET", base+"/callback?code=c&state="+state, "") // replay
	add("GET", base+"/done", "")

	want := map[string]string{
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
	}
	for i, r := range responses {
		for k, v := range want {
			got := r.header.Get(k)
			if k == "Content-Security-Policy" {
				if !strings.HasPrefix(got, v) {
					t.Errorf("response %d (%d): %s = %q, want it to start with %q", i, r.status, k, got, v)
				}
				continue
			}
			if got != v {
				t.Errorf("response %d (%d): %s = %q, want %q", i, r.status, k, got, v)
			}
		}
		lower := strings.ToLower(r.body)
		for _, bad := range []string{"<script", "src=", "href=", "url(", "@import", "<link", "<iframe", "<form", "http://", "https://"} {
			if strings.Contains(lower, bad) {
				t.Errorf("response %d (%d) body contains %q", i, r.status, bad)
			}
		}
		if r.status != http.StatusSeeOther && !strings.Contains(r.body, "You can close this tab and return to Fasten") {
			t.Errorf("response %d (%d) is not the friendly page", i, r.status)
		}
	}
}
