// Package webhooks is the WebSub webhook hub for the user's own local tools: it delivers the
// event bus's events (internal/events) to subscribed callbacks, following the FHIRcast/WebSub
// security rules: intent verification with a single-use hub.challenge, X-Hub-Signature sha256
// HMAC with a per-subscription secret kept in the OS keyring (never in SQLite), capped leases,
// https or loopback-http callbacks, no redirects, retries with backoff, then a dead letter.
// Subscriptions persist in its own tables (hub_subscriptions, hub_dead_letters; store.go).
//
// Deliveries carry what the bus carries (no clinical content), plus full resources only for a
// subscription that asked for them (hub.include=resource) AND that the user allowed; they are
// fetched through the injected Config.Resource.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/events"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// Subscription states.
const (
	StatePending = "pending" // waiting for the subscriber to confirm (intent verification)
	StateActive  = "active"  // confirmed; receives deliveries until its lease ends
	StateFailed  = "failed"  // never confirmed: the callback did not echo the challenge
	StateDead    = "dead"    // an event could not be delivered after every retry; no more deliveries
	StateExpired = "expired" // the lease ended
)

// Limits of the hub (WebSub / FHIRcast rules).
const (
	MaxSecretLen = 199 // hub.secret must be under 200 bytes
	MinSecretLen = 16  // and at least this long: it is the only thing that authenticates deliveries
	// MaxSubscriptions is how many subscriptions (pending, active or failed) the hub keeps; a
	// subscribe past it gets 429.
	MaxSubscriptions = 100
	// minSecretBits is the least entropy a hub.secret must show (secrets.Weak).
	minSecretBits = 40
	MaxCallback   = 2048
)

// Config holds the hub's dependencies and limits; zero limits take the defaults shown.
type Config struct {
	Bus     *events.Bus   // required: the hub delivers what is published here
	DB      *db.DB        // where subscriptions persist (without secrets); nil keeps them in memory
	Secrets secrets.Store // required: every hub.secret is kept in the OS keyring, nowhere else
	// Resource returns one resource's JSON. It is called only for deliveries to subscriptions that
	// asked for resources (hub.include=resource) and that the user allowed; nil: never included.
	Resource func(ctx context.Context, ref events.ResourceRef) (json.RawMessage, error)
	// TokenExpiry, when set and not zero, caps every lease: no subscription outlives the API token.
	TokenExpiry func() time.Time
	ExtraTopics []string // topics beyond events.Topics() that may be subscribed to
	Log         *slog.Logger
	Now         func() time.Time

	DefaultLease    time.Duration  // 24 h, when hub.lease_seconds is absent
	MaxLease        time.Duration  // 7 days
	DeliveryTimeout time.Duration  // 10 s per delivery and per verification request
	MaxAttempts     int            // 8 attempts per event; then the subscription is dead
	RetryBase       time.Duration  // 2 s, doubling per attempt, with jitter
	RetryMax        time.Duration  // 5 min
	QueueSize       int            // 256 undelivered events per subscription, then drop-oldest
	LeaseCheck      time.Duration  // 30 s between sweeps for expired leases
	RootCAs         *x509.CertPool // roots for https callbacks; nil: the system's
}

// Hub is the webhook hub.
type Hub struct {
	cfg    Config
	bus    *events.Bus
	log    *slog.Logger
	now    func() time.Time
	topics map[string]bool
	plain  *http.Client // http callbacks: loopback addresses only, checked when dialling
	tls    *http.Client // https callbacks
	jobs   chan job
	in     <-chan events.Event // the hub's own bus subscription, from New on: nothing is missed before Run
	stopIn func()              // ends that subscription

	saveMu sync.Mutex // orders persist calls so the last one always writes the newest state

	mu         sync.Mutex
	subs       map[string]*sub
	byCallback map[string]*sub
	runCtx     context.Context
	stopping   bool
	orphanKeys []string      // keyring entries of intents that were pending when the app stopped
	change     chan struct{} // closed and replaced whenever a subscription changes
	wg         sync.WaitGroup
}

