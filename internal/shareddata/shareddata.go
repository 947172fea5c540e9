// Package shareddata locates the project's shared test data (Synthea bundles, bulk NDJSON and the
// FHIR validator cases), which lives beside the repository in ../shared/data. Tests, benchmarks and
// the sandbox provider use it; FASTEN_SHARED_DATA overrides the location.
package shareddata

import (
	"errors"
	"os"
	"path/filepath"
)

// Dir returns the absolute path of the shared data folder. It honours FASTEN_SHARED_DATA, then
// looks for shared/data next to the directory that holds go.mod, walking up from the working
// directory (tests run in their package directory).
func Dir() (string, error) {
	if d := os.Getenv("FASTEN_SHARED_DATA"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			cand := filepath.Join(filepath.Dir(dir), "shared", "data")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand, nil
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	return "", errors.New("shared test data not found: set FASTEN_SHARED_DATA or keep ../shared/data beside the repository")
}

// Path joins elem onto Dir.
func Path(elem ...string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{d}, elem...)...), nil
}

// Synthea, BulkNDJSON and TestCases are the three data sets.
const (
	Synthea    = "synthea-r4"
	BulkNDJSON = "bulk-ndjson-10-patients"
	TestCases  = "fhir-test-cases-r4"
)
