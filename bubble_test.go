package netmsg

import (
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"testing/synctest"
	"time"
)

// fakeTimeLimit is the most fake time a test in a bubble may take. A test
// that waits for something that never comes while a Host's timers keep
// firing does not deadlock (the bubble's clock jumps from timer to
// timer), it spins; past this limit it is stopped with every goroutine's
// stack, which names the wait.
const fakeTimeLimit = 6 * time.Hour

// bubble runs f in a synctest bubble (fake time, the in-memory network)
// with the fakeTimeLimit watchdog.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(fakeTimeLimit):
				fmt.Fprintf(os.Stderr, "%s: still running after %v of fake time; goroutines:\n", t.Name(), fakeTimeLimit)
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
				panic(t.Name() + ": fake-time limit reached")
			}
		}()
		defer close(done)
		f(t)
	})
}
