package sandbox

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFullFlow plays an app against the sandbox with a plain HTTP client: discovery, login
// page, consent, code exchange with PKCE, read, paged searches, $everything, refresh rotation
// and an incremental search after a change.
func TestFullFlow(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)

	// Discovery.
	resp, body := h.get(t, "", "/.well-known/smart-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("smart-configuration: %d", resp.StatusCode)
	}
	var disc struct {
		Issuer        string   `json:"issuer"`
		Authorize     string   `json:"authorization_endpoint"`
		Token         string   `json:"token_endpoint"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		Capabilities  []string `json:"capabilities"`
		GrantTypes    []string `json:"grant_types_supported"`
		ResponseTypes []string `json:"response_types_supported"`
		Scopes        []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(body, &disc); err != nil {
		t.Fatal(err)
	}
	if disc.Authorize != h.ts.URL+"/auth/authorize" || disc.Token != h.ts.URL+"/auth/token" || disc.Issuer != h.fhirBase() {
		t.Errorf("discovery endpoints: %+v", disc)
	}
	if !slices.Equal(disc.PKCE, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported = %v", disc.PKCE)
	}
	for _, c := range []string{"launch-standalone", "client-public", "client-confidential-symmetric",
		"context-standalone-patient", "permission-offline", "permission-patient", "permission-v1", "permission-v2"} {
		if !slices.Contains(disc.Capabilities, c) {
			t.Errorf("capability %s missing", c)
		}
	}
	if !slices.Contains(disc.GrantTypes, "refresh_token") || !slices.Equal(disc.ResponseTypes, []string{"code"}) ||
		!slices.Contains(disc.Scopes, "patient/*.rs") {
		t.Errorf("discovery lists: %+v", disc)
	}

	// The login page lists the patients and the scopes; the handle is in a hidden field.
	verifier, challenge := pkcePair("full-flow")
	q := h.authorizeQuery(challenge, fullScope)
	q.Set("login_hint", facts.patientID)
	resp, err := h.hc.Get(h.authorizeURL(q))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("authorize page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	info, ok := h.srv.Patient(facts.patientID)
	if !ok {
		t.Fatalf("patient %s unknown", facts.patientID)
	}
	for _, want := range []string{info.Name, info.BirthDate, "patient/*.rs", "offline_access",
		`value="` + facts.patientID + `" checked`, `name="decision" value="allow"`, `name="decision" value="deny"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	m := regexp.MustCompile(`name="request_id" value="([^"]+)"`).FindSubmatch(page)
	if m == nil || string(m[1]) != resp.Header.Get(RequestIDHeader) {
		t.Fatalf("request_id hidden field missing or differs from the header")
	}
	form := url.Values{FieldRequestID: {string(m[1])}, FieldPatient: {facts.patientID}, FieldDecision: {"allow"}}
	resp, err = h.hc.PostForm(h.ts.URL+"/auth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("allow: %d %v", resp.StatusCode, err)
	}
	if !strings.HasPrefix(loc.String(), testRedirect+"?") || loc.Query().Get("state") != "state-123" ||
		loc.Query().Get("iss") != h.fhirBase() {
		t.Fatalf("allow redirect %s", redactURL(loc))
	}
	// The handle is single use.
	resp, err = h.hc.PostForm(h.ts.URL+"/auth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second decision with the same handle: %d, want 400", resp.StatusCode)
	}

	// Code exchange.
	status, tok := h.exchange(t, loc.Query().Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %s", status, tok.Error)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn == nil || *tok.ExpiresIn != 3600 || tok.RefreshToken == "" ||
		tok.Patient == nil || *tok.Patient != facts.patientID || tok.Scope != fullScope || tok.IDToken == "" {
		t.Fatalf("token response: %+v", tok)
	}

	// Read the Patient.
	resp, body = h.get(t, tok.AccessToken, "/Patient/"+facts.patientID)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `W/"1"` {
		t.Fatalf("read Patient: %d etag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	var pat resourceHead
	if err := json.Unmarshal(body, &pat); err != nil || pat.ID != facts.patientID ||
		pat.Meta.VersionID != "1" || pat.Meta.LastUpdated != "2024-01-01T00:00:00.000Z" {
		t.Fatalf("Patient: %+v %v", pat, err)
	}
	if strings.Contains(string(body), "urn:uuid:") {
		t.Error("served Patient still has urn:uuid references")
	}

	// Per-type searches with small pages: every resource exactly once, counts as in the file.
	got := map[string]int{}
	seen := map[string]bool{}
	totalPages := 0
	for typ := range facts.counts {
		if IsSharedType(typ) {
			continue
		}
		keys, pages, total := h.fetchAll(t, tok.AccessToken, "/"+typ+"?patient="+facts.patientID+"&_count=7")
		if total != len(keys) {
			t.Errorf("%s: total %d, entries %d", typ, total, len(keys))
		}
		if want := (facts.counts[typ] + 6) / 7; pages != max(want, 1) {
			t.Errorf("%s: %d pages, want %d", typ, pages, want)
		}
		totalPages += pages
		for _, k := range keys {
			if seen[k] {
				t.Errorf("%s returned twice", k)
			}
			seen[k] = true
			if !facts.keys[k] {
				t.Errorf("%s is not in the patient's bundle", k)
			}
			got[strings.SplitN(k, "/", 2)[0]]++
		}
	}
	want := maps.Clone(facts.counts)
	delete(want, "Organization")
	delete(want, "Practitioner")
	if !maps.Equal(got, want) {
		t.Errorf("counts by type:\n got %v\nwant %v", got, want)
	}
	if totalPages < 10 {
		t.Errorf("only %d pages: paging not exercised", totalPages)
	}
	if info.Resources != len(facts.keys) || !maps.Equal(info.Counts, facts.counts) {
		t.Errorf("PatientInfo %d %v, bundle %d %v", info.Resources, info.Counts, len(facts.keys), facts.counts)
	}

	// subject=Patient/{id} is accepted too.
	keys, _, _ := h.fetchAll(t, tok.AccessToken, "/Condition?subject=Patient/"+facts.patientID)
	if len(keys) != facts.counts["Condition"] {
		t.Errorf("subject search: %d Conditions, want %d", len(keys), facts.counts["Condition"])
	}

	// $everything: the whole bundle, paged.
	keys, pages, total := h.fetchAll(t, tok.AccessToken, "/Patient/"+facts.patientID+"/$everything?_count=40")
	if total != len(facts.keys) || len(keys) != len(facts.keys) || pages != (len(facts.keys)+39)/40 {
		t.Errorf("$everything: total %d, %d entries in %d pages; bundle has %d", total, len(keys), pages, len(facts.keys))
	}
	everything := map[string]bool{}
	for _, k := range keys {
		if everything[k] || !facts.keys[k] {
			t.Errorf("$everything: %s duplicated or foreign", k)
		}
		everything[k] = true
	}

	// Shared resources referenced by the patient are readable.
	for k := range facts.keys {
		if strings.HasPrefix(k, "Organization/") {
			if resp, _ := h.get(t, tok.AccessToken, "/"+k); resp.StatusCode != http.StatusOK {
				t.Errorf("read %s: %d", k, resp.StatusCode)
			}
			break
		}
	}

	// Refresh rotation: the new refresh token works, the old one is spent.
	refresh := func(rt string) (int, tokenResponse) {
		return h.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_id": {DefaultClientID}}, "", "")
	}
	status, tok2 := refresh(tok.RefreshToken)
	if status != http.StatusOK || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken ||
		tok2.AccessToken == tok.AccessToken || tok2.Patient == nil || *tok2.Patient != facts.patientID {
		t.Fatalf("refresh: %d %+v", status, tok2)
	}
	if status, r := refresh(tok.RefreshToken); status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("old refresh token: %d %q, want 400 invalid_grant", status, r.Error)
	}
	if resp, _ := h.get(t, tok2.AccessToken, "/Patient/"+facts.patientID); resp.StatusCode != http.StatusOK {
		t.Errorf("new access token: %d", resp.StatusCode)
	}
	if calls := h.srv.TokenCalls(); calls["authorization_code"] != 1 || calls["refresh_token"] != 2 {
		t.Errorf("TokenCalls = %v", calls)
	}

	// Incremental: after a Touch, _lastUpdated=gt<base> returns just that resource.
	var obsID string
	for k := range facts.keys {
		if id, ok := strings.CutPrefix(k, "Observation/"); ok {
			obsID = id
			break
		}
	}
	h.clock.Advance(30 * time.Minute)
	if err := h.srv.Touch("Observation", obsID); err != nil {
		t.Fatal(err)
	}
	h.srv.ResetRequests()
	keys, _, _ = h.fetchAll(t, tok2.AccessToken, "/Observation?patient="+facts.patientID+"&_lastUpdated=gt2024-01-01T00:00:00.000Z")
	if !slices.Equal(keys, []string{"Observation/" + obsID}) {
		t.Errorf("incremental search returned %v", keys)
	}
	keys, _, _ = h.fetchAll(t, tok2.AccessToken, "/Patient/"+facts.patientID+"/$everything?_since=2024-01-01T00:00:00.001Z")
	if !slices.Equal(keys, []string{"Observation/" + obsID}) {
		t.Errorf("$everything _since returned %v", keys)
	}
	resp, body = h.get(t, tok2.AccessToken, "/Observation/"+obsID)
	var obs resourceHead
	_ = json.Unmarshal(body, &obs)
	if obs.Meta.VersionID != "2" || obs.Meta.LastUpdated != "2025-03-01T12:30:00.000Z" || resp.Header.Get("ETag") != `W/"2"` {
		t.Errorf("touched Observation meta %+v etag %q", obs.Meta, resp.Header.Get("ETag"))
	}
	// The request log shows exactly those calls, secrets absent.
	reqs := h.srv.Requests()
	if len(reqs) != 3 || reqs[0].Path != "/fhir/Observation" || reqs[0].Query.Get("_lastUpdated") == "" ||
		reqs[2].Path != "/fhir/Observation/"+obsID || reqs[2].Status != http.StatusOK {
		t.Errorf("request log: %+v", reqs)
	}
}

// TestPagingStable checks that pages of different sizes give the same order and that
// _count=0 returns only the total.
func TestPagingStable(t *testing.T) {
	h := newHarness(t, Config{})
	facts := readFacts(t, testPatientFile)
	tok := h.connect(t, facts.patientID, fullScope)
	a, _, _ := h.fetchAll(t, tok.AccessToken, "/Observation?patient="+facts.patientID+"&_count=3")
	b, _, _ := h.fetchAll(t, tok.AccessToken, "/Observation?patient="+facts.patientID+"&_count=1000")
	c, _, _ := h.fetchAll(t, tok.AccessToken, "/Observation?patient="+facts.patientID)
	if !slices.Equal(a, b) || !slices.Equal(b, c) || len(a) != facts.counts["Observation"] {
		t.Errorf("orders differ or incomplete: %d %d %d", len(a), len(b), len(c))
	}
	resp, body := h.get(t, tok.AccessToken, "/Observation?patient="+facts.patientID+"&_count=0")
	var bundle testBundle
	if err := json.Unmarshal(body, &bundle); err != nil || resp.StatusCode != 200 ||
		bundle.Total != facts.counts["Observation"] || len(bundle.Entry) != 0 || bundle.next() != "" {
		t.Errorf("_count=0: %d total %d entries %d", resp.StatusCode, bundle.Total, len(bundle.Entry))
	}
	// _count above the maximum is capped.
	_, body = h.get(t, tok.AccessToken, "/Patient/"+facts.patientID+"/$everything?_count=5000")
	_ = json.Unmarshal(body, &bundle)
	if len(bundle.Entry) != len(facts.keys) {
		t.Errorf("_count=5000: %d entries", len(bundle.Entry))
	}
	for _, bad := range []string{"&_count=x", "&_count=-1", "&_offset=-3", "&_lastUpdated=gtyesterday", "&_lastUpdated=ne2024"} {
		if resp, _ := h.get(t, tok.AccessToken, "/Observation?patient="+facts.patientID+bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, resp.StatusCode)
		}
	}
}

