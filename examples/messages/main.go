// Command messages is the netmsg version of the GodotSteam Networking
// Messages tutorial: two peers on loopback UDP, one sends "hello" on a
// channel to the other's ip: identity, the other accepts the session
// request, reads the message and replies.
//
//	go run ./examples/messages            # the exchange
//	go run ./examples/messages -status    # and each side's session info and status
//
// See docs/godotsteam.md for how each GodotSteam call maps to netmsg.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/netmsg-go/netmsg"
)

func main() {
	channel := flag.Int("channel", 3, "the Messages `channel` to talk on")
	status := flag.Bool("status", false, "print each side's getSessionConnectionInfo at the end")
	timeout := flag.Duration("timeout", 5*time.Second, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, os.Stdout, *channel, *status); err != nil {
		fmt.Fprintln(os.Stderr, "messages:", err)
		os.Exit(1)
	}
}

// peer is one side: a Host and its Messages interface.
type peer struct {
	name string
	host *netmsg.Host
	msgs *netmsg.Messages
	// requests receives the identities of OnSessionRequest
	// (network_messages_session_request).
	requests chan netmsg.Identity
	// failures receives OnSessionFailed (network_messages_session_failed).
	failures chan netmsg.ConnectionInfo
}

func newPeer(name string) (*peer, error) {
	id, err := netmsg.IdentityFromString(name)
	if err != nil {
		return nil, err
	}
	p := &peer{
		name:     name,
		requests: make(chan netmsg.Identity, 1),
		failures: make(chan netmsg.ConnectionInfo, 1),
	}
	p.host, err = netmsg.NewHost(netmsg.Config{
		Identity:   id, // what the peer's Message.Identity will say
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		Logger:     slog.New(slog.DiscardHandler),
		// The callbacks run on the Host's event goroutine; hand their
		// values to the main goroutine. A request is repeated while the
		// peer keeps sending unanswered, so a full channel drops it.
		OnSessionRequest: func(from netmsg.Identity) {
			select {
			case p.requests <- from:
			default:
			}
		},
		OnSessionFailed: func(info netmsg.ConnectionInfo) {
			select {
			case p.failures <- info:
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	p.msgs = p.host.Messages() // from now on the Host takes incoming sessions
	return p, nil
}

// run makes the exchange and writes what happens to w. Everything it writes
// is deterministic except the -status block.
func run(ctx context.Context, w io.Writer, channel int, status bool) error {
	alice, err := newPeer("alice")
	if err != nil {
		return err
	}
	defer alice.host.Close()
	bob, err := newPeer("bob")
	if err != nil {
		return err
	}
	defer bob.host.Close()

	// Alice knows Bob only by address: ip:127.0.0.1:<port>.
	bobAddr, err := netmsg.IdentityFromAddr(bob.host.LocalAddr())
	if err != nil {
		return err
	}

	// sendMessageToUser: the session is created on demand, the message
	// queued until it is connected.
	if err := alice.msgs.SendMessageToUser(bobAddr, []byte("hello"), netmsg.SendReliable, channel); err != nil {
		return fmt.Errorf("alice: send: %w", err)
	}
	fmt.Fprintf(w, "alice: sent %q to bob's address on channel %d\n", "hello", channel)

	// network_messages_session_request, then acceptSessionWithUser.
	var from netmsg.Identity
	select {
	case from = <-bob.requests:
	case info := <-alice.failures:
		return fmt.Errorf("alice: session failed: %v (%s)", info.EndReason, info.EndDebug)
	case <-ctx.Done():
		return fmt.Errorf("bob: no session request: %w", ctx.Err())
	}
	fmt.Fprintf(w, "bob: session request from %v\n", from)
	if !bob.msgs.AcceptSessionWithUser(from) {
		return fmt.Errorf("bob: no session with %v to accept", from)
	}
	fmt.Fprintf(w, "bob: accepted %v\n", from)

	// receiveMessagesOnChannel, blocking.
	m, err := bob.msgs.Receive(ctx, channel)
	if err != nil {
		return fmt.Errorf("bob: receive: %w", err)
	}
	fmt.Fprintf(w, "bob: got %q (%d bytes) on channel %d from %v, reliable %v\n",
		m.Payload, m.Size, m.Channel, m.Identity, m.Flags.IsReliable())
	reply := "hello back"
	err = bob.msgs.SendMessageToUser(m.Identity, []byte(reply), netmsg.SendReliableNoNagle, m.Channel)
	m.Release()
	if err != nil {
		return fmt.Errorf("bob: send: %w", err)
	}
	fmt.Fprintf(w, "bob: replied %q\n", reply)

	r, err := alice.msgs.Receive(ctx, channel)
	if err != nil {
		return fmt.Errorf("alice: receive: %w", err)
	}
	fmt.Fprintf(w, "alice: got %q on channel %d from %v\n", r.Payload, r.Channel, r.Identity)
	r.Release()

	// The non-blocking form finds nothing more.
	fmt.Fprintf(w, "alice: %d more messages waiting\n", len(alice.msgs.ReceiveMessagesOnChannel(channel, 10)))

	// getSessionConnectionInfo.
	state, info, _ := alice.msgs.GetSessionConnectionInfo(bobAddr)
	fmt.Fprintf(w, "alice: session %v with %v\n", state, info.Identity)
	if status {
		printStatus(w, alice, bobAddr)
		printStatus(w, bob, from)
	}

	// closeSessionWithUser.
	fmt.Fprintf(w, "alice: closed session: %v\n", alice.msgs.CloseSessionWithUser(bobAddr))
	state, _, _ = alice.msgs.GetSessionConnectionInfo(bobAddr)
	fmt.Fprintf(w, "alice: session %v\n", state)
	return nil
}

// printStatus writes p's session with other in the shape of GodotSteam's
// getSessionConnectionInfo dictionary.
func printStatus(w io.Writer, p *peer, other netmsg.Identity) {
	state, info, st := p.msgs.GetSessionConnectionInfo(other)
	fmt.Fprintf(w, "%s: getSessionConnectionInfo(%v):\n", p.name, other)
	fmt.Fprintf(w, "  state=%d (%v) identity=%v user_data=%d listen_socket=%d remote_address=%s\n",
		state, state, info.Identity, info.UserData, info.ListenSocket, netmsg.FormatIPAddr(info.RemoteAddress, true))
	fmt.Fprintf(w, "  end_reason=%d end_debug=%q debug_description=%q\n", info.EndReason, info.EndDebug, info.Description)
	fmt.Fprintf(w, "  ping=%d local_quality=%.2f remote_quality=%.2f send_rate=%d pending_reliable=%d send_unacknowledged_reliable=%d queue_time=%d\n",
		st.Ping.Milliseconds(), st.ConnectionQualityLocal, st.ConnectionQualityRemote, st.SendRateBytesPerSecond,
		st.PendingReliable, st.SentUnackedReliable, st.QueueTime.Microseconds())
}
