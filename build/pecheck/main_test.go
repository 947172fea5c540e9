package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Builds two tiny Windows programs, one with -H windowsgui and one without, and checks that
// only the first passes.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(name string, ldflags ...string) string {
		out := filepath.Join(dir, name)
		args := append([]string{"build", "-o", out}, ldflags...)
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, ".")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v %s", name, err, b)
		}
		return out
	}
	gui := build("gui.exe", "-ldflags=-H windowsgui")
	console := build("console.exe")
	// A GUI program without resources is what `make dist` built before it embedded them.
	if _, err := check(gui, false); err == nil || !strings.Contains(err.Error(), "no resources") {
		t.Errorf("gui without resources: %v", err)
	}
	if desc, err := check(gui, true); err != nil || !strings.Contains(desc, "PE32+") {
		t.Errorf("gui as an installer: %q %v", desc, err)
	}
	if _, err := check(console, false); err == nil || !strings.Contains(err.Error(), "not a GUI program") {
		t.Errorf("console: %v", err)
	}
	if _, err := check(src, false); err == nil {
		t.Error("a Go source file passed as a PE file")
	}
}
