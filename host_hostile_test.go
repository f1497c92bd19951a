package netmsg

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// TestHostHostile sends a listening Host garbage, truncated and tampered
// datagrams, datagrams for unknown connections and a flood of challenge
// requests from many addresses, while a real connection runs: everything
// bad is dropped and counted, the Host keeps no state for unverified
// senders, and the real connection goes on.
func TestHostHostile(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)

		// A real challenge request to replay and mutate: make one with a
		// second client whose datagrams we capture.
		attacker, err := nw.Listen(netip.MustParseAddrPort("127.0.0.66:1"))
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		send := func(from *netsim.Endpoint, b []byte) {
			from.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: srv.LocalAddr()}})
		}
		// Garbage of every length, and every lead byte.
		for n := range 1400 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			send(attacker, b)
		}
		for lead := range 256 {
			b := make([]byte, 1+r.IntN(600))
			b[0] = byte(lead)
			send(attacker, b)
		}
		// Oversized.
		send(attacker, make([]byte, transport.MaxDatagram))
		// A flood of padded challenge requests from many addresses.
		for i := range 2000 {
			ep, err := nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 9))
			if err != nil {
				t.Fatal(err)
			}
			req, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST, &pb.UDPChallengeRequest{
				ConnectionId: proto.Uint32(uint32(i + 1)), MyTimestamp: proto.Uint64(1), ProtocolVersion: proto.Uint32(13),
			})
			if err != nil {
				t.Fatal(err)
			}
			send(ep, req)
			ep.Close()
		}
		time.Sleep(time.Second)

		srv.mu.Lock()
		nconns, nservers := len(srv.conns), len(srv.servers)
		srv.mu.Unlock()
		if nconns != 1 || nservers != 1 {
			t.Errorf("server holds %d connections (%d by client), want only the real one", nconns, nservers)
		}
		st := srv.Stats()
		if st.ChallengesAnswered < 2000 {
			t.Errorf("%d challenge requests answered, want the 2000 valid ones (statelessly)", st.ChallengesAnswered)
		}
		if st.BytesOut > 2000*512+10000 {
			t.Errorf("the server sent %d bytes: more than it received from unverified senders", st.BytesOut)
		}
		if st.Dropped < 1400 {
			t.Errorf("only %d datagrams counted as dropped", st.Dropped)
		}
		t.Logf("server stats %+v", st)
		// The real connection still works.
		if _, err := cli.SendMessageToConnection(c, []byte("still alive"), SendReliable); err != nil {
			t.Fatal(err)
		}
		s := serverConn(t, srv)
		waitFor(t, time.Minute, "the message after the attack", func() bool {
			ms := srv.ReceiveMessagesOnConnection(s, 10)
			for _, m := range ms {
				m.Release()
			}
			return len(ms) > 0
		})
	})
}
