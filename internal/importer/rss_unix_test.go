//go:build unix

package importer

import (
	"os"
	"syscall"
)

// peakRSSMiB is the peak resident set of a finished child process (Linux reports ru_maxrss in
// KiB).
func peakRSSMiB(ps *os.ProcessState) float64 {
	return float64(ps.SysUsage().(*syscall.Rusage).Maxrss) / 1024
}
