package importer

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/records"
)

func TestSumProf(t *testing.T) {
	d, err := db.Open(context.Background(), "/tmp/fasten-bench/synthea-200000.db", db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := records.New(d)
	var ds []time.Duration
	for i := 0; i < 100; i++ {
		s := time.Now()
		if _, err := st.Summary(context.Background(), records.Filter{}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(s))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	t.Logf("p50 %v p95 %v min %v", ds[50], ds[95], ds[0])
}
