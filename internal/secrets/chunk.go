package secrets

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/zalando/go-keyring"
)

// Storage format.
//
// A value is base64url-encoded (so any bytes survive every platform keyring) and the text is cut
// into parts of at most chunkSize characters. The head entry, stored under the key itself, is
//
//	fasten-secret:1:<gen>:<n>:<sha256 of the whole value, hex>:<first part>
//
// and parts 1..n-1 are stored under "<key>#<gen><i>" (for example "source/7#a1"). <gen> is "a" or
// "b" and alternates on every Set.
//
// Set writes the parts of the new generation first and the head last. Replacing one keyring entry
// is a single atomic call on every platform, so until the head is written the old head still names
// the old generation, whose parts the new write never touches; after it, the new head names parts
// that are complete. A crash at any point therefore leaves either the old value or the new one. Two
// processes writing the same key at once could interleave parts of the same generation, but the
// head's SHA-256 then does not match and Get returns ErrCorrupt rather than a mix. Parts of the
// previous generation are deleted after the head is written (best effort; a later Set or Delete
// removes leftovers).
const (
	headPrefix = "fasten-secret:1:"
	// DefaultChunkSize is the largest string written to one entry: 2048 characters stays under the
	// Windows Credential Manager limit (2560 bytes) and, after go-keyring's own base64 step, under the
	// macOS `security` command-line limit (4096 bytes) with room for the service and key names.
	DefaultChunkSize = 2048
	minChunkSize     = 128
	// maxParts bounds the entries of one value (and what a damaged head can make Get read).
	maxParts = 64
	// MaxValueSize is the largest value Set accepts.
	MaxValueSize = 64 << 10
)

var b64 = base64.RawURLEncoding

// headOverhead is the length of the head entry without its data, for the widest part count.
var headOverhead = len(formatHead("a", maxParts, make([]byte, sha256.Size), ""))

func formatHead(gen string, n int, sum []byte, data string) string {
	return headPrefix + gen + ":" + strconv.Itoa(n) + ":" + hex.EncodeToString(sum) + ":" + data
}

type head struct {
	gen  string
	n    int
	sum  []byte
	data string
}

func parseHead(s string) (head, bool) {
	rest, ok := strings.CutPrefix(s, headPrefix)
	if !ok {
		return head{}, false
	}
	f := strings.SplitN(rest, ":", 4)
	if len(f) != 4 || (f[0] != "a" && f[0] != "b") {
		return head{}, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 || n > maxParts {
		return head{}, false
	}
	sum, err := hex.DecodeString(f[2])
	if err != nil || len(sum) != sha256.Size {
		return head{}, false
	}
	return head{gen: f[0], n: n, sum: sum, data: f[3]}, true
}

func partKey(key, gen string, i int) string { return key + "#" + gen + strconv.Itoa(i) }

func otherGen(gen string) string {
	if gen == "a" {
		return "b"
	}
	return "a"
}

// checkKey refuses keys that could collide with part names or that no platform stores well: keys are
// 1-200 printable ASCII characters without spaces or '#'. An invalid key is a programming error,
// reported as a plain error (not one of the user-facing kinds).
func checkKey(key string) error {
	if key == "" || len(key) > 200 {
		return fmt.Errorf("secrets: invalid key length %d", len(key))
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e || r == '#' {
			return fmt.Errorf("secrets: invalid character in key %q", key)
		}
	}
	return nil
}

func corrupt(op string, why string) error {
	return &Error{Kind: ErrCorrupt, Op: op, Err: errors.New(why)}
}

func (k *Keyring) getValue(b *backend, key string) ([]byte, error) {
	hs, err := b.get(key)
	if err != nil {
		return nil, err
	}
	h, ok := parseHead(hs)
	if !ok {
		return nil, corrupt("get", "head entry is not in the expected format")
	}
	var text strings.Builder
	text.WriteString(h.data)
	for i := 1; i < h.n; i++ {
		p, err := b.get(partKey(key, h.gen, i))
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, corrupt("get", fmt.Sprintf("part %d of %d is missing", i, h.n))
		}
		if err != nil {
			return nil, err
		}
		text.WriteString(p)
	}
	value, err := b64.DecodeString(text.String())
	if err != nil {
		return nil, corrupt("get", "value is not valid base64")
	}
	sum := sha256.Sum256(value)
	if !bytes.Equal(sum[:], h.sum) {
		return nil, corrupt("get", "checksum does not match")
	}
	return value, nil
}

// split cuts the encoded value into the head's data and the parts that follow.
func (k *Keyring) split(encoded string) (first string, rest []string) {
	firstCap := k.chunkSize - headOverhead
	if len(encoded) <= firstCap {
		return encoded, nil
	}
	first, encoded = encoded[:firstCap], encoded[firstCap:]
	for len(encoded) > 0 {
		n := min(k.chunkSize, len(encoded))
		rest = append(rest, encoded[:n])
		encoded = encoded[n:]
	}
	return first, rest
}

func (k *Keyring) setValue(b *backend, key string, value []byte) error {
	oldGen := ""
	hs, err := b.get(key)
	switch {
	case err == nil:
		if h, ok := parseHead(hs); ok {
			oldGen = h.gen
		}
	case errors.Is(err, keyring.ErrNotFound):
	default:
		return err
	}
	gen := "a"
	if oldGen == "a" {
		gen = "b"
	}

	first, rest := k.split(b64.EncodeToString(value))
	n := 1 + len(rest)
	if n > maxParts {
		return &Error{Kind: ErrTooLarge, Op: "set"}
	}
	for i, p := range rest {
		if err := b.set(partKey(key, gen, i+1), p); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(value)
	if err := b.set(key, formatHead(gen, n, sum[:], first)); err != nil {
		return err
	}
	// Best-effort cleanup; the value is stored either way.
	deleteParts(b, key, otherGen(gen), 1)
	deleteParts(b, key, gen, n)
	return nil
}

func (k *Keyring) deleteValue(b *backend, key string) error {
	err := b.delete(key)
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return err
	}
	deleteParts(b, key, "a", 1)
	deleteParts(b, key, "b", 1)
	return nil
}

// deleteParts deletes parts gen from..maxParts-1 until one is missing or a call fails.
func deleteParts(b *backend, key, gen string, from int) {
	for i := from; i < maxParts; i++ {
		if err := b.delete(partKey(key, gen, i)); err != nil {
			return
		}
	}
}