type sub struct {
	id, callback string
	events       []string
	state        string
	lease        time.Duration
	expires      time.Time
	include      bool // the subscriber asked for full resources
	allow        bool // the user allowed full resources for this subscription
	secret       []byte
	secretKey    string
	failures     int
	delivered    int64
	dropped      int64
	lastError    string
	lastDelivery time.Time
	created      time.Time
	updated      time.Time
	deadLetters  []DeadLetter
	gen          uint64 // the newest intent; older verification results are ignored
	intentSecret []byte // the secret of a pending intent, for the uniqueness check
	lane         *lane
}

// lane is one active subscription's queue and its worker's stop signal.
type lane struct {
	ch   chan item
	stop chan struct{}
	once sync.Once
}

func (l *lane) close() { l.once.Do(func() { close(l.stop) }) }

// item is a queued event and its JSON, encoded once for every subscription.
type item struct {
	ev   events.Event
	body []byte
}

// push enqueues ev, dropping the oldest queued event when full; it reports a drop.
func (l *lane) push(ev item) bool {
	select {
	case l.ch <- ev:
		return false
	default:
	}
	dropped := false
	select {
	case <-l.ch:
		dropped = true
	default:
	}
	select {
	case l.ch <- ev:
	default:
		dropped = true
	}
	return dropped
}

// job is work for the verification workers: an intent check, or a "denied" notice.
type job struct {
	kind      string // "verify" | "deny"
	mode      string // subscribe | unsubscribe
	subID     string
	gen       uint64
	callback  string
	events    []string
	lease     time.Duration
	include   bool
	secret    []byte
	secretKey string
	reason    string
}

// Subscription is what the API shows of a subscription (never its secret).
type Subscription struct {
	ID               string       `json:"id"`
	Callback         string       `json:"callback"`
	Events           []string     `json:"events"`
	State            string       `json:"state"`
	LeaseSeconds     int64        `json:"lease_seconds"`
	LeaseExpires     *time.Time   `json:"lease_expires"`
	IncludeResources bool         `json:"include_resources"`
	AllowedResources bool         `json:"allowed_resources"`
	Failures         int          `json:"failures"`
	Delivered        int64        `json:"delivered"`
	Dropped          int64        `json:"dropped"`
	LastError        string       `json:"last_error,omitempty"`
	LastDelivery     *time.Time   `json:"last_delivery,omitempty"`
	CreatedAt        time.Time    `json:"created_at"`
	DeadLetters      []DeadLetter `json:"dead_letters,omitempty"`
}

// DeadLetter records an event that could not be delivered after every retry.
type DeadLetter struct {
	EventID   string    `json:"event_id"`
	Event     string    `json:"event"`
	Timestamp time.Time `json:"timestamp"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error"`
	FailedAt  time.Time `json:"failed_at"`
}

const keepDeadLetters = 10

