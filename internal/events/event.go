// Package events carries what happens in the app (import and sync progress, results, changed
// records, source status) to whoever listens: an in-process Bus with typed topics and throttled
// progress. Its listeners live elsewhere: the desktop window (Bus.Forward to Wails events),
// Server-Sent Events for the frontend in serve mode (internal/events/sse), and the WebSub webhook
// hub for the user's own local tools (internal/events/webhooks).
//
// The no-PHI rule: event payloads carry ids, resource types, counts, sizes, states and phases,
// never clinical content (names, codes, values, narrative, file contents). Progress topics are
// scrubbed by the Bus: only numbers, booleans and a short allowlist of id/state-like string fields
// survive (see ProgressStringKeys). A full resource reaches a webhook subscriber only when it asked
// for it (hub.include=resource) AND the user allowed it for that subscription; the webhook hub
// then fetches each referenced resource through an injected function. The Bus never logs payloads.
package events

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Topics. Progress topics end in ".progress" and are throttled per key.
const (
	TopicImportProgress   = "import.progress"
	TopicImportDone       = "import.done"
	TopicSyncStarted      = "sync.started"
	TopicSyncProgress     = "sync.progress"
	TopicSyncDone         = "sync.done"
	TopicSyncFailed       = "sync.failed"
	TopicResourcesChanged = "resources.changed"
	TopicSourceStatus     = "source.status"
	TopicProfilesChanged  = "profiles.changed" // people created, merged, reassigned or deleted
)

// Topics returns the built-in topics, in a stable order. webhooks.Config.ExtraTopics adds more.
func Topics() []string {
	return []string{
		TopicImportProgress, TopicImportDone,
		TopicSyncStarted, TopicSyncProgress, TopicSyncDone, TopicSyncFailed,
		TopicResourcesChanged, TopicSourceStatus, TopicProfilesChanged,
	}
}

// ParseTopics splits a comma-separated list of topics (the webhook hub's hub.events, the SSE
// stream's ?topics=), trimming blanks and dropping repeats, in the order given. A topic for which
// known is false is returned as unknown, with no list; an empty list is not an error here.
func ParseTopics(v string, known func(string) bool) (topics []string, unknown string) {
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !known(t) {
			return nil, t
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics, ""
}

// IsProgress reports whether topic is a progress topic (throttled, scrubbed).
func IsProgress(topic string) bool { return strings.HasSuffix(topic, ".progress") }

// Event is one published event. Its JSON is the shape webhooks deliver and the SSE stream sends:
// {"id", "event", "timestamp", "data"}.
//
// ID is "<bus>-<n>": a random per-process prefix and a sequence number that grows by one per
// event on this bus, so a listener sees a gap when it missed events (a slow SSE client whose
// buffer overflowed). Webhook retries of one event keep its ID: subscribers can de-duplicate.
type Event struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// ResourceRef names one resource. resources.changed (and any event) may carry a "refs" array of
// these; the Hub replaces nothing, it adds "resources" (the full JSON) for subscribers that asked
// and were allowed.
type ResourceRef struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	SourceID int64  `json:"source_id,omitempty"`
}

// MaxRefs is the most refs an event should carry; producers set RefsTruncated past it. It is also
// the most resources the Hub includes in one delivery.
const MaxRefs = 100

// Payloads for the topics this package defines. Publishers may use their own types (the API
// publishes its ImportStatus and importer.Result), as long as they follow the no-PHI rule.

// ResourcesChanged is the data of resources.changed.
type ResourcesChanged struct {
	SourceID      int64          `json:"source_id"`
	Counts        map[string]int `json:"counts,omitempty"` // by resource type
	Added         int            `json:"added"`
	Updated       int            `json:"updated"`
	Deleted       int            `json:"deleted,omitempty"`
	Refs          []ResourceRef  `json:"refs,omitempty"` // at most MaxRefs
	RefsTruncated bool           `json:"refs_truncated,omitempty"`
}

// SyncStarted is the data of sync.started.
type SyncStarted struct {
	SourceID int64  `json:"source_id"`
	RunID    int64  `json:"run_id,omitempty"`
	Trigger  string `json:"trigger,omitempty"` // schedule | manual | startup | connect
}

// SyncProgress is the data of sync.progress (throttled per source_id).
type SyncProgress struct {
	SourceID  int64   `json:"source_id"`
	RunID     int64   `json:"run_id,omitempty"`
	Phase     string  `json:"phase,omitempty"`
	Type      string  `json:"type,omitempty"` // resource type being fetched
	Requests  int     `json:"requests"`
	Resources int     `json:"resources"`
	Fraction  float64 `json:"fraction,omitempty"`
}

// SyncDone is the data of sync.done.
type SyncDone struct {
	SourceID   int64          `json:"source_id"`
	RunID      int64          `json:"run_id,omitempty"`
	Added      int            `json:"added"`
	Updated    int            `json:"updated"`
	Unchanged  int            `json:"unchanged"`
	Requests   int            `json:"requests"`
	Counts     map[string]int `json:"counts,omitempty"`
	DurationMS int64          `json:"duration_ms"`
}

// SyncFailed is the data of sync.failed. Code is stable (reconnect_needed, provider_error, ...);
// Message is a sentence for the user and must not quote provider payloads.
type SyncFailed struct {
	SourceID int64  `json:"source_id"`
	RunID    int64  `json:"run_id,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

// SourceStatus is the data of source.status.
type SourceStatus struct {
	SourceID int64  `json:"source_id"`
	Status   string `json:"status"`
	Name     string `json:"name,omitempty"`
	Syncing  bool   `json:"syncing,omitempty"`
}
