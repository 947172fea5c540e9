package connect_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/connect"
	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// withQuery returns u with the given query parameters replaced (empty value: removed).
func withQuery(u *url.URL, set map[string]string) string {
	c := *u
	q := c.Query()
	for k, v := range set {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// TestCallbackStateChecks: a callback with a missing or wrong state is refused with a page that
// says why, no token request is made, and the sign-in keeps waiting for the real one; a replayed
// callback (the same URL again) and a second callback after success are refused too.
func TestCallbackStateChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	started := e.startConnect(demo, "")
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)

	cases := []struct {
		name     string
		url      string
		wantPath string
		wantText string
	}{
		{"missing state", withQuery(cb, map[string]string{"state": ""}), "/error/missing-state", "missing its security check"},
		{"wrong state", withQuery(cb, map[string]string{"state": smart.NewState()}), "/error/invalid-state", "not valid or has expired"},
		{"empty state", withQuery(cb, map[string]string{"state": " "}), "/error/invalid-state", "not valid or has expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, path, page := deliver(t, tc.url)
			if code != http.StatusBadRequest || path != tc.wantPath || !strings.Contains(page, tc.wantText) {
				t.Fatalf("%d %s:\n%s", code, path, page)
			}
			if n := tokenCalls(e.hospital, "authorization_code"); n != 0 {
				t.Fatalf("a token request was made (%d)", n)
			}
			if st := e.status(started.ConnectID); st.Status != connect.StatusPending {
				t.Fatalf("status %+v", st)
			}
		})
	}

	// The real callback, without fetching the result page (so the listener stays a while).
	resp, err := noFollow.Get(cb.String())
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback answered %d", resp.StatusCode)
	}
	if st := e.waitStatus(started.ConnectID); st.Status != connect.StatusConnected {
		t.Fatalf("status %+v", st)
	}

	again := []struct{ name, url string }{
		{"replayed callback", cb.String()},
		{"second callback after success", withQuery(cb, map[string]string{"code": "another-code-from-somewhere"})},
	}
	for _, tc := range again {
		t.Run(tc.name, func(t *testing.T) {
			code, path, page := deliver(t, tc.url)
			if code != http.StatusConflict || path != "/error/already-used" || !strings.Contains(page, "already finished") {
				t.Fatalf("%d %s:\n%s", code, path, page)
			}
		})
	}
	if n := tokenCalls(e.hospital, "authorization_code"); n != 1 {
		t.Fatalf("%d code exchanges, want 1", n)
	}
	if n := e.sourceCount(); n != 1 {
		t.Fatalf("%d sources, want 1", n)
	}
}

// TestPKCEVerifierMismatch: a code issued for another PKCE challenge is refused by the provider
// when the app sends its verifier; nothing is created.
func TestPKCEVerifierMismatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	started := e.startConnect(demo, "")
	// The browser's way to the provider, with the challenge swapped for one the app's verifier
	// does not match.
	authorize := e.follow(started.AuthorizeURL)
	if authorize.Query().Get("code_challenge") == "" {
		t.Fatalf("no code_challenge in %s", authorize.Redacted())
	}
	other := smart.NewPKCE()
	tampered := withQuery(authorize, map[string]string{"code_challenge": other.Challenge})
	back, err := sandbox.SignIn(context.Background(), noFollow, tampered, e.patient().ID, true)
	must(t, err)
	cb := e.follow(back.String())
	code, path, page := deliver(t, cb.String())
	if code != http.StatusBadGateway || path != "/done" || !strings.Contains(page, "Connecting did not finish") {
		t.Fatalf("%d %s:\n%s", code, path, page)
	}
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeRefused || st.Error == nil || !strings.Contains(*st.Error, "invalid_grant") {
		t.Fatalf("status %+v", st)
	}
	if tokenCalls(e.hospital, "authorization_code") != 1 || e.sourceCount() != 0 || len(e.mem.keys("source-token-")) != 0 {
		t.Fatal("something was created after a refused exchange")
	}
}

