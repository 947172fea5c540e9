package useragent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"v0.3.0-4-gabc1234-dirty", "fasten-desktop/v0.3.0-4-gabc1234-dirty"},
		{"dev (0123456789ab)", "fasten-desktop/dev"},
		{"", "fasten-desktop/dev"},
		{"  ", "fasten-desktop/dev"},
		{"1.0/beta;x", "fasten-desktop/1.0-beta-x"},
	} {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTransport(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.UserAgent())
	}))
	defer srv.Close()
	hc := &http.Client{Transport: Transport("fasten-desktop/v1", nil)}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("User-Agent") != "" {
		t.Error("the caller's request was modified")
	}
	req, _ = http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("User-Agent", "own/1")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 2 || got[0] != "fasten-desktop/v1" || got[1] != "own/1" {
		t.Fatalf("server saw %q", got)
	}
}
