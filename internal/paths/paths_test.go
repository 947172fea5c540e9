package paths

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func envMap(m map[string]string) Env { return func(k string) string { return m[k] } }

func TestResolvePerOS(t *testing.T) {
	cases := []struct {
		goos string
		env  map[string]string
		want Dirs
	}{
		{"linux", map[string]string{"HOME": "/home/a"}, Dirs{
			Data: "/home/a/.local/share/fasten-desktop", Config: "/home/a/.config/fasten-desktop",
			Logs: "/home/a/.local/state/fasten-desktop/logs"}},
		{"linux", map[string]string{"HOME": "/home/a", "XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s"}, Dirs{
			Data: "/d/fasten-desktop", Config: "/c/fasten-desktop", Logs: "/s/fasten-desktop/logs"}},
		// A relative XDG value is invalid per the spec and ignored.
		{"linux", map[string]string{"HOME": "/home/a", "XDG_DATA_HOME": "rel"}, Dirs{
			Data: "/home/a/.local/share/fasten-desktop", Config: "/home/a/.config/fasten-desktop",
			Logs: "/home/a/.local/state/fasten-desktop/logs"}},
		{"darwin", map[string]string{"HOME": "/Users/a"}, Dirs{
			Data: "/Users/a/Library/Application Support/Fasten Desktop", Config: "/Users/a/Library/Application Support/Fasten Desktop",
			Logs: "/Users/a/Library/Logs/Fasten Desktop"}},
	}
	for _, c := range cases {
		got, err := forOS(c.goos, envMap(c.env))
		if err != nil {
			t.Fatalf("%s %v: %v", c.goos, c.env, err)
		}
		if got != c.want {
			t.Errorf("%s %v:\n got %+v\nwant %+v", c.goos, c.env, got, c.want)
		}
	}
	if runtime.GOOS != "windows" {
		// filepath.Join uses the host separator, so only check that Windows resolves under LocalAppData.
		got, err := forOS("windows", envMap(map[string]string{"LocalAppData": "/lad"}))
		if err != nil || got.Config != filepath.Join("/lad", "Fasten Desktop") {
			t.Errorf("windows: %+v %v", got, err)
		}
	}
	if _, err := forOS("linux", envMap(nil)); err == nil {
		t.Error("no HOME and no XDG vars: want an error")
	}
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	flagDir := filepath.Join(dir, "flag")
	envDir := filepath.Join(dir, "env")
	env := envMap(map[string]string{"FASTEN_DATA_DIR": envDir, "HOME": "/home/a"})
	got, err := Resolve(flagDir, env)
	if err != nil || got.Data != flagDir || got.Config != flagDir || got.Logs != filepath.Join(flagDir, "logs") {
		t.Fatalf("flag override: %+v %v", got, err)
	}
	got, err = Resolve("", env)
	if err != nil || got.Data != envDir {
		t.Fatalf("env override: %+v %v", got, err)
	}
	if got.DB() != filepath.Join(envDir, "fasten.db") || got.ConfigFile() != filepath.Join(envDir, "config.json") {
		t.Fatalf("file paths: %s %s", got.DB(), got.ConfigFile())
	}
}

func TestEnsureCreatesPrivateDirs(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	dir := filepath.Join(t.TempDir(), "x")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := Resolve(dir, envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ensure(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.Data, d.Config, d.Logs} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %o, want 700", p, st.Mode().Perm())
		}
	}
}
