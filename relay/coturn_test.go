package relay

import (
	"testing"

	"github.com/netmsg-go/netmsg/internal/coturntest"
)

// TestCoturn relays through coturn (the relay users deploy; CI installs it
// from Debian) with the TURN client netmsg uses: allocate with long-term
// credentials, relay both ways, refuse a wrong password.
func TestCoturn(t *testing.T) {
	addr := coturntest.Start(t, "alice", "secret")
	_, relayed, err := turnClient(t, addr, "alice", "secret")
	if err != nil {
		t.Fatalf("allocate on coturn: %v", err)
	}
	checkRelay(t, relayed)
	if _, _, err := turnClient(t, addr, "alice", "wrong"); err == nil {
		t.Error("coturn allocated with a wrong password")
	}
}
