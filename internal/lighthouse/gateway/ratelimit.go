package gateway

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// rateLimiter allows at most limit events per key in any sliding window of length window. It keeps
// in memory only the timestamps of the last limit events per key, and forgets keys whose events
// are all older than the window.
type rateLimiter struct {
	limit  int
	window time.Duration

	mu     sync.Mutex
	events map[string][]time.Time
	swept  time.Time
}

func newRateLimiter(limit int, window time.Duration) *rateLimiter {
	return &rateLimiter{limit: limit, window: window, events: map[string][]time.Time{}}
}

// allow records an event for key at now when it is allowed; otherwise it returns false and how
// long until the next event would be allowed.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.window {
		l.sweep(now)
	}
	ev := l.events[key]
	// drop events that left the window
	i := 0
	for i < len(ev) && now.Sub(ev[i]) >= l.window {
		i++
	}
	ev = ev[i:]
	if len(ev) >= l.limit {
		l.events[key] = ev
		return false, ev[0].Add(l.window).Sub(now)
	}
	l.events[key] = append(ev, now)
	return true, 0
}

func (l *rateLimiter) sweep(now time.Time) {
	for k, ev := range l.events {
		if len(ev) == 0 || now.Sub(ev[len(ev)-1]) >= l.window {
			delete(l.events, k)
		}
	}
	l.swept = now
}

// clientKey is the rate-limit key of a request: the client IP (an IPv6 client's /64), taken from
// the connection, or from the rightmost value of header when the gateway runs behind a proxy that
// sets it.
func clientKey(r *http.Request, header string) string {
	raw := ""
	if header != "" {
		if v := r.Header.Values(header); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			raw = strings.TrimSpace(parts[len(parts)-1])
		}
	}
	if raw == "" {
		raw = r.RemoteAddr
	}
	host := raw
	if h, _, err := net.SplitHostPort(raw); err == nil {
		host = h
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