// TestAccessDenied: the user clicks Deny at the provider.
func TestAccessDenied(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	started := e.startConnect(demo, "")
	cb := e.portal(started.AuthorizeURL, e.patient().ID, false)
	if cb.Query().Get("error") != "access_denied" {
		t.Fatalf("callback %s", cb.Redacted())
	}
	code, _, page := deliver(t, cb.String())
	if code != http.StatusForbidden || !strings.Contains(page, "You declined to share your records") {
		t.Fatalf("%d:\n%s", code, page)
	}
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeDenied || st.Error == nil || !strings.Contains(*st.Error, "declined") {
		t.Fatalf("status %+v", st)
	}
	if tokenCalls(e.hospital, "authorization_code") != 0 || e.sourceCount() != 0 {
		t.Fatal("a denied sign-in went on")
	}
}

// TestProviderWithoutS256 is refused before any browser is opened.
func TestProviderWithoutS256(t *testing.T) {
	e := newEnv(t, envOptions{sandbox: sandbox.Config{NoS256: true}})
	e.register()
	var ae apiError
	code := e.call("POST", "/connect", map[string]string{"provider": demo}, &ae)
	if code != http.StatusBadGateway || ae.Error.Code != "provider_insecure" || !strings.Contains(ae.Error.Message, "does not support PKCE S256") {
		t.Fatalf("%d %+v", code, ae)
	}
}

// TestTokenResponseWithoutPatient: a token response without patient is refused; the tokens are
// not kept and no source is created.
func TestTokenResponseWithoutPatient(t *testing.T) {
	e := newEnv(t, envOptions{sandbox: sandbox.Config{OmitPatient: true}})
	e.register()
	started := e.startConnect(demo, "")
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
	deliver(t, cb.String())
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeNoPatient || st.Error == nil || !strings.Contains(*st.Error, "did not say whose records") {
		t.Fatalf("status %+v", st)
	}
	if e.sourceCount() != 0 || len(e.mem.keys("source-token-")) != 0 {
		t.Fatal("something was kept")
	}
}

// fetchSome stores the patient's Observations under the source, as a sync would.
func fetchSome(t *testing.T, e *env, src records.Source) int {
	t.Helper()
	code, body, err := e.fhirGet(src, "Observation?patient="+*src.PatientID+"&_count=20")
	if err != nil || code != 200 {
		t.Fatalf("search: %d %v", code, err)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	must(t, json.Unmarshal(body, &b))
	ctx := context.Background()
	err = e.store.WriteTx(ctx, func(tx *sql.Tx) error {
		w, err := e.store.NewWriter(ctx, tx, src.ID, false)
		if err != nil {
			return err
		}
		defer w.Close()
		for _, en := range b.Entry {
			ix, err := fhir.IndexResource(en.Resource)
			if err != nil {
				return err
			}
			if _, err := w.Put(ctx, records.Row{Type: ix.Type, ID: ix.ID, Raw: string(en.Resource), Index: ix}); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	if len(b.Entry) == 0 {
		t.Fatal("no observations")
	}
	return len(b.Entry)
}

// TestInvalidGrantOnRefresh: a refresh answered invalid_grant reaches the caller as
// smart.ErrInvalidGrant (the syncer then marks reconnect_needed); disconnecting while keeping the
// records keeps every record and removes the tokens; disconnecting with delete removes all.
func TestInvalidGrantOnRefresh(t *testing.T) {
	for _, confidential := range []bool{false, true} {
		name := map[bool]string{false: "public", true: "confidential"}[confidential]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.register()
			provider := demo
			if confidential {
				provider = demoConfidential
			}
			fin := e.connectPatient(provider, e.patient())
			src := e.source(*fin.SourceID)
			n := fetchSome(t, e, src)

			e.hospital.RevokeRefreshTokens()
			tm, err := e.svc.TokenManagerFor(context.Background(), src)
			must(t, err)
			_, err = tm.Refresh(context.Background(), "")
			if !errors.Is(err, smart.ErrInvalidGrant) || !smart.NeedsReconnect(err) {
				t.Fatalf("refresh error %v, want invalid_grant", err)
			}
			if got := e.source(src.ID); got.ResourceCount != n {
				t.Fatalf("records after invalid_grant: %d, want %d", got.ResourceCount, n)
			}

			var out connect.Disconnected
			if code := e.call("POST", "/sources/"+strconv.FormatInt(src.ID, 10)+"/disconnect", map[string]bool{"delete_records": false}, &out); code != 200 {
				t.Fatalf("disconnect: %d", code)
			}
			got := e.source(src.ID)
			if out.SourceDeleted || got.Status != records.StatusReconnectNeeded || got.ResourceCount != n || got.LastError == nil {
				t.Fatalf("after disconnect (keep): %+v %+v", out, got)
			}
			if _, err := e.kr.Get(context.Background(), src.TokenKey); err == nil {
				t.Fatal("the tokens are still in the keyring")
			}

			if code := e.call("POST", "/sources/"+strconv.FormatInt(src.ID, 10)+"/disconnect", map[string]bool{"delete_records": true}, &out); code != 200 {
				t.Fatalf("disconnect (delete): %d", code)
			}
			if !out.SourceDeleted || out.Deleted != n || e.sourceCount() != 0 {
				t.Fatalf("after disconnect (delete): %+v", out)
			}
		})
	}
}

// TestConcurrent401sOneRefresh: two requests rejected with 401 at once cause exactly one refresh.
func TestConcurrent401sOneRefresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	p := e.patient()
	fin := e.connectPatient(demo, p)
	src := e.source(*fin.SourceID)
	if code, _, err := e.fhirGet(src, "Patient/"+p.ID); err != nil || code != 200 {
		t.Fatalf("first read: %d %v", code, err)
	}
	e.hospital.ExpireAccessTokens()
	before := tokenCalls(e.hospital, "refresh_token")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, errs[i] = e.fhirGet(src, "Patient/"+p.ID)
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || codes[i] != 200 {
			t.Fatalf("request %d: %d %v", i, codes[i], errs[i])
		}
	}
	if n := tokenCalls(e.hospital, "refresh_token") - before; n != 1 {
		t.Fatalf("%d refresh calls, want exactly 1", n)
	}
}

