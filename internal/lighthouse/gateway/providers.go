package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// Provider is one entry of the providers file: a SMART on FHIR provider the gateway brokers sign-in
// for. ClientSecret is set only for confidential clients and never leaves the gateway.
type Provider struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	FHIRBase     string `json:"fhir_base"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	Scopes       string `json:"scopes"`
	UserLimit    int    `json:"user_limit"`
	// AuthorizeURL and TokenURL, when both are set, replace SMART discovery
	// ({fhir_base}/.well-known/smart-configuration).
	AuthorizeURL string `json:"authorize_url,omitempty"`
	TokenURL     string `json:"token_url,omitempty"`
}

// Confidential reports whether the gateway holds a client secret for the provider (the app then
// swaps codes and refresh tokens through POST /v1/token/{provider}).
func (p Provider) Confidential() bool { return p.ClientSecret != "" }

var providerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// LoadProviders reads and validates a providers file: a JSON array of Provider.
func LoadProviders(path string) ([]Provider, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read providers file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ps []Provider
	if err := dec.Decode(&ps); err != nil {
		return nil, fmt.Errorf("providers file %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("providers file %s: trailing data after the array", path)
	}
	if err := validateProviders(ps); err != nil {
		return nil, fmt.Errorf("providers file %s: %w", path, err)
	}
	return ps, nil
}

func validateProviders(ps []Provider) error {
	if len(ps) == 0 {
		return errors.New("no providers")
	}
	seen := make(map[string]bool, len(ps))
	for i, p := range ps {
		where := fmt.Sprintf("provider %d (%q)", i, p.ID)
		switch {
		case !providerIDPattern.MatchString(p.ID):
			return fmt.Errorf("%s: id must match %s", where, providerIDPattern)
		case seen[p.ID]:
			return fmt.Errorf("%s: duplicate id", where)
		case strings.TrimSpace(p.Name) == "":
			return fmt.Errorf("%s: name is empty", where)
		case p.ClientID == "":
			return fmt.Errorf("%s: client_id is empty", where)
		case p.UserLimit < 1:
			return fmt.Errorf("%s: user_limit must be at least 1", where)
		case strings.TrimSpace(p.Scopes) == "":
			return fmt.Errorf("%s: scopes is empty", where)
		case (p.AuthorizeURL == "") != (p.TokenURL == ""):
			return fmt.Errorf("%s: give both authorize_url and token_url, or neither (SMART discovery)", where)
		}
		seen[p.ID] = true
		if err := checkHTTPURL(p.FHIRBase); err != nil {
			return fmt.Errorf("%s: fhir_base: %w", where, err)
		}
		if p.AuthorizeURL != "" {
			if err := checkHTTPURL(p.AuthorizeURL); err != nil {
				return fmt.Errorf("%s: authorize_url: %w", where, err)
			}
			if err := checkHTTPURL(p.TokenURL); err != nil {
				return fmt.Errorf("%s: token_url: %w", where, err)
			}
		}
	}
	return nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q must not carry credentials or a fragment", raw)
	}
	return nil
}
