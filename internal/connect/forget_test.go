package connect_test

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

// gatewayUsers counts the user keys the reference gateway holds for this installation and
// provider (what its per-provider limit counts).
func (e *env) gatewayUsers(installationID, provider string) int {
	e.t.Helper()
	gw, err := sql.Open("sqlite", "file:"+e.gatewayDB+"?mode=ro")
	must(e.t, err)
	defer gw.Close()
	var n int
	must(e.t, gw.QueryRow(`SELECT count(*) FROM user_keys WHERE installation_id = ? AND provider_id = ?`, installationID, provider).Scan(&n))
	return n
}

// TestForgetUsersAtTheLighthouse (issue 19): a person deleted in the app, a person merged into
// another and a provider disconnected free their slot at the Lighthouse (the gateway's count
// drops); a person who still has a connection keeps theirs.
func TestForgetUsersAtTheLighthouse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{people: true})
	in := e.register()
	var ps []sandbox.PatientInfo
	for _, p := range e.hospital.Patients() {
		if p.Name != "" && p.Resources > 20 {
			ps = append(ps, p)
		}
	}
	if len(ps) < 3 {
		t.Fatalf("the demo hospital has %d patients, want 3", len(ps))
	}
	person := func(sourceID int64) int64 {
		src := e.source(sourceID)
		if src.ProfileID == nil {
			t.Fatalf("source %d has no person", sourceID)
		}
		return *src.ProfileID
	}

	// Deleted.
	a := e.connectPatient(demo, ps[0])
	if n := e.gatewayUsers(in.InstallationID, demo); n != 1 {
		t.Fatalf("%d users after one connect", n)
	}
	if _, err := e.people.Delete(ctx, person(*a.SourceID)); err != nil {
		t.Fatal(err)
	}
	if n := e.gatewayUsers(in.InstallationID, demo); n != 0 {
		t.Fatalf("%d users after the person was deleted, want 0", n)
	}

	// Merged into someone else: the merged person's key goes.
	b := e.connectPatient(demo, ps[1])
	name := "Someone Else"
	other, err := e.people.Create(ctx, people.Input{Name: &name})
	must(t, err)
	if _, err := e.people.Merge(ctx, other.ID, person(*b.SourceID)); err != nil {
		t.Fatal(err)
	}
	if n := e.gatewayUsers(in.InstallationID, demo); n != 0 {
		t.Fatalf("%d users after the person was merged away, want 0", n)
	}

	// Disconnected: the person's only source of that provider.
	c := e.connectPatient(demo, ps[2])
	if n := e.gatewayUsers(in.InstallationID, demo); n != 1 {
		t.Fatalf("%d users after a new connect", n)
	}
	if _, err := e.svc.Disconnect(ctx, *c.SourceID, false); err != nil {
		t.Fatal(err)
	}
	if n := e.gatewayUsers(in.InstallationID, demo); n != 0 {
		t.Fatalf("%d users after disconnecting, want 0", n)
	}
}

// TestRevokedInstallationInPlainWords (issue 19): once the Lighthouse operator revokes this
// installation, starting a connect answers 403 installation_revoked with a sentence the app
// shows as is.
func TestRevokedInstallationInPlainWords(t *testing.T) {
	e := newEnv(t, envOptions{people: true})
	in := e.register()
	gw, err := sql.Open("sqlite", "file:"+e.gatewayDB)
	must(t, err)
	defer gw.Close()
	if _, err := gw.Exec(`UPDATE installations SET revoked_at = '2026-12-01T00:00:00Z' WHERE id = ?`, in.InstallationID); err != nil {
		t.Fatal(err)
	}
	var ae apiError
	if code := e.call("POST", "/connect", map[string]any{"provider": demo}, &ae); code != http.StatusForbidden || ae.Error.Code != "installation_revoked" ||
		!strings.Contains(ae.Error.Message, "suspended") {
		t.Fatalf("connect with a revoked installation: %d %+v", code, ae)
	}
}
