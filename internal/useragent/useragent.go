// Package useragent is the User-Agent Fasten Desktop sends to the Lighthouse and to providers,
// and an http.RoundTripper that sets it. A leaf package: the backend builds the HTTP clients it
// hands to connect and the syncer with it.
package useragent

import (
	"net/http"
	"strings"
)

// String returns the User-Agent for version, e.g. "fasten-desktop/v0.3.0-4-gabc1234". Only the
// first word of version counts ("dev (0123456789ab)" gives "fasten-desktop/dev"); an empty
// version is "dev". Characters a header token may not carry become "-".
func String(version string) string {
	v, _, _ := strings.Cut(strings.TrimSpace(version), " ")
	if v == "" {
		v = "dev"
	}
	v = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return '-'
		}
		return r
	}, v)
	return "fasten-desktop/" + strings.Trim(v, "-")
}

// Transport returns a RoundTripper that sets User-Agent: ua on every request that has none and
// passes it to base (nil: http.DefaultTransport). The caller's request is not modified.
func Transport(ua string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{ua: ua, base: base}
}

type transport struct {
	ua   string
	base http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") != "" {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(r2)
}
