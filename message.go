package netmsg

import (
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// ConnHandle names one connection of a Host, like GNS's
// HSteamNetConnection; the zero value, InvalidConn, names no connection.
//
// A handle is also the connection's id on the wire: a random nonzero
// 32-bit value drawn from Config.Rand, different from the id of every
// connection the Host still holds, including closed ones still lingering
// or sending their close. The value stops naming the connection as soon
// as CloseConnection returns (calls with it fail), and can come back once
// the Host has dropped the connection entirely: a later connection draws
// it again with a chance of about 1 in 2^32 per connection made. An
// application that keeps handles of closed connections can therefore, very
// rarely, reach a newer connection with one.
type ConnHandle uint32

// ListenHandle names one listen socket of a Host, like GNS's
// HSteamListenSocket. The zero value, InvalidListen, names none.
// ListenHandles count up from 1 per Host, shared by UDP and P2P listen
// sockets, so a value does not come back after its socket is closed
// unless 2^32 listen sockets have been made on the Host. Listen returns
// the same handle while its socket stays open.
type ListenHandle uint32

const (
	// InvalidConn is the zero ConnHandle (GNS: k_HSteamNetConnection_Invalid).
	InvalidConn ConnHandle = 0
	// InvalidListen is the zero ListenHandle (GNS: k_HSteamListenSocket_Invalid).
	InvalidListen ListenHandle = 0
)

// Message is one received message: GNS's SteamNetworkingMessage_t, and one
// dictionary of the array GodotSteam's receiveMessagesOnChannel returns
// (each field names its key). The receiver owns a Message and its Payload.
type Message struct {
	// Payload is the message data ("payload").
	Payload []byte

	// Size is len(Payload), in bytes ("size"). It is kept because the seed
	// API lists it.
	Size int

	// Connection is the connection the message arrived on ("connection").
	// For the Messages API it is the session's underlying connection.
	Connection ConnHandle

	// Identity is the sender's identity ("identity").
	Identity Identity

	// ReceiverUserData is the user data of the receiving connection at the
	// time the message was received ("receiver_user_data"); see
	// ConnectionInfo.UserData.
	ReceiverUserData int64

	// TimeReceived is when the message was received ("time_received").
	// GNS's value is a SteamNetworkingMicroseconds timestamp on its own
	// clock; netmsg gives the Host's clock (Config.Now) and keeps microsecond
	// resolution or better. GodotSteam's integer corresponds to
	// TimeReceived.UnixMicro() on a host using the real clock.
	TimeReceived time.Time

	// MessageNumber is the message number assigned by the sender
	// ("message_number"). Numbers increase by one per message sent on a
	// connection (lane); reliable and unreliable messages share the
	// sequence.
	MessageNumber int64

	// Channel is the Messages channel the message was sent on ("channel").
	// It is 0 on the connection-oriented API.
	Channel int

	// Flags are the flags the sender used ("flags"). Only the SendReliable
	// bit is meaningful on a received message.
	Flags SendFlags

	// SenderUserData is user data the sender's application set on the
	// message ("sender_user_data"). It is not sent over the wire: on a
	// received message it is 0 (GNS sets it on outgoing messages only).
	SenderUserData int64

	buf      snp.Buffer  // what holds Payload's bytes, for Release
	conn     *hostConn   // the connection it came on, for the Host's accounting
	web      *webSession // or the browser session (host_webrtc.go)
	released uint32      // 1 once Release ran; set with a compare-and-swap
}

// ConnectionInfo describes a connection or Messages session: GNS's
// SteamNetConnectionInfo_t, the get_connection part of GodotSteam's
// getSessionConnectionInfo dictionary (each field names its key).
type ConnectionInfo struct {
	// Identity is who is on the other end ("identity"). It may be the zero
	// Identity early in a connection, before the peer has proved it.
	Identity Identity

	// UserData is the application's value attached to the connection
	// ("user_data"); -1 when none was set (GNS's default).
	UserData int64

	// ListenSocket is the listen socket the connection was accepted on, or
	// InvalidListen if it was initiated locally ("listen_socket").
	ListenSocket ListenHandle

	// RemoteAddress is the peer's address on the route in use
	// ("remote_address"): for direct UDP the address connected to, for a
	// P2P connection on a direct ICE path the peer's address on it (host
	// or server-reflexive). It is the zero AddrPort while unknown (a P2P
	// connection still finding its route) and, as in GNS, when the route
	// goes through a TURN relay (Flags has ConnInfoRelayed; Description
	// then names the relay and the addresses). Render it with
	// FormatIPAddr for GNS's string.
	RemoteAddress netip.AddrPort

	// RemotePOP is the data center (point of presence) of the peer
	// ("remote_pop"; GNS's SteamNetworkingPOPID, Valve's relay network).
	// netmsg has no such network: always 0.
	RemotePOP uint32

	// POPRelay says which relay carries the connection ("pop_relay"). In
	// GNS it names a Valve relay data center; in netmsg it is 1 + the
	// index in Config.TURNServers of the TURN server this Host's
	// allocation is on, when the route goes through it, and 0 otherwise
	// (a direct route, or one through the peer's own allocation, which
	// Flags still reports as relayed).
	POPRelay uint32

	// Flags are GNS's connection-info flags (ConnInfoRelayed and the
	// others; not in the seed's dictionary): whether the route is relayed,
	// fast (loopback or one LAN), and whether the peer is unauthenticated.
	Flags ConnectionInfoFlags

	// State is the high-level state ("connection_state", and "state" of the
	// whole dictionary).
	State ConnectionState

	// EndReason is why the connection ended or has a problem, EndInvalid
	// while it is fine ("end_reason").
	EndReason EndReason

	// EndDebug is a human-readable, non-localized explanation of EndReason,
	// for logs only ("end_debug"). GNS limits it to 127 bytes.
	EndDebug string

	// Description is a debug description of the connection: its ID, kind,
	// peer and any name the application gave it ("debug_description"). GNS
	// limits it to 127 bytes.
	Description string
}

// RealTimeStatus is a quick snapshot of a connection's performance: GNS's
// SteamNetConnectionRealTimeStatus_t, the get_status part of GodotSteam's
// getSessionConnectionInfo dictionary (each field names its key).
type RealTimeStatus struct {
	// State is the high-level state of the connection.
	State ConnectionState

	// Ping is the current smoothed round-trip time ("ping", which is in
	// milliseconds: use Ping.Milliseconds()). It is negative when not yet
	// measured (GNS reports -1 ms).
	Ping time.Duration

	// ConnectionQualityLocal is the fraction, 0 to 1, of packets delivered
	// end to end in order, as measured here; -1 when unknown
	// ("local_quality").
	ConnectionQualityLocal float32

	// ConnectionQualityRemote is the same fraction as observed by the peer;
	// -1 when unknown ("remote_quality").
	ConnectionQualityRemote float32

	// OutPacketsPerSec is the recent rate of packets sent
	// ("packets_out_per_second").
	OutPacketsPerSec float32

	// OutBytesPerSec is the recent rate of bytes sent
	// ("bytes_out_per_second").
	OutBytesPerSec float32

	// InPacketsPerSec is the recent rate of packets received
	// ("packets_in_per_second").
	InPacketsPerSec float32

	// InBytesPerSec is the recent rate of bytes received
	// ("bytes_in_per_second").
	InBytesPerSec float32

	// SendRateBytesPerSecond is the estimated rate at which data can be
	// sent to the peer, in bytes per second ("send_rate"). It can exceed
	// OutBytesPerSec: that only means the channel has spare capacity.
	SendRateBytesPerSecond int

	// PendingUnreliable is the number of bytes of unreliable data queued
	// but not yet put on the wire ("pending_unreliable"), Nagle-delayed
	// data included.
	PendingUnreliable int

	// PendingReliable is the number of bytes of reliable data queued but
	// not yet put on the wire, including data scheduled for retransmission
	// ("pending_reliable"); it can grow without new sends.
	PendingReliable int

	// SentUnackedReliable is the number of bytes of reliable data on the
	// wire but not yet acknowledged, which may need to be retransmitted
	// ("send_unacknowledged_reliable").
	SentUnackedReliable int

	// QueueTime estimates how long a message queued now would wait before
	// its first byte goes on the wire, roughly (PendingUnreliable +
	// PendingReliable) / SendRateBytesPerSecond, ignoring Nagle
	// ("queue_time", in microseconds: use QueueTime.Microseconds()).
	QueueTime time.Duration
}

// ConnectionInfoFlags are GNS's k_nSteamNetworkConnectionInfoFlags_xxx
// bits (ConnectionInfo.Flags).
type ConnectionInfoFlags int32

// The flags, GNS's values.
const (
	// ConnInfoUnauthenticated: the peer's certificate is not signed by a
	// CA this Host trusts (Config.TrustedCAs), or names no identity but an
	// address, so its identity is its claim.
	ConnInfoUnauthenticated ConnectionInfoFlags = 1
	// ConnInfoUnencrypted: data travels unencrypted. netmsg always
	// encrypts; the flag is never set.
	ConnInfoUnencrypted ConnectionInfoFlags = 2
	// ConnInfoLoopbackBuffers: GNS's in-process socket pairs. Never set
	// (netmsg's in-process pairs run over netsim).
	ConnInfoLoopbackBuffers ConnectionInfoFlags = 4
	// ConnInfoFast: the peer is on this machine (a loopback address) or
	// probably on the same LAN (a direct P2P path to a private address).
	ConnInfoFast ConnectionInfoFlags = 8
	// ConnInfoRelayed: the route goes through a TURN relay, this Host's
	// allocation (POPRelay says which) or the peer's.
	ConnInfoRelayed ConnectionInfoFlags = 16
	// ConnInfoDualWifi: GNS's dual-wifi multipath. Never set.
	ConnInfoDualWifi ConnectionInfoFlags = 32
)
