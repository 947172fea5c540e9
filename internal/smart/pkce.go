package smart

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// PKCE holds one sign-in's proof key (RFC 7636). Verifier is secret: it goes only to the token
// endpoint recorded with the sign-in's state, never into a URL or a log.
type PKCE struct {
	Verifier  string
	Challenge string
	Method    string // always "S256"
}

// String hides the verifier.
func (p PKCE) String() string {
	return "PKCE{Method:" + p.Method + ", Challenge:" + p.Challenge + ", Verifier:[redacted]}"
}

// GoString hides the verifier from %#v.
func (p PKCE) GoString() string { return p.String() }

// NewPKCE returns a fresh S256 proof key: a verifier of 32 random bytes, base64url without padding
// (43 characters, the RFC 7636 §4.1 recommendation), and challenge = BASE64URL(SHA256(verifier)).
func NewPKCE() PKCE {
	v := randomString(32)
	return PKCE{Verifier: v, Challenge: S256Challenge(v), Method: "S256"}
}

// S256Challenge returns BASE64URL-ENCODE(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewState returns a fresh OAuth state: 32 random bytes (256 bits), base64url without padding.
// The caller binds it to the provider, the PKCE verifier and the token endpoint, uses it once and
// expires it (SECURITY.md: 10 minutes).
func NewState() string { return randomString(32) }

// randomString returns n bytes from crypto/rand, base64url-encoded. crypto/rand.Read never fails
// (since Go 1.24 it aborts the program if the system's random source is broken).
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
