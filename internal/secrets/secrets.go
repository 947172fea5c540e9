// Package secrets keeps tokens and other secrets in the operating system's keyring (Secret Service
// on Linux, Keychain on macOS, Credential Manager on Windows) through go-keyring.
//
// Rules this package enforces:
//   - Every call has a deadline (default 5 s). A keyring that shows an unlock prompt, or a D-Bus
//     service that never answers, cannot hang the app: the call returns ErrTimeout (which also
//     matches ErrLocked) while the stuck keyring call finishes, or not, in the background.
//   - "Not found", "unavailable" and "locked" are distinct errors (ErrNotFound, ErrUnavailable,
//     ErrLocked), checkable with errors.Is. Their text is a sentence that can be shown to the user
//     as is; it never contains a secret value.
//   - There is no plaintext fallback. When the keyring cannot be used, the caller gets an error.
//   - Values larger than one keyring entry allows (Windows Credential Manager refuses passwords over
//     2560 bytes, macOS refuses a `security` command line over 4096 bytes) are split across several
//     entries; see chunk.go for the format and why a crash never leaves a mix that verifies.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/zalando/go-keyring"
)

// Store keeps secret values by key.
type Store interface {
	// Get returns the value stored under key, or an error matching ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key, replacing any previous value.
	Set(ctx context.Context, key string, value []byte) error
	// Delete removes key and every entry that belongs to it. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Sentinel errors. Compare with errors.Is; the errors returned by Keyring are *Error values whose
// text is the sentinel's sentence.
var (
	// ErrNotFound: nothing is stored under the key.
	ErrNotFound = errors.New("No saved sign-in was found in the system keyring.")
	// ErrUnavailable: there is no usable keyring (no Secret Service or D-Bus session on Linux, an
	// unsupported platform, or a keyring error this package does not recognise).
	ErrUnavailable = errors.New("The system keyring is not available. Fasten keeps sign-ins only in the system keyring; on Linux, install and start a Secret Service such as GNOME Keyring or KWallet, then try again.")
	// ErrLocked: the keyring collection is locked, or the user dismissed the unlock prompt.
	ErrLocked = errors.New("The system keyring is locked. Unlock it and try again.")
	// ErrTimeout: the keyring did not answer in time, most likely because it waits for an unlock
	// prompt. errors.Is(ErrTimeout, ErrLocked) is true.
	ErrTimeout error = timeoutError{}
	// ErrCorrupt: an entry exists but is not in this package's format, or its parts do not match
	// their checksum (an interrupted write by another process, or tampering).
	ErrCorrupt = errors.New("A saved sign-in in the system keyring is damaged. Connect the provider again.")
	// ErrTooLarge: the value is larger than MaxValueSize.
	ErrTooLarge = errors.New("The value is too large to keep in the system keyring.")
)

type timeoutError struct{}

func (timeoutError) Error() string {
	return "The system keyring did not answer in time. It may be locked and waiting for you to unlock it. Unlock it and try again."
}

func (timeoutError) Is(target error) bool { return target == ErrLocked }

// Error is the error type returned by Keyring. Error() is the user-facing sentence of Kind; Op and
// the underlying error (kept for logs, reachable with errors.As/Unwrap) never carry secret values.
type Error struct {
	Kind error  // one of the sentinel errors above
	Op   string // "get", "set" or "delete"
	Err  error  // the underlying keyring or context error, if any
}

func (e *Error) Error() string { return e.Kind.Error() }

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// DefaultTimeout bounds every Keyring call unless WithTimeout says otherwise.
const DefaultTimeout = 5 * time.Second

// Option configures a Keyring.
type Option func(*Keyring)

// WithTimeout sets the deadline of every call (Get, Set, Delete, including all their chunks).
func WithTimeout(d time.Duration) Option {
	return func(k *Keyring) {
		if d > 0 {
			k.timeout = d
		}
	}
}

// WithChunkSize sets the largest string written to one keyring entry (default DefaultChunkSize).
// Values below minChunkSize are raised to it. Tests use it to exercise chunking with small values.
func WithChunkSize(n int) Option {
	return func(k *Keyring) { k.chunkSize = max(n, minChunkSize) }
}

// WithProvider replaces the go-keyring backend (the platform keyring, or go-keyring's mock after
// keyring.MockInit). Tests use it to inject a backend that never answers.
func WithProvider(p keyring.Keyring) Option {
	return func(k *Keyring) { k.provider = p }
}

// Keyring is a Store over go-keyring. All entries live under one service name; the key is the
// go-keyring "user". It is safe for concurrent use; calls on one Keyring run one at a time so that
// the parts of a split value are never interleaved by two writers in this process.
type Keyring struct {
	service   string
	timeout   time.Duration
	chunkSize int
	provider  keyring.Keyring
	sem       chan struct{} // capacity 1: one keyring operation at a time
}

// NewKeyring returns a Store that keeps values in the system keyring under service
// (for example "fasten-desktop").
func NewKeyring(service string, opts ...Option) *Keyring {
	k := &Keyring{
		service:   service,
		timeout:   DefaultTimeout,
		chunkSize: DefaultChunkSize,
		provider:  packageProvider{},
		sem:       make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(k)
	}
	return k
}

var _ Store = (*Keyring)(nil)

// Get returns the value stored under key.
func (k *Keyring) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var out []byte
	err := k.do(ctx, "get", func(b *backend) error {
		v, err := k.getValue(b, key)
		out = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Set stores value under key.
func (k *Keyring) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return &Error{Kind: ErrTooLarge, Op: "set"}
	}
	return k.do(ctx, "set", func(b *backend) error { return k.setValue(b, key, value) })
}

// Delete removes key and all its parts. A missing key is not an error.
func (k *Keyring) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return k.do(ctx, "delete", func(b *backend) error { return k.deleteValue(b, key) })
}

