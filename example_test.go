package netmsg_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// The README's quick start: the bodies of the examples below are the
// README's Go blocks, word for word (TestReadmeExamples checks it).

// Two Hosts on loopback UDP, known by their addresses (ip: identities):
// Alice sends, Bob accepts the session, receives, and both close.
func ExampleNewHost() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Bob listens on a UDP port and is told when a peer opens a session.
	requests := make(chan netmsg.Identity, 1)
	bobHost, err := netmsg.NewHost(netmsg.Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		OnSessionRequest: func(peer netmsg.Identity) {
			select {
			case requests <- peer:
			default: // asked again before we answered
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bobHost.Close()
	bob := bobHost.Messages()

	aliceHost, err := netmsg.NewHost(netmsg.Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		log.Fatal(err)
	}
	defer aliceHost.Close()
	alice := aliceHost.Messages()

	// Alice sends to Bob's address; the session is made on demand.
	bobID, _ := netmsg.IdentityFromAddr(bobHost.LocalAddr())
	if err := alice.SendMessageToUser(bobID, []byte("hello"), netmsg.SendReliable, 0); err != nil {
		log.Fatal(err)
	}

	// Bob accepts the session and receives on channel 0.
	bob.AcceptSessionWithUser(<-requests)
	m, err := bob.Receive(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob got %q on channel %d\n", m.Payload, m.Channel)
	m.Release()
	// Output: bob got "hello" on channel 0
}

// The same over P2P: the peers are named by strings (str: identities) and
// find each other through a signaling service, here an in-memory hub
// embedded in the program, then connect with ICE.
func Example_p2p() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hub, err := signaling.NewHub(signaling.HubConfig{})
	if err != nil {
		log.Fatal(err)
	}

	// newPeer starts a Host named name, registered with the hub, that
	// accepts every session.
	newPeer := func(name string) (*netmsg.Host, netmsg.Identity) {
		id, err := netmsg.ParseIdentity(name)
		if err != nil {
			log.Fatal(err)
		}
		sig, err := hub.Connect(id.String())
		if err != nil {
			log.Fatal(err)
		}
		requests := make(chan netmsg.Identity, 16)
		h, err := netmsg.NewHost(netmsg.Config{
			Identity:   id,
			Signaling:  sig,
			ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
			OnSessionRequest: func(peer netmsg.Identity) {
				select {
				case requests <- peer:
				default:
				}
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for peer := range requests {
				h.Messages().AcceptSessionWithUser(peer)
			}
		}()
		return h, id
	}
	aliceHost, _ := newPeer("str:alice")
	defer aliceHost.Close()
	bobHost, bob := newPeer("str:bob")
	defer bobHost.Close()
	bobHost.Messages() // Bob takes sessions from now on

	if err := aliceHost.Messages().SendMessageToUser(bob, []byte("hello over P2P"), netmsg.SendReliable, 0); err != nil {
		log.Fatal(err)
	}
	m, err := bobHost.Messages().Receive(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v got %q from %v\n", bob, m.Payload, m.Identity)
	m.Release()
	// Output: str:bob got "hello over P2P" from str:alice
}

// Through servers, as across the Internet: a signaling server (what
// `netmsg signal` runs) and a STUN and TURN relay (what `netmsg relay`
// runs), both on loopback here. The peers are told to use only the relay,
// as when no direct path exists.
func Example_servers() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// netmsg signal --listen 127.0.0.1:10000
	sigServer, err := signaling.NewServer(signaling.ServerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer sigServer.Close()
	sigAddr, err := sigServer.Listen("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// netmsg relay --listen 127.0.0.1:3478 --user u:p --allow-peer 127.0.0.0/8
	// (a relay refuses loopback and private peers unless allowed)
	relayServer, err := relay.NewServer(relay.Config{
		ListenAddr: "127.0.0.1:0",
		Users:      map[string]string{"u": "p"},
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer relayServer.Close()

	newPeer := func(name string) *netmsg.Host {
		id, err := netmsg.ParseIdentity(name)
		if err != nil {
			log.Fatal(err)
		}
		sig, err := signaling.DialTrivial(ctx, sigAddr.String(), id.String())
		if err != nil {
			log.Fatal(err)
		}
		requests := make(chan netmsg.Identity, 16)
		h, err := netmsg.NewHost(netmsg.Config{
			Identity:     id,
			Signaling:    sig,
			ListenAddr:   netip.MustParseAddrPort("127.0.0.1:0"),
			TURNServers:  []netmsg.TURNServer{{Addr: relayServer.Addr(), Username: "u", Password: "p"}},
			P2PRelayOnly: true,
			OnSessionRequest: func(peer netmsg.Identity) {
				select {
				case requests <- peer:
				default:
				}
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for peer := range requests {
				h.Messages().AcceptSessionWithUser(peer)
			}
		}()
		h.Messages()
		return h
	}
	alice := newPeer("str:alice")
	defer alice.Close()
	bob := newPeer("str:bob")
	defer bob.Close()

	to, _ := netmsg.ParseIdentity("str:bob")
	if err := alice.Messages().SendMessageToUser(to, []byte("hello through the relay"), netmsg.SendReliable, 0); err != nil {
		log.Fatal(err)
	}
	m, err := bob.Messages().Receive(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob got %q\n", m.Payload)
	m.Release()
	_, info, _ := alice.Messages().GetSessionConnectionInfo(to)
	fmt.Println("relayed:", info.Flags&netmsg.ConnInfoRelayed != 0)
	// Output:
	// bob got "hello through the relay"
	// relayed: true
}

// The connection API beneath the Messages API, as GNS's
// ISteamNetworkingSockets: a server listens and accepts, a client
// connects to its address, and messages flow on the connection.
func ExampleHost_Connect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	incoming := make(chan netmsg.ConnHandle, 1)
	server, err := netmsg.NewHost(netmsg.Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		OnConnectionStatusChanged: func(ev netmsg.ConnStatusChanged) {
			if ev.Info.State == netmsg.StateConnecting && ev.Info.ListenSocket != netmsg.InvalidListen {
				incoming <- ev.Conn
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	if _, err := server.Listen(); err != nil {
		log.Fatal(err)
	}

	client, err := netmsg.NewHost(netmsg.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	conn, err := client.Connect(server.LocalAddr())
	if err != nil {
		log.Fatal(err)
	}
	// Sent once the connection is up.
	if _, err := client.SendMessageToConnection(conn, []byte("hello, server"), netmsg.SendReliable); err != nil {
		log.Fatal(err)
	}

	c := <-incoming
	if err := server.AcceptConnection(c); err != nil {
		log.Fatal(err)
	}
	msgs, err := server.ReceiveBatch(ctx, c, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("server got %q\n", m.Payload)
		m.Release()
	}
	client.CloseConnection(conn, 0, "bye", true)
	// Output: server got "hello, server"
}
