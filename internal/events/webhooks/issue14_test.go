package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestIssue14_20_FileNamesOnlyForAllowedSubscribers: import.done names the user's files (which
// can name a diagnosis); a subscriber the user has not allowed content gets "file 1", "file 2"
// and no warning text; an allowed one gets the names.
func TestIssue14_20_FileNamesOnlyForAllowedSubscribers(t *testing.T) {
	e := newEnv(t)
	plain := newSubscriber(t, randomText(40))
	allowed := newSubscriber(t, randomText(40))
	e.activate(plain, "import.done")
	info := e.activate(allowed, "import.done")
	if w := e.do("PATCH", "/hub/subscriptions/"+info.ID, `{"allow_resources": true}`); w.Code != 200 {
		t.Fatalf("allow: %d %s", w.Code, w.Body)
	}
	done := map[string]any{
		"source_id": 3,
		"sources":   []map[string]any{{"file": "hiv-test-results.json", "source_id": 3}, {"file": "oncology.ndjson", "source_id": 4}},
		"skipped":   []map[string]any{{"file": "oncology.ndjson", "position": "line 2", "code": "invalid_id", "message": "bad id", "resource": "Observation/x"}},
		"warnings":  []string{"oncology.ndjson: 2 resources appeared more than once"},
		"counts":    map[string]int{"Observation": 3},
	}
	e.bus.Publish("import.done", done)
	_, got := decodeEvent(t, plain.next(t).body)
	body, _ := json.Marshal(got)
	for _, leak := range []string{"hiv-test-results", "oncology", "Observation/x"} {
		if strings.Contains(string(body), leak) {
			t.Fatalf("a subscriber not allowed content got %q: %s", leak, body)
		}
	}
	if !strings.Contains(string(body), `"file":"file 1"`) || !strings.Contains(string(body), `"Observation":3`) {
		t.Fatalf("the withheld event lost its shape: %s", body)
	}
	_, full := decodeEvent(t, allowed.next(t).body)
	if b, _ := json.Marshal(full); !strings.Contains(string(b), "hiv-test-results.json") {
		t.Fatalf("the allowed subscriber did not get the file names: %s", b)
	}
}

// TestIssue14_20_SubscriptionsAreCapped: past MaxSubscriptions a new subscription gets 429.
func TestIssue14_20_SubscriptionsAreCapped(t *testing.T) {
	e := newEnv(t)
	for i := range MaxSubscriptions {
		form := subscribeForm(fmt.Sprintf("http://127.0.0.1:9/hook/%d", i), "import.done", randomText(40))
		if code, body := e.hubPost(form); code != http.StatusAccepted {
			t.Fatalf("subscription %d: %d %v", i, code, body)
		}
	}
	code, body := e.hubPost(subscribeForm("http://127.0.0.1:9/hook/over", "import.done", randomText(40)))
	if code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(body), "too_many_subscriptions") {
		t.Fatalf("subscription %d: %d %v", MaxSubscriptions+1, code, body)
	}
}
