//go:build !linux

package ptimer

import (
	"errors"
	"testing"
)

// TestUnsupported: elsewhere than Linux New fails, so the caller keeps its
// time.Timer.
func TestUnsupported(t *testing.T) {
	if _, err := New(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New: %v, want ErrUnsupported", err)
	}
}
