package conn

import "time"

// Protocol constants of GNS's direct-UDP connections, each with the place in
// GameNetworkingSockets (snapshot e707b3a) that fixes it.
const (
	// ProtocolVersion is the version we speak and announce
	// (k_nCurrentProtocolVersion, steamnetworkingsockets_internal.h).
	ProtocolVersion = 13
	// MinProtocolVersion is the oldest peer version we accept
	// (k_nMinRequiredProtocolVersion).
	MinProtocolVersion = 8
	// protoVersionHandshakePkt1: from this peer version on, the handshake
	// counts as packet 1 in both directions, so data starts at 2
	// (RecvCryptoHandshake).
	protoVersionHandshakePkt1 = 10
	// protoVersionLanes: peers older than this cannot receive more than one
	// lane (RecvCryptoHandshake: end reason 4006).
	protoVersionLanes = 11

	// connectRetryInterval is how often a connecting client retries: GNS
	// with a fresh challenge request, netmsg with a connect request while
	// its challenge is younger than challengeReuse
	// (k_usecConnectRetryInterval, steamnetworkingsockets_connections.h).
	connectRetryInterval = 500 * time.Millisecond
	// finWaitTimeout is how long a closed connection lingers in FinWait
	// (k_usecFinWaitTimeout).
	finWaitTimeout = 5 * time.Second

	// challengeTimeShift: a challenge's time stamp is the local clock in
	// microseconds shifted right by 20 (about 1.05 s units), truncated to
	// 16 bits (GetChallengeTime, steamnetworkingsockets_udp.cpp).
	challengeTimeShift = 20
	// challengeMaxAge is the oldest challenge accepted, in those units:
	// GetChallengeTime(4 s) = 3 (Received_ConnectRequest).
	challengeMaxAge = (4_000_000 >> challengeTimeShift)
	// handshakeTimestampMaxAge: a server echoes the client's connect
	// request time stamp in connect OK only while it is younger than this
	// (SendConnectOK).
	handshakeTimestampMaxAge = 4 * time.Second
	// pingSampleMax: handshake round trips longer than this are ignored
	// (Received_ChallengeReply, Received_ConnectOK).
	pingSampleMax = 2 * time.Second
	// maxPingEstimateMs: a connect request's ping estimate above this is
	// ignored (Received_ConnectRequest).
	maxPingEstimateMs = 1500

	// dataHeaderSize is the fixed part of a data packet header: lead byte,
	// recipient connection id (u32 LE), low 16 bits of the packet number
	// (UDPDataMsgHdr, steamnetworkingsockets_udp.h).
	dataHeaderSize = 7
	// Flags of a data packet's lead byte.
	flagInlineStats   = 0x01 // kFlag_ProtobufBlob: varint length + UDPStats
	flagTimeSincePrev = 0x02 // kFlag_TimeSincePrev: u16 LE, 16 us units
	dataLead          = 0x80
	// minDatagram: GNS drops any datagram shorter than this before looking
	// at it (PacketReceived, ReceivedFromUnknownHost).
	minDatagram = 5
	// maxPktNumLurch: a decrypted packet whose number is this far above the
	// highest received ends the connection with 5001 (DecryptDataChunk).
	maxPktNumLurch = 0x4000

	// Keepalives and reply timeouts (steamnetworking_statsutils.h).
	keepAliveInterval      = 10 * time.Second       // k_usecKeepAliveIntervalActive
	aggressivePingInterval = 200 * time.Millisecond // k_usecAggressivePingInterval
	maxAckStatsDelay       = 250 * time.Millisecond // k_usecMaxAckStatsDelay
	maxDataAckDelay        = 50 * time.Millisecond  // k_usecMaxDataAckDelay
	// replyTimeoutsToDrop: a connected connection is declared dead only
	// after this many consecutive unanswered ack requests and
	// TimeoutConnected without receiving anything (ThinkConnection).
	replyTimeoutsToDrop = 4
	// pingRequestInterval: an active connection asks for an ack at least
	// this often, to keep its RTT estimate fresh
	// (k_usecLinkStatsMaxPingRequestInterval).
	pingRequestInterval = 7 * time.Second
)

// End reasons (GNS ESteamNetConnectionEnd; netmsg.EndReason has the same
// numbers).
const (
	EndAppGeneric               = 1000
	EndAppMax                   = 1999
	EndAppExceptionMin          = 2000
	EndAppExceptionMax          = 2999
	EndRemoteBadCrypt           = 4002
	EndRemoteBadCert            = 4003
	EndRemoteBadProtocolVersion = 4006
	EndMiscGeneric              = 5001
	EndMiscInternalError        = 5002
	EndMiscTimeout              = 5003
	EndMiscPeerSentNoConnection = 5010
)

// Our own tuning constants (not from GNS).
const (
	defaultTimeoutInitial   = 10 * time.Second // GNS default for TimeoutInitial
	defaultTimeoutConnected = 10 * time.Second // GNS default for TimeoutConnected
	// closedResendInterval and closedResends: how often and how many times a
	// connection in FinWait or ProblemDetectedLocally repeats its connection
	// closed while it has no answer. GNS sends it once on the state change
	// and again for each packet the peer sends; we also repeat it a few
	// times so that a lost one does not leave the peer waiting for its
	// timeout.
	closedResendInterval = 1 * time.Second
	closedResends        = 3
	// maxDebugLen bounds the debug text we keep from a peer (GNS keeps 128
	// bytes, m_szEndDebug).
	maxDebugLen = 127
	// challengeReuse is how long a connecting client retries with the
	// connect request of the challenge it holds rather than asking for a
	// new challenge (GNS always asks again): a retry then needs one round
	// trip instead of two, where the lost datagram was most likely the
	// connect OK (a server answers a repeated connect request of a client
	// it accepted with connect OK again). A server accepts a challenge
	// for more than 3 s (challengeMaxAge units); 2 s leaves room for the
	// clocks' units and a slow path.
	challengeReuse = 2 * time.Second
)

// Reply timeouts (CalcConservativeTimeout, TrackSentMessageExpectingReply).
const (
	replyTimeoutMax     = 1250 * time.Millisecond
	replyTimeoutSlack   = 250 * time.Millisecond
	replyDelayAllowance = 200 * time.Millisecond // k_usecSteamDatagramRouterPendClientPing
)
