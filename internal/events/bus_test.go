package events

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func seqOf(t *testing.T, id string) int {
	t.Helper()
	_, n, ok := strings.Cut(id, "-")
	v, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Fatalf("event id %q", id)
	}
	return v
}

func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

func TestBusOrderIDsAndTopics(t *testing.T) {
	b := NewBus(BusOptions{})
	all, cancelAll := b.Subscribe()
	defer cancelAll()
	syncOnly, cancelSync := b.Subscribe(TopicSyncDone, TopicSyncFailed)
	defer cancelSync()
	topics := []string{TopicImportDone, TopicSyncStarted, TopicSyncDone, TopicResourcesChanged, TopicSyncFailed, TopicSourceStatus}
	for i := range 60 {
		b.Publish(topics[i%len(topics)], map[string]int{"n": i})
	}
	last := 0
	for i := range 60 {
		ev := recv(t, all)
		var d struct{ N int }
		json.Unmarshal(ev.Data, &d)
		if ev.Event != topics[i%len(topics)] || d.N != i {
			t.Fatalf("event %d: %s %s", i, ev.Event, ev.Data)
		}
		if n := seqOf(t, ev.ID); n != last+1 {
			t.Fatalf("id %s after %d", ev.ID, last)
		} else {
			last = n
		}
		if ev.Timestamp.IsZero() || ev.Timestamp.Location() != time.UTC {
			t.Fatalf("timestamp %v", ev.Timestamp)
		}
	}
	for range 20 {
		if ev := recv(t, syncOnly); ev.Event != TopicSyncDone && ev.Event != TopicSyncFailed {
			t.Fatalf("filtered subscriber got %s", ev.Event)
		}
	}
	select {
	case ev := <-syncOnly:
		t.Fatalf("extra event %s", ev.Event)
	default:
	}
	// The JSON shape.
	b.Publish(TopicSourceStatus, SourceStatus{SourceID: 3, Status: "ok"})
	raw, _ := json.Marshal(recv(t, all))
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	if len(m) != 4 || m["id"] == nil || m["event"] == nil || m["timestamp"] == nil || string(m["data"]) != `{"source_id":3,"status":"ok"}` {
		t.Fatalf("event JSON %s", raw)
	}
}

func TestBusSlowSubscriberLosesOldestAndNeverBlocks(t *testing.T) {
	b := NewBus(BusOptions{Buffer: 4})
	ch, cancel := b.Subscribe()
	fast, cancelFast := b.Subscribe()
	defer cancelFast()
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			b.Publish(TopicImportDone, map[string]int{"n": i})
		}
		close(done)
	}()
	var fastGot []int
	for range 4 {
		var d struct{ N int }
		json.Unmarshal(recv(t, fast).Data, &d)
		fastGot = append(fastGot, d.N)
	}
	<-done // publishing finished although nobody read ch
	var got []int
	for range 4 {
		var d struct{ N int }
		json.Unmarshal(recv(t, ch).Data, &d)
		got = append(got, d.N)
	}
	if got[0] != 6 || got[3] != 9 {
		t.Fatalf("slow subscriber kept %v, want the newest 6..9", got)
	}
	cancel()
	cancel() // twice is fine
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	b.Publish(TopicImportDone, 1) // no panic on a closed subscription
}

