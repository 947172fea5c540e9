package connect_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/syncer"
)

// TestIssue14_2_SecondConnectReusesSource: connecting the same provider as the same patient
// again signs in to the source that holds them (new tokens, the same records, one source), not
// a second source with every record again.
func TestIssue14_2_SecondConnectReusesSource(t *testing.T) {
	e := newEnv(t, envOptions{people: true})
	e.register()
	p := e.patient()
	first := e.connectPatient(demo, p)
	e.syncNow(*first.SourceID)
	before := e.countQ(`SELECT count(*) FROM resources`)
	oldKey := e.source(*first.SourceID).TokenKey
	oldTok, err := e.kr.Get(context.Background(), oldKey)
	if err != nil {
		t.Fatal(err)
	}

	second := e.connectPatient(demo, p)
	if *second.SourceID != *first.SourceID || !second.Reconnect {
		t.Fatalf("second connect: source %d (first %d), reconnect %v", *second.SourceID, *first.SourceID, second.Reconnect)
	}
	if n := e.sourceCount(); n != 1 {
		t.Fatalf("%d sources after connecting the same patient twice", n)
	}
	newTok, err := e.kr.Get(context.Background(), oldKey)
	if err != nil || bytes.Equal(newTok, oldTok) {
		t.Fatalf("the second sign-in's tokens were not stored under the source (err %v)", err)
	}
	sy := syncer.New(syncer.Config{Store: e.store, DB: e.db, Tokens: e.svc.TokenManagerFor})
	res, err := sy.RunOnce(context.Background(), []int64{*first.SourceID})
	if err != nil || len(res) != 1 || res[0].Status != syncer.RunOK || res[0].Added != 0 {
		t.Fatalf("the sync after the second connect: %+v %v", res, err)
	}
	if after := e.countQ(`SELECT count(*) FROM resources`); after != before {
		t.Fatalf("records: %d before, %d after the second connect and sync", before, after)
	}
	list, _ := e.people.List(context.Background(), people.ListOptions{})
	if len(list) != 1 {
		t.Fatalf("%d people after connecting one patient twice", len(list))
	}
}
