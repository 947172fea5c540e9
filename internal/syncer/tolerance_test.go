package syncer

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// oddProvider is a FHIR server that does several things real ones do: absolute references,
// OperationOutcome entries in searches, an invalid resource, a resource about another patient,
// 403 and 404 for some types, parameters ignored, no Bundle.meta (only a Date header), meta after
// the entries, and a next link to another server.
type oddProvider struct {
	ts   *httptest.Server
	mu   sync.Mutex
	reqs []*url.URL
}

const oddToken = "odd-access-token"

func newOddProvider(t *testing.T) *oddProvider {
	p := &oddProvider{}
	p.ts = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.ts.Close)
	return p
}

func (p *oddProvider) base() string { return p.ts.URL + "/fhir" }

func (p *oddProvider) requests() []*url.URL {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*url.URL(nil), p.reqs...)
}

func (p *oddProvider) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r.URL)
	p.mu.Unlock()
	b := p.base()
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Date", "Tue, 04 Mar 2025 10:00:00 GMT")
	if r.URL.Path == "/fhir/metadata" {
		fmt.Fprint(w, `{"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[
			{"type":"Patient","interaction":[{"code":"read"},{"code":"search-type"}],"searchParam":[{"name":"_id"}],
				"operation":[{"name":"everything","definition":"http://hl7.org/fhir/OperationDefinition/Patient-everything"}]},
			{"type":"Observation","interaction":[{"code":"search-type"}],"searchParam":[{"name":"patient"}]},
			{"type":"Condition","interaction":[{"code":"search-type"}],"searchParam":[{"name":"patient"}]},
			{"type":"Procedure","interaction":[{"code":"search-type"}],"searchParam":[{"name":"patient"}]},
			{"type":"Encounter","interaction":[{"code":"search-type"}]},
			{"type":"Organization","interaction":[{"code":"read"}]}]}]}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+oddToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/fhir/Patient/p1/$everything":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-supported"}]}`)
	case "/fhir/Patient":
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","meta":{"lastUpdated":"2025-03-04T09:59:59.123Z"},"link":[],"entry":[
			{"resource":{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"%s/Organization/o1"}}}]}`, b)
	case "/fhir/Observation":
		if q.Get("page") == "2" {
			// meta and link after the entries; the next link leaves the server.
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[
				{"resource":{"resourceType":"Observation","id":"o-2","status":"final","subject":{"reference":"Patient/p1"},"code":{"text":"B"}}}],
				"meta":{"lastUpdated":"2025-03-04T09:59:59.500Z"},
				"link":[{"relation":"next","url":"http://other.example/fhir/Observation?page=3"}]}`)
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","meta":{"lastUpdated":"2025-03-04T09:59:59.400Z"},
			"link":[{"relation":"next","url":"Observation?patient=p1&page=2"}],"entry":[
			{"search":{"mode":"outcome"},"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational","diagnostics":"partial results"}]}},
			{"resource":{"resourceType":"Observation","id":"o-1","status":"final","subject":{"reference":"%s/Patient/p1"},
				"performer":[{"reference":"%s/Practitioner/pr1"}],"code":{"text":"A"}}},
			{"resource":{"resourceType":"Observation","id":"bad id!","subject":{"reference":"Patient/p1"}}},
			{"resource":{"resourceType":"Observation","id":"o-9","subject":{"reference":"Patient/p2"}}}]}`, b, b)
	case "/fhir/Condition":
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"Condition is not shared"}]}`)
	case "/fhir/Procedure":
		w.WriteHeader(http.StatusNotFound)
	case "/fhir/Encounter":
		// Ignores _count and _lastUpdated; no Bundle.meta.
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","entry":[
			{"resource":{"resourceType":"Encounter","id":"e-1","status":"finished","subject":{"reference":"Patient/p1"}}},
			{"resource":{"resourceType":"Encounter","id":"e-2","status":"finished","subject":{"reference":"Patient/p1"}}}]}`)
	case "/fhir/Organization/o1":
		fmt.Fprint(w, `{"resourceType":"Organization","id":"o1","name":"Odd Clinic"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
	}
}

