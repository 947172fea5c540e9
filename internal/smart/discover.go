// Package smart is the SMART App Launch 2.x client for a standalone patient launch by a native
// public client: discovery, PKCE (S256 only) and state, scopes, the authorization URL, the code
// exchange, token-response checks, and refresh with rotation and single-flight.
//
// It follows ../shared/docs/SECURITY.md "Signing in to a provider". Tokens never appear in errors,
// logs or String/GoString output of the types here.
package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Server is what discovery learned about a SMART on FHIR server.
type Server struct {
	FHIRBase              string   `json:"fhir_base"`
	Issuer                string   `json:"issuer,omitempty"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint,omitempty"`
	Capabilities          []string `json:"capabilities,omitempty"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported,omitempty"`
	// V2 is true when the server advertises the "permission-v2" capability (SMART 2.x scopes).
	V2 bool `json:"v2"`
	// FromCapabilityStatement is true when the endpoints came from the CapabilityStatement's
	// oauth-uris extension (a SMART v1 server without .well-known/smart-configuration).
	FromCapabilityStatement bool `json:"from_capability_statement,omitempty"`
}

// SupportsS256 reports whether the server advertises PKCE S256 in code_challenge_methods_supported.
func (s *Server) SupportsS256() bool { return slices.Contains(s.CodeChallengeMethods, "S256") }

// HasCapability reports whether the server lists capability c.
func (s *Server) HasCapability(c string) bool { return slices.Contains(s.Capabilities, c) }

// Errors of discovery.
var (
	// ErrNoS256 is matched by the *NoS256Error Discover returns for a server that does not
	// advertise PKCE S256.
	ErrNoS256 = errors.New("the server does not support PKCE S256")
	// ErrDiscovery: neither .well-known/smart-configuration nor the CapabilityStatement gave usable
	// authorization and token endpoints.
	ErrDiscovery = errors.New("the server's SMART configuration could not be read")
	// ErrInsecureURL: an endpoint is plain http on a non-loopback host.
	ErrInsecureURL = errors.New("the server uses an insecure (http) address")
	// ErrIssuerMismatch: the iss returned with the authorization response is not this server's.
	ErrIssuerMismatch = errors.New("the sign-in response came from a different server than the one we asked")
)

// NoS256Error refuses a server whose discovery lacks S256. Server holds what was discovered (for
// display and tests); it must not be used to sign in.
type NoS256Error struct {
	Host   string
	Server *Server
}

func (e *NoS256Error) Error() string {
	return e.Host + " does not support PKCE S256; connecting is refused for your safety"
}

func (e *NoS256Error) Is(target error) bool { return target == ErrNoS256 }

// Body-size caps for discovery documents. CapabilityStatements of large EHRs run to megabytes.
const (
	maxSmartConfigBytes = 1 << 20
	maxMetadataBytes    = 8 << 20
	defaultHTTPTimeout  = 30 * time.Second
	oauthURIsExtension  = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	capabilitiesExt     = "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities"
)

// Discover reads the SMART configuration of the FHIR server at fhirBase.
//
// It GETs {fhirBase}/.well-known/smart-configuration and, when that fails (404, an error, or a
// document without both endpoints), falls back to the oauth-uris extension of {fhirBase}/metadata
// (SMART v1). Timeouts come from hc (nil: a client with a 30 s timeout); bodies are capped.
//
// Policy (SECURITY.md: "A provider whose discovery lacks S256 is refused"): a server that does not
// list S256 in code_challenge_methods_supported is refused with a *NoS256Error. A CapabilityStatement
// has no field for PKCE methods, so a v1 server known only through /metadata is always refused; a v1
// server that publishes .well-known/smart-configuration with S256 is accepted (and gets v1 scopes).
// Endpoints must be https, or http on a loopback address (the sandbox and tests).
func Discover(ctx context.Context, hc *http.Client, fhirBase string) (*Server, error) {
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	base := strings.TrimRight(strings.TrimSpace(fhirBase), "/")
	bu, err := checkURL(base)
	if err != nil {
		return nil, fmt.Errorf("FHIR base: %w", err)
	}

	s, wkErr := discoverWellKnown(ctx, hc, base)
	if wkErr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrDiscovery, ctx.Err())
		}
		var mdErr error
		s, mdErr = discoverMetadata(ctx, hc, base)
		if mdErr != nil {
			return nil, fmt.Errorf("%w from %s: .well-known/smart-configuration: %w; metadata: %w", ErrDiscovery, bu.Host, wkErr, mdErr)
		}
	}
	s.FHIRBase = base
	s.V2 = s.HasCapability("permission-v2")
	for _, u := range []string{s.AuthorizationEndpoint, s.TokenEndpoint} {
		if _, err := checkURL(u); err != nil {
			return nil, fmt.Errorf("%s endpoint %q: %w", bu.Host, u, err)
		}
	}
	if s.RevocationEndpoint != "" {
		if _, err := checkURL(s.RevocationEndpoint); err != nil {
			s.RevocationEndpoint = ""
		}
	}
	if !s.SupportsS256() {
		return nil, &NoS256Error{Host: bu.Host, Server: s}
	}
	return s, nil
}

