package netmsg_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg"
)

// Two Hosts on loopback UDP talk through the Messages API, as two GodotSteam
// games would through sendMessageToUser and receiveMessagesOnChannel. Alice
// sends "hello" on channel 3 to Bob's ip: identity; Bob gets a session
// request, accepts it, reads the message and replies to its sender.
func ExampleMessages() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Bob's network_messages_session_request signal: hand the peer to the
	// main goroutine. The Host repeats the request while the peer keeps
	// sending and nobody accepted, so extra ones are dropped here.
	requests := make(chan netmsg.Identity, 1)
	bobHost, err := netmsg.NewHost(netmsg.Config{
		Identity:   mustParse("str:bob"),
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		Logger:     slog.New(slog.DiscardHandler),
		OnSessionRequest: func(peer netmsg.Identity) {
			select {
			case requests <- peer:
			default:
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bobHost.Close()
	bob := bobHost.Messages() // from now on Bob takes incoming sessions

	aliceHost, err := netmsg.NewHost(netmsg.Config{
		Identity:   mustParse("str:alice"),
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer aliceHost.Close()
	alice := aliceHost.Messages()

	// Alice knows Bob by address only: "ip:127.0.0.1:<port>".
	bobAddr, err := netmsg.IdentityFromAddr(bobHost.LocalAddr())
	if err != nil {
		fmt.Println(err)
		return
	}
	// The session is created on demand; this message is queued until it
	// is connected.
	if err := alice.SendMessageToUser(bobAddr, []byte("hello"), netmsg.SendReliable, 3); err != nil {
		fmt.Println("alice: send:", err)
		return
	}

	select {
	case peer := <-requests:
		fmt.Println("bob: session request from", peer)
		fmt.Println("bob: accepted:", bob.AcceptSessionWithUser(peer))
	case <-ctx.Done():
		fmt.Println("bob: no session request:", ctx.Err())
		return
	}

	m, err := bob.Receive(ctx, 3) // the blocking form of ReceiveMessagesOnChannel
	if err != nil {
		fmt.Println("bob: receive:", err)
		return
	}
	fmt.Printf("bob: got %q on channel %d from %v, reliable %v\n", m.Payload, m.Channel, m.Identity, m.Flags.IsReliable())
	// Reply to whoever sent it: m.Identity names the accepted session.
	err = bob.SendMessageToUser(m.Identity, []byte("hello back"), netmsg.SendReliableNoNagle, m.Channel)
	m.Release()
	if err != nil {
		fmt.Println("bob: send:", err)
		return
	}

	r, err := alice.Receive(ctx, 3)
	if err != nil {
		fmt.Println("alice: receive:", err)
		return
	}
	fmt.Printf("alice: got %q on channel %d from %v\n", r.Payload, r.Channel, r.Identity)
	r.Release()

	state, info, _ := alice.GetSessionConnectionInfo(bobAddr)
	fmt.Printf("alice: session %v with %v\n", state, info.Identity)
	fmt.Println("alice: closed:", alice.CloseSessionWithUser(bobAddr))

	// Output:
	// bob: session request from str:alice
	// bob: accepted: true
	// bob: got "hello" on channel 3 from str:alice, reliable true
	// alice: got "hello back" on channel 3 from str:bob
	// alice: session connected with str:bob
	// alice: closed: true
}

func mustParse(s string) netmsg.Identity {
	id, err := netmsg.ParseIdentity(s)
	if err != nil {
		panic(err)
	}
	return id
}

// A sender that produces as fast as the peer takes: Send waits while the
// session's send buffer is full, where SendMessageToUser would fail with
// ResultLimitExceeded, so the loop needs no retry or sleep. The receiver
// takes one message per Receive call.
func ExampleMessages_Send() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	requests := make(chan netmsg.Identity, 1)
	bobHost, err := netmsg.NewHost(netmsg.Config{
		ListenAddr:       netip.MustParseAddrPort("127.0.0.1:0"),
		OnSessionRequest: func(peer netmsg.Identity) { requests <- peer },
	})
	if err != nil {
		panic(err)
	}
	defer bobHost.Close()
	bob := bobHost.Messages()
	aliceHost, err := netmsg.NewHost(netmsg.Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		panic(err)
	}
	defer aliceHost.Close()
	alice := aliceHost.Messages()
	bobID, _ := netmsg.IdentityFromAddr(bobHost.LocalAddr())

	const n = 100_000
	go func() {
		msg := make([]byte, 1200)
		for range n {
			if err := alice.Send(ctx, bobID, msg, netmsg.SendReliable, 0); err != nil {
				panic(err)
			}
		}
	}()
	bob.AcceptSessionWithUser(<-requests)
	bytes := 0
	for range n {
		m, err := bob.Receive(ctx, 0)
		if err != nil {
			panic(err)
		}
		bytes += m.Size
		m.Release()
	}
	fmt.Printf("bob got %d messages, %d MB\n", n, bytes/1_000_000)
	// Output: bob got 100000 messages, 120 MB
}
