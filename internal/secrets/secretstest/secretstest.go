// Package secretstest provides an in-memory secrets.Store for tests, injected where the app takes
// a keyring. The app itself has no such fallback: outside tests secrets live in the OS keyring.
package secretstest

import (
	"context"
	"sync"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// Memory is a secrets.Store in memory. Values are copied in and out.
type Memory struct {
	mu          sync.Mutex
	m           map[string][]byte
	unavailable bool
}

var _ secrets.Store = (*Memory)(nil)

// New returns an empty Memory.
func New() *Memory { return &Memory{m: map[string][]byte{}} }

// Get returns the value under key, or an error matching secrets.ErrNotFound.
func (k *Memory) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return nil, &secrets.Error{Kind: secrets.ErrUnavailable, Op: "get"}
	}
	v, ok := k.m[key]
	if !ok {
		return nil, &secrets.Error{Kind: secrets.ErrNotFound, Op: "get"}
	}
	return append([]byte(nil), v...), nil
}

// Set stores a copy of value under key.
func (k *Memory) Set(_ context.Context, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return &secrets.Error{Kind: secrets.ErrUnavailable, Op: "set"}
	}
	k.m[key] = append([]byte(nil), value...)
	return nil
}

// Delete removes key; a missing key is not an error.
func (k *Memory) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return &secrets.Error{Kind: secrets.ErrUnavailable, Op: "delete"}
	}
	delete(k.m, key)
	return nil
}

// Values lists every stored value (in no order).
func (k *Memory) Values() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.m))
	for _, v := range k.m {
		out = append(out, string(v))
	}
	return out
}

// SetUnavailable makes every call fail with secrets.ErrUnavailable (true) or work again (false).
func (k *Memory) SetUnavailable(v bool) {
	k.mu.Lock()
	k.unavailable = v
	k.mu.Unlock()
}