type smartConfiguration struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	Capabilities                  []string `json:"capabilities"`
	ScopesSupported               []string `json:"scopes_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
}

func discoverWellKnown(ctx context.Context, hc *http.Client, base string) (*Server, error) {
	var c smartConfiguration
	if err := getJSON(ctx, hc, base+"/.well-known/smart-configuration", "application/json", maxSmartConfigBytes, &c); err != nil {
		return nil, err
	}
	if c.AuthorizationEndpoint == "" || c.TokenEndpoint == "" {
		return nil, errors.New("authorization_endpoint or token_endpoint missing")
	}
	return &Server{
		Issuer:                c.Issuer,
		AuthorizationEndpoint: c.AuthorizationEndpoint,
		TokenEndpoint:         c.TokenEndpoint,
		RevocationEndpoint:    c.RevocationEndpoint,
		Capabilities:          c.Capabilities,
		ScopesSupported:       c.ScopesSupported,
		CodeChallengeMethods:  c.CodeChallengeMethodsSupported,
	}, nil
}

type extension struct {
	URL       string      `json:"url"`
	ValueURI  string      `json:"valueUri"`
	ValueURL  string      `json:"valueUrl"`
	ValueCode string      `json:"valueCode"`
	Extension []extension `json:"extension"`
}

type capabilityStatement struct {
	ResourceType string `json:"resourceType"`
	Rest         []struct {
		Security struct {
			Extension []extension `json:"extension"`
		} `json:"security"`
	} `json:"rest"`
}

func discoverMetadata(ctx context.Context, hc *http.Client, base string) (*Server, error) {
	var cs capabilityStatement
	if err := getJSON(ctx, hc, base+"/metadata", "application/fhir+json, application/json;q=0.9", maxMetadataBytes, &cs); err != nil {
		return nil, err
	}
	if cs.ResourceType != "CapabilityStatement" && cs.ResourceType != "Conformance" {
		return nil, fmt.Errorf("not a CapabilityStatement (resourceType %q)", cs.ResourceType)
	}
	s := &Server{FromCapabilityStatement: true}
	for _, r := range cs.Rest {
		for _, ext := range r.Security.Extension {
			switch ext.URL {
			case oauthURIsExtension:
				for _, e := range ext.Extension {
					v := e.ValueURI
					if v == "" {
						v = e.ValueURL
					}
					switch e.URL {
					case "authorize":
						s.AuthorizationEndpoint = v
					case "token":
						s.TokenEndpoint = v
					case "revoke":
						s.RevocationEndpoint = v
					}
				}
			case capabilitiesExt:
				if ext.ValueCode != "" {
					s.Capabilities = append(s.Capabilities, ext.ValueCode)
				}
			}
		}
	}
	if s.AuthorizationEndpoint == "" || s.TokenEndpoint == "" {
		return nil, errors.New("no oauth-uris extension with authorize and token endpoints")
	}
	return s, nil
}

// getJSON GETs u and decodes at most limit bytes of JSON into v.
func getJSON(ctx context.Context, hc *http.Client, u, accept string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("response larger than %d bytes", limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// checkURL accepts absolute https URLs, and http URLs whose host is a loopback address.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return nil, fmt.Errorf("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if isLoopback(u.Hostname()) {
			return u, nil
		}
		return nil, ErrInsecureURL
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckIssuer compares the iss parameter of an authorization response (RFC 9207) with the server
// the sign-in was started for. An empty iss is accepted (most servers do not send it). When the
// server published no issuer, iss must equal its FHIR base URL. Trailing slashes are ignored.
func CheckIssuer(s *Server, iss string) error {
	if iss == "" {
		return nil
	}
	want := s.Issuer
	if want == "" {
		want = s.FHIRBase
	}
	if strings.TrimRight(iss, "/") != strings.TrimRight(want, "/") {
		return ErrIssuerMismatch
	}
	return nil
}
