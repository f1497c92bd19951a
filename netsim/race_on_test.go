//go:build race

package netsim

// raceEnabled says the race detector is on; long simulations are shortened.
const raceEnabled = true