// New builds the hub, loads the saved subscriptions (secrets are read from the keyring later,
// when first needed, so a locked keyring does not slow the start) and subscribes to the bus, so
// that nothing published before Run is missed. A subscription that was still pending when the
// app stopped becomes failed.
func New(ctx context.Context, cfg Config) (*Hub, error) {
	if cfg.Bus == nil {
		return nil, errors.New("webhooks: the hub needs a bus")
	}
	if cfg.Secrets == nil {
		return nil, errors.New("webhooks: the hub needs a secrets store")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DefaultLease, 24*time.Hour)
	def(&cfg.MaxLease, 7*24*time.Hour)
	def(&cfg.DeliveryTimeout, 10*time.Second)
	def(&cfg.RetryBase, 2*time.Second)
	def(&cfg.RetryMax, 5*time.Minute)
	def(&cfg.LeaseCheck, 30*time.Second)
	if cfg.DefaultLease > cfg.MaxLease {
		cfg.DefaultLease = cfg.MaxLease
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Hub{
		cfg: cfg, bus: cfg.Bus, log: cfg.Log, now: cfg.Now,
		topics:     map[string]bool{},
		jobs:       make(chan job, 64),
		subs:       map[string]*sub{},
		byCallback: map[string]*sub{},
		change:     make(chan struct{}),
	}
	for _, t := range append(events.Topics(), cfg.ExtraTopics...) {
		h.topics[t] = true
	}
	h.plain, h.tls = newClients(cfg.RootCAs)
	if err := h.load(ctx); err != nil {
		return nil, err
	}
	h.in, h.stopIn = h.bus.SubscribeBuffer(4096)
	return h, nil
}

// Run delivers events, verifies intents and expires leases until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.runCtx != nil {
		h.mu.Unlock()
		return errors.New("webhooks: the hub is already running")
	}
	h.runCtx = ctx
	for _, s := range h.subs {
		if s.state == StateActive && s.lane != nil {
			h.startWorkerLocked(s.id, s.lane)
		}
	}
	for range 4 {
		h.wg.Add(1)
		go h.jobWorker(ctx)
	}
	orphans := h.orphanKeys
	h.orphanKeys = nil
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for _, k := range orphans {
			h.forgetSecret(ctx, k)
		}
	}()
	h.mu.Unlock()

	defer h.stopIn()
	tick := time.NewTicker(h.cfg.LeaseCheck)
	defer tick.Stop()
	h.sweep(ctx)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ev, ok := <-h.in:
			if !ok {
				break loop
			}
			h.dispatch(ctx, ev)
		case <-tick.C:
			h.sweep(ctx)
		}
	}
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
	h.wg.Wait()
	// Intents nobody verified: their new secrets go (a new subscription's row becomes failed at
	// the next start).
	for {
		select {
		case j := <-h.jobs:
			if j.kind == "verify" && j.mode == "subscribe" {
				h.dropIntentSecret(ctx, j)
			}
		default:
			return nil
		}
	}
}

// notifyLocked wakes whoever waits for a change of any subscription. h.mu is held.
func (h *Hub) notifyLocked() {
	close(h.change)
	h.change = make(chan struct{})
}

// changed returns a channel that is closed at the next change of any subscription.
func (h *Hub) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.change
}

// startWorkerLocked starts the delivery worker of one lane if the hub runs. h.mu is held.
func (h *Hub) startWorkerLocked(id string, l *lane) {
	if h.runCtx == nil || h.stopping {
		return
	}
	h.wg.Add(1)
	go h.worker(h.runCtx, id, l)
}

// dispatch queues ev for every active subscription to its topic.
func (h *Hub) dispatch(ctx context.Context, ev events.Event) {
	now := h.now()
	var expired []string
	full, withheld := item{ev: ev}, item{ev: ev}
	h.mu.Lock()
	for _, s := range h.subs {
		if s.state != StateActive || s.lane == nil || !contains(s.events, ev.Event) {
			continue
		}
		if !now.Before(s.expires) {
			expired = append(expired, s.id)
			continue
		}
		it := &full
		if !s.allow {
			it = &withheld // file names can name a diagnosis: only for subscribers allowed content
		}
		if it.body == nil {
			e := ev
			if !s.allow {
				e = withholdNames(ev)
			}
			it.body, _ = json.Marshal(e)
		}
		if s.lane.push(*it) {
			s.dropped++
		}
	}
	h.mu.Unlock()
	for _, id := range expired {
		h.expire(ctx, id)
	}
}

// sweep expires subscriptions whose lease ended.
func (h *Hub) sweep(ctx context.Context) {
	now := h.now()
	var expired []string
	h.mu.Lock()
	for _, s := range h.subs {
		if s.state == StateActive && !now.Before(s.expires) {
			expired = append(expired, s.id)
		}
	}
	h.mu.Unlock()
	for _, id := range expired {
		h.expire(ctx, id)
	}
}