// TestUserLimitReached: the Lighthouse refuses a second person for a provider with a limit of
// one, and the API carries its sentence word for word.
func TestUserLimitReached(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	e.startConnect(small, "") // the first person is admitted (the sign-in need not finish)
	var ae apiError
	code := e.call("POST", "/connect", map[string]string{"provider": small, "profile": "someone-else"}, &ae)
	want := "This installation has reached the limit of 1 users for " + smallName + "."
	if code != http.StatusForbidden || ae.Error.Code != "user_limit_reached" || ae.Error.Message != want {
		t.Fatalf("%d %+v, want %q", code, ae, want)
	}
	// The same person again is admitted.
	e.startConnect(small, "")
}

// TestKeyringErrors: a locked or missing keyring is reported in plain words, before anything is
// registered or created.
func TestKeyringErrors(t *testing.T) {
	locked := errors.New("failed to unlock correct collection '/org/freedesktop/secrets/aliases/default'")
	unavailable := errors.New("The name org.freedesktop.secrets was not provided by any .service files")

	t.Run("register with a locked keyring", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.mem.failGet = locked
		var ae apiError
		code := e.call("POST", "/installation", map[string]string{"name": "Ada", "email": "ada@example.org"}, &ae)
		if code != http.StatusServiceUnavailable || ae.Error.Code != "keyring_locked" || !strings.Contains(ae.Error.Message, "Unlock it") {
			t.Fatalf("%d %+v", code, ae)
		}
		if in, _ := e.inst.Installation(); in != nil {
			t.Fatal("registered anyway")
		}
	})
	t.Run("register without a keyring", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.mem.failGet = unavailable
		var ae apiError
		code := e.call("POST", "/installation", map[string]string{"name": "Ada", "email": "ada@example.org"}, &ae)
		if code != http.StatusServiceUnavailable || ae.Error.Code != "keyring_unavailable" || !strings.Contains(ae.Error.Message, "not available") {
			t.Fatalf("%d %+v", code, ae)
		}
	})
	t.Run("connect with a locked keyring", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.register()
		e.mem.mu.Lock()
		e.mem.failSet["source-token-"] = locked
		e.mem.mu.Unlock()
		started := e.startConnect(demo, "")
		cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
		_, _, page := deliver(t, cb.String())
		mustContain(t, "result page", page, "keyring is locked")
		st := e.waitStatus(started.ConnectID)
		if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeKeyringLocked || st.Error == nil || !strings.Contains(*st.Error, "Unlock it") {
			t.Fatalf("status %+v", st)
		}
		if e.sourceCount() != 0 {
			t.Fatal("a source was created without its tokens")
		}
	})
}

