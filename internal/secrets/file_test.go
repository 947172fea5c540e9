package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// A low scrypt work factor keeps the tests fast; the default (age's 18) is what serve uses.
var lowWork = secrets.WithScryptWorkFactor(10)

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "secrets.age")
	s, err := secrets.OpenFileStore(path, []byte("correct horse battery staple"), lowWork)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	token := []byte(`{"access_token":"AT-very-secret-1234567890","refresh_token":"RT-even-more-secret-0987"}`)
	if err := s.Set(ctx, "token/1", token); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "token/1"); err != nil || !bytes.Equal(got, token) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := s.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "other"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Get(ctx, "other"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Set(ctx, "big", make([]byte, secrets.MaxValueSize+1)); !errors.Is(err, secrets.ErrTooLarge) {
		t.Fatalf("Set of a too large value: %v", err)
	}
	if err := s.Set(ctx, "bad key", []byte("x")); err == nil {
		t.Fatal("a key with a space was accepted")
	}

	// Nothing of the token is in the file, in clear or base64.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range [][]byte{[]byte("AT-very-secret"), []byte("RT-even-more"), []byte("token/1"),
		[]byte(base64.StdEncoding.EncodeToString(token)[:20]), []byte("correct horse")} {
		if bytes.Contains(raw, needle) {
			t.Errorf("the file contains %q", needle)
		}
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Reopened with the passphrase: the value is there; a second store on the same file sees the
	// first one's writes (every call reads the file).
	s2, err := secrets.OpenFileStore(path, []byte("correct horse battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Get(ctx, "token/1"); err != nil || !bytes.Equal(got, token) {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
	if err := s2.Set(ctx, "from-s2", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "from-s2"); err != nil || string(got) != "v" {
		t.Fatalf("the first store does not see the second's write: %q, %v", got, err)
	}
}

func TestFileStoreWrongPassphraseLosesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "secrets.age")
	s, err := secrets.OpenFileStore(path, []byte("the right one"), lowWork)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, pass := range []string{"the wrong one", "the right one "} {
		_, err := secrets.OpenFileStore(path, []byte(pass))
		if !errors.Is(err, secrets.ErrWrongPassphrase) {
			t.Fatalf("%q: err = %v, want ErrWrongPassphrase", pass, err)
		}
		if err.Error() != secrets.ErrWrongPassphrase.Error() {
			t.Errorf("message %q", err)
		}
	}
	if _, err := secrets.OpenFileStore(path, nil); !errors.Is(err, secrets.ErrNoPassphrase) {
		t.Fatalf("empty passphrase: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the file changed")
	}
	s2, err := secrets.OpenFileStore(path, []byte("the right one"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("value lost: %q, %v", got, err)
	}
}

func TestFileStoreDamagedFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":       "hello",
		"other json":     `{"a":1}`,
		"future format":  `{"fasten_secrets":2,"identity":"YQ==","data":"YQ=="}`,
		"bad identity":   `{"fasten_secrets":1,"identity":"YQ==","data":"YQ=="}`,
		"truncated file": `{"fasten_secrets":1,"identity":`,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := secrets.OpenFileStore(path, []byte("pass"))
		if !errors.Is(err, secrets.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("%s: the file changed", name)
		}
	}
	// Entries that do not decrypt (data from another file) are found at open.
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if _, err := secrets.OpenFileStore(p, []byte("pass"), lowWork); err != nil {
			t.Fatal(err)
		}
	}
	ra, _ := os.ReadFile(a)
	rb, _ := os.ReadFile(b)
	mixed := append(bytes.Clone(ra[:bytes.Index(ra, []byte(`"data"`))]), rb[bytes.Index(rb, []byte(`"data"`)):]...)
	if err := os.WriteFile(a, mixed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.OpenFileStore(a, []byte("pass")); !errors.Is(err, secrets.ErrCorrupt) {
		t.Fatalf("mixed file: %v", err)
	}
}

func TestFileStoreContext(t *testing.T) {
	s, err := secrets.OpenFileStore(filepath.Join(t.TempDir(), "s"), []byte("p"), lowWork)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Set(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with a cancelled context: %v", err)
	}
}
