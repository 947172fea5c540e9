package events

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BusOptions tune a Bus; the zero value is right for the app.
type BusOptions struct {
	// Buffer is each subscriber's channel capacity (default 256). A subscriber that falls this far
	// behind loses its oldest undelivered events (drop-oldest): publishers never block.
	Buffer int
	// ProgressInterval is the shortest gap between two events of one progress key (default 100 ms,
	// i.e. about 10 per second per import or per source). The last event of a burst is always
	// delivered, at most one interval late.
	ProgressInterval time.Duration
	// ProgressStringKeys are extra field names whose short token-like string values survive the
	// progress scrub (see DefaultProgressStringKeys).
	ProgressStringKeys []string
	Log                *slog.Logger
	Now                func() time.Time
}

// DefaultProgressStringKeys returns the field names whose string values a progress payload keeps
// (values must also look like tokens: letters, digits and ._:/|- , at most 128 characters). Every
// other string (a file name, an error message) is removed; numbers, booleans and nulls stay.
func DefaultProgressStringKeys() []string {
	return []string{"id", "import_id", "source_id", "run_id", "state", "phase", "status", "type", "resource_type", "kind", "trigger", "code"}
}

// Bus is the in-process event bus. It is safe for concurrent use. Publish never blocks on a
// subscriber: each subscriber has a bounded buffer and loses its oldest events when it is full.
// Progress topics are throttled per key (topic plus the payload's import_id, source_id or id) and
// coalesced: within one interval only the newest is kept, and it is delivered when the interval
// ends. Before any non-progress event is delivered, every pending progress event is flushed, so a
// listener never sees an import's progress after its import.done.
type Bus struct {
	opt   BusOptions
	log   *slog.Logger
	clock clock
	allow map[string]bool

	mu      sync.Mutex
	prefix  string
	seq     uint64
	subs    map[*subscriber]struct{}
	thr     map[string]*throttle
	publish int // progress publishes since the last sweep of idle throttles
}

type subscriber struct {
	ch      chan Event
	topics  map[string]bool // nil: all
	dropped atomic.Int64
}

type throttle struct {
	last    time.Time
	pending *Event // ID not yet assigned
	timer   stopper
}

// NewBus returns a bus.
func NewBus(opt BusOptions) *Bus {
	if opt.Buffer <= 0 {
		opt.Buffer = 256
	}
	if opt.ProgressInterval <= 0 {
		opt.ProgressInterval = 100 * time.Millisecond
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	var c clock = realClock{}
	if opt.Now != nil {
		c = funcClock{now: opt.Now}
	}
	allow := map[string]bool{}
	for _, k := range append(DefaultProgressStringKeys(), opt.ProgressStringKeys...) {
		allow[k] = true
	}
	b := make([]byte, 4)
	rand.Read(b)
	return &Bus{
		opt: opt, log: opt.Log, clock: c, allow: allow,
		prefix: hex.EncodeToString(b),
		subs:   map[*subscriber]struct{}{},
		thr:    map[string]*throttle{},
	}
}

// Publish sends data under topic to every subscriber of that topic. data is encoded to JSON once,
// here (a value that cannot be encoded is dropped with a warning that names only the topic).
// It satisfies the Publisher interfaces of the api, connect, people and syncer packages.
func (b *Bus) Publish(topic string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		b.log.Warn("event dropped: payload is not JSON", "topic", topic, "err_type", errType(err))
		return
	}
	progress := IsProgress(topic)
	if progress {
		raw = b.scrub(raw)
	}
	now := b.clock.Now()
	ev := Event{Event: topic, Timestamp: now.UTC(), Data: raw}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !progress {
		b.flushAllLocked(now)
		b.emitLocked(ev)
		return
	}
	key := topic + "\x00" + progressKey(raw)
	st := b.thr[key]
	if st == nil {
		st = &throttle{}
		b.thr[key] = st
	}
	since := now.Sub(st.last)
	if st.pending == nil && (st.last.IsZero() || since >= b.opt.ProgressInterval) {
		st.last = now
		b.emitLocked(ev)
	} else {
		st.pending = &ev // coalesce: only the newest of a burst is kept
		if st.timer == nil {
			wait := b.opt.ProgressInterval - since
			if wait < 0 {
				wait = 0
			}
			st.timer = b.clock.AfterFunc(wait, func() { b.flushKey(key) })
		}
	}
	b.publish++
	if b.publish >= 1024 {
		b.publish = 0
		b.sweepLocked(now)
	}
}

// flushKey delivers the pending event of one progress key (its interval ended).
func (b *Bus) flushKey(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.thr[key]
	if st == nil {
		return
	}
	st.timer = nil
	if st.pending != nil {
		ev := *st.pending
		st.pending = nil
		st.last = b.clock.Now()
		b.emitLocked(ev)
	}
}

