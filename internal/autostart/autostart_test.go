//go:build !windows && !darwin

package autostart

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseDesktopEntry reads the [Desktop Entry] group of a file (keys and raw values), failing on
// anything the Desktop Entry Specification does not allow.
func parseDesktopEntry(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	group := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			group = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || k == "" || strings.TrimSpace(k) != k {
				t.Fatalf("bad line %q", line)
			}
			if group != "Desktop Entry" {
				t.Fatalf("key %q outside [Desktop Entry]", k)
			}
			if _, dup := keys[k]; dup {
				t.Fatalf("duplicate key %q", k)
			}
			keys[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// unescapeString undoes the string-value escapes (\s \n \t \r \\).
func unescapeString(t *testing.T, v string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		i++
		if i == len(v) {
			t.Fatalf("dangling backslash in %q", v)
		}
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			// GLib refuses the whole value (g_key_file_get_string fails).
			t.Fatalf("invalid string escape \\%c in %q", v[i], v)
		}
	}
	return b.String()
}

// splitExec splits an (unescaped) Exec value into arguments the way a desktop launcher does.
func splitExec(t *testing.T, v string) []string {
	t.Helper()
	var args []string
	i := 0
	for i < len(v) {
		if v[i] == ' ' {
			i++
			continue
		}
		var arg strings.Builder
		if v[i] == '"' {
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				if c == '\\' && i+1 < len(v) && strings.IndexByte("\"`$\\", v[i+1]) >= 0 {
					arg.WriteByte(v[i+1])
					i += 2
					continue
				}
				if c == '\\' || c == '`' || c == '$' {
					t.Fatalf("unescaped %q inside quotes in %q", c, v)
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				arg.WriteByte(c)
				i++
			}
			if !closed {
				t.Fatalf("unterminated quote in %q", v)
			}
			if i < len(v) && v[i] != ' ' {
				t.Fatalf("text right after a closing quote in %q", v)
			}
		} else {
			for i < len(v) && v[i] != ' ' {
				if strings.IndexByte(reserved, v[i]) >= 0 {
					t.Fatalf("reserved character %q outside quotes in %q", v[i], v)
				}
				arg.WriteByte(v[i])
				i++
			}
		}
		s := arg.String()
		// Field codes: only %% is allowed in our entries.
		for j := 0; j < len(s); j++ {
			if s[j] == '%' {
				if j+1 >= len(s) || s[j+1] != '%' {
					t.Fatalf("field code or lone %% in %q", v)
				}
				j++
			}
		}
		args = append(args, strings.ReplaceAll(s, "%%", "%"))
	}
	return args
}

func TestExecLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		line string // the Exec value in the file; "" = only round-trip
	}{
		{[]string{"/usr/bin/fasten-desktop", "--background"}, `/usr/bin/fasten-desktop --background`},
		{[]string{"/opt/Fasten Desktop/fasten-desktop", "--background"}, `"/opt/Fasten Desktop/fasten-desktop" --background`},
		{[]string{`/tmp/a\b`, "--background"}, `"/tmp/a\\\\b" --background`},
		{[]string{`/tmp/$HOME/x`, "--background"}, `"/tmp/\\$HOME/x" --background`},
		{[]string{"/tmp/100%/x", "--background"}, `/tmp/100%%/x --background`},
		{[]string{`/tmp/say "hi"/x`}, `"/tmp/say \\"hi\\"/x"`},
		{[]string{"/tmp/`id`/x"}, "\"/tmp/\\\\`id\\\\`/x\""},
		{[]string{"/home/zoë/Applications/Fasten (2)/fasten-desktop", "--background"}, ""},
		{[]string{"/tmp/it's; rm -rf ~ & | < > * ? #/x", ""}, ""},
	} {
		line, err := ExecLine(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if tc.line != "" && line != tc.line {
			t.Errorf("%q:\n got Exec=%s\nwant Exec=%s", tc.args, line, tc.line)
		}
		if got := splitExec(t, unescapeString(t, line)); !slices.Equal(got, tc.args) {
			t.Errorf("Exec=%s reads back as %q, want %q", line, got, tc.args)
		}
	}
	for _, bad := range []string{"/tmp/a\nb", "/tmp/\x7f", "/tmp/\xff"} {
		if _, err := ExecLine([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEnableDisable(t *testing.T) {
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	a, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if a.Enabled() {
		t.Fatal("enabled before Enable")
	}
	if err := a.Disable(); err != nil {
		t.Errorf("Disable when not enabled: %v", err)
	}
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfgHome, "autostart", "fasten-desktop.desktop")
	if p, _ := a.Path(); p != path {
		t.Errorf("path %s, want %s", p, path)
	}
	if !a.Enabled() {
		t.Error("not enabled after Enable")
	}
	keys := parseDesktopEntry(t, path)
	for k, want := range map[string]string{"Type": "Application", "Name": "Fasten Desktop", "Terminal": "false", "X-GNOME-Autostart-enabled": "true"} {
		if keys[k] != want {
			t.Errorf("%s=%q, want %q", k, keys[k], want)
		}
	}
	args := splitExec(t, unescapeString(t, keys["Exec"]))
	if !slices.Equal(args, []string{exe, "--background"}) {
		t.Errorf("Exec runs %q, want %q --background", args, exe)
	}
	if unescapeString(t, keys["TryExec"]) != exe {
		t.Errorf("TryExec=%s", keys["TryExec"])
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v %v", st.Mode(), err)
	}
	// Enabling again replaces the entry (e.g. after the program moved).
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("%d files in the autostart folder, want 1", len(ents))
	}
	if err := a.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("entry still there: %v", err)
	}
	if a.Enabled() {
		t.Error("enabled after Disable")
	}
}

// TestPathWithSpacesAndSymlink: the program behind a symlink, in a folder with a space and a
// dollar sign, is what the entry runs.
func TestPathWithSpacesAndSymlink(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "My Apps $1 (beta)")
	if err := os.Mkdir(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(realDir, "fasten-desktop")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(prog, link); err != nil {
		t.Fatal(err)
	}
	cmd, err := commandFor(link)
	if err != nil {
		t.Fatal(err)
	}
	wantProg, _ := filepath.EvalSymlinks(prog)
	if !slices.Equal(cmd, []string{wantProg, BackgroundFlag}) {
		t.Fatalf("command %q", cmd)
	}
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	a := New("fasten-desktop", "Fasten Desktop", cmd)
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	path, _ := a.Path()
	keys := parseDesktopEntry(t, path)
	if got := splitExec(t, unescapeString(t, keys["Exec"])); !slices.Equal(got, cmd) {
		t.Errorf("Exec=%s runs %q, want %q", keys["Exec"], got, cmd)
	}

}

func TestDirFallsBackToHome(t *testing.T) {
	home := t.TempDir()
	a := New("x", "X", []string{"/bin/true"})
	a.getenv = func(k string) string {
		switch k {
		case "HOME":
			return home
		case "XDG_CONFIG_HOME":
			return "relative/ignored"
		}
		return ""
	}
	if d, err := a.Dir(); err != nil || d != filepath.Join(home, ".config", "autostart") {
		t.Errorf("dir %s %v", d, err)
	}
}

// TestGLibLaunchesEntry hands the entry to GLib's own Desktop Entry parser (gio launch, when
// installed) with a program in a folder whose name needs every kind of quoting, and checks the
// arguments the program received.
func TestGLibLaunchesEntry(t *testing.T) {
	gio, err := exec.LookPath("gio")
	if err != nil {
		t.Skip("gio is not installed")
	}
	dir := t.TempDir()
	progDir := filepath.Join(dir, "We $ird \"dir\" `x` \\b 100% (1) ü")
	if err := os.Mkdir(progDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "argv.txt")
	prog := filepath.Join(progDir, "fasten-desktop")
	script := "#!/bin/sh\nfor a in \"$0\" \"$@\"; do printf '%s\\n' \"$a\"; done > '" + out + ".tmp' && mv '" + out + ".tmp' '" + out + "'\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	// A control entry tells whether gio can launch anything here.
	control := New("glib-control", "GLib control", []string{"/bin/true"})
	if err := control.Enable(); err != nil {
		t.Fatal(err)
	}
	cpath, _ := control.Path()
	if b, err := exec.Command(gio, "launch", cpath).CombinedOutput(); err != nil {
		t.Skipf("gio launch cannot run here: %v %s", err, b)
	}
	want := []string{prog, BackgroundFlag, "two words"}
	a := New("glib-test", "GLib test", want)
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	path, _ := a.Path()
	if b, err := exec.Command(gio, "launch", path).CombinedOutput(); err != nil {
		entry, _ := os.ReadFile(path)
		t.Fatalf("GLib refuses the entry: %v %s\n%s", err, b, entry)
	}
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err = os.ReadFile(out); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the program did not run: %v", err)
	}
	if args := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n"); !slices.Equal(args, want) {
		t.Errorf("GLib ran %q, want %q", args, want)
	}
}

func TestPercentInProgramPathRunsThroughEnv(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cmd := []string{"/opt/100% Fasten/fasten-desktop", BackgroundFlag}
	a := New("fasten-desktop", "Fasten Desktop", cmd)
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	path, _ := a.Path()
	keys := parseDesktopEntry(t, path)
	want := append([]string{"/usr/bin/env"}, cmd...)
	if got := splitExec(t, unescapeString(t, keys["Exec"])); !slices.Equal(got, want) {
		t.Errorf("Exec=%s runs %q, want %q", keys["Exec"], got, want)
	}
	if keys["TryExec"] != cmd[0] {
		t.Errorf("TryExec=%s", keys["TryExec"])
	}
}
