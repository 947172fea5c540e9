package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

// The Lighthouse sees the app's version in the User-Agent of its requests.
func TestLighthouseRequestsCarryTheVersion(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	lh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		http.Error(w, `{"error":{"type":"unavailable","message":"test"}}`, http.StatusServiceUnavailable)
	}))
	defer lh.Close()
	b, err := Open(context.Background(), Options{DataDir: t.TempDir(), Keyring: secretstest.New(), Version: "v1.2.3-4-gabcdef0",
		LighthouseURL: lh.URL, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Installation.Register(context.Background(), "Ada Lovelace", "ada@example.org"); err == nil {
		t.Fatal("registered against a Lighthouse that answers 503")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) == 0 {
		t.Fatal("the Lighthouse saw no request")
	}
	for _, a := range agents {
		if a != "fasten-desktop/v1.2.3-4-gabcdef0" {
			t.Errorf("User-Agent %q", a)
		}
	}
}
