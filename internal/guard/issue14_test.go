package guard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestIssue14_19_BearerSchemeIsCaseInsensitive: RFC 7235 auth schemes are case-insensitive.
func TestIssue14_19_BearerSchemeIsCaseInsensitive(t *testing.T) {
	h := handler(t)
	for _, c := range []struct {
		auth string
		want int
	}{
		{"Bearer " + tok, 200},
		{"bearer " + tok, 200},
		{"BEARER " + tok, 200},
		{"bEaReR  " + tok, 200},
		{"Basic " + tok, 401},
		{"bearer" + tok, 401},
		{tok, 401},
		{"bearer " + tok + "x", 401},
		{"bearer ", 401},
	} {
		req := httptest.NewRequest("GET", "/api/v1/sources", nil)
		req.Host = "127.0.0.1:9300"
		req.Header.Set("Authorization", c.auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%q: got %d, want %d", c.auth, rec.Code, c.want)
		}
	}
}

// slowServer runs h behind the guard on a real loopback listener, the way serve does.
func slowServer(t *testing.T, next http.Handler, cfg Config) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token, cfg.Port = tok, ln.Addr().(*net.TCPAddr).Port
	h, err := Wrap(next, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// answer sends head (a request without its body, or part of it), reads the response, and
// reports whether the server then closed the connection. The test deadline only stops a
// server that never answers; it measures nothing.
func answer(t *testing.T, addr, head string) (status int, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprint(conn, head)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	closed = errors.Is(err, io.EOF)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept the connection open: %v", err)
	}
	return resp.StatusCode, closed
}

// TestIssue14_8_SlowLoris: a denied request is answered and its connection closed at once, even
// when it announces a body it never sends; a body that stops coming is cut off after the body
// timeout, an upload's after its idle timeout, while an upload that keeps coming may take longer
// than the body timeout.
func TestIssue14_8_SlowLoris(t *testing.T) {
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, n)
	})
	addr := slowServer(t, readAll, Config{
		BodyTimeout: 300 * time.Millisecond, UploadIdle: 300 * time.Millisecond,
		UploadPaths: []string{"/api/v1/imports"},
	})
	host := "Host: " + addr + "\r\n"

	// Denied (no token, wrong host): answered and closed without reading the announced body.
	for _, head := range []string{
		"POST /api/v1/sources HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
		"POST /api/v1/imports HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
		"POST /api/v1/sources HTTP/1.1\r\n" + host + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
		"POST /api/v1/sources HTTP/1.1\r\nHost: evil.test\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
	} {
		status, closed := answer(t, addr, head)
		if status < 400 || !closed {
			t.Errorf("denied request: status %d, closed %v", status, closed)
		}
	}
	// Allowed, but the body stalls: the read fails after the body timeout.
	auth := "Authorization: bearer " + tok + "\r\n"
	status, _ := answer(t, addr, "POST /api/v1/sources HTTP/1.1\r\n"+host+auth+"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	if status != http.StatusRequestTimeout {
		t.Errorf("stalled body: status %d", status)
	}
	status, _ = answer(t, addr, "POST /api/v1/imports HTTP/1.1\r\n"+host+auth+"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	if status != http.StatusRequestTimeout {
		t.Errorf("stalled upload: status %d", status)
	}

	// An upload that keeps sending (a byte every 50 ms, 1.5 s in all) is not cut off by the
	// 300 ms body timeout.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	const n = 30
	fmt.Fprintf(conn, "POST /api/v1/imports HTTP/1.1\r\n%s%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", host, auth, n)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range n {
		<-tick.C
		if _, err := conn.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != fmt.Sprint(n) {
		t.Errorf("steady upload: %d %q", resp.StatusCode, b)
	}
}
