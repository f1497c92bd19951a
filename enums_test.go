package netmsg

import (
	"errors"
	"fmt"
	"testing"
)

func TestSendFlags(t *testing.T) {
	// Values: GNS k_nSteamNetworkingSend_* (steamnetworkingtypes.h).
	for _, c := range []struct {
		f    SendFlags
		val  int
		name string
	}{
		{SendUnreliable, 0, "Unreliable"},
		{SendNoNagle, 1, "Unreliable|NoNagle"},
		{SendUnreliableNoNagle, 1, "Unreliable|NoNagle"},
		{SendNoDelay, 4, "Unreliable|NoDelay"},
		{SendUnreliableNoDelay, 5, "Unreliable|NoNagle|NoDelay"},
		{SendReliable, 8, "Reliable"},
		{SendReliableNoNagle, 9, "Reliable|NoNagle"},
		{SendUseCurrentThread, 16, "Unreliable|UseCurrentThread"},
		{SendAutoRestartBrokenSession, 32, "Unreliable|AutoRestartBrokenSession"},
		{SendReliable | SendAutoRestartBrokenSession | SendUseCurrentThread, 56, "Reliable|UseCurrentThread|AutoRestartBrokenSession"},
		{SendReliable | 2 | 64, 74, "Reliable|0x42"},
	} {
		if int(c.f) != c.val {
			t.Errorf("%s = %d, want %d", c.name, int(c.f), c.val)
		}
		if got := c.f.String(); got != c.name {
			t.Errorf("SendFlags(%d).String() = %q, want %q", c.val, got, c.name)
		}
		if got, want := c.f.IsReliable(), c.val&8 != 0; got != want {
			t.Errorf("SendFlags(%d).IsReliable() = %v", c.val, got)
		}
	}
}

func TestResult(t *testing.T) {
	// Values: EResult (steamclientpublic.h).
	for _, c := range []struct {
		r    Result
		val  int
		text string
	}{
		{ResultOK, 1, "ok"},
		{ResultFail, 2, "failure"},
		{ResultNoConnection, 3, "no connection"},
		{ResultInvalidParam, 8, "invalid parameter"},
		{ResultBusy, 10, "busy"},
		{ResultInvalidState, 11, "invalid state"},
		{ResultAccessDenied, 15, "access denied"},
		{ResultTimeout, 16, "timeout"},
		{ResultNotLoggedOn, 21, "not logged on"},
		{ResultPending, 22, "pending"},
		{ResultLimitExceeded, 25, "limit exceeded"},
		{ResultDuplicateRequest, 29, "duplicate request"},
		{ResultIPNotFound, 31, "ip not found"},
		{ResultConnectFailed, 35, "connect failed"},
		{ResultHandshakeFailed, 36, "handshake failed"},
		{ResultIgnored, 41, "ignored"},
		{ResultNoMatch, 42, "no match"},
		{ResultDisabled, 80, "disabled"},
		{Result(99), 99, "result 99"},
	} {
		if int(c.r) != c.val {
			t.Errorf("%s = %d, want %d", c.text, int(c.r), c.val)
		}
		if got := c.r.String(); got != c.text {
			t.Errorf("Result(%d).String() = %q, want %q", c.val, got, c.text)
		}
		if got, want := c.r.Error(), "netmsg: "+c.text; got != want {
			t.Errorf("Result(%d).Error() = %q, want %q", c.val, got, want)
		}
	}

	var err error = ResultNoConnection
	wrapped := fmt.Errorf("send to str:bob: %w", err)
	if !errors.Is(wrapped, ResultNoConnection) {
		t.Errorf("errors.Is(wrapped, ResultNoConnection) = false")
	}
	if errors.Is(wrapped, ResultInvalidParam) {
		t.Errorf("errors.Is(wrapped, ResultInvalidParam) = true")
	}
	var r Result
	if !errors.As(wrapped, &r) || r != ResultNoConnection {
		t.Errorf("errors.As = %v", r)
	}
	if ResultOK.Err() != nil {
		t.Errorf("ResultOK.Err() = %v, want nil", ResultOK.Err())
	}
	if err := ResultLimitExceeded.Err(); !errors.Is(err, ResultLimitExceeded) {
		t.Errorf("ResultLimitExceeded.Err() = %v", err)
	}
}

func TestConnectionState(t *testing.T) {
	// Values: the seed's state list and GNS ESteamNetworkingConnectionState.
	for _, c := range []struct {
		s    ConnectionState
		val  int
		name string
	}{
		{StateNone, 0, "none"},
		{StateConnecting, 1, "connecting"},
		{StateFindingRoute, 2, "finding route"},
		{StateConnected, 3, "connected"},
		{StateClosedByPeer, 4, "closed by peer"},
		{StateProblemDetectedLocally, 5, "problem detected locally"},
		{StateFinWait, -1, "fin wait"},
		{StateLinger, -2, "linger"},
		{StateDead, -3, "dead"},
		{ConnectionState(6), 6, "state 6"},
		{ConnectionState(-4), -4, "state -4"},
	} {
		if int(c.s) != c.val {
			t.Errorf("%s = %d, want %d", c.name, int(c.s), c.val)
		}
		if got := c.s.String(); got != c.name {
			t.Errorf("ConnectionState(%d).String() = %q, want %q", c.val, got, c.name)
		}
	}
}

