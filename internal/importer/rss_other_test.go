//go:build !unix

package importer

import "os"

// peakRSSMiB: Windows reports no peak resident set through os.ProcessState; the benchmark reports 0.
func peakRSSMiB(*os.ProcessState) float64 { return 0 }
