package netmsg

import "strconv"

// Result is a Steam EResult code, as GNS's functions return them. It
// implements error, so an API call that fails returns one and callers test
// for it with errors.Is:
//
//	if errors.Is(err, netmsg.ResultNoConnection) { ... }
//
// Success is a nil error: ResultOK is never returned as an error. The codes
// defined are those GNS's networking API returns, plus ResultAccessDenied and
// ResultTimeout, which netmsg's own additions may return; any other value
// renders as "result N".
type Result int32

// Result codes (EResult, steamclientpublic.h). The comment on each says
// when GNS's networking API returns it.
const (
	// ResultOK is success. It is never returned as an error; see Result.Err.
	ResultOK Result = 1
	// ResultFail is a generic failure.
	ResultFail Result = 2
	// ResultNoConnection: there is no connection (or session) to use, or it
	// has failed; for example sending on a closed connection.
	ResultNoConnection Result = 3
	// ResultInvalidParam: an argument is wrong, e.g. an unknown connection
	// handle or a message larger than the maximum.
	ResultInvalidParam Result = 8
	// ResultBusy: the operation is already in progress (GNS: a FakeIP
	// request).
	ResultBusy Result = 10
	// ResultInvalidState: the object is not in a state that allows the
	// call, e.g. sending on a connection that is not yet connected or
	// accepting a connection twice.
	ResultInvalidState Result = 11
	// ResultAccessDenied: the operation is not allowed. (GNS's API does not
	// return it; netmsg may.)
	ResultAccessDenied Result = 15
	// ResultTimeout: the operation timed out. (GNS's API does not return
	// it; netmsg may.)
	ResultTimeout Result = 16
	// ResultNotLoggedOn: certificates or authentication are not yet
	// available (GNS: not logged in to Steam).
	ResultNotLoggedOn Result = 21
	// ResultPending: the information needed (e.g. authentication) is not
	// available yet; try again later.
	ResultPending Result = 22
	// ResultLimitExceeded: too much data is already queued to be sent (the
	// send buffer is full).
	ResultLimitExceeded Result = 25
	// ResultDuplicateRequest: the request has already been done, e.g. a
	// second accept of a symmetric connection.
	ResultDuplicateRequest Result = 29
	// ResultIPNotFound: the connection was not made with a FakeIP.
	ResultIPNotFound Result = 31
	// ResultConnectFailed: a connection could not be made (GNS returns it
	// from a few calls; a send on a failed Messages session returns
	// ResultNoConnection, as GNS does).
	ResultConnectFailed Result = 35
	// ResultHandshakeFailed: the crypto handshake could not be set up,
	// e.g. no certificate.
	ResultHandshakeFailed Result = 36
	// ResultIgnored: the call had no effect, e.g. an unreliable message
	// sent with SendNoDelay that could not go out at once was dropped, or
	// flushing a connection that is not connected.
	ResultIgnored Result = 41
	// ResultNoMatch: nothing matches the request (GNS: an unknown FakeIP).
	ResultNoMatch Result = 42
	// ResultDisabled: the feature is configured off or not built in.
	ResultDisabled Result = 80
)

var resultText = map[Result]string{
	ResultOK:               "ok",
	ResultFail:             "failure",
	ResultNoConnection:     "no connection",
	ResultInvalidParam:     "invalid parameter",
	ResultBusy:             "busy",
	ResultInvalidState:     "invalid state",
	ResultAccessDenied:     "access denied",
	ResultTimeout:          "timeout",
	ResultNotLoggedOn:      "not logged on",
	ResultPending:          "pending",
	ResultLimitExceeded:    "limit exceeded",
	ResultDuplicateRequest: "duplicate request",
	ResultIPNotFound:       "ip not found",
	ResultConnectFailed:    "connect failed",
	ResultHandshakeFailed:  "handshake failed",
	ResultIgnored:          "ignored",
	ResultNoMatch:          "no match",
	ResultDisabled:         "disabled",
}

// String returns a short lowercase description, e.g. "no connection", or
// "result N" for a code netmsg does not name.
func (r Result) String() string {
	if s, ok := resultText[r]; ok {
		return s
	}
	return "result " + strconv.Itoa(int(r))
}

// Error returns "netmsg: " followed by String.
func (r Result) Error() string { return "netmsg: " + r.String() }

// Err returns nil for ResultOK and r otherwise, for turning a GNS-style
// return code into a Go error.
func (r Result) Err() error {
	if r == ResultOK {
		return nil
	}
	return r
}