// TestProgressThrottle: a burst of 1000 progress events over one second (fake clock) comes out
// as about 10 per second per key, and the last one always arrives.
func TestProgressThrottle(t *testing.T) {
	fc := newFakeClock()
	b := NewBus(BusOptions{Buffer: 4096})
	b.clock = fc
	ch, cancel := b.Subscribe()
	defer cancel()
	for i := range 1000 {
		b.Publish(TopicImportProgress, map[string]any{"id": "imp-a", "bytes_done": i})
		if i%2 == 0 {
			b.Publish(TopicSyncProgress, SyncProgress{SourceID: 7, Resources: i})
		}
		fc.Advance(time.Millisecond)
	}
	fc.Advance(time.Second) // let the trailing timers fire
	byKey := map[string][]float64{}
	for {
		select {
		case ev := <-ch:
			var d map[string]any
			json.Unmarshal(ev.Data, &d)
			v, _ := d["bytes_done"].(float64)
			if ev.Event == TopicSyncProgress {
				v = d["resources"].(float64)
			}
			byKey[ev.Event] = append(byKey[ev.Event], v)
			continue
		default:
		}
		break
	}
	for topic, vals := range byKey {
		if len(vals) < 9 || len(vals) > 12 {
			t.Errorf("%s: %d events for 1 s of progress, want about 10", topic, len(vals))
		}
		for i := 1; i < len(vals); i++ {
			if vals[i] <= vals[i-1] {
				t.Errorf("%s: out of order %v", topic, vals)
			}
		}
	}
	if got := byKey[TopicImportProgress]; len(got) == 0 || got[len(got)-1] != 999 {
		t.Fatalf("import progress: last delivered %v, want 999", got)
	}
	if got := byKey[TopicSyncProgress]; len(got) == 0 || got[len(got)-1] != 998 {
		t.Fatalf("sync progress: last delivered %v, want 998", got)
	}
}

func TestProgressThrottlePerKey(t *testing.T) {
	fc := newFakeClock()
	b := NewBus(BusOptions{})
	b.clock = fc
	ch, cancel := b.Subscribe()
	defer cancel()
	for _, id := range []string{"a", "b", "c"} {
		b.Publish(TopicImportProgress, map[string]any{"id": id, "resources": 1})
	}
	for range 3 {
		recv(t, ch) // first of each key: immediately, no time passed
	}
}

// TestPendingProgressFlushedBeforeDone: the listener never sees progress after the result.
func TestPendingProgressFlushedBeforeDone(t *testing.T) {
	fc := newFakeClock()
	b := NewBus(BusOptions{})
	b.clock = fc
	ch, cancel := b.Subscribe()
	defer cancel()
	b.Publish(TopicImportProgress, map[string]any{"id": "x", "fraction": 0.1})
	b.Publish(TopicImportProgress, map[string]any{"id": "x", "fraction": 0.9}) // held back
	b.Publish(TopicImportDone, map[string]any{"source_id": 1})
	fc.Advance(time.Second) // the stopped timer must not deliver it again
	var got []string
	for range 3 {
		ev := recv(t, ch)
		got = append(got, ev.Event+" "+string(ev.Data))
	}
	want := []string{`import.progress {"fraction":0.1,"id":"x"}`, `import.progress {"fraction":0.9,"id":"x"}`, `import.done {"source_id":1}`}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	select {
	case ev := <-ch:
		t.Fatalf("extra %s %s", ev.Event, ev.Data)
	default:
	}
}

