package gateway

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The connect flow is stateless on the gateway: what it must remember between requests travels in
// values it seals with an AEAD (AES-256-GCM) under a key kept in the database, so the browser and
// the provider see neither the app's state, the PKCE challenge, the installation ID nor the port
// (issue 14 item 22). Two kinds exist, each under its own subkey and label so one can never be
// used as the other:
//
//   - the ticket, in the authorize_url the app opens in the browser (GET /v1/connect/{provider});
//   - the provider state, the OAuth state the gateway sends to the provider and gets back at
//     GET /v1/callback/{provider}.
//
// A ticket works once: its ID goes into used_tickets (shared by every instance) when it is used.
// The state need not (a replayed callback sends the replayer's own browser to its own loopback
// address with a code the provider accepts once).
//
// Encoding: keyID "." base64url(nonce[12] || AES-GCM(subkey(purpose), nonce, JSON claims,
// additional data = purpose "\n" keyID)).
//
// Keys rotate (`lighthouse admin rotate-key`): the newest key seals; a retired key still opens
// tokens until its retirement plus flowTTL plus keyReload (the time every instance needs to see
// the new key), so no sign-in under way breaks.
const (
	purposeTicket = "fasten-lighthouse/ticket/v2"
	purposeState  = "fasten-lighthouse/state/v2"

	// flowTTL bounds both a ticket and a provider state.
	flowTTL = 10 * time.Minute

	// keyReload is how often an instance re-reads the keys to pick up a rotation.
	keyReload = 30 * time.Second

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
	Nonce        string `json:"n"` // the token's ID, for single use
}

var errTokenInvalid = errors.New("invalid or expired")

type sealKey struct {
	id      string
	created time.Time
	retired time.Time // zero: not retired
	aeads   map[string]cipher.AEAD
}

// sealer issues and opens tickets and provider states with the keys in the database.
type sealer struct {
	store *store
	now   func() time.Time

	mu      sync.Mutex
	keys    map[string]*sealKey
	current *sealKey
	loaded  time.Time // when keys were last read (by the wall clock of now)
	tried   time.Time // last reload forced by an unknown key ID
}

func newSealer(ctx context.Context, st *store, now func() time.Time) (*sealer, error) {
	s := &sealer{store: st, now: now}
	if err := st.ensureTicketKey(ctx, now()); err != nil {
		return nil, err
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func newSealKey(id string, raw []byte, created, retired time.Time) (*sealKey, error) {
	k := &sealKey{id: id, created: created, retired: retired, aeads: map[string]cipher.AEAD{}}
	for _, purpose := range []string{purposeTicket, purposeState} {
		sub, err := hkdf.Key(sha256.New, raw, nil, purpose, 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(sub)
		if err != nil {
			return nil, err
		}
		a, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[purpose] = a
	}
	return k, nil
}

// reload reads the keys from the database.
func (s *sealer) reload(ctx context.Context) error {
	rows, err := s.store.ticketKeys(ctx)
	if err != nil {
		return err
	}
	keys := map[string]*sealKey{}
	var current *sealKey
	for _, r := range rows {
		k, err := newSealKey(r.ID, r.Key, r.Created, r.Retired)
		if err != nil {
			return fmt.Errorf("ticket key %s: %w", r.ID, err)
		}
		keys[k.id] = k
		if k.retired.IsZero() && (current == nil || k.created.After(current.created) || (k.created.Equal(current.created) && k.id > current.id)) {
			current = k
		}
	}
	if current == nil {
		return errors.New("no current ticket key in the database")
	}
	s.mu.Lock()
	s.keys, s.current, s.loaded = keys, current, s.now()
	s.mu.Unlock()
	return nil
}

// currentKey returns the key that seals, re-reading the keys when they are older than keyReload.
func (s *sealer) currentKey(ctx context.Context) (*sealKey, error) {
	s.mu.Lock()
	stale := s.now().Sub(s.loaded) >= keyReload
	s.mu.Unlock()
	if stale {
		if err := s.reload(ctx); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, nil
}

// key returns the key with id, re-reading the keys (at most once a second) when it is unknown.
func (s *sealer) key(ctx context.Context, id string) *sealKey {
	s.mu.Lock()
	k, ok := s.keys[id]
	retry := !ok && s.now().Sub(s.tried) >= time.Second
	if retry {
		s.tried = s.now()
	}
	s.mu.Unlock()
	if ok || !retry {
		return k
	}
	if err := s.reload(ctx); err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[id]
}

func (s *sealer) seal(ctx context.Context, purpose string, c flowClaims) (string, error) {
	k, err := s.currentKey(ctx)
	if err != nil {
		return "", err
	}
	return sealWith(k, purpose, c)
}

func sealWith(k *sealKey, purpose string, c flowClaims) (string, error) {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	c.Nonce = base64.RawURLEncoding.EncodeToString(id)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	a := k.aeads[purpose]
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(payload)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := a.Seal(nonce, nonce, payload, []byte(purpose+"\n"+k.id))
	return k.id + "." + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// open decrypts and checks a token: the key is known and not past its retirement window, the
// expiry at now, and that it was issued for provider. It does not mark it used (see useOnce).
func (s *sealer) open(ctx context.Context, purpose, token, provider string) (flowClaims, error) {
	var c flowClaims
	if token == "" || len(token) > maxTokenLen {
		return c, errTokenInvalid
	}
	kid, body, ok := strings.Cut(token, ".")
	if !ok || kid == "" || len(kid) > 32 {
		return c, errTokenInvalid
	}
	now := s.now()
	k := s.key(ctx, kid)
	if k == nil || (!k.retired.IsZero() && now.After(k.retired.Add(flowTTL+keyReload))) {
		return c, errTokenInvalid
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body)
	a := k.aeads[purpose]
	if err != nil || len(sealed) < a.NonceSize()+a.Overhead() {
		return c, errTokenInvalid
	}
	payload, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], []byte(purpose+"\n"+k.id))
	if err != nil {
		return c, errTokenInvalid
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, errTokenInvalid
	}
	if c.Provider != provider || now.Unix() >= c.Expires || !validPort(c.Port) || c.AppState == "" || c.Installation == "" || c.Nonce == "" {
		return c, errTokenInvalid
	}
	return c, nil
}

// ticketUseID is the used_tickets ID of a ticket.
func ticketUseID(c flowClaims) string { return "t:" + c.Nonce }

func validPort(p int) bool { return p >= 1024 && p <= 65535 }
