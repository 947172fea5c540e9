package cli

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestSandboxCommandNeedsNoFiles: `sandbox` from an empty folder, with no FASTEN_SHARED_DATA and
// no repository around, serves the built-in demo patients.
func TestSandboxCommandNeedsNoFiles(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("FASTEN_SHARED_DATA", "")
	os.Unsetenv("FASTEN_SHARED_DATA")
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- sandboxCmd(ctx, []string{"--listen", "127.0.0.1:0"}, Env{Stdout: out, Stderr: errOut, Getenv: func(string) string { return "" }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sandbox: %v", err)
		}
	}()
	re := regexp.MustCompile(`fhir_base=(\S+)\nlighthouse_url=(\S+)\n`)
	var m []string
	for deadline := time.Now().Add(time.Minute); m == nil; {
		m = re.FindStringSubmatch(out.String())
		select {
		case err := <-done:
			t.Fatalf("sandbox stopped: %v; stderr: %s", err, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URLs printed; stderr: %s", errOut)
		}
		time.Sleep(20 * time.Millisecond) // polling the output with a deadline
	}
	for _, u := range []string{m[1] + "/metadata", m[1] + "/.well-known/smart-configuration"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
	// --data with a folder that has no bundles is refused with a clear error.
	err := sandboxCmd(context.Background(), []string{"--listen", "127.0.0.1:0", "--data", t.TempDir()}, Env{Stdout: &lockedBuffer{}, Stderr: &lockedBuffer{}, Getenv: func(string) string { return "" }})
	if err == nil || !regexp.MustCompile(`no patient-\*\.json bundles`).MatchString(err.Error()) {
		t.Fatalf("--data with an empty folder: %v", err)
	}
}