// expire ends an active subscription whose lease is over: no more deliveries, secret removed.
func (h *Hub) expire(ctx context.Context, id string) {
	h.mu.Lock()
	s := h.subs[id]
	if s == nil || s.state != StateActive || h.now().Before(s.expires) {
		h.mu.Unlock()
		return
	}
	s.state = StateExpired
	key := h.retireLocked(s)
	h.mu.Unlock()
	h.log.Info("webhook subscription expired", "subscription", id)
	h.forgetSecret(ctx, key)
	h.persist(ctx, id)
}

// retireLocked stops a subscription's deliveries and drops its secret from memory; it returns the
// keyring key to delete. h.mu is held.
func (h *Hub) retireLocked(s *sub) string {
	if s.lane != nil {
		s.lane.close()
		s.lane = nil
	}
	key := s.secretKey
	s.secret, s.secretKey = nil, ""
	s.updated = h.now()
	return key
}

func (h *Hub) forgetSecret(ctx context.Context, key string) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.cfg.Secrets.Delete(ctx, key); err != nil {
		h.log.Warn("could not delete a webhook secret from the keyring", "err", err)
	}
}

// --- subscribing ------------------------------------------------------------------------------

// requestError is a refusal the API shows as is (httpkit.Fail answers it with its status and code).
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string     { return e.msg }
func (e *requestError) HTTPStatus() int   { return e.status }
func (e *requestError) ErrorCode() string { return e.code }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// subscribeRequest is a parsed hub.mode=subscribe.
type subscribeRequest struct {
	callback string
	events   []string
	secret   []byte
	lease    time.Duration
	include  bool
}

// CheckCallback accepts https URLs, and http URLs only on a loopback address (127.0.0.0/8, [::1])
// or localhost (whose address is checked again when connecting). It returns the URL unchanged:
// the hub calls exactly the callback the subscriber gave.
func CheckCallback(raw string) (string, error) {
	if raw == "" {
		return "", badRequest("hub.callback is required.")
	}
	if len(raw) > MaxCallback {
		return "", badRequest("hub.callback is longer than %d characters.", MaxCallback)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", badRequest("hub.callback must be an absolute https:// URL, or http:// on this computer.")
	}
	if u.User != nil {
		return "", badRequest("hub.callback must not carry a user name or password.")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", badRequest("hub.callback must not have a #fragment.")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return "", badRequest("An http:// callback must be on this computer (127.0.0.1, [::1] or localhost); anything else must use https://.")
		}
	default:
		return "", badRequest("hub.callback must use https://, or http:// on this computer.")
	}
	return raw, nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Hub) parseEvents(v string) ([]string, error) {
	out, unknown := events.ParseTopics(v, func(t string) bool { return h.topics[t] })
	if unknown != "" {
		return nil, badRequest("hub.events: %q is not an event this hub publishes (known: %s).", unknown, strings.Join(h.knownTopics(), ", "))
	}
	if len(out) == 0 {
		return nil, badRequest("hub.events is required: a comma-separated list such as import.done,sync.done.")
	}
	return out, nil
}

func (h *Hub) knownTopics() []string {
	out := make([]string, 0, len(h.topics))
	for t := range h.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// grantLease applies the default, the cap, and the API token's expiry.
func (h *Hub) grantLease(v string) (time.Duration, error) {
	lease := h.cfg.DefaultLease
	if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, badRequest("hub.lease_seconds must be a positive whole number of seconds.")
		}
		if n >= int64(h.cfg.MaxLease/time.Second) {
			lease = h.cfg.MaxLease
		} else {
			lease = time.Duration(n) * time.Second
		}
	}
	lease = min(lease, h.cfg.MaxLease)
	if h.cfg.TokenExpiry != nil {
		if exp := h.cfg.TokenExpiry(); !exp.IsZero() {
			left := exp.Sub(h.now()).Truncate(time.Second)
			if left < time.Second {
				return 0, badRequest("The API token expires too soon to grant a lease.")
			}
			lease = min(lease, left)
		}
	}
	return lease, nil
}

