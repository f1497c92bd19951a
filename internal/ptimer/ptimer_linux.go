//go:build linux

package ptimer

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Timer is a one-shot timer armed by Reset. Each expiry sends one value on C
// (capacity 1; a value not yet taken is not doubled). C may hold a value
// from an expiry that raced with a later Reset or Stop, so a receiver must
// check the time itself. Reset, Stop and Close may be called from any
// goroutine. The zero value is not usable: use New. Timer starts one
// goroutine, ended by Close.
type Timer struct {
	// C receives a value when the timer expires.
	C <-chan struct{}

	c    chan struct{}
	f    *os.File
	fd   int
	mu   sync.Mutex // serializes settime with Close
	done chan struct{}
}

// New returns a stopped Timer, or an error when the system has no timerfd.
func New() (*Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	c := make(chan struct{}, 1)
	t := &Timer{C: c, c: c, fd: fd, f: os.NewFile(uintptr(fd), "ptimer"), done: make(chan struct{})}
	go t.run()
	return t, nil
}

// run reads the timerfd's expiry count (parked in the network poller) and
// signals C, until the file is closed.
func (t *Timer) run() {
	defer close(t.done)
	var b [8]byte
	for {
		if _, err := t.f.Read(b[:]); err != nil {
			return // closed
		}
		select {
		case t.c <- struct{}{}:
		default:
		}
	}
}

// Reset arms the timer to expire once, d from now (at once if d <= 0), in
// place of any earlier deadline.
func (t *Timer) Reset(d time.Duration) {
	t.set(max(d, time.Nanosecond))
}

// Stop disarms the timer. A value already sent on C stays there.
func (t *Timer) Stop() {
	t.set(0)
}

func (t *Timer) set(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fd < 0 {
		return
	}
	// The only errors are a bad descriptor or value, neither possible here.
	_ = unix.TimerfdSettime(t.fd, 0, &spec, nil)
}

// Close stops the timer and ends its goroutine; it returns once the
// goroutine ended. Later calls of Reset and Stop do nothing.
func (t *Timer) Close() error {
	t.mu.Lock()
	if t.fd < 0 {
		t.mu.Unlock()
		return nil
	}
	t.fd = -1
	err := t.f.Close()
	t.mu.Unlock()
	<-t.done
	return err
}
