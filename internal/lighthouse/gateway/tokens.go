package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// The connect flow is stateless on the gateway: what it must remember between requests travels in
// values it signs with HMAC-SHA256 under a key kept in the database. Two kinds exist, each signed
// under its own purpose label so one can never be used as the other:
//
//   - the ticket, in the authorize_url the app opens in the browser (GET /v1/connect/{provider});
//   - the provider state, the OAuth state the gateway sends to the provider and gets back at
//     GET /v1/callback/{provider}.
//
// Encoding: base64url(JSON claims) "." base64url(HMAC-SHA256(key, purpose "\n" base64url(JSON))).
const (
	purposeTicket = "fasten-lighthouse/ticket/v1"
	purposeState  = "fasten-lighthouse/state/v1"

	// flowTTL bounds both a ticket and a provider state.
	flowTTL = 10 * time.Minute

	maxTokenLen = 4096
)

// flowClaims is what a ticket or provider state carries. The provider state leaves out what the
// callback does not need (challenge, scope) to stay short.
type flowClaims struct {
	Installation string `json:"i"`
	Provider     string `json:"p"`
	AppState     string `json:"s"`
	Port         int    `json:"r"`
	Challenge    string `json:"c,omitempty"`
	Scope        string `json:"sc,omitempty"`
	Expires      int64  `json:"e"` // unix seconds
	Nonce        string `json:"n"`
}

var errTokenInvalid = errors.New("invalid or expired")

// signer issues and checks tickets and provider states.
type signer struct {
	key []byte
}

func (s signer) sign(purpose string, c flowClaims) (string, error) {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	c.Nonce = base64.RawURLEncoding.EncodeToString(nonce)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(purpose, body)), nil
}

func (s signer) mac(purpose, body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{'\n'})
	m.Write([]byte(body))
	return m.Sum(nil)
}

// verify checks the signature, the expiry at now and that the token was issued for provider.
func (s signer) verify(purpose, token, provider string, now time.Time) (flowClaims, error) {
	var c flowClaims
	if token == "" || len(token) > maxTokenLen {
		return c, errTokenInvalid
	}
	body, sig, ok := strings.Cut(token, ".")
	if !ok {
		return c, errTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(purpose, body)) {
		return c, errTokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return c, errTokenInvalid
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, errTokenInvalid
	}
	if c.Provider != provider || now.Unix() >= c.Expires || !validPort(c.Port) || c.AppState == "" || c.Installation == "" {
		return c, errTokenInvalid
	}
	return c, nil
}

func validPort(p int) bool { return p >= 1024 && p <= 65535 }
