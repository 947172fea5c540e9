package sandbox

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// The embedded demo files are the shared Synthea files, compressed and otherwise unchanged.
func TestDemoDataMatchesSharedData(t *testing.T) {
	dir, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(DemoFS(), "*.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 6 {
		t.Fatalf("%d demo files: %v", len(names), names)
	}
	total := 0
	for _, n := range names {
		gz, err := fs.ReadFile(DemoFS(), n)
		if err != nil {
			t.Fatal(err)
		}
		total += len(gz)
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		want, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(n, ".gz")))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the shared %s", n, strings.TrimSuffix(n, ".gz"))
		}
	}
	// The data set stays small: it is in every binary.
	if total > 200<<10 {
		t.Errorf("demo data is %d bytes compressed; keep it under 200 KiB", total)
	}
}

func TestLoadDemoData(t *testing.T) {
	d, err := LoadDemoData(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Data: d})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	total := 0
	for _, p := range srv.Patients() {
		names = append(names, p.Name)
		total += p.Resources
	}
	slices.Sort(names)
	if want := []string{"Alberto Atencio", "Garrett Thompson", "Kizzie Bode", "Raúl Fernández"}; !slices.Equal(names, want) {
		t.Errorf("demo patients %q, want %q", names, want)
	}
	// 215 + 76 + 111 + 158 bundle entries, the same count the shared files give.
	if total != 560 {
		t.Errorf("%d resources, want 560", total)
	}
	// Loaded the same way as from a folder: references resolved, meta stamped.
	for _, p := range srv.store.order {
		for _, r := range append(slices.Clone(p.list), sharedOf(srv.store, p)...) {
			raw := r.bytes()
			if bytes.Contains(raw, []byte("urn:uuid:")) || !bytes.Contains(raw, []byte(`"versionId":"1"`)) {
				t.Fatalf("%s: references or meta not rewritten", r.key())
			}
		}
	}
}

func TestLoadDataFSRejectsBadGzip(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "patient-x.json.gz"), []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadData(dir, time.Time{}); err == nil || !strings.Contains(err.Error(), "patient-x.json.gz") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}
