package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
)

// newClients returns the two HTTP clients of the hub. Neither follows redirects (a 3xx answer is
// a failure) nor uses a proxy. The plain client (http:// callbacks) connects only to loopback
// addresses, checked on the address actually dialled, so "localhost" cannot be resolved elsewhere.
func newClients(roots *x509.CertPool) (plain, secure *http.Client) {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	loopbackOnly := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return errors.New("http callbacks must be on this computer (a loopback address)")
			}
			return nil
		},
	}
	plainT := &http.Transport{
		Proxy:               nil,
		DialContext:         loopbackOnly.DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
	tlsT := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: plainT, CheckRedirect: noRedirect},
		&http.Client{Transport: tlsT, CheckRedirect: noRedirect}
}

func (h *Hub) client(rawURL string) *http.Client {
	if len(rawURL) >= 8 && strings.EqualFold(rawURL[:8], "https://") {
		return h.tls
	}
	return h.plain
}

// cleanErr strips the URL (a callback may be a capability URL) from a client error.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("the callback did not answer in time")
	}
	return err
}

func statusError(status int) error {
	if status >= 300 && status < 400 {
		return fmt.Errorf("the callback answered with a redirect (%d); redirects are not followed", status)
	}
	return fmt.Errorf("the callback answered %d", status)
}

// get sends a GET (intent verification, denial) and returns up to limit bytes of the body.
func (h *Hub) get(ctx context.Context, u string, limit int) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, cleanErr(err)
	}
	req.Header.Set("User-Agent", "fasten-desktop-hub/1")
	resp, err := h.client(u).Do(req)
	if err != nil {
		return nil, 0, cleanErr(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, resp.StatusCode, cleanErr(err)
	}
	return body, resp.StatusCode, nil
}

// post delivers one signed body.
func (h *Hub) post(ctx context.Context, u string, body, secret []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, cleanErr(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature", Sign(secret, body))
	req.Header.Set("User-Agent", "fasten-desktop-hub/1")
	resp, err := h.client(u).Do(req)
	if err != nil {
		return 0, cleanErr(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError(resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// target is what one delivery attempt needs to know about its subscription.
type target struct {
	callback  string
	expires   time.Time
	resources bool
}

// target returns the delivery target if subscription id is still active on lane l.
func (h *Hub) target(id string, l *lane) (target, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.subs[id]
	if s == nil || s.lane != l || s.state != StateActive {
		return target{}, false
	}
	return target{callback: s.callback, expires: s.expires, resources: s.include && s.allow}, true
}

// worker delivers one subscription's events in order until its lane closes or ctx ends.
func (h *Hub) worker(ctx context.Context, id string, l *lane) {
	defer h.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.stop:
			return
		case it := <-l.ch:
			if !h.deliver(ctx, id, l, it) {
				return
			}
		}
	}
}

// deliver sends ev with retries (exponential backoff with jitter). After MaxAttempts failures the
// event is dead-lettered and the subscription becomes dead. It returns false when the worker
// must stop.
func (h *Hub) deliver(ctx context.Context, id string, l *lane, it item) bool {
	ev := it.ev
	var lastErr error
	for attempt := 1; ; attempt++ {
		t, ok := h.target(id, l)
		if !ok {
			return false
		}
		if !h.now().Before(t.expires) {
			h.expire(ctx, id)
			return false
		}
		secret, err := h.secretOf(ctx, id)
		status := 0
		if err == nil {
			body := it.body
			if t.resources || body == nil {
				body = h.body(ctx, ev, t.resources)
			}
			status, err = h.post(ctx, t.callback, body, secret)
		}
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			h.mu.Lock()
			if s := h.subs[id]; s != nil && s.lane == l {
				s.delivered++
				s.failures = 0
				s.lastError = ""
				s.lastDelivery = h.now()
			}
			h.notifyLocked()
			h.mu.Unlock()
			return true
		}
		lastErr = err
		h.mu.Lock()
		if s := h.subs[id]; s != nil && s.lane == l {
			s.failures++
			s.lastError = "Delivery failed: " + err.Error() + "."
		}
		h.notifyLocked()
		h.mu.Unlock()
		if status == http.StatusGone {
			h.kill(ctx, id, l, ev, attempt, errors.New("the subscriber answered 410 Gone: it ended the subscription"))
			return false
		}
		if attempt >= h.cfg.MaxAttempts {
			h.kill(ctx, id, l, ev, attempt, lastErr)
			return false
		}
		wait := h.backoff(attempt)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-l.stop:
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// backoff is RetryBase·2^(attempt-1), capped at RetryMax, ±20% jitter.
func (h *Hub) backoff(attempt int) time.Duration {
	d := h.cfg.RetryBase
	for i := 1; i < attempt && d < h.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, h.cfg.RetryMax)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return max(d+jitter, time.Millisecond)
}

// kill dead-letters ev and stops the subscription (state dead, kept and visible until the user
// deletes it or the subscriber subscribes again).
func (h *Hub) kill(ctx context.Context, id string, l *lane, ev events.Event, attempts int, cause error) {
	dl := DeadLetter{EventID: ev.ID, Event: ev.Event, Timestamp: ev.Timestamp, Attempts: attempts, Error: cause.Error(), FailedAt: h.now().UTC()}
	h.mu.Lock()
	s := h.subs[id]
	if s == nil || s.lane != l {
		h.mu.Unlock()
		return
	}
	s.state = StateDead
	s.lastError = "Stopped after " + fmt.Sprint(attempts) + " failed attempts to deliver " + ev.Event + " " + ev.ID + ": " + cause.Error() + "."
	s.deadLetters = append(s.deadLetters, dl)
	if len(s.deadLetters) > keepDeadLetters {
		s.deadLetters = s.deadLetters[len(s.deadLetters)-keepDeadLetters:]
	}
	s.dropped += int64(len(l.ch))
	key := h.retireLocked(s)
	h.mu.Unlock()
	h.log.Warn("webhook subscription dead", "subscription", id, "event", ev.Event, "event_id", ev.ID, "attempts", attempts, "err", cause)
	h.forgetSecret(ctx, key)
	h.saveDeadLetter(ctx, id, dl)
	h.persist(ctx, id)
}

// body is the delivered JSON: the event, plus the full resources its refs name when the
// subscription asked for them and the user allowed it.
func (h *Hub) body(ctx context.Context, ev events.Event, resources bool) []byte {
	if resources && h.cfg.Resource != nil {
		ev.Data = h.withResources(ctx, ev.Data)
	}
	b, _ := json.Marshal(ev)
	return b
}

func (h *Hub) withResources(ctx context.Context, data json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || len(m["refs"]) == 0 {
		return data
	}
	var refs []events.ResourceRef
	if json.Unmarshal(m["refs"], &refs) != nil || len(refs) == 0 {
		return data
	}
	if len(refs) > events.MaxRefs {
		refs = refs[:events.MaxRefs]
		m["resources_truncated"] = json.RawMessage("true")
	}
	out := make([]json.RawMessage, 0, len(refs))
	missing := 0
	for _, ref := range refs {
		raw, err := h.cfg.Resource(ctx, ref)
		if err != nil || !json.Valid(raw) {
			missing++
			continue
		}
		out = append(out, raw)
	}
	m["resources"], _ = json.Marshal(out)
	if missing > 0 {
		m["resources_missing"], _ = json.Marshal(missing)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return b
}
