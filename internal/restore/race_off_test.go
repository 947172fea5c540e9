//go:build !race

package restore

const raceEnabled = false