func TestToleratesOddProvider(t *testing.T) {
	p := newOddProvider(t)
	e := newEnv(t)
	var id int64
	err := e.db.WriteTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		id, err = e.store.CreateSource(context.Background(), tx, records.NewSource{
			Kind: records.KindProvider, Name: "Odd Clinic", PatientID: "p1", FHIRBase: p.base(),
			Scopes: "launch/patient patient/*.read", TokenURL: p.ts.URL + "/token", ClientID: "x",
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.toks[id] = &memTokens{tok: &smart.Token{AccessToken: oddToken, TokenType: "Bearer", ExpiresAt: time.Now().Add(time.Hour)}}
	s := New(e.config(nil))
	r := runOne(t, s, id)
	mustOK(t, r)
	if r.Mode != modeSearch {
		t.Errorf("mode %s", r.Mode)
	}
	wantCounts := map[string]int{"Patient": 1, "Observation": 2, "Encounter": 2, "Organization": 1}
	if got := e.counts(id); !maps.Equal(got, wantCounts) {
		t.Errorf("stored %v, want %v", got, wantCounts)
	}
	warnings := strings.Join(r.Warnings, "\n")
	for _, w := range []string{
		"Observation: the provider's next-page link points to another server; it was not followed.",
		"Condition: the provider refused the request (HTTP 403 Forbidden): Condition is not shared.",
		"Procedure: the provider refused the request (HTTP 404 Not Found).",
		"1 resource from the provider was not valid FHIR and was skipped.",
		"1 resource about another patient was ignored.",
		"1 referenced record (organization, practitioner...) could not be read (HTTP 404 Not Found).",
		"The provider offers Patient/$everything but refused it (HTTP 400); each record type was searched instead.",
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("missing warning %q in:\n%s", w, warnings)
		}
	}
	if strings.Contains(warnings, "other.example") {
		t.Errorf("a URL leaked into the warnings")
	}
	for _, u := range p.requests() {
		if u.Host != "" && u.Host != p.ts.Listener.Addr().String() {
			t.Errorf("followed %s", u)
		}
	}
	item, err := e.store.Get(context.Background(), "Observation", "o-1", id)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(item.Resource)
	if !strings.Contains(raw, `"reference":"Patient/p1"`) || !strings.Contains(raw, `"reference":"Practitioner/pr1"`) || strings.Contains(raw, p.base()) {
		t.Errorf("references not made relative: %s", raw)
	}
	if item.Patient == nil || *item.Patient != "Patient/p1" {
		t.Errorf("indexed patient %v", item.Patient)
	}
	st := loadState(e.source(id).SyncState)
	wantCursors := map[string]string{"Patient": "2025-03-04T09:59:59.123Z", "Encounter": "2025-03-04T09:59:59Z"}
	if !maps.Equal(st.Types, wantCursors) || !st.EverythingRefused || st.Mode != modeSearch {
		t.Errorf("state %+v, want search cursors %v (failed types keep none; no meta: Date minus 1 s) and $everything refused", st, wantCursors)
	}

	// Second run: incremental where a cursor exists; the server ignores it, nothing is rewritten.
	before := len(p.requests())
	r = runOne(t, s, id)
	mustOK(t, r)
	if r.Added != 0 || r.Updated != 0 {
		t.Errorf("second run added %d updated %d", r.Added, r.Updated)
	}
	if r.Full || r.Mode != modeSearch {
		t.Errorf("second run: full %v mode %s", r.Full, r.Mode)
	}
	for _, u := range p.requests()[before:] {
		lu := u.Query().Get("_lastUpdated")
		switch u.Path {
		case "/fhir/Patient/p1/$everything":
			t.Errorf("$everything asked again although it was refused")
		case "/fhir/Encounter":
			if lu != "gt2025-03-04T09:59:59Z" {
				t.Errorf("Encounter _lastUpdated %q", lu)
			}
		case "/fhir/Observation", "/fhir/Condition":
			if lu != "" {
				t.Errorf("%s searched with _lastUpdated %q although it failed last time", u.Path, lu)
			}
		}
	}
}