func TestEndReason(t *testing.T) {
	// The seed's NetworkingConnectionEnd table, then GNS's later additions
	// (steamnetworkingtypes.h) and the Messages session reasons
	// (csteamnetworkingmessages.cpp).
	for _, c := range []struct {
		r    EndReason
		val  int
		name string
	}{
		{EndInvalid, 0, "invalid"},
		{EndAppMin, 1000, "app generic"},
		{EndAppMax, 1999, "app 1999"},
		{EndAppExceptionMin, 2000, "app exception generic"},
		{EndAppExceptionMax, 2999, "app exception 2999"},
		{EndLocalMin, 3000, "local 3000"},
		{EndLocalOfflineMode, 3001, "local offline mode"},
		{EndLocalManyRelayConnectivity, 3002, "local many relay connectivity"},
		{EndLocalHostedServerPrimaryRelay, 3003, "local hosted server primary relay"},
		{EndLocalNetworkConfig, 3004, "local network config"},
		{EndLocalRights, 3005, "local rights"},
		{EndLocalMax, 3999, "local 3999"},
		{EndRemoteMin, 4000, "remote 4000"},
		{EndRemoteTimeout, 4001, "remote timeout"},
		{EndRemoteBadCrypt, 4002, "remote bad crypt"},
		{EndRemoteBadCert, 4003, "remote bad cert"},
		{EndRemoteNotLoggedIn, 4004, "remote not logged in"},
		{EndRemoteNotRunningApp, 4005, "remote not running app"},
		{EndRemoteBadProtocolVersion, 4006, "remote bad protocol version"},
		{EndRemoteMax, 4999, "remote 4999"},
		{EndMiscMin, 5000, "misc 5000"},
		{EndMiscGeneric, 5001, "misc generic"},
		{EndMiscInternalError, 5002, "misc internal error"},
		{EndMiscTimeout, 5003, "misc timeout"},
		{EndMiscRelayConnectivity, 5004, "misc relay connectivity"},
		{EndMiscSteamConnectivity, 5005, "misc steam connectivity"},
		{EndMiscNoRelaySessionsToClient, 5006, "misc no relay sessions to client"},
		{EndMiscMax, 5999, "misc 5999"},

		{EndAppGeneric, 1000, "app generic"},
		{EndSessionClosed, 1001, "session closed"},
		{EndIdleTimeout, 1002, "session idle timeout"},
		{EndAppExceptionGeneric, 2000, "app exception generic"},
		{EndLocalP2PICENoPublicAddresses, 3006, "local p2p ice no public addresses"},
		{EndRemoteP2PICENoPublicAddresses, 4007, "remote p2p ice no public addresses"},
		{EndMiscP2PRendezvous, 5008, "misc p2p rendezvous"},
		{EndMiscP2PNATFirewall, 5009, "misc p2p nat firewall"},
		{EndMiscPeerSentNoConnection, 5010, "misc peer sent no connection"},

		{EndReason(1234), 1234, "app 1234"},
		{EndReason(2001), 2001, "app exception 2001"},
		{EndReason(3500), 3500, "local 3500"},
		{EndReason(4100), 4100, "remote 4100"},
		{EndReason(5007), 5007, "misc 5007"},
		{EndReason(999), 999, "end reason 999"},
		{EndReason(6000), 6000, "end reason 6000"},
		{EndReason(-1), -1, "end reason -1"},
	} {
		if int(c.r) != c.val {
			t.Errorf("%s = %d, want %d", c.name, int(c.r), c.val)
		}
		if got := c.r.String(); got != c.name {
			t.Errorf("EndReason(%d).String() = %q, want %q", c.val, got, c.name)
		}
	}

	for _, c := range []struct {
		r                                EndReason
		app, appExc, local, remote, misc bool
	}{
		{EndInvalid, false, false, false, false, false},
		{EndAppMin, true, false, false, false, false},
		{EndSessionClosed, true, false, false, false, false},
		{EndAppMax, true, false, false, false, false},
		{EndAppExceptionMin, false, true, false, false, false},
		{EndAppExceptionMax, false, true, false, false, false},
		{EndLocalMin, false, false, true, false, false},
		{EndLocalMax, false, false, true, false, false},
		{EndRemoteMin, false, false, false, true, false},
		{EndRemoteTimeout, false, false, false, true, false},
		{EndRemoteMax, false, false, false, true, false},
		{EndMiscMin, false, false, false, false, true},
		{EndMiscMax, false, false, false, false, true},
		{EndReason(6000), false, false, false, false, false},
	} {
		got := [5]bool{c.r.IsApp(), c.r.IsAppException(), c.r.IsLocal(), c.r.IsRemote(), c.r.IsMisc()}
		want := [5]bool{c.app, c.appExc, c.local, c.remote, c.misc}
		if got != want {
			t.Errorf("%d: IsApp, IsAppException, IsLocal, IsRemote, IsMisc = %v, want %v", int(c.r), got, want)
		}
	}
}

func TestHandles(t *testing.T) {
	if InvalidConn != 0 || InvalidListen != 0 {
		t.Errorf("invalid handles are not 0")
	}
	var m Message
	if m.Connection != InvalidConn || m.Identity.IsValid() || m.Flags != SendUnreliable {
		t.Errorf("zero Message is not empty: %+v", m)
	}
}
