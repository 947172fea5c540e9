//go:build race

package people_test

// raceEnabled: the race detector makes imports about ten times slower; the longest tests then
// run their essential cases only.
const raceEnabled = true