func (h *Hub) parseSubscribe(callback string, form url.Values) (subscribeRequest, error) {
	req := subscribeRequest{callback: callback}
	var err error
	if req.events, err = h.parseEvents(form.Get("hub.events")); err != nil {
		return req, err
	}
	secret := form.Get("hub.secret")
	switch {
	case secret == "":
		return req, badRequest("hub.secret is required: a random string (16 to 199 bytes) that signs every delivery.")
	case len(secret) > MaxSecretLen:
		return req, badRequest("hub.secret must be under 200 bytes.")
	case len(secret) < MinSecretLen:
		return req, badRequest("hub.secret must be at least %d bytes of random text.", MinSecretLen)
	}
	if why := secrets.Weak(secret, minSecretBits); why != "" {
		return req, badRequest("hub.secret is too easy to guess: %s. Use random text, e.g. 32 random bytes in hex.", why)
	}
	req.secret = []byte(secret)
	if req.lease, err = h.grantLease(form.Get("hub.lease_seconds")); err != nil {
		return req, err
	}
	switch form.Get("hub.include") {
	case "":
	case "resource", "resources":
		req.include = true
	default:
		return req, badRequest("hub.include may only be \"resource\".")
	}
	return req, nil
}

// subscribe records the intent and the secret (keyring first: no keyring, no subscription), then
// queues the intent verification. It returns the subscription's id and state.
func (h *Hub) subscribe(ctx context.Context, req subscribeRequest) (Subscription, error) {
	if err := h.loadSecrets(ctx); err != nil {
		return Subscription{}, keyringError(err)
	}
	key := "fasten-hub-" + randHex(12)
	h.mu.Lock()
	for _, o := range h.subs {
		if o.callback == req.callback {
			continue
		}
		if equalSecret(o.secret, req.secret) || equalSecret(o.intentSecret, req.secret) {
			h.mu.Unlock()
			return Subscription{}, &requestError{http.StatusConflict, "conflict", "This hub.secret is already used by another subscription: use a fresh random secret for each."}
		}
	}
	s := h.byCallback[req.callback]
	isNew := s == nil
	if isNew && len(h.subs) >= MaxSubscriptions {
		h.mu.Unlock()
		return Subscription{}, &requestError{http.StatusTooManyRequests, "too_many_subscriptions",
			fmt.Sprintf("The hub already holds %d subscriptions, its limit. Unsubscribe or delete ones you no longer use first.", MaxSubscriptions)}
	}
	if isNew {
		now := h.now()
		s = &sub{id: "sub_" + randHex(10), callback: req.callback, events: req.events, state: StatePending, lease: req.lease,
			include: req.include, created: now, updated: now, secretKey: key}
		h.subs[s.id] = s
		h.byCallback[s.callback] = s
	} else if s.state == StateFailed {
		s.state = StatePending
	}
	s.gen++
	gen := s.gen
	s.intentSecret = req.secret
	id := s.id
	h.mu.Unlock()

	undo := func() {
		h.mu.Lock()
		if s.gen == gen {
			s.intentSecret = nil
			if isNew {
				delete(h.subs, s.id)
				delete(h.byCallback, s.callback)
			}
		}
		h.mu.Unlock()
	}
	if err := h.cfg.Secrets.Set(ctx, key, req.secret); err != nil {
		undo()
		return Subscription{}, keyringError(err)
	}
	if isNew {
		if err := h.persist(ctx, id); err != nil {
			undo()
			h.forgetSecret(ctx, key)
			return Subscription{}, fmt.Errorf("save the subscription: %w", err)
		}
	}
	j := job{kind: "verify", mode: "subscribe", subID: id, gen: gen, callback: req.callback, events: req.events,
		lease: req.lease, include: req.include, secret: req.secret, secretKey: key}
	h.mu.Lock()
	info := s.info()
	h.mu.Unlock()
	info.Events = req.events
	info.LeaseSeconds = int64(req.lease / time.Second)
	select {
	case h.jobs <- j:
	default:
		undo()
		if isNew {
			h.persist(ctx, id)
		}
		h.forgetSecret(ctx, key)
		return Subscription{}, &requestError{http.StatusServiceUnavailable, "busy", "Too many subscription requests are waiting to be verified; try again in a minute."}
	}
	return info, nil
}