// backend wraps the provider for one operation: every call first checks whether the caller has
// given up (timeout or cancellation), so an abandoned operation stops at the next step instead of
// carrying on writing.
type backend struct {
	p         keyring.Keyring
	service   string
	abandoned *atomic.Bool
}

var errAbandoned = errors.New("keyring operation abandoned by its caller")

func (b *backend) get(user string) (string, error) {
	if b.abandoned.Load() {
		return "", errAbandoned
	}
	return b.p.Get(b.service, user)
}

func (b *backend) set(user, value string) error {
	if b.abandoned.Load() {
		return errAbandoned
	}
	return b.p.Set(b.service, user, value)
}

func (b *backend) delete(user string) error {
	if b.abandoned.Load() {
		return errAbandoned
	}
	return b.p.Delete(b.service, user)
}

// do runs fn in its own goroutine so that the caller can return when the deadline passes or ctx
// ends even if the keyring never answers. Operations on one Keyring are serialised by k.sem; the
// semaphore is released by the goroutine when the keyring call really returns, so a stuck call makes
// later calls time out too (instead of stacking more unlock prompts).
func (k *Keyring) do(ctx context.Context, op string, fn func(*backend) error) error {
	timer := time.NewTimer(k.timeout)
	defer timer.Stop()

	select {
	case k.sem <- struct{}{}:
	case <-timer.C:
		return &Error{Kind: ErrTimeout, Op: op}
	case <-ctx.Done():
		return ctxError(op, ctx)
	}

	abandoned := new(atomic.Bool)
	done := make(chan error, 1)
	go func() {
		defer func() { <-k.sem }()
		done <- fn(&backend{p: k.provider, service: k.service, abandoned: abandoned})
	}()

	select {
	case err := <-done:
		return classify(op, err)
	case <-timer.C:
		abandoned.Store(true)
		return &Error{Kind: ErrTimeout, Op: op}
	case <-ctx.Done():
		abandoned.Store(true)
		return ctxError(op, ctx)
	}
}

// ctxError reports a caller's context that ended while waiting: a passed deadline means the keyring
// did not answer in time (ErrTimeout, also matching context.DeadlineExceeded); a cancellation is
// the caller's own doing and is returned as the context error.
func ctxError(op string, ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Kind: ErrTimeout, Op: op, Err: ctx.Err()}
	}
	return fmt.Errorf("keyring %s: %w", op, ctx.Err())
}

// packageProvider calls go-keyring's package-level functions, so keyring.MockInit and
// keyring.MockInitWithError in tests take effect.
type packageProvider struct{}

func (packageProvider) Get(service, user string) (string, error) { return keyring.Get(service, user) }
func (packageProvider) Set(service, user, pass string) error     { return keyring.Set(service, user, pass) }
func (packageProvider) Delete(service, user string) error        { return keyring.Delete(service, user) }
func (packageProvider) DeleteAll(service string) error           { return keyring.DeleteAll(service) }