// TestCapabilityStatement checks the metadata document and its switches.
func TestCapabilityStatement(t *testing.T) {
	type capStmt struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Rest         []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
				Service []struct {
					Coding []struct {
						Code string `json:"code"`
					} `json:"coding"`
				} `json:"service"`
			} `json:"security"`
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
				Operation []struct {
					Name string `json:"name"`
				} `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	for _, tc := range []struct {
		name       string
		cfg        Config
		everything bool
		oauthURIs  bool
		wellKnown  int
	}{
		{"default", Config{}, true, false, http.StatusOK},
		{"no everything", Config{NoEverything: true}, false, false, http.StatusOK},
		{"smart v1 only", Config{SMARTv1Only: true}, true, true, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			resp, body := h.get(t, "", "/metadata")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("metadata: %d", resp.StatusCode)
			}
			var cs capStmt
			if err := json.Unmarshal(body, &cs); err != nil {
				t.Fatal(err)
			}
			if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || len(cs.Rest) != 1 {
				t.Fatalf("capability statement: %+v", cs)
			}
			rest := cs.Rest[0]
			if len(rest.Security.Service) == 0 || rest.Security.Service[0].Coding[0].Code != "SMART-on-FHIR" {
				t.Error("security service SMART-on-FHIR missing")
			}
			types := map[string]bool{}
			hasEverything := false
			for _, r := range rest.Resource {
				types[r.Type] = true
				if r.Type == "Observation" {
					var names []string
					for _, p := range r.SearchParam {
						names = append(names, p.Name)
					}
					for _, n := range []string{"patient", "_lastUpdated", "_count"} {
						if !slices.Contains(names, n) {
							t.Errorf("Observation search param %s missing", n)
						}
					}
				}
				if r.Type == "Patient" {
					for _, o := range r.Operation {
						hasEverything = hasEverything || o.Name == "everything"
					}
				}
			}
			for typ := range readFacts(t, testPatientFile).counts {
				if !types[typ] {
					t.Errorf("type %s not listed", typ)
				}
			}
			if hasEverything != tc.everything {
				t.Errorf("$everything listed = %v, want %v", hasEverything, tc.everything)
			}
			var authorize, token string
			for _, e := range rest.Security.Extension {
				if e.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
					for _, x := range e.Extension {
						switch x.URL {
						case "authorize":
							authorize = x.ValueURI
						case "token":
							token = x.ValueURI
						}
					}
				}
			}
			if tc.oauthURIs != (authorize == h.ts.URL+"/auth/authorize" && token == h.ts.URL+"/auth/token") {
				t.Errorf("oauth-uris extension: authorize %q token %q, want present=%v", authorize, token, tc.oauthURIs)
			}
			if resp, _ := h.get(t, "", "/.well-known/smart-configuration"); resp.StatusCode != tc.wellKnown {
				t.Errorf("smart-configuration: %d, want %d", resp.StatusCode, tc.wellKnown)
			}
			facts := readFacts(t, otherPatientFile)
			scope := "launch/patient patient/*.rs"
			if tc.cfg.SMARTv1Only {
				scope = "launch/patient patient/*.read"
			}
			tok := h.connect(t, facts.patientID, scope)
			want := http.StatusOK
			if !tc.everything {
				want = http.StatusBadRequest
			}
			if resp, _ := h.get(t, tok.AccessToken, "/Patient/"+facts.patientID+"/$everything"); resp.StatusCode != want {
				t.Errorf("$everything: %d, want %d", resp.StatusCode, want)
			}
		})
	}
}