// keyringError is the refusal when the keyring cannot keep a secret: there is no other place.
func keyringError(err error) error {
	return &requestError{http.StatusServiceUnavailable, "keyring_unavailable",
		"Webhook secrets are kept only in the system keyring, and it cannot be used right now, so nothing was subscribed. " + err.Error()}
}

// unsubscribe queues the verification of an unsubscribe intent.
func (h *Hub) unsubscribe(callback string) (Subscription, error) {
	h.mu.Lock()
	s := h.byCallback[callback]
	if s == nil {
		h.mu.Unlock()
		return Subscription{}, &requestError{http.StatusNotFound, "not_found", "There is no subscription for this hub.callback."}
	}
	s.gen++
	j := job{kind: "verify", mode: "unsubscribe", subID: s.id, gen: s.gen, callback: s.callback, events: s.events}
	info := s.info()
	h.mu.Unlock()
	select {
	case h.jobs <- j:
		return info, nil
	default:
		return Subscription{}, &requestError{http.StatusServiceUnavailable, "busy", "Too many subscription requests are waiting to be verified; try again in a minute."}
	}
}

// --- verification -----------------------------------------------------------------------------

func (h *Hub) jobWorker(ctx context.Context) {
	defer h.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-h.jobs:
			switch j.kind {
			case "verify":
				h.verify(ctx, j)
			case "deny":
				h.deny(ctx, j)
			}
		}
	}
}

// verify sends the intent verification GET and applies its outcome: only a 2xx whose body is
// exactly the challenge confirms. Redirects are not followed (a 3xx fails).
func (h *Hub) verify(ctx context.Context, j job) {
	challenge := randToken(32)
	q := url.Values{}
	q.Set("hub.mode", j.mode)
	q.Set("hub.topic", strings.Join(j.events, ","))
	q.Set("hub.challenge", challenge)
	if j.mode == "subscribe" {
		q.Set("hub.lease_seconds", strconv.FormatInt(int64(j.lease/time.Second), 10))
	}
	start := h.now()
	body, status, err := h.get(ctx, appendQuery(j.callback, q), len(challenge)+1)
	switch {
	case err != nil:
	case status < 200 || status > 299:
		err = statusError(status)
	case subtle.ConstantTimeCompare(body, []byte(challenge)) != 1:
		err = errors.New("the callback did not echo hub.challenge exactly")
	}
	if ctx.Err() != nil {
		// Shutting down: the outcome is unknown. A new subscription stays pending and becomes
		// failed at the next start; the new secret is removed.
		if j.mode == "subscribe" {
			h.dropIntentSecret(ctx, j)
		}
		return
	}
	h.finish(ctx, j, start, err)
}

func (h *Hub) dropIntentSecret(ctx context.Context, j job) {
	h.mu.Lock()
	s := h.subs[j.subID]
	keep := s != nil && s.secretKey == j.secretKey && s.state == StatePending
	h.mu.Unlock()
	if !keep {
		h.forgetSecret(ctx, j.secretKey)
	}
}