// TestSourceCreationFailureRemovesTokens: when the source cannot be created after the tokens
// were saved, the tokens are removed from the keyring again.
func TestSourceCreationFailureRemovesTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	ctx := context.Background()
	_, err := e.db.Write.ExecContext(ctx, `INSERT INTO profiles(id, name, created_at, updated_at) VALUES (7, 'Ada', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')`)
	must(t, err)
	started := e.startConnect(demo, "7")
	// The person is deleted while the browser is at the provider.
	_, err = e.db.Write.ExecContext(ctx, `DELETE FROM profiles WHERE id = 7`)
	must(t, err)
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
	deliver(t, cb.String())
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.Error == nil {
		t.Fatalf("status %+v", st)
	}
	if tokenCalls(e.hospital, "authorization_code") != 1 || e.sourceCount() != 0 {
		t.Fatal("unexpected state")
	}
	if keys := e.mem.keys("source-token-"); len(keys) != 0 {
		t.Fatalf("tokens left in the keyring: %v", keys)
	}
}

// TestReconnect signs in again for a disconnected source: same source, records kept, new tokens.
func TestReconnect(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	p := e.patient()
	fin := e.connectPatient(demo, p)
	src := e.source(*fin.SourceID)
	n := fetchSome(t, e, src)
	if code := e.call("POST", "/sources/"+strconv.FormatInt(src.ID, 10)+"/disconnect", nil, nil); code != 200 {
		t.Fatalf("disconnect: %d", code)
	}
	if code, _, err := e.fhirGet(e.source(src.ID), "Patient/"+p.ID); err == nil && code == 200 {
		t.Fatal("the source can still read after disconnect")
	}

	var started connect.Started
	if code := e.call("POST", "/sources/"+strconv.FormatInt(src.ID, 10)+"/reconnect", nil, &started); code != 200 {
		t.Fatalf("reconnect: %d", code)
	}
	cb := e.portal(started.AuthorizeURL, p.ID, true)
	deliver(t, cb.String())
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusConnected || st.SourceID == nil || *st.SourceID != src.ID || !st.Reconnect {
		t.Fatalf("status %+v", st)
	}
	got := e.source(src.ID)
	if got.Status != records.StatusConnected || got.LastError != nil || got.ResourceCount != n || e.sourceCount() != 1 {
		t.Fatalf("source after reconnect %+v", got)
	}
	if code, _, err := e.fhirGet(got, "Patient/"+p.ID); err != nil || code != 200 {
		t.Fatalf("read after reconnect: %d %v", code, err)
	}

	// Signing in as someone else is refused.
	var other sandbox.PatientInfo
	for _, q := range e.hospital.Patients() {
		if q.ID != p.ID {
			other = q
			break
		}
	}
	e.call("POST", "/sources/"+strconv.FormatInt(src.ID, 10)+"/reconnect", nil, &started)
	cb = e.portal(started.AuthorizeURL, other.ID, true)
	deliver(t, cb.String())
	st = e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeWrongPatient {
		t.Fatalf("status %+v", st)
	}
	if got := e.source(src.ID); *got.PatientID != p.ID {
		t.Fatal("the source changed patient")
	}
}

// TestIssuerMismatch: a callback whose iss names another server is not exchanged (mix-up).
func TestIssuerMismatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register()
	started := e.startConnect(demo, "")
	cb := e.portal(started.AuthorizeURL, e.patient().ID, true)
	if cb.Query().Get("iss") == "" {
		t.Fatal("the demo hospital sent no iss")
	}
	deliver(t, withQuery(cb, map[string]string{"iss": "https://other-hospital.example.org/fhir"}))
	st := e.waitStatus(started.ConnectID)
	if st.Status != connect.StatusFailed || st.ErrorCode != connect.ErrCodeIssuer {
		t.Fatalf("status %+v", st)
	}
	if tokenCalls(e.hospital, "authorization_code") != 0 || e.sourceCount() != 0 {
		t.Fatal("the code was exchanged")
	}
}
