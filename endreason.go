package netmsg

import "strconv"

// EndReason says why a connection or session ended: GNS's
// ESteamNetConnectionEnd, with the same numbers (the "end_reason" key of
// GodotSteam's getSessionConnectionInfo and the "reason" of its
// network_messages_session_failed signal, the seed's NetworkingConnectionEnd
// table). The constants are named EndXxx.
//
// Like HTTP status codes, the range says where the problem came from:
//
//	1000-1999  the application closed the connection normally (IsApp)
//	2000-2999  the application closed it in an unusual way (IsAppException)
//	3000-3999  a problem on the local host or its network (IsLocal)
//	4000-4999  a problem at the peer or on the way to it (IsRemote)
//	5000-5999  anything else (IsMisc)
//
// Applications may close connections with any code in 1000-2999; netmsg
// (like GNS) uses the 3000-5999 codes itself. The Min and Max constants are
// the bounds of the ranges, not reasons.
type EndReason int32

// End reasons (GNS ESteamNetConnectionEnd, steamnetworkingtypes.h; the two
// session reasons from csteamnetworkingmessages.cpp).
const (
	// EndInvalid is the zero value: no reason (yet).
	EndInvalid EndReason = 0

	EndAppMin EndReason = 1000
	// EndAppGeneric is the code for an ordinary close by the application.
	EndAppGeneric EndReason = 1000
	// EndSessionClosed: the Messages session was closed by
	// CloseSessionWithUser, or by closing its last channel (GNS:
	// k_ESteamNetConnectionEnd_P2P_SessionClosed, App_Min+1).
	EndSessionClosed EndReason = 1001
	// EndIdleTimeout: the Messages session was closed after going unused
	// for the idle timeout (GNS: k_ESteamNetConnectionEnd_P2P_SessionIdleTimeout,
	// App_Min+2).
	EndIdleTimeout EndReason = 1002
	// EndAppMax is the top of the application range. GNS also uses it for a
	// close with a code outside 1000-2999.
	EndAppMax EndReason = 1999

	EndAppExceptionMin EndReason = 2000
	// EndAppExceptionGeneric is the code for an unusual close by the
	// application (GNS also uses it when a message could not be allocated).
	EndAppExceptionGeneric EndReason = 2000
	EndAppExceptionMax     EndReason = 2999

	EndLocalMin EndReason = 3000
	// EndLocalOfflineMode: the host is in offline mode.
	EndLocalOfflineMode EndReason = 3001
	// EndLocalManyRelayConnectivity: no recent contact with any relay and
	// failures with several, so the problem is probably local.
	EndLocalManyRelayConnectivity EndReason = 3002
	// EndLocalHostedServerPrimaryRelay: a hosted server cannot reach the
	// relay the client is using.
	EndLocalHostedServerPrimaryRelay EndReason = 3003
	// EndLocalNetworkConfig: the relay network configuration could not be
	// fetched.
	EndLocalNetworkConfig EndReason = 3004
	// EndLocalRights: the request was refused for lack of rights.
	EndLocalRights EndReason = 3005
	// EndLocalP2PICENoPublicAddresses: ICE found no public (server-
	// reflexive) address for this host. Internal when a relay fallback
	// exists.
	EndLocalP2PICENoPublicAddresses EndReason = 3006
	EndLocalMax                     EndReason = 3999

	EndRemoteMin EndReason = 4000
	// EndRemoteTimeout: the connection was lost while the local network
	// seemed fine.
	EndRemoteTimeout EndReason = 4001
	// EndRemoteBadCrypt: the peer's certificate or handshake crypto was
	// invalid or unacceptable.
	EndRemoteBadCrypt EndReason = 4002
	// EndRemoteBadCert: the peer's certificate parsed but could not be
	// trusted (unsigned, unknown CA, wrong restrictions, not theirs).
	EndRemoteBadCert EndReason = 4003
	// EndRemoteNotLoggedIn is in the seed's table; GNS has retired it and
	// never returns it.
	EndRemoteNotLoggedIn EndReason = 4004
	// EndRemoteNotRunningApp is in the seed's table; GNS has retired it and
	// never returns it.
	EndRemoteNotRunningApp EndReason = 4005
	// EndRemoteBadProtocolVersion: the peer's protocol version is not
	// supported (the seed's CONNECTION_END_BAD_PROTOCOL_VERSION).
	EndRemoteBadProtocolVersion EndReason = 4006
	// EndRemoteP2PICENoPublicAddresses: the peer signaled but sent no
	// public addresses, so NAT traversal failed. Internal when a relay
	// fallback exists.
	EndRemoteP2PICENoPublicAddresses EndReason = 4007
	EndRemoteMax                     EndReason = 4999

	EndMiscMin EndReason = 5000
	// EndMiscGeneric: a rare failure; the debug string has details.
	EndMiscGeneric EndReason = 5001
	// EndMiscInternalError: a failure that is most likely a bug, e.g. a
	// malformed packet from the peer.
	EndMiscInternalError EndReason = 5002
	// EndMiscTimeout: the connection timed out, and it is unknown where.
	EndMiscTimeout EndReason = 5003
	// EndMiscRelayConnectivity is in the seed's table; GNS has retired it.
	EndMiscRelayConnectivity EndReason = 5004
	// EndMiscSteamConnectivity: trouble talking to Steam (for netmsg: the
	// signaling service).
	EndMiscSteamConnectivity EndReason = 5005
	// EndMiscNoRelaySessionsToClient: a hosted server has no relay session
	// through which to answer a client.
	EndMiscNoRelaySessionsToClient EndReason = 5006
	// EndMiscP2PRendezvous: P2P rendezvous failed, with no more specific
	// reason.
	EndMiscP2PRendezvous EndReason = 5008
	// EndMiscP2PNATFirewall: NAT traversal failed, probably because of NAT
	// or firewall configuration. Internal when a relay fallback exists.
	EndMiscP2PNATFirewall EndReason = 5009
	// EndMiscPeerSentNoConnection: the peer answered that it has no record
	// of the connection.
	EndMiscPeerSentNoConnection EndReason = 5010
	EndMiscMax                  EndReason = 5999
)