func (h *Hub) finish(ctx context.Context, j job, start time.Time, verr error) {
	h.mu.Lock()
	s := h.subs[j.subID]
	if s == nil || s.gen != j.gen {
		// A newer request superseded this one (or the user deleted the subscription).
		stale := s == nil || s.secretKey != j.secretKey
		h.mu.Unlock()
		if j.mode == "subscribe" && stale {
			h.forgetSecret(ctx, j.secretKey)
		}
		return
	}
	s.intentSecret = nil
	s.updated = h.now()
	var oldKey string
	switch {
	case j.mode == "subscribe" && verr == nil:
		oldKey = s.secretKey
		s.events, s.lease, s.expires, s.include = j.events, j.lease, start.Add(j.lease), j.include
		s.secret, s.secretKey = j.secret, j.secretKey
		s.state, s.failures, s.lastError = StateActive, 0, ""
		if s.lane == nil {
			s.lane = &lane{ch: make(chan item, h.cfg.QueueSize), stop: make(chan struct{})}
			h.startWorkerLocked(s.id, s.lane)
		}
		h.mu.Unlock()
		h.log.Info("webhook subscription active", "subscription", j.subID, "events", strings.Join(j.events, ","), "lease_s", int64(j.lease/time.Second))
		if oldKey != j.secretKey {
			h.forgetSecret(ctx, oldKey)
		}
		h.persist(ctx, j.subID)
	case j.mode == "subscribe":
		msg := "The subscriber did not confirm: " + verr.Error() + "."
		if s.state == StatePending {
			s.state, s.lastError = StateFailed, msg
			oldKey = h.retireLocked(s)
		} else {
			s.lastError = "A renewal was not confirmed, so the subscription was left as it was: " + verr.Error() + "."
		}
		h.mu.Unlock()
		h.log.Info("webhook subscription not confirmed", "subscription", j.subID, "reason", verr.Error())
		if oldKey != j.secretKey {
			h.forgetSecret(ctx, oldKey)
		}
		h.forgetSecret(ctx, j.secretKey)
		h.persist(ctx, j.subID)
	case verr == nil: // unsubscribe confirmed
		h.removeLocked(s)
		oldKey = s.secretKey
		h.mu.Unlock()
		h.log.Info("webhook subscription removed by its subscriber", "subscription", j.subID)
		h.forgetSecret(ctx, oldKey)
		h.persist(ctx, j.subID)
	default:
		s.lastError = "An unsubscribe request was not confirmed: " + verr.Error() + "."
		if s.state == StatePending {
			s.state = StateFailed
			oldKey = h.retireLocked(s)
		}
		h.mu.Unlock()
		h.forgetSecret(ctx, oldKey)
		h.persist(ctx, j.subID)
	}
}

// removeLocked takes s out of the hub (its secret key stays in s.secretKey for the caller).
func (h *Hub) removeLocked(s *sub) {
	if s.lane != nil {
		s.lane.close()
		s.lane = nil
	}
	delete(h.subs, s.id)
	if h.byCallback[s.callback] == s {
		delete(h.byCallback, s.callback)
	}
}

// deny tells a subscriber its subscription ended (WebSub "denied"); best effort, once.
func (h *Hub) deny(ctx context.Context, j job) {
	q := url.Values{}
	q.Set("hub.mode", "denied")
	q.Set("hub.topic", strings.Join(j.events, ","))
	q.Set("hub.reason", j.reason)
	h.get(ctx, appendQuery(j.callback, q), 0)
}

// --- user actions -----------------------------------------------------------------------------

// Delete removes a subscription (the user's decision in Settings), deletes its secret and tells
// the subscriber, best effort.
func (h *Hub) Delete(ctx context.Context, id string) error {
	h.mu.Lock()
	s := h.subs[id]
	if s == nil {
		h.mu.Unlock()
		return &requestError{http.StatusNotFound, "not_found", "There is no such subscription."}
	}
	live := s.state == StateActive || s.state == StatePending
	h.removeLocked(s)
	key := s.secretKey
	j := job{kind: "deny", callback: s.callback, events: s.events, reason: "deleted by the user"}
	h.mu.Unlock()
	if err := h.persist(ctx, id); err != nil {
		return fmt.Errorf("delete the subscription: %w", err)
	}
	h.forgetSecret(ctx, key)
	if live {
		select {
		case h.jobs <- j:
		default:
		}
	}
	return nil
}

