package conn

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// TestPreQueueFullAllDelivered: reliable messages queued before the
// handshake up to the send buffer's limit (the send that would pass it
// fails with ErrSendBufferFull) all arrive, once and in order, after it.
// The engine frames each message with a header the queue does not count,
// so the last of them did not fit its send buffer, and it was dropped.
func TestPreQueueFullAllDelivered(t *testing.T) {
	for _, size := range []int{64, 1205, 9000} {
		cc := testConfig("str:client")
		cc.SNP.SendBufferSize = 64 << 10
		p := newPair(t, cc, testConfig("str:server"))
		msg := make([]byte, size)
		n := 0
		for {
			binary.LittleEndian.PutUint64(msg, uint64(n))
			_, err := p.client.SendKeyed(p.now, 0, nil, msg, snp.Reliable)
			if errors.Is(err, snp.ErrSendBufferFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		var got []snp.Message
		for range 200 {
			p.run(10 * time.Millisecond)
			if p.server != nil {
				got = append(got, recvAll(p.server)...) // within the receive limits
			}
		}
		if p.server == nil || p.server.State() != StateConnected {
			t.Fatal("not connected")
		}
		for i, m := range got {
			if v := binary.LittleEndian.Uint64(m.Data); v != uint64(i) {
				t.Fatalf("size %d: message %d where %d was expected", size, v, i)
			}
		}
		if len(got) != n {
			t.Fatalf("size %d: %d of %d messages queued before the handshake arrived", size, len(got), n)
		}
	}
}
