package people_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestIssue14_15_NamesAndJSONBodies: a person's name cannot hold NUL, control, zero-width or
// direction-overriding characters; a JSON body with a key twice is refused (one rule for every
// JSON body, as the importer refuses duplicate keys).
func TestIssue14_15_NamesAndJSONBodies(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	for _, r := range e.people.Routes() {
		mux.HandleFunc(r.Method+" /api/v1"+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/api/v1/profiles", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, name := range []string{"Ann\\u0000", "An\\u0007n", "\\u200b", "Ann\\u202eevil", "\\ufeffAnn", "Ann\\u2066x"} {
		if code, body := post(`{"name":"` + name + `"}`); code != http.StatusBadRequest || !strings.Contains(body, "bad_request") {
			t.Errorf("name %s: %d %s", name, code, body)
		}
	}
	if code, body := post(`{"name":"Ann","name":"Bob"}`); code != http.StatusBadRequest || !strings.Contains(body, "twice") {
		t.Errorf("duplicate key: %d %s", code, body)
	}
	if code, body := post(`{"name":"Raúl Fernández"}`); code != http.StatusCreated && code != http.StatusOK {
		t.Errorf("a plain accented name: %d %s", code, body)
	}
}
