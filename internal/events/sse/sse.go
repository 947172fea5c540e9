// Package sse serves the event bus to the frontend in serve mode as Server-Sent Events:
// GET /events (a text/event-stream of the bus's events) and POST /events/ticket (a short-lived,
// single-use ticket for clients that cannot send an Authorization header, such as EventSource).
//
// Each event is sent as an "id:", an "event:" (the topic) and a "data:" line holding the JSON
// {"id","event","timestamp","data"} (events.Event), flushed at once, with a comment heartbeat in
// between. The stream carries what the bus carries: ids, counts and states, never clinical
// content (see package events).
package sse

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Options are the stream's dependencies and timings; zero timings take the defaults shown.
type Options struct {
	Bus *events.Bus // required: what the stream sends
	// Topics are the topics ?topics= may name (default events.Topics()).
	Topics    []string
	Heartbeat time.Duration // 15 s between comment heartbeats
	TicketTTL time.Duration // 60 s
	Sweep     time.Duration // 30 s between sweeps of expired tickets (while Run runs)
	Now       func() time.Time
	Log       *slog.Logger
}

// Stream is the SSE endpoint and its ticket issuer. It is safe for concurrent use.
type Stream struct {
	opt   Options
	bus   *events.Bus
	known map[string]bool
	now   func() time.Time
	log   *slog.Logger

	done     chan struct{} // closed when Run returns: open streams end
	doneOnce sync.Once

	mu      sync.Mutex
	tickets map[[32]byte]ticket
}

type ticket struct {
	host    string
	expires time.Time
}

// Ticket is a short-lived, single-use credential for GET /events from clients that cannot send an
// Authorization header (EventSource).
type Ticket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// New returns a Stream. Streams end when their request ends, or when Run returns.
func New(opt Options) (*Stream, error) {
	if opt.Bus == nil {
		return nil, errors.New("sse: the stream needs a bus")
	}
	if len(opt.Topics) == 0 {
		opt.Topics = events.Topics()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.Heartbeat, 15*time.Second)
	def(&opt.TicketTTL, 60*time.Second)
	def(&opt.Sweep, 30*time.Second)
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Stream{opt: opt, bus: opt.Bus, known: map[string]bool{}, now: opt.Now, log: opt.Log,
		done: make(chan struct{}), tickets: map[[32]byte]ticket{}}
	for _, t := range opt.Topics {
		s.known[t] = true
	}
	return s, nil
}

// Routes returns the stream's API routes (paths relative to httpkit.Prefix).
func (s *Stream) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: "GET", Path: "/events", Handler: s.serveEvents},
		{Method: "POST", Path: "/events/ticket", Handler: s.postTicket},
	}
}

// Run forgets expired tickets every Sweep until ctx ends; then every open stream ends (so a
// graceful HTTP shutdown is not held up by them).
func (s *Stream) Run(ctx context.Context) error {
	defer s.doneOnce.Do(func() { close(s.done) })
	tick := time.NewTicker(s.opt.Sweep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.mu.Lock()
			s.sweepLocked(s.now())
			s.mu.Unlock()
		}
	}
}

func (s *Stream) sweepLocked(now time.Time) {
	for k, t := range s.tickets {
		if !now.Before(t.expires) {
			delete(s.tickets, k)
		}
	}
}

// --- tickets ----------------------------------------------------------------------------------

// NewTicket issues a ticket (256 random bits, single use, TicketTTL) bound to host, the Host
// header of the request that asked for it.
func (s *Stream) NewTicket(host string) Ticket {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	exp := s.now().Add(s.opt.TicketTTL)
	s.mu.Lock()
	s.sweepLocked(s.now())
	s.tickets[sha256.Sum256([]byte(tok))] = ticket{host: strings.ToLower(host), expires: exp}
	s.mu.Unlock()
	return Ticket{Ticket: tok, ExpiresAt: exp.UTC()}
}

func (s *Stream) postTicket(w http.ResponseWriter, r *http.Request) {
	httpkit.WriteJSON(w, http.StatusOK, s.NewTicket(r.Host))
}

// TicketRequest reports whether r is a GET /api/v1/events carrying a valid ticket, and uses the
// ticket up. For the serve-mode guard's Open func: such a request needs no bearer header. The
// ticket must be unexpired and issued for the same Host, and an Origin header, when present, must
// be the app's own (http://<Host>).
func (s *Stream) TicketRequest(r *http.Request) bool {
	if r.Method != http.MethodGet || r.URL.Path != httpkit.Prefix+"/events" {
		return false
	}
	tok := r.URL.Query().Get("ticket")
	if tok == "" || len(tok) > 128 {
		return false
	}
	host := strings.ToLower(r.Host)
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "http://"+host) {
		return false
	}
	k := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	t, ok := s.tickets[k]
	delete(s.tickets, k) // single use, whatever happens next
	s.mu.Unlock()
	return ok && s.now().Before(t.expires) && t.host == host
}

// --- GET /events ------------------------------------------------------------------------------

func (s *Stream) knownTopics() []string { return slices.Sorted(maps.Keys(s.known)) }

// serveEvents streams events as text/event-stream: for each event an "id:", an "event:" (the
// topic) and a "data:" line (the JSON {"id","event","timestamp","data"}), flushed at once; a
// comment heartbeat every Heartbeat; it ends when the request ends or Run returns.
// ?topics=a,b narrows the stream.
func (s *Stream) serveEvents(w http.ResponseWriter, r *http.Request) {
	var topics []string
	if v := r.URL.Query().Get("topics"); v != "" {
		var unknown string
		topics, unknown = events.ParseTopics(v, func(t string) bool { return s.known[t] })
		switch {
		case unknown != "":
			httpkit.Fail(w, r, s.log, httpkit.BadRequest("topics: %q is not an event this app publishes (known: %s).", unknown, strings.Join(s.knownTopics(), ", ")))
			return
		case len(topics) == 0:
			httpkit.Fail(w, r, s.log, httpkit.BadRequest("topics must list events, such as import.done,sync.done (or be left out for all)."))
			return
		}
	}
	rc := http.NewResponseController(w)
	ch, cancel := s.bus.Subscribe(topics...)
	defer cancel()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(str string) bool {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, str); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 3000\n: connected\n\n") {
		return
	}
	beat := time.NewTicker(s.opt.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-beat.C:
			if !write(": ping\n\n") {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil || strings.ContainsAny(ev.Event, "\r\n") {
				continue
			}
			if !write("id: " + ev.ID + "\nevent: " + ev.Event + "\ndata: " + string(b) + "\n\n") {
				return
			}
		}
	}
}
