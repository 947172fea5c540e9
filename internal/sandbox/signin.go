package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// SignIn plays the user's browser for tests: it GETs startURL (an app's or a Lighthouse's
// connect URL, or the sandbox authorize URL itself), follows redirects until the sandbox login
// page, submits it as patientID with Allow (allow=true) or Deny, and returns the URL the
// sandbox then redirects to (the client's redirect_uri with code, state and iss, or error)
// without following it. hc may be nil (http.DefaultClient's transport and cookie jar are
// used); its CheckRedirect is not used. It fails when the chain ends anywhere but the login
// page, e.g. on an error page or an error redirect from authorize.
func SignIn(ctx context.Context, hc *http.Client, startURL, patientID string, allow bool) (*url.URL, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	next := startURL
	for hop := 0; ; hop++ {
		if hop > 10 {
			return nil, fmt.Errorf("sign in: too many redirects")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, fmt.Errorf("sign in: %w", err)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("sign in: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		handle := resp.Header.Get(RequestIDHeader)
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, fmt.Errorf("sign in: redirect without Location: %w", err)
			}
			if q := loc.Query(); q.Get("error") != "" && handle == "" {
				return loc, fmt.Errorf("sign in: authorize answered error=%s (%s)", q.Get("error"), q.Get("error_description"))
			}
			next = loc.String()
			continue
		case resp.StatusCode == http.StatusOK && handle != "":
			return submitConsent(ctx, &c, resp.Request.URL, handle, patientID, allow)
		default:
			return nil, fmt.Errorf("sign in: %s answered %d: %s", resp.Request.URL.Redacted(), resp.StatusCode, pageText(body))
		}
	}
}

func submitConsent(ctx context.Context, c *http.Client, page *url.URL, handle, patientID string, allow bool) (*url.URL, error) {
	decision := "deny"
	if allow {
		decision = "allow"
	}
	form := url.Values{FieldRequestID: {handle}, FieldPatient: {patientID}, FieldDecision: {decision}}
	action := &url.URL{Scheme: page.Scheme, Host: page.Host, Path: page.Path}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if resp.StatusCode < 300 || resp.StatusCode >= 400 {
		return nil, fmt.Errorf("sign in: consent answered %d: %s", resp.StatusCode, pageText(body))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("sign in: consent redirect without Location: %w", err)
	}
	return loc, nil
}

// pageText returns a short plain-text excerpt of an HTML or JSON body for error messages.
func pageText(b []byte) string {
	var out strings.Builder
	in := false
	for _, r := range string(b) {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			out.WriteByte(' ')
		case !in:
			out.WriteRune(r)
		}
	}
	s := strings.Join(strings.Fields(out.String()), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
