package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestWeak(t *testing.T) {
	for i := range 200 {
		b := make([]byte, 32)
		rand.Read(b)
		if why := Weak(base64.RawURLEncoding.EncodeToString(b), 128); why != "" {
			t.Fatalf("a random 256-bit token refused (%d): %s", i, why)
		}
		if why := Weak(hex.EncodeToString(b[:16]), 64); why != "" {
			t.Fatalf("a random 128-bit hex secret refused (%d): %s", i, why)
		}
	}
	for _, s := range []string{
		strings.Repeat("a", 43), strings.Repeat("ab", 22), strings.Repeat("abc123", 8),
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "0123456789012345678901234567890123456789012",
	} {
		if Weak(s, 128) == "" {
			t.Errorf("%q accepted as a 256-bit token", s)
		}
	}
}
