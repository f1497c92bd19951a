//go:build !linux

package ptimer

import "time"

// Timer is a one-shot timer armed by Reset; on this system New always
// fails and the caller keeps its time.Timer.
type Timer struct {
	// C receives a value when the timer expires.
	C <-chan struct{}
}

// New returns ErrUnsupported on this system.
func New() (*Timer, error) { return nil, ErrUnsupported }

// Reset does nothing on this system.
func (t *Timer) Reset(d time.Duration) {}

// Stop does nothing on this system.
func (t *Timer) Stop() {}

// Close does nothing on this system.
func (t *Timer) Close() error { return nil }