// TestProgressCarriesNoPHI: strings other than id/state-like fields are removed from progress
// payloads (the API's ImportStatus carries the user's file name and error text).
func TestProgressCarriesNoPHI(t *testing.T) {
	b := NewBus(BusOptions{})
	ch, cancel := b.Subscribe()
	defer cancel()
	type status struct {
		ID         string         `json:"id"`
		State      string         `json:"state"`
		Phase      string         `json:"phase"`
		File       string         `json:"file"`
		BytesDone  int64          `json:"bytes_done"`
		Resources  int            `json:"resources"`
		Fraction   float64        `json:"fraction"`
		Error      string         `json:"error,omitempty"`
		Counts     map[string]int `json:"counts"`
		Notes      []string       `json:"notes"`
		Nested     map[string]any `json:"nested"`
		Done       bool           `json:"done"`
		SourceName string         `json:"source_name"`
	}
	b.Publish(TopicImportProgress, status{
		ID: "imp-1", State: "running", Phase: "writing", File: "Jane Doe - labs 1984-02-03.json", BytesDone: 10,
		Resources: 5, Fraction: 0.5, Error: "bad value \"Jane\" at line 3", Counts: map[string]int{"Observation": 2, "Jane Doe": 1},
		Notes: []string{"Jane"}, Nested: map[string]any{"type": "Patient", "name": "Jane Doe", "status": "has spaces in it"}, Done: true,
		SourceName: "Jane's clinic",
	})
	ev := recv(t, ch)
	got := string(ev.Data)
	for _, bad := range []string{"Jane", "Doe", "1984", "bad value", "has spaces"} {
		if strings.Contains(got, bad) {
			t.Fatalf("progress payload kept %q: %s", bad, got)
		}
	}
	for _, keep := range []string{`"id":"imp-1"`, `"state":"running"`, `"phase":"writing"`, `"bytes_done":10`, `"resources":5`,
		`"fraction":0.5`, `"Observation":2`, `"type":"Patient"`, `"done":true`} {
		if !strings.Contains(got, keep) {
			t.Fatalf("progress payload lost %s: %s", keep, got)
		}
	}
	// Other topics are not rewritten.
	b.Publish(TopicImportDone, map[string]string{"file": "a b.json"})
	if ev := recv(t, ch); string(ev.Data) != `{"file":"a b.json"}` {
		t.Fatalf("import.done rewritten: %s", ev.Data)
	}
	// A payload that cannot be encoded is dropped, not half-sent.
	b.Publish(TopicImportDone, func() {})
	b.Publish(TopicSourceStatus, 1)
	if ev := recv(t, ch); ev.Event != TopicSourceStatus {
		t.Fatalf("got %s", ev.Event)
	}
}

func TestForward(t *testing.T) {
	b := NewBus(BusOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 1)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		done <- b.Forward(ctx, func(ev Event) {
			select {
			case got <- ev:
			default:
			}
		})
	}()
	<-started
	// Forward subscribes when it starts; publish until the first event arrives.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b.Publish(TopicSyncStarted, SyncStarted{SourceID: 1})
		select {
		case ev := <-got:
			if ev.Event != TopicSyncStarted {
				t.Fatalf("forwarded %s", ev.Event)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return
		case <-deadline:
			t.Fatal("nothing forwarded")
		case <-tick.C:
		}
	}
}

func TestParseTopics(t *testing.T) {
	known := func(s string) bool { return s == TopicImportDone || s == TopicSyncDone }
	cases := []struct {
		in      string
		want    []string
		unknown string
	}{
		{"import.done", []string{"import.done"}, ""},
		{" sync.done , import.done,sync.done,, ", []string{"sync.done", "import.done"}, ""},
		{",", nil, ""},
		{"import.done,nope", nil, "nope"},
	}
	for _, c := range cases {
		got, unknown := ParseTopics(c.in, known)
		if strings.Join(got, "|") != strings.Join(c.want, "|") || unknown != c.unknown {
			t.Errorf("ParseTopics(%q) = %v, %q; want %v, %q", c.in, got, unknown, c.want, c.unknown)
		}
	}
}

// TestSubscribeBuffer: a deeper buffer keeps a burst that the default one would drop.
func TestSubscribeBuffer(t *testing.T) {
	b := NewBus(BusOptions{Buffer: 2})
	small, cancelSmall := b.Subscribe()
	defer cancelSmall()
	deep, cancelDeep := b.SubscribeBuffer(10, TopicImportDone)
	defer cancelDeep()
	for i := range 5 {
		b.Publish(TopicImportDone, i)
	}
	b.Publish(TopicSyncDone, 0) // not for deep
	if len(small) != 2 {
		t.Fatalf("default buffer holds %d", len(small))
	}
	if len(deep) != 5 {
		t.Fatalf("deep buffer holds %d, want 5", len(deep))
	}
	for i := range 5 {
		if ev := recv(t, deep); string(ev.Data) != strconv.Itoa(i) {
			t.Fatalf("event %d: %s", i, ev.Data)
		}
	}
}
