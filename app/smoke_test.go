package app_test

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// The desktop smoke test runs the real binary (built with the desktop tags) in a real window under
// Xvfb. `make test` builds it and sets FASTEN_DESKTOP_BIN; without it the test says why it skips.

func desktopBin(t *testing.T) string {
	bin := os.Getenv("FASTEN_DESKTOP_BIN")
	if bin == "" {
		t.Skip("FASTEN_DESKTOP_BIN is not set: `make test` builds the desktop binary and runs this test")
	}
	for _, tool := range []string{"Xvfb", "import", "xwininfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps-test installs it): %v", tool, err)
		}
	}
	return bin
}

// xvfb starts a virtual display and returns its DISPLAY value.
func xvfb(t *testing.T) string {
	t.Helper()
	for n := 91; n < 140; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		cmd := exec.Command("Xvfb", fmt.Sprintf(":%d", n), "-screen", "0", "1400x900x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return fmt.Sprintf(":%d", n)
			}
			time.Sleep(50 * time.Millisecond) // polling for the socket file with a deadline
		}
		t.Fatalf("Xvfb :%d did not start", n)
	}
	t.Fatal("no free X display")
	return ""
}

func desktopEnv(display, dataDir string) []string {
	env := append(os.Environ(), "DISPLAY="+display, "WEBKIT_DISABLE_COMPOSITING_MODE=1", "WEBKIT_DISABLE_DMABUF_RENDERER=1",
		"FASTEN_DATA_DIR="+dataDir, "XDG_CONFIG_HOME="+filepath.Join(dataDir, "xdg-config"))
	return env
}

// start runs the binary and returns a channel of its stdout lines.
func start(t *testing.T, ctx context.Context, bin string, env []string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of %v:\n%s", args, stderr.String())
		}
	})
	return cmd, lines
}

func waitLine(t *testing.T, lines <-chan string, re *regexp.Regexp, within time.Duration) string {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the app exited before printing %q", re)
			}
			if re.MatchString(l) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line matching %q within %v", re, within)
		}
	}
}

// screenshot saves the root window and returns the share of pixels that are neither black nor
// the window background, a crude "something is drawn" measure.
func screenshot(t *testing.T, display, name string) float64 {
	t.Helper()
	dir := os.Getenv("FASTEN_TEST_OUTPUT")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, name)
	cmd := exec.Command("import", "-window", "root", path)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return inkShare(img)
}

func inkShare(img image.Image) float64 {
	b := img.Bounds()
	ink, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			total++
			if r>>8 < 200 && (r>>8 > 8 || g>>8 > 8 || bl>>8 > 8) { // not black, not near-white
				ink++
			}
		}
	}
	return float64(ink) / float64(total)
}

// fastenWindowViewable reports whether a window named Fasten is mapped and viewable.
func fastenWindowViewable(t *testing.T, display string) bool {
	t.Helper()
	cmd := exec.Command("xwininfo", "-root", "-tree")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xwininfo: %v", err)
	}
	re := regexp.MustCompile(`(?m)^\s+(0x[0-9a-f]+) "Fasten"`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		c := exec.Command("xwininfo", "-id", m[1])
		c.Env = cmd.Env
		info, err := c.Output()
		if err == nil && strings.Contains(string(info), "Map State: IsViewable") {
			return true
		}
	}
	return false
}

func TestDesktopWindowShowsTheDashboard(t *testing.T) {
	bin := desktopBin(t)
	display := xvfb(t)
	data := t.TempDir()
	bundle, err := shareddata.Path(shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "import", "--data-dir", data, bundle).CombinedOutput(); err != nil {
		t.Fatalf("pre-import: %v %s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd, lines := start(t, ctx, bin, desktopEnv(display, data))
	l := waitLine(t, lines, regexp.MustCompile(`^fasten: ui-ready view=dashboard`), 90*time.Second)
	t.Log(l)
	// The webview reached the API through the asset server: the app listens on no TCP port.
	if ports := listeningTCP(t, cmd.Process.Pid); len(ports) > 0 {
		t.Fatalf("the desktop app listens on TCP: %v", ports)
	}
	if !fastenWindowViewable(t, display) {
		t.Fatal("the Fasten window is not visible")
	}
	if ink := screenshot(t, display, "desktop-dashboard.png"); ink < 0.02 {
		t.Fatalf("the window looks blank (%.3f of pixels drawn)", ink)
	}
}

func TestBackgroundStartsHiddenAndSecondLaunchShowsIt(t *testing.T) {
	bin := desktopBin(t)
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Skip("the single-instance lock talks over the D-Bus session bus; `make test` runs the tests in dbus-run-session")
	}
	display := xvfb(t)
	data := t.TempDir()
	env := desktopEnv(display, data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := start(t, ctx, bin, env, "--background")
	// Give the hidden instance time to come up: it owns the single-instance lock once its D-Bus
	// name (Linux) is taken; poll for that through a second launch below instead of sleeping.
	deadline := time.Now().Add(60 * time.Second)
	for !fastenWindowExists(t, display) {
		if time.Now().After(deadline) {
			t.Fatal("the background instance never created its (hidden) window")
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	if fastenWindowViewable(t, display) {
		t.Fatal("--background showed a window")
	}
	// A second launch finds the first, asks it to show its window, and exits (Wails ends the
	// second process with status 1 once it has handed over).
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	second := exec.CommandContext(sctx, bin)
	second.Env = env
	out, err := second.CombinedOutput()
	if sctx.Err() != nil {
		t.Fatalf("the second launch did not hand over to the first and exit: %s", out)
	}
	t.Logf("second launch ended: %v", err)
	deadline = time.Now().Add(30 * time.Second)
	for !fastenWindowViewable(t, display) {
		if time.Now().After(deadline) {
			t.Fatal("the second launch did not show the first instance's window")
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	if first.ProcessState != nil {
		t.Fatal("the first instance exited")
	}
}

func fastenWindowExists(t *testing.T, display string) bool {
	cmd := exec.Command("xwininfo", "-root", "-tree")
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, _ := cmd.Output()
	return strings.Contains(string(out), `"Fasten"`)
}

// listeningTCP returns the local addresses of the TCP sockets in LISTEN state that process pid
// holds (its file descriptors matched against the kernel's TCP tables).
func listeningTCP(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read fds: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil {
			if inode, ok := strings.CutPrefix(target, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] { // 0A = LISTEN
				out = append(out, table+" "+f[1])
			}
		}
	}
	return out
}

// TestListeningTCPSeesAListener: the check above would catch a port (here, one of our own).
func TestListeningTCPSeesAListener(t *testing.T) {
	before := len(listeningTCP(t, os.Getpid()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := listeningTCP(t, os.Getpid()); len(got) != before+1 {
		t.Fatalf("listening sockets %v (before: %d)", got, before)
	}
}
