package secretstest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
)

func TestMemory(t *testing.T) {
	ctx := context.Background()
	k := secretstest.New()
	if _, err := k.Get(ctx, "a"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	v := []byte("one")
	if err := k.Set(ctx, "a", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X' // the store keeps its own copy
	got, err := k.Get(ctx, "a")
	if err != nil || string(got) != "one" {
		t.Fatalf("Get: %q, %v", got, err)
	}
	got[0] = 'Y'
	if again, _ := k.Get(ctx, "a"); string(again) != "one" {
		t.Fatalf("Get returned the stored slice itself: %q", again)
	}
	k.SetUnavailable(true)
	if _, err := k.Get(ctx, "a"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("unavailable Get: %v", err)
	}
	if err := k.Delete(ctx, "a"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("unavailable Delete: %v", err)
	}
	k.SetUnavailable(false)
	if err := k.Delete(ctx, "a"); err != nil || len(k.Values()) != 0 {
		t.Fatalf("Delete: %v, left %q", err, k.Values())
	}
	if err := k.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}
