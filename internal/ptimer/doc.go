// Package ptimer is a timer that fires within tens of microseconds of its
// deadline, for the Host's waits under a few milliseconds.
//
// Go's runtime waits for its timers in the network poller with a
// millisecond timeout, so on Linux a 250 µs time.Timer often fires a
// millisecond or more late. On Linux a Timer is a timerfd in the network
// poller: the poller wakes as soon as the kernel's high-resolution timer
// expires. On other systems New returns ErrUnsupported and the caller keeps
// its time.Timer.
//
// A Timer blocks a goroutine in the network poller, which testing/synctest
// does not count as durably blocked: code running on fake time must not use
// one.
package ptimer

import "errors"

// ErrUnsupported is returned by New on systems without a precise timer.
var ErrUnsupported = errors.New("ptimer: not supported on this system")
