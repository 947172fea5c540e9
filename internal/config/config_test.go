package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadMissingIsEmpty(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "config.json"))
	c, err := s.Load()
	if err != nil || c.InstallationID != "" || c.SyncEvery() != DefaultSyncInterval {
		t.Fatalf("got %+v %v", c, err)
	}
}

func TestUpdateRoundTripAndPermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "config.json")
	s := NewStore(p)
	if _, err := s.Update(func(c *Config) error { c.InstallationID = "inst-1"; c.SyncInterval = "1h"; return nil }); err != nil {
		t.Fatal(err)
	}
	c, err := NewStore(p).Load()
	if err != nil || c.InstallationID != "inst-1" || c.SyncEvery() != time.Hour {
		t.Fatalf("got %+v %v", c, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	s := NewStore(p)
	if _, err := s.Update(func(c *Config) error { c.AdminName = "A"; return nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := s.Update(func(c *Config) error { c.AdminName = "B"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	c, _ := s.Load()
	if c.AdminName != "A" {
		t.Fatalf("changed despite error: %+v", c)
	}
}

func TestDamagedFileIsAClearError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte("{not json"), 0o600)
	_, err := NewStore(p).Load()
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), p) {
		t.Fatalf("got %v", err)
	}
}

func TestSyncEveryFloor(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultSyncInterval, "junk": DefaultSyncInterval, "1s": 5 * time.Minute, "-1h": DefaultSyncInterval, "6h": 6 * time.Hour} {
		if got := (Config{SyncInterval: in}).SyncEvery(); got != want {
			t.Errorf("%q: got %v want %v", in, got, want)
		}
	}
}
