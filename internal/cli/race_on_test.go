//go:build race

package cli

// raceEnabled: the race detector makes the 100 MB import several times slower.
const raceEnabled = true
