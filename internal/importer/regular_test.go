package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIssue14_13_ImportRefusesNonRegularFiles: the importer refuses a named pipe (which would
// block it forever) and a device with a message, before opening them.
func TestIssue14_13_ImportRefusesNonRegularFiles(t *testing.T) {
	im, _ := newEnv(t)
	fifo := filepath.Join(t.TempDir(), "pipe.ndjson")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	// Should the check be missing, a writer ends the blocked open so the test fails instead of
	// hanging.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
		}
	}()
	for _, c := range []struct{ path, want string }{
		{fifo, "named pipe"},
		{"/dev/null", "device"},
	} {
		if _, err := os.Stat(c.path); err != nil {
			continue
		}
		_, err := im.Import(context.Background(), []Input{{Name: filepath.Base(c.path), Path: c.path}}, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "regular files only") {
			t.Errorf("%s: %v", c.path, err)
		}
	}
}
