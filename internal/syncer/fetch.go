package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// requestError is a failure that concerns only what was asked (a 4xx answer, a page over the size
// cap, a link or redirect to another server, a page that is not FHIR JSON): the sync goes on with
// the rest. Every other error of get ends the sync.
type requestError struct {
	status int // HTTP status, 0 when the failure is not an HTTP answer
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// transientError: retries were used up on 429/5xx/timeouts/network errors.
type transientError struct{ msg string }

func (e *transientError) Error() string { return e.msg }

var (
	errTooLarge       = errors.New("response too large")
	errForeignOrigin  = errors.New("another server")
	errTooManyRedirec = errors.New("too many redirects")
)

// fetcher performs the GETs of one sync job: per-request timeout, capped bodies, retries with
// Retry-After or backoff, and same-origin checks.
type fetcher struct {
	cfg      *Config
	hc       *http.Client
	base     *url.URL // the FHIR base
	dir      *url.URL // the FHIR base with a trailing slash, for resolving relative links
	provider string
	requests atomic.Int64
	waitNS   atomic.Int64
}

// countingTransport counts the requests that reach the network (a TokenManager retry after a 401
// included).
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, &networkError{err}
	}
	return resp, nil
}

// networkError marks errors of the network itself, as opposed to those of the TokenManager
// (loading or renewing the sign-in) that reach the caller through the same RoundTrip.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

func newFetcher(cfg *Config, tm *smart.TokenManager, base *url.URL, provider string) *fetcher {
	dir := *base
	dir.Path = strings.TrimRight(dir.Path, "/") + "/"
	dir.RawPath = ""
	f := &fetcher{cfg: cfg, base: base, dir: &dir, provider: provider}
	rt := cfg.HTTP.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	f.hc = &http.Client{
		Transport: tm.Transport(&countingTransport{base: rt, n: &f.requests}),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errTooManyRedirec
			}
			if !underBase(req.URL, base) {
				return errForeignOrigin
			}
			return nil
		},
	}
	return f
}

func defaultPort(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// sameOrigin compares scheme, host and port (RFC 6454).
func sameOrigin(u, base *url.URL) bool {
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Hostname(), base.Hostname()) {
		return false
	}
	p1, p2 := u.Port(), base.Port()
	if p1 == "" {
		p1 = defaultPort(u.Scheme)
	}
	if p2 == "" {
		p2 = defaultPort(base.Scheme)
	}
	return p1 == p2
}

// underBase reports whether u is on base's origin and below its path: the requests the
// TokenManager authorizes (with smart.WithFHIRBase) and the only ones the syncer makes.
func underBase(u, base *url.URL) bool {
	if !sameOrigin(u, base) {
		return false
	}
	bp := strings.TrimRight(base.Path, "/")
	return u.Path == bp || strings.HasPrefix(u.Path, bp+"/")
}

