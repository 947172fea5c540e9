//go:build race

package importer

// raceEnabled: the race detector slows the child imports of the crash test several times.
const raceEnabled = true
