package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/zalando/go-keyring"
)

// memKeyring is a keyring.Keyring in memory, safe for concurrent use, with hooks to fail or block.
type memKeyring struct {
	mu      sync.Mutex
	m       map[string]string
	sets    int
	failSet func(n int, user string) error // called before the n-th Set (1-based)
}

func newMem() *memKeyring { return &memKeyring{m: map[string]string{}} }

func (k *memKeyring) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[service+"\x00"+user]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (k *memKeyring) Set(service, user, pass string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sets++
	if k.failSet != nil {
		if err := k.failSet(k.sets, user); err != nil {
			return err
		}
	}
	k.m[service+"\x00"+user] = pass
	return nil
}

func (k *memKeyring) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.m[service+"\x00"+user]; !ok {
		return keyring.ErrNotFound
	}
	delete(k.m, service+"\x00"+user)
	return nil
}

func (k *memKeyring) DeleteAll(service string) error { return errors.New("not used") }

func (k *memKeyring) snapshot() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]string, len(k.m))
	for a, b := range k.m {
		out[a] = b
	}
	return out
}

func (k *memKeyring) restore(s map[string]string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m = s
	k.sets = 0
}

// TestCrashNeverLeavesAMixThatVerifies interrupts a Set after every possible number of keyring
// writes (a crash or power loss at that point) and checks that Get then returns exactly the old
// value or exactly the new one, never anything else.
func TestCrashNeverLeavesAMixThatVerifies(t *testing.T) {
	ctx := context.Background()
	crash := errors.New("simulated crash")
	pairs := []struct {
		name     string
		old, new []byte
	}{
		{"16 KB over 16 KB", randomBytes(t, 16<<10), randomBytes(t, 16<<10)},
		{"4 KB over 16 KB", refreshToken4K(t), randomBytes(t, 16<<10)},
		{"16 KB over 4 KB", randomBytes(t, 16<<10), refreshToken4K(t)},
		{"small over 16 KB", randomBytes(t, 16<<10), []byte("small")},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			mem := newMem()
			k := secrets.NewKeyring(service, secrets.WithProvider(mem))
			// Two generations written before, so both part names exist.
			if err := k.Set(ctx, "t", p.new); err != nil {
				t.Fatal(err)
			}
			if err := k.Set(ctx, "t", p.old); err != nil {
				t.Fatal(err)
			}
			base := mem.snapshot()
			for crashAt := 1; ; crashAt++ {
				mem.restore(cloneMap(base))
				mem.failSet = func(n int, _ string) error {
					if n >= crashAt {
						return crash
					}
					return nil
				}
				err := k.Set(ctx, "t", p.new)
				mem.failSet = nil
				got, gerr := k.Get(ctx, "t")
				if gerr != nil {
					t.Fatalf("crash after %d writes: Get: %v", crashAt-1, gerr)
				}
				switch {
				case bytes.Equal(got, p.old):
					if err == nil {
						t.Fatalf("crash after %d writes: Set reported success but the old value is stored", crashAt-1)
					}
				case bytes.Equal(got, p.new):
				default:
					t.Fatalf("crash after %d writes: Get returned a value that is neither old nor new", crashAt-1)
				}
				if err == nil {
					break // Set completed without reaching the crash point: every point was tried.
				}
			}
		})
	}
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for a, b := range m {
		out[a] = b
	}
	return out
}