// AllowResources records the user's per-subscription permission to include full resources.
func (h *Hub) AllowResources(ctx context.Context, id string, allow bool) (Subscription, error) {
	h.mu.Lock()
	s := h.subs[id]
	if s == nil {
		h.mu.Unlock()
		return Subscription{}, &requestError{http.StatusNotFound, "not_found", "There is no such subscription."}
	}
	s.allow = allow
	s.updated = h.now()
	h.mu.Unlock()
	if err := h.persist(ctx, id); err != nil {
		return Subscription{}, fmt.Errorf("save the permission: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.info(), nil
}

// Subscriptions lists every subscription, oldest first, without secrets.
func (h *Hub) Subscriptions() []Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Subscription, 0, len(h.subs))
	for _, s := range h.subs {
		out = append(out, s.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *sub) info() Subscription {
	in := Subscription{
		ID: s.id, Callback: s.callback, Events: append([]string(nil), s.events...), State: s.state,
		LeaseSeconds: int64(s.lease / time.Second), IncludeResources: s.include, AllowedResources: s.allow,
		Failures: s.failures, Delivered: s.delivered, Dropped: s.dropped, LastError: s.lastError,
		CreatedAt: s.created.UTC(), DeadLetters: append([]DeadLetter(nil), s.deadLetters...),
	}
	if !s.expires.IsZero() {
		t := s.expires.UTC()
		in.LeaseExpires = &t
	}
	if !s.lastDelivery.IsZero() {
		t := s.lastDelivery.UTC()
		in.LastDelivery = &t
	}
	return in
}

// --- signing ----------------------------------------------------------------------------------

// Sign returns the X-Hub-Signature value of body: "sha256=" and the hex HMAC-SHA256 keyed by
// secret. SHA-1 is never used.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is a valid sha256 X-Hub-Signature of body under secret
// (constant-time). Any other method, sha1 included, is refused.
func VerifySignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// --- helpers ----------------------------------------------------------------------------------

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func equalSecret(a, b []byte) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1
}

// randToken returns n random bytes in base64url (n=32: 256 bits).
func randToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// appendQuery adds q to a URL, keeping its own query string (WebSub: append with &).
func appendQuery(u string, q url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
		if strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&") {
			sep = ""
		}
	}
	return u + sep + q.Encode()
}

// withholdNames removes what an event says of the user's file names (import.done carries the
// import --json object: each file's name, skipped resources' files, warnings that quote them) for
// a subscriber the user has not allowed content: files become "file 1", "file 2"...
func withholdNames(ev events.Event) events.Event {
	if ev.Event != "import.done" {
		return ev
	}
	var data map[string]any
	if json.Unmarshal(ev.Data, &data) != nil {
		return ev
	}
	names := map[string]string{}
	alias := func(v any) any {
		name, _ := v.(string)
		if name == "" {
			return v
		}
		if a, ok := names[name]; ok {
			return a
		}
		names[name] = fmt.Sprintf("file %d", len(names)+1)
		return names[name]
	}
	for _, key := range []string{"sources", "skipped"} {
		list, _ := data[key].([]any)
		for _, x := range list {
			if m, ok := x.(map[string]any); ok {
				if _, has := m["file"]; has {
					m["file"] = alias(m["file"])
				}
				delete(m, "resource")
			}
		}
	}
	if w, ok := data["warnings"].([]any); ok && len(w) > 0 {
		data["warnings"] = []string{fmt.Sprintf("%d warnings (withheld: they name files)", len(w))}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return ev
	}
	ev.Data = raw
	return ev
}
