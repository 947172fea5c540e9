package syncer

import (
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/sandbox"
)

// BenchmarkSync50k syncs a 50,000-resource patient (the Synthea test patient replicated) from the
// sandbox on loopback into an empty database, first sync, default settings. It reports
// resources/s, the share of the run the job was blocked waiting for the provider (blocked_%), and
// the share during which a request was outstanding (http_%; it overlaps with storing because the
// next page is prefetched). The sandbox runs in the same process and competes for the CPU.
//
//	go test -run '^$' -bench Sync50k -benchtime 1x ./internal/syncer/ [-cpuprofile cpu.out]
func BenchmarkSync50k(b *testing.B) {
	for _, tc := range []struct {
		name         string
		noEverything bool
	}{
		{"everything", false},
		{"search", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := newProvider(b, sandbox.Config{NoEverything: tc.noEverything})
			const times = 261 // 192 resources per copy: 50,112 + the Patient + shared ones
			if _, err := p.srv.ReplicatePatient(testPatient, "bench", times); err != nil {
				b.Fatal(err)
			}
			want, _ := p.srv.Patient("bench")
			tok := p.signIn(b, "bench", fullScope)
			var resources int
			var secs, blocked, httpWait float64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				e := newEnv(b)
				id := e.connect(p, "Bench Hospital", tok)
				s := New(e.config(nil))
				b.StartTimer()
				r := runOne(b, s, id)
				b.StopTimer()
				if r.Status != RunOK || r.Added != want.Resources {
					b.Fatalf("%s: added %d of %d: %v", r.Status, r.Added, want.Resources, r.Err)
				}
				resources += r.Added
				secs += r.Time.Seconds()
				blocked += r.Blocked.Seconds()
				httpWait += r.HTTPWait.Seconds()
				e.db.Close()
			}
			b.ReportMetric(float64(resources)/secs, "resources/s")
			b.ReportMetric(100*blocked/secs, "blocked_%")
			b.ReportMetric(100*httpWait/secs, "http_%")
		})
	}
}
