package sandbox

import (
	"embed"
	"io/fs"
	"time"
)

// demoFiles is the demo data set built into the binary: four small Synthea patients and the
// organization and practitioner bundles, gzip-compressed (about 135 KB). See demo/SOURCE.txt for
// where they come from and their licence (Apache-2.0, synthetic data).
//
//go:embed demo/*.json.gz
var demoFiles embed.FS

// DemoFS returns the embedded demo bundles (patient-*.json.gz, organizations.json.gz,
// practitioners.json.gz), the folder LoadDemoData reads.
func DemoFS() fs.FS {
	sub, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	return sub
}

// LoadDemoData loads the embedded demo data set: what `fasten-desktop sandbox` serves, so that
// the demo hospital needs no files beside the binary. A zero baseTime means DefaultBaseTime.
func LoadDemoData(baseTime time.Time) (*Data, error) {
	return LoadDataFS(DemoFS(), baseTime)
}
