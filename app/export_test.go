package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/backend"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestExportToWritesAWholeBundleAtomically(t *testing.T) {
	ctx := context.Background()
	b, err := backend.Open(ctx, backend.Options{DataDir: t.TempDir(), Keyring: secretstest.New(), Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, _ := shareddata.Path(shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	res, err := b.Importer.Import(ctx, []importer.Input{{Name: "p.json", Path: f}}, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "my records.json")
	if err := exportTo(ctx, b, out, records.Filter{SourceID: res.SourceID}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		ResourceType, Type string
		Entry              []json.RawMessage
	}
	if err := json.Unmarshal(raw, &bundle); err != nil || bundle.Type != "collection" || len(bundle.Entry) != res.Resources {
		t.Fatalf("export: %v, %s with %d entries (want %d)", err, bundle.Type, len(bundle.Entry), res.Resources)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	// A folder that cannot be written: a clear error, nothing half-written.
	if os.Geteuid() != 0 { // root can write anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o500)
		defer os.Chmod(ro, 0o700)
		if err := exportTo(ctx, b, filepath.Join(ro, "x.json"), records.Filter{}); err == nil || !strings.Contains(err.Error(), "could not write") {
			t.Fatalf("got %v", err)
		}
	}
}
