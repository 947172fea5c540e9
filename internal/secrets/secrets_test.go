package secrets_test

// The tests that call keyring.MockInit / MockInitWithError change go-keyring's global provider:
// none of them runs in parallel. Tests that need their own backend use WithProvider with memKeyring.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/zalando/go-keyring"
)

const service = "fasten-desktop-test"

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// refreshToken4K is a 4 KB refresh token as some providers issue them (a JWT-like base64url text).
func refreshToken4K(t testing.TB) []byte {
	return []byte(base64.RawURLEncoding.EncodeToString(randomBytes(t, 3072)))[:4096]
}

// entries lists the raw strings stored for key (head and parts of either generation) in go-keyring.
func entries(t *testing.T, get func(service, user string) (string, error), key string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if v, err := get(service, key); err == nil {
		out[key] = v
	}
	for _, gen := range []string{"a", "b"} {
		for i := 1; i < 100; i++ {
			k := fmt.Sprintf("%s#%s%d", key, gen, i)
			v, err := get(service, k)
			if err != nil {
				break
			}
			out[k] = v
		}
	}
	return out
}

func TestRoundTripWithMock(t *testing.T) {
	keyring.MockInit()
	ctx := context.Background()
	k := secrets.NewKeyring(service)

	tests := []struct {
		name      string
		value     []byte
		wantParts int // entries in the keyring, head included
	}{
		{"empty", []byte{}, 1},
		{"small token json", []byte(`{"access_token":"abc","refresh_token":"def"}`), 1},
		{"binary with zero bytes", []byte{0, 1, 2, 0, 255, '\n', 0}, 1},
		{"4 KB refresh token", refreshToken4K(t), 3},
		{"16 KB value", randomBytes(t, 16<<10), 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "source/" + strings.ReplaceAll(tc.name, " ", "-")
			if err := k.Set(ctx, key, tc.value); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := k.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tc.value) {
				t.Fatalf("Get returned %d bytes that differ from the %d stored", len(got), len(tc.value))
			}
			es := entries(t, keyring.Get, key)
			if len(es) != tc.wantParts {
				t.Errorf("value stored in %d entries, want %d", len(es), tc.wantParts)
			}
			for name, v := range es {
				// Windows Credential Manager refuses more than 2560 bytes per password.
				if len(v) > secrets.DefaultChunkSize || len(v) > 2560 {
					t.Errorf("entry %s holds %d bytes, over the per-entry limit", name, len(v))
				}
			}
			if err := k.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if es := entries(t, keyring.Get, key); len(es) != 0 {
				t.Errorf("Delete left %d entries behind", len(es))
			}
			if _, err := k.Get(ctx, key); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestOverwriteShrinksAndGrows(t *testing.T) {
	keyring.MockInit()
	ctx := context.Background()
	k := secrets.NewKeyring(service)
	key := "source/overwrite"
	values := [][]byte{randomBytes(t, 16<<10), []byte("short"), refreshToken4K(t), randomBytes(t, 16<<10), []byte("x")}
	for i, v := range values {
		if err := k.Set(ctx, key, v); err != nil {
			t.Fatalf("Set #%d: %v", i, err)
		}
		got, err := k.Get(ctx, key)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get #%d: err %v, equal %v", i, err, bytes.Equal(got, v))
		}
	}
	// The last value fits in the head: no part of any generation is left over.
	if es := entries(t, keyring.Get, key); len(es) != 1 {
		names := make([]string, 0, len(es))
		for n := range es {
			names = append(names, n)
		}
		t.Errorf("after shrinking, entries %v remain; want only the head", names)
	}
}

func TestNotFoundIsDistinct(t *testing.T) {
	keyring.MockInit()
	k := secrets.NewKeyring(service)
	_, err := k.Get(context.Background(), "missing")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	for _, other := range []error{secrets.ErrUnavailable, secrets.ErrLocked, secrets.ErrTimeout, secrets.ErrCorrupt} {
		if errors.Is(err, other) {
			t.Errorf("not-found error also matches %v", other)
		}
	}
	if err := k.Delete(context.Background(), "missing"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

// fakeDBusError has the shape of github.com/godbus/dbus/v5.Error (a Name and a Body).
type fakeDBusError struct {
	Name string
	Body []any
}

func (e fakeDBusError) Error() string { return fmt.Sprint(e.Body...) }

func TestErrorKindsWithMockError(t *testing.T) {
	t.Cleanup(keyring.MockInit)
	secret := []byte("SECRET-REFRESH-TOKEN-VALUE-0123456789")
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"unsupported platform", keyring.ErrUnsupportedPlatform, secrets.ErrUnavailable},
		{"no session bus", errors.New("dbus: couldn't determine address of session bus"), secrets.ErrUnavailable},
		{"no secret service", fakeDBusError{Name: "org.freedesktop.DBus.Error.ServiceUnknown", Body: []any{"The name org.freedesktop.secrets was not provided by any .service files"}}, secrets.ErrUnavailable},
		{"unlock prompt dismissed", errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'"), secrets.ErrLocked},
		{"collection locked", fakeDBusError{Name: "org.freedesktop.Secret.Error.IsLocked", Body: []any{"Cannot get secret of a locked object"}}, secrets.ErrLocked},
		{"macOS no interaction", errors.New("security: SecKeychainItemCopyContent: User interaction is not allowed."), secrets.ErrLocked},
		{"d-bus no reply", fakeDBusError{Name: "org.freedesktop.DBus.Error.NoReply", Body: []any{"no reply"}}, secrets.ErrTimeout},
		{"too big", keyring.ErrSetDataTooBig, secrets.ErrTooLarge},
	}
	kinds := []error{secrets.ErrNotFound, secrets.ErrUnavailable, secrets.ErrLocked, secrets.ErrTooLarge, secrets.ErrCorrupt}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keyring.MockInitWithError(tc.err)
			k := secrets.NewKeyring(service)
			ctx := context.Background()
			errs := map[string]error{"set": k.Set(ctx, "source/1", secret)}
			_, errs["get"] = k.Get(ctx, "source/1")
			errs["delete"] = k.Delete(ctx, "source/1")
			for op, err := range errs {
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: %v, want %v", op, err, tc.want)
				}
				for _, other := range kinds {
					if other != tc.want && !(tc.want == secrets.ErrTimeout && other == secrets.ErrLocked) && errors.Is(err, other) {
						t.Errorf("%s: error also matches %q", op, other)
					}
				}
				var fd fakeDBusError
				if _, isDBus := tc.err.(fakeDBusError); isDBus && !errors.As(err, &fd) || !isDBus && !errors.Is(err, tc.err) {
					t.Errorf("%s: the cause is not reachable with errors.Is", op)
				}
				var e *secrets.Error
				if !errors.As(err, &e) || e.Op != op {
					t.Errorf("%s: want *secrets.Error with Op %q, got %#v", op, op, err)
				}
				if strings.Contains(err.Error(), string(secret)) {
					t.Errorf("%s: error text contains the secret value", op)
				}
				if err.Error() != tc.want.Error() {
					t.Errorf("%s: text %q, want the user-facing sentence %q", op, err.Error(), tc.want.Error())
				}
			}
		})
	}
}

func TestTimeoutMatchesLocked(t *testing.T) {
	if !errors.Is(secrets.ErrTimeout, secrets.ErrLocked) {
		t.Fatal("ErrTimeout must match ErrLocked")
	}
	if errors.Is(secrets.ErrLocked, secrets.ErrTimeout) {
		t.Fatal("ErrLocked must not match ErrTimeout")
	}
}

func TestConcurrentUseWithMock(t *testing.T) {
	keyring.MockInit()
	k := secrets.NewKeyring(service)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("source/%d", i)
			v := bytes.Repeat([]byte{byte('a' + i)}, 3000+i)
			for range 5 {
				if err := k.Set(ctx, key, v); err != nil {
					errs <- err
					return
				}
				got, err := k.Get(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, v) {
					errs <- fmt.Errorf("%s: read back a different value", key)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
