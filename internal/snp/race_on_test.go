//go:build race

package snp

// raceEnabled says the race detector is on; allocation counts do not hold under it.
const raceEnabled = true
