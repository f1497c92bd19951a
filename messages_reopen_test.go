package netmsg

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// TestMessagesCloseAndRedial: one side closes its session while both keep
// sending with SendAutoRestartBrokenSession, and the close is lost, so the
// other side still holds the old connection when the closer's new connect
// request arrives, and dials again itself once it learns of the close. In
// every round, whichever side closed and whichever connection ids were
// drawn, a session comes back up without any failure and each side's last
// message of the round arrives. (A request refused while the old
// connection looked alive used to stay half-open and unanswered, so that,
// once the other side dialled too, each waited for the other's connection
// and both timed out with 5003.)
func TestMessagesCloseAndRedial(t *testing.T) {
	for seed := range uint64(16) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				link := netsim.LinkConfig{Delay: 5 * time.Millisecond, Jitter: 3 * time.Millisecond, LossPercent: 10, ReorderPercent: 2, DuplicatePercent: 1}
				nw, _ := netsim.New(netsim.Config{Seed: seed, Link: link})
				defer nw.Close()
				ps := newMsgPeers(t, nw, 2)
				defer closeAll(ps)
				r := rand.New(rand.NewPCG(seed, 7))

				// last[i] is the last round and number peer i received
				// from the other.
				var mu sync.Mutex
				var last [2][2]uint32
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cancel()
				for i, p := range ps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							m, err := p.m.Receive(ctx, 0)
							if err != nil {
								return
							}
							mu.Lock()
							last[i] = [2]uint32{binary.LittleEndian.Uint32(m.Payload), binary.LittleEndian.Uint32(m.Payload[4:])}
							mu.Unlock()
							m.Release()
						}
					}()
				}
				send := func(from, to *msgPeer, round, n uint32) {
					b := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, round), n)
					from.m.SendMessageToUser(to.id, b, SendReliable|SendAutoRestartBrokenSession, 0)
				}
				const rounds, perRound = 24, 200
				for round := uint32(1); round <= rounds; round++ {
					closer := r.IntN(2)
					a, b := ps[closer], ps[1-closer]
					if round > 1 {
						// The close is lost.
						nw.SetLink(a.LocalAddr(), b.LocalAddr(), netsim.LinkConfig{LossPercent: 100})
						a.m.CloseSessionWithUser(b.id)
						nw.SetLink(a.LocalAddr(), b.LocalAddr(), link)
					}
					for n := range uint32(perRound) {
						send(a, b, round, n)
						send(b, a, round, n)
						time.Sleep(10 * time.Millisecond)
					}
					// Each side's last message of the round arrives once
					// the session is back up: a handshake that loses its
					// connect OK a few times at 10% loss takes seconds, so
					// wait up to the connect timeout (a session that does
					// not come up by then fails, which the test reports).
					want := [2][2]uint32{{round, perRound - 1}, {round, perRound - 1}}
					var got [2][2]uint32
					for end := time.Now().Add(ps[0].Host.cfg.TimeoutInitial + 2*time.Second); ; time.Sleep(100 * time.Millisecond) {
						mu.Lock()
						got = last
						mu.Unlock()
						if got == want || time.Now().After(end) {
							break
						}
					}
					for i, p := range ps {
						if f := p.gotFailures(); len(f) != 0 {
							t.Fatalf("round %d (peer %d closed): peer %d: session failed: %v (%d) %s", round, closer, i, f[0].EndReason, int(f[0].EndReason), f[0].EndDebug)
						}
					}
					for i := range ps {
						if got[i] != [2]uint32{round, perRound - 1} {
							st0, _, _ := ps[0].m.GetSessionConnectionInfo(ps[1].id)
							st1, _, _ := ps[1].m.GetSessionConnectionInfo(ps[0].id)
							t.Fatalf("round %d (peer %d closed): peer %d last received round %d message %d, want message %d (sessions: %v, %v)", round, closer, i, got[i][0], got[i][1], perRound-1, st0, st1)
						}
					}
				}
			})
		})
	}
}