// get GETs u and returns its body. what names the request in messages ("Observation", "the
// CapabilityStatement"). Errors: *requestError, *transientError, *ReconnectError, ctx's error, or
// another error (token store problems).
func (f *fetcher) get(ctx context.Context, u, what string) ([]byte, http.Header, error) {
	for attempt := 0; ; attempt++ {
		body, hdr, status, err := f.once(ctx, u)
		if err == nil && status == http.StatusOK {
			return body, hdr, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var wait time.Duration
		var why string
		switch {
		case err != nil && (smart.NeedsReconnect(err) || errors.Is(err, smart.ErrNoToken)):
			return nil, nil, &ReconnectError{Provider: f.provider}
		case errors.Is(err, errTooLarge):
			return nil, nil, &requestError{msg: fmt.Sprintf("%s: a page from the provider is larger than the %s limit; it was not synced", what, sizeText(f.cfg.MaxBody))}
		case errors.Is(err, errForeignOrigin):
			return nil, nil, &requestError{msg: fmt.Sprintf("%s: the provider redirected to another server; the redirect was not followed", what)}
		case errors.Is(err, errTooManyRedirec):
			return nil, nil, &requestError{msg: fmt.Sprintf("%s: the provider redirected too many times", what)}
		case errors.Is(err, context.DeadlineExceeded):
			why = fmt.Sprintf("the provider did not answer within %s", f.cfg.RequestTimeout)
		case err != nil && errors.As(err, new(*networkError)):
			why = "could not reach the provider: " + netText(err)
		case err != nil:
			// Loading or renewing the sign-in failed for another reason (the provider's token
			// endpoint is down, the keyring is locked): worth a few more tries.
			why = "could not renew the sign-in: " + clean(err.Error(), 200)
		case status == http.StatusUnauthorized:
			// The TokenManager already refreshed once and retried: the grant is not accepted.
			return nil, nil, &ReconnectError{Provider: f.provider}
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			why = fmt.Sprintf("the provider is busy (HTTP %d)", status)
			wait = f.retryAfter(hdr)
		case status >= 500:
			why = fmt.Sprintf("the provider's server failed (HTTP %d)", status)
		default:
			msg := fmt.Sprintf("%s: the provider refused the request (HTTP %d %s)", what, status, http.StatusText(status))
			if d := outcomeText(body); d != "" {
				msg += ": " + d
			}
			return nil, nil, &requestError{status: status, msg: msg}
		}
		if attempt >= f.cfg.MaxRetries {
			return nil, nil, &transientError{msg: fmt.Sprintf("%s: %s (%d attempts); the next sync will try again", what, why, attempt+1)}
		}
		if wait <= 0 {
			wait = f.backoff(attempt)
		}
		if err := f.cfg.Sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
}

// once performs one GET. A non-200 answer returns its status and (up to 64 KiB of) its body.
func (f *fetcher) once(ctx context.Context, u string) (body []byte, hdr http.Header, status int, err error) {
	rctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	req.Header.Set("Accept", "application/fhir+json, application/json;q=0.9")
	start := time.Now()
	defer func() { f.waitNS.Add(int64(time.Since(start))) }()
	resp, err := f.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // never the URL in messages
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			err = context.DeadlineExceeded
		}
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return b, resp.Header, resp.StatusCode, nil
	}
	body, err = readCapped(resp.Body, resp.ContentLength, f.cfg.MaxBody)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			err = context.DeadlineExceeded
		}
		return nil, nil, 0, err
	}
	return body, resp.Header, resp.StatusCode, nil
}

// readCapped reads at most limit bytes, failing with errTooLarge beyond.
func readCapped(r io.Reader, length, limit int64) ([]byte, error) {
	if length > limit {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	if length > 0 {
		buf.Grow(int(length) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// retryAfter reads Retry-After (delay-seconds or an HTTP date, measured from the response's Date
// when present), capped at MaxRetryAfter; 0 when absent or unreadable.
func (f *fetcher) retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > int64(f.cfg.MaxRetryAfter/time.Second) {
			return f.cfg.MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		now := f.cfg.Now()
		if dt, err := http.ParseTime(h.Get("Date")); err == nil {
			now = dt
		}
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, 0), f.cfg.MaxRetryAfter)
}

// backoff is the wait before retry attempt+1 without Retry-After: BackoffBase doubled per attempt,
// capped at BackoffMax, with "equal jitter" (between half and all of it).
func (f *fetcher) backoff(attempt int) time.Duration {
	d := f.cfg.BackoffBase
	for range attempt {
		d *= 2
		if d >= f.cfg.BackoffMax {
			d = f.cfg.BackoffMax
			break
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// netText describes a transport error without the request URL.
func netText(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "the connection timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return clean(oe.Err.Error(), 200)
	}
	return clean(err.Error(), 200)
}

// outcomeText returns the first diagnostics or details text of an OperationOutcome body.
func outcomeText(body []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	for _, is := range oo.Issue {
		if t := clean(is.Diagnostics, 200); t != "" {
			return t
		}
		if t := clean(is.Details.Text, 200); t != "" {
			return t
		}
	}
	return ""
}

// clean makes provider text safe to show: one line, printable, at most n bytes.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
