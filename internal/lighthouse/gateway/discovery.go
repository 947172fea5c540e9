package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// endpoints are a provider's OAuth endpoints.
type endpoints struct {
	Authorize string
	Token     string
}

// discovery resolves and caches providers' endpoints from SMART discovery
// ({fhir_base}/.well-known/smart-configuration), or takes them from the providers file.
type discovery struct {
	hc      *http.Client
	now     func() time.Time
	okTTL   time.Duration
	failTTL time.Duration

	mu    sync.Mutex
	cache map[string]discoveryEntry
}

type discoveryEntry struct {
	ep      endpoints
	err     error
	expires time.Time
}

func newDiscovery(hc *http.Client, now func() time.Time, ttl time.Duration) *discovery {
	return &discovery{hc: hc, now: now, okTTL: ttl, failTTL: time.Minute, cache: map[string]discoveryEntry{}}
}

func (d *discovery) endpoints(ctx context.Context, p *Provider) (endpoints, error) {
	if p.AuthorizeURL != "" {
		return endpoints{Authorize: p.AuthorizeURL, Token: p.TokenURL}, nil
	}
	now := d.now()
	d.mu.Lock()
	e, ok := d.cache[p.ID]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ep, e.err
	}
	ep, err := d.fetch(ctx, p)
	if ctx.Err() != nil && err != nil {
		return ep, err // the caller went away: cache nothing
	}
	ttl := d.okTTL
	if err != nil {
		ttl = d.failTTL
	}
	d.mu.Lock()
	d.cache[p.ID] = discoveryEntry{ep: ep, err: err, expires: now.Add(ttl)}
	d.mu.Unlock()
	return ep, err
}

func (d *discovery) fetch(ctx context.Context, p *Provider) (endpoints, error) {
	u := strings.TrimRight(p.FHIRBase, "/") + "/.well-known/smart-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return endpoints{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return endpoints{}, fmt.Errorf("SMART discovery for %s: %w", p.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return endpoints{}, fmt.Errorf("SMART discovery for %s: HTTP %d", p.ID, resp.StatusCode)
	}
	var doc struct {
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		TokenEndpoint         string   `json:"token_endpoint"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return endpoints{}, fmt.Errorf("SMART discovery for %s: %w", p.ID, err)
	}
	if checkHTTPURL(doc.AuthorizationEndpoint) != nil || checkHTTPURL(doc.TokenEndpoint) != nil {
		return endpoints{}, fmt.Errorf("SMART discovery for %s: missing or bad authorization_endpoint/token_endpoint", p.ID)
	}
	if doc.CodeChallengeMethods != nil && !slices.Contains(doc.CodeChallengeMethods, "S256") {
		return endpoints{}, errors.New("SMART discovery for " + p.ID + ": the provider does not support PKCE S256")
	}
	return endpoints{Authorize: doc.AuthorizationEndpoint, Token: doc.TokenEndpoint}, nil
}