var endReasonText = map[EndReason]string{
	EndInvalid:                       "invalid",
	EndAppGeneric:                    "app generic",
	EndSessionClosed:                 "session closed",
	EndIdleTimeout:                   "session idle timeout",
	EndAppExceptionGeneric:           "app exception generic",
	EndLocalOfflineMode:              "local offline mode",
	EndLocalManyRelayConnectivity:    "local many relay connectivity",
	EndLocalHostedServerPrimaryRelay: "local hosted server primary relay",
	EndLocalNetworkConfig:            "local network config",
	EndLocalRights:                   "local rights",
	EndLocalP2PICENoPublicAddresses:  "local p2p ice no public addresses",
	EndRemoteTimeout:                 "remote timeout",
	EndRemoteBadCrypt:                "remote bad crypt",
	EndRemoteBadCert:                 "remote bad cert",
	EndRemoteNotLoggedIn:             "remote not logged in",
	EndRemoteNotRunningApp:           "remote not running app",
	EndRemoteBadProtocolVersion:      "remote bad protocol version",
	EndRemoteP2PICENoPublicAddresses: "remote p2p ice no public addresses",
	EndMiscGeneric:                   "misc generic",
	EndMiscInternalError:             "misc internal error",
	EndMiscTimeout:                   "misc timeout",
	EndMiscRelayConnectivity:         "misc relay connectivity",
	EndMiscSteamConnectivity:         "misc steam connectivity",
	EndMiscNoRelaySessionsToClient:   "misc no relay sessions to client",
	EndMiscP2PRendezvous:             "misc p2p rendezvous",
	EndMiscP2PNATFirewall:            "misc p2p nat firewall",
	EndMiscPeerSentNoConnection:      "misc peer sent no connection",
}

// String names r in lowercase words, e.g. "remote timeout". A value without
// a name is written with its range, e.g. "app 1234", "app exception 2001",
// "local 3999", "remote 4100", "misc 5999", or "end reason N" outside them.
func (r EndReason) String() string {
	if s, ok := endReasonText[r]; ok {
		return s
	}
	n := strconv.Itoa(int(r))
	switch {
	case r.IsApp():
		return "app " + n
	case r.IsAppException():
		return "app exception " + n
	case r.IsLocal():
		return "local " + n
	case r.IsRemote():
		return "remote " + n
	case r.IsMisc():
		return "misc " + n
	}
	return "end reason " + n
}

// IsApp reports whether r is in 1000-1999, a normal close by the
// application (EndSessionClosed and EndIdleTimeout included).
func (r EndReason) IsApp() bool { return EndAppMin <= r && r <= EndAppMax }

// IsAppException reports whether r is in 2000-2999, an unusual close by the
// application.
func (r EndReason) IsAppException() bool { return EndAppExceptionMin <= r && r <= EndAppExceptionMax }

// IsLocal reports whether r is in 3000-3999, a problem on the local host.
func (r EndReason) IsLocal() bool { return EndLocalMin <= r && r <= EndLocalMax }

// IsRemote reports whether r is in 4000-4999, a problem at the peer or on
// the way to it.
func (r EndReason) IsRemote() bool { return EndRemoteMin <= r && r <= EndRemoteMax }

// IsMisc reports whether r is in 5000-5999, any other problem.
func (r EndReason) IsMisc() bool { return EndMiscMin <= r && r <= EndMiscMax }
