//go:build race

package restore

// raceEnabled: the race detector slows the crash test's child restores several times.
const raceEnabled = true