func (b *Bus) flushAllLocked(now time.Time) {
	for _, st := range b.thr {
		if st.pending == nil {
			continue
		}
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
		ev := *st.pending
		st.pending = nil
		st.last = now
		b.emitLocked(ev)
	}
}

// sweepLocked forgets keys that have been idle for a while (finished imports and syncs).
func (b *Bus) sweepLocked(now time.Time) {
	for k, st := range b.thr {
		if st.pending == nil && st.timer == nil && now.Sub(st.last) > 10*b.opt.ProgressInterval {
			delete(b.thr, k)
		}
	}
}

func (b *Bus) emitLocked(ev Event) {
	b.seq++
	ev.ID = b.prefix + "-" + strconv.FormatUint(b.seq, 10)
	for s := range b.subs {
		if s.topics != nil && !s.topics[ev.Event] {
			continue
		}
		select {
		case s.ch <- ev:
			continue
		default:
		}
		// Full: drop the oldest and try once more. The subscriber may have drained a slot in
		// between, in which case nothing is dropped.
		select {
		case <-s.ch:
			s.dropped.Add(1)
		default:
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of the events of the given topics (all topics when none are given)
// and a function that ends the subscription and closes the channel. The channel has a bounded
// buffer: a reader that falls behind loses its oldest events (visible as a gap in the IDs).
func (b *Bus) Subscribe(topics ...string) (<-chan Event, func()) {
	return b.SubscribeBuffer(b.opt.Buffer, topics...)
}

// SubscribeBuffer is Subscribe with a buffer of its own size (buffer <= 0: the bus's default),
// for a listener that must not lose events in a burst (the webhook hub's intake).
func (b *Bus) SubscribeBuffer(buffer int, topics ...string) (<-chan Event, func()) {
	if buffer <= 0 {
		buffer = b.opt.Buffer
	}
	s := b.subscribe(buffer, topics)
	return s.ch, func() { b.unsubscribe(s) }
}

func (b *Bus) subscribe(buffer int, topics []string) *subscriber {
	s := &subscriber{ch: make(chan Event, buffer)}
	if len(topics) > 0 {
		s.topics = map[string]bool{}
		for _, t := range topics {
			s.topics[t] = true
		}
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *Bus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Forward calls fn with every event (all topics) until ctx ends: the desktop window's bridge to
// Wails runtime events. fn runs on one goroutine, in order; a slow fn loses the oldest events.
func (b *Bus) Forward(ctx context.Context, fn func(Event)) error {
	ch, cancel := b.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			fn(ev)
		}
	}
}

// progressKey picks the throttling key out of a progress payload: import_id, source_id or id.
func progressKey(raw json.RawMessage) string {
	var k struct {
		ImportID json.RawMessage `json:"import_id"`
		SourceID json.RawMessage `json:"source_id"`
		ID       json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	for _, v := range []json.RawMessage{k.ImportID, k.SourceID, k.ID} {
		if len(v) > 0 && string(v) != "null" {
			return string(v)
		}
	}
	return ""
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9._:/|-]{0,128}$`)

// scrub keeps only numbers, booleans, nulls, and allowlisted token-like strings of a progress
// payload; object keys that are not token-like are dropped too.
func (b *Bus) scrub(raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return json.RawMessage("null")
	}
	v, _ = b.scrubValue(v, "")
	out, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return out
}

func (b *Bus) scrubValue(v any, key string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			if !tokenRE.MatchString(k) || k == "" {
				continue
			}
			if s, ok := b.scrubValue(vv, k); ok {
				out[k] = s
			}
		}
		return out, true
	case []any:
		out := make([]any, 0, len(x))
		for _, vv := range x {
			if s, ok := b.scrubValue(vv, key); ok {
				out = append(out, s)
			}
		}
		return out, true
	case string:
		return x, b.allow[key] && tokenRE.MatchString(x)
	default: // json.Number, bool, nil
		return x, true
	}
}

// errType names an error's type for logs without its text (which could quote a payload).
func errType(err error) string {
	var ute *json.UnsupportedTypeError
	var uve *json.UnsupportedValueError
	var me *json.MarshalerError
	switch {
	case errors.As(err, &ute):
		return "unsupported_type"
	case errors.As(err, &uve):
		return "unsupported_value"
	case errors.As(err, &me):
		return "marshaler_error"
	}
	return "other"
}

// --- clock ------------------------------------------------------------------------------------

type stopper interface{ Stop() bool }

type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) stopper
}

type realClock struct{}

func (realClock) Now() time.Time                              { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// funcClock uses an injected Now for timestamps and real timers for waiting.
type funcClock struct{ now func() time.Time }

func (c funcClock) Now() time.Time                            { return c.now() }
func (funcClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }
