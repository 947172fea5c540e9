package importer

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// TestIssue14_10_ArchiveRatioAsAWhole: many entries that each stay under the per-entry bomb check
// but expand the archive as a whole more than MaxRatio times are refused.
func TestIssue14_10_ArchiveRatioAsAWhole(t *testing.T) {
	im, st := newEnv(t)
	entries := map[string][]byte{}
	for i := range 30 {
		b := fmt.Appendf(nil, `{"resourceType":"Patient","id":"p%d","gender":"male"`, i)
		b = append(b, bytes.Repeat([]byte(" "), 1<<20)...)
		entries[fmt.Sprintf("p%d.json", i)] = append(b, '}')
	}
	_, err := im.Import(context.Background(), inputs(zipOf(t, entries, zip.Deflate)), Options{})
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "as a whole") {
		t.Fatalf("want a refusal of the whole archive, got %v", err)
	}
	if c, _ := st.Counts(context.Background(), records.Filter{}); len(c) != 0 {
		t.Fatalf("a refused archive wrote %v", c)
	}
}

// TestIssue14_14_ProgressUnits: done and total are in one unit (a gzip file's own bytes), the
// fraction stays below 1 until the import is done, and only the last report says done.
func TestIssue14_14_ProgressUnits(t *testing.T) {
	im, _ := newEnv(t)
	raw, err := os.ReadFile(data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	f := filepath.Join(t.TempDir(), "bundle.json.gz")
	os.WriteFile(f, buf.Bytes(), 0o600)
	var got []Progress
	if _, err := im.Import(context.Background(), inputs(f), Options{Progress: func(p Progress) { got = append(got, p) }}); err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p.BytesTotal != int64(buf.Len()) || p.BytesDone > p.BytesTotal {
			t.Fatalf("report %d: %d of %d bytes (the file has %d)", i, p.BytesDone, p.BytesTotal, buf.Len())
		}
		last := i == len(got)-1
		if (p.Phase == "done") != last || (p.Fraction >= 1) != last {
			t.Fatalf("report %d of %d: %+v", i+1, len(got), p)
		}
	}
}
