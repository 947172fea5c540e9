package gateway

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Problem types (the `type` member of every application/problem+json error). They are stable: the
// app switches on them.
const (
	TypeInstallationUnknown     = "installation_unknown"
	TypeInstallationAuthFailed  = "installation_auth_failed"
	TypeInstallationRevoked     = "installation_revoked"
	TypeUserLimitReached        = "user_limit_reached"
	TypeUserLimitNear           = "user_limit_near" // a warning in a 200 connect response, never an error
	TypeProviderUnknown         = "provider_unknown"
	TypeProviderNotConfidential = "provider_not_confidential"
	TypeStateInvalid            = "state_invalid"
	TypeTicketInvalid           = "ticket_invalid"
	TypeBadRequest              = "bad_request"
	TypeRateLimited             = "rate_limited"
	TypeProviderError           = "provider_error"
	TypeNotFound                = "not_found"
	TypeInternal                = "internal_error"
	TypeUnavailable             = "unavailable"
)

var problemTitles = map[string]string{
	TypeInstallationUnknown:     "Unknown installation",
	TypeInstallationAuthFailed:  "Installation authentication failed",
	TypeInstallationRevoked:     "Installation suspended",
	TypeUnavailable:             "Not ready",
	TypeUserLimitReached:        "User limit reached",
	TypeProviderUnknown:         "Unknown provider",
	TypeProviderNotConfidential: "Provider is not a confidential client",
	TypeStateInvalid:            "Invalid sign-in state",
	TypeTicketInvalid:           "Invalid connect ticket",
	TypeBadRequest:              "Bad request",
	TypeRateLimited:             "Too many requests",
	TypeProviderError:           "Provider error",
	TypeNotFound:                "Not found",
	TypeInternal:                "Internal error",
}

// problem is an RFC 9457 problem details object; Limit and ProviderName are set for
// user_limit_reached.
type problem struct {
	Type         string `json:"type"`
	Title        string `json:"title"`
	Status       int    `json:"status"`
	Detail       string `json:"detail"`
	Limit        int    `json:"limit,omitempty"`
	ProviderName string `json:"provider_name,omitempty"`

	retryAfter time.Duration
}

func newProblem(status int, typ, detail string) *problem {
	return &problem{Type: typ, Title: problemTitles[typ], Status: status, Detail: detail}
}

func writeProblem(w http.ResponseWriter, p *problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="lighthouse"`)
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

var problemPage = template.Must(template.New("problem").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Detail}}</p><p>You can close this tab and try again from Fasten.</p></body></html>
`))

// writeBrowserProblem answers a request made by the user's browser (connect redirect, callback):
// a small HTML page when the browser accepts HTML, problem+json otherwise.
func writeBrowserProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	if !acceptsHTML(r) {
		writeProblem(w, p)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(p.Status)
	problemPage.Execute(w, p)
}

func acceptsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if mt = strings.TrimSpace(mt); mt == "text/html" || mt == "application/xhtml+xml" {
			return true
		}
	}
	return false
}
