package sandbox

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// signer holds the RS256 key for id_tokens, generated on first use unless configured.
type signer struct {
	once sync.Once
	key  *rsa.PrivateKey
	kid  string
	err  error
}

func (sg *signer) get() (*rsa.PrivateKey, string, error) {
	sg.once.Do(func() {
		if sg.key == nil {
			sg.key, sg.err = rsa.GenerateKey(rand.Reader, 2048)
			if sg.err != nil {
				sg.err = fmt.Errorf("generate signing key: %w", sg.err)
				return
			}
		}
		sum := sha256.Sum256(sg.key.N.Bytes())
		sg.kid = base64.RawURLEncoding.EncodeToString(sum[:12])
	})
	return sg.key, sg.kid, sg.err
}

func b64JSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// idToken returns a signed OpenID Connect id_token for the patient user.
func (s *Server) idToken(r *http.Request, clientID, patient, nonce string, now time.Time) (string, error) {
	key, kid, err := s.keys.get()
	if err != nil {
		return "", err
	}
	header, err := b64JSON(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	claims := map[string]any{
		"iss":      s.fhirBase(r),
		"sub":      patient,
		"aud":      clientID,
		"iat":      now.Unix(),
		"exp":      now.Add(time.Hour).Unix(),
		"fhirUser": s.fhirBase(r) + "/Patient/" + patient,
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, err := b64JSON(claims)
	if err != nil {
		return "", err
	}
	signing := header + "." + payload
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign id_token: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// handleJWKS publishes the id_token verification key.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	key, kid, err := s.keys.get()
	if err != nil {
		s.log.Error("sandbox jwks", "err", err)
		writeJSONResponse(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
}