func TestDamagedEntriesAreCorrupt(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func(mem *memKeyring)
	}{
		{"part replaced by a part of another value", func(mem *memKeyring) {
			mem.m[service+"\x00t#a1"] = mem.m[service+"\x00other#a1"]
		}},
		{"part missing", func(mem *memKeyring) { delete(mem.m, service+"\x00t#a2") }},
		{"head not in our format", func(mem *memKeyring) { mem.m[service+"\x00t"] = "plain text written by someone else" }},
		{"head part count absurd", func(mem *memKeyring) {
			h := mem.m[service+"\x00t"]
			mem.m[service+"\x00t"] = strings.Replace(h, ":a:", ":a:9999:", 1)
		}},
		{"part truncated", func(mem *memKeyring) {
			p := mem.m[service+"\x00t#a1"]
			mem.m[service+"\x00t#a1"] = p[:len(p)-4]
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem()
			k := secrets.NewKeyring(service, secrets.WithProvider(mem))
			if err := k.Set(ctx, "t", randomBytes(t, 8<<10)); err != nil {
				t.Fatal(err)
			}
			if err := k.Set(ctx, "other", randomBytes(t, 8<<10)); err != nil {
				t.Fatal(err)
			}
			tc.damage(mem)
			_, err := k.Get(ctx, "t")
			if !errors.Is(err, secrets.ErrCorrupt) {
				t.Fatalf("Get: %v, want ErrCorrupt", err)
			}
			// A damaged entry can still be replaced and deleted.
			if err := k.Set(ctx, "t", []byte("fresh")); err != nil {
				t.Fatalf("Set over damaged: %v", err)
			}
			if got, err := k.Get(ctx, "t"); err != nil || string(got) != "fresh" {
				t.Fatalf("Get after repair: %q, %v", got, err)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	k := secrets.NewKeyring(service, secrets.WithProvider(newMem()))
	err := k.Set(context.Background(), "t", make([]byte, secrets.MaxValueSize+1))
	if !errors.Is(err, secrets.ErrTooLarge) {
		t.Fatalf("Set: %v, want ErrTooLarge", err)
	}
	if err := k.Set(context.Background(), "t", make([]byte, secrets.MaxValueSize)); err != nil {
		t.Fatalf("Set of MaxValueSize: %v", err)
	}
}

func TestInvalidKeys(t *testing.T) {
	k := secrets.NewKeyring(service, secrets.WithProvider(newMem()))
	for _, key := range []string{"", "a#b", "with space", strings.Repeat("k", 201)} {
		if err := k.Set(context.Background(), key, []byte("v")); err == nil {
			t.Errorf("Set(%q) succeeded, want an error", key)
		}
	}
}

// blockingKeyring never answers until released, like a Secret Service waiting on an unlock prompt.
type blockingKeyring struct {
	*memKeyring
	entered chan string   // receives the user of every call that starts
	release chan struct{} // closed to let blocked calls finish
}

func (b *blockingKeyring) wait(user string) {
	b.entered <- user
	<-b.release
}

func (b *blockingKeyring) Get(service, user string) (string, error) {
	b.wait(user)
	return b.memKeyring.Get(service, user)
}

func (b *blockingKeyring) Set(service, user, pass string) error {
	b.wait(user)
	return b.memKeyring.Set(service, user, pass)
}

func (b *blockingKeyring) Delete(service, user string) error {
	b.wait(user)
	return b.memKeyring.Delete(service, user)
}

func TestCallThatNeverReturnsIsCutOff(t *testing.T) {
	mem := newMem()
	blk := &blockingKeyring{memKeyring: mem, entered: make(chan string, 100), release: make(chan struct{})}
	k := secrets.NewKeyring(service, secrets.WithProvider(blk), secrets.WithTimeout(20*time.Millisecond))
	ctx := context.Background()

	_, err := k.Get(ctx, "t")
	if !errors.Is(err, secrets.ErrTimeout) || !errors.Is(err, secrets.ErrLocked) {
		t.Fatalf("Get on a keyring that never answers: %v, want ErrTimeout (and ErrLocked)", err)
	}
	// While the first call is still stuck, a second one times out too instead of queueing forever.
	if err := k.Set(ctx, "t", []byte("v")); !errors.Is(err, secrets.ErrTimeout) {
		t.Fatalf("Set while a call is stuck: %v, want ErrTimeout", err)
	}
	// A cancelled context returns the cancellation.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.Get(cctx, "t"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v, want context.Canceled", err)
	}
	// A caller deadline shorter than the keyring's own timeout counts as a timeout.
	// (A keyring of its own with a long timeout, so the caller's deadline is the one that ends
	// the call however loaded the machine is.)
	kd := secrets.NewKeyring(service, secrets.WithProvider(blk), secrets.WithTimeout(time.Minute))
	dctx, cancel2 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel2()
	if _, err := kd.Get(dctx, "t"); !errors.Is(err, secrets.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with a short caller deadline: %v, want ErrTimeout and DeadlineExceeded", err)
	}

	// Unblock: the stuck call finishes in the background, and the Keyring works again.
	close(blk.release)
	k2 := secrets.NewKeyring(service, secrets.WithProvider(blk), secrets.WithTimeout(5*time.Second))
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := k.Set(ctx, "t", []byte("after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Keyring still failing after the backend recovered: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // polling for the stuck goroutine to release the keyring
	}
	if got, err := k2.Get(ctx, "t"); err != nil || string(got) != "after" {
		t.Fatalf("Get after recovery: %q, %v", got, err)
	}
}

// TestAbandonedSetStopsWriting: when the caller gives up during a split write, the operation stops
// at its next step, so the old value stays whole (the head is never written).
func TestAbandonedSetStopsWriting(t *testing.T) {
	mem := newMem()
	ctx := context.Background()
	old := randomBytes(t, 8<<10)
	if err := secrets.NewKeyring(service, secrets.WithProvider(mem)).Set(ctx, "t", old); err != nil {
		t.Fatal(err)
	}
	mem.restore(mem.snapshot()) // resets the write counter
	blk := &blockingKeyring{memKeyring: mem, entered: make(chan string, 100), release: make(chan struct{})}
	k := secrets.NewKeyring(service, secrets.WithProvider(blk), secrets.WithTimeout(time.Hour))
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Set(cctx, "t", randomBytes(t, 8<<10)) }()
	if user := <-blk.entered; user != "t" { // the read of the old head
		t.Fatalf("first call for %q", user)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Set: %v, want context.Canceled", err)
	}
	close(blk.release) // the read of the old head completes; nothing more may be written
	mem2 := secrets.NewKeyring(service, secrets.WithProvider(mem))
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The abandoned goroutine holds the keyring until its current call returns; wait for it.
		if err := k.Delete(ctx, "unrelated"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("keyring never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := mem2.Get(ctx, "t")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after an abandoned Set: err %v, old value intact %v", err, bytes.Equal(got, old))
	}
	mem.mu.Lock()
	n := mem.sets
	mem.mu.Unlock()
	if n != 0 {
		t.Errorf("abandoned Set still wrote %d entries", n)
	}
}

func TestSmallChunkSize(t *testing.T) {
	mem := newMem()
	k := secrets.NewKeyring(service, secrets.WithProvider(mem), secrets.WithChunkSize(256))
	ctx := context.Background()
	v := refreshToken4K(t)
	if err := k.Set(ctx, "t", v); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Get(ctx, "t"); err != nil || !bytes.Equal(got, v) {
		t.Fatalf("Get: %v", err)
	}
	snap := mem.snapshot()
	if len(snap) < 20 {
		t.Errorf("4 KB in 256-character entries used only %d entries", len(snap))
	}
	for name, e := range snap {
		if len(e) > 256 {
			t.Errorf("entry %q holds %d characters, over the chunk size", name, len(e))
		}
	}
	// 16 KB would need more parts than a value may have.
	if err := k.Set(ctx, "t", randomBytes(t, 16<<10)); !errors.Is(err, secrets.ErrTooLarge) {
		t.Errorf("Set of 16 KB in 256-character entries: %v, want ErrTooLarge", err)
	}
	if got, err := k.Get(ctx, "t"); err != nil || !bytes.Equal(got, v) {
		t.Errorf("the refused Set changed the stored value: %v", err)
	}
}
