package netmsg

import (
	"strconv"
	"strings"
)

// SendFlags is a bit set of options for sending a message: GNS's
// k_nSteamNetworkingSend_* values, which the seed API's sendMessageToUser
// takes as its flags argument. The zero value is SendUnreliable.
type SendFlags int32

// Send flags (GNS k_nSteamNetworkingSend_*, steamnetworkingtypes.h). The
// combined values are the ones GNS names; they are plain ORs of the bits.
const (
	// SendUnreliable sends the message unreliably: it may be lost, arrive
	// out of order relative to other messages, or arrive more than once.
	// Messages larger than the MTU are fragmented, and lost if any fragment
	// is. This is the zero value.
	SendUnreliable SendFlags = 0

	// SendNoNagle puts the message on the wire now, with whatever is already
	// queued, instead of waiting up to the Nagle time for more data to
	// share the packet.
	SendNoNagle SendFlags = 1

	// SendUnreliableNoNagle is SendUnreliable|SendNoNagle.
	SendUnreliableNoNagle SendFlags = SendUnreliable | SendNoNagle

	// SendNoDelay drops an unreliable message rather than queue it when it
	// cannot be sent right away (no connection yet, or the send rate is
	// exhausted); the send then reports ResultIgnored. Only meaningful for
	// unreliable messages.
	SendNoDelay SendFlags = 4

	// SendUnreliableNoDelay is SendUnreliable|SendNoDelay|SendNoNagle: GNS
	// defines it with the no-Nagle bit set, so its value is 5.
	SendUnreliableNoDelay SendFlags = SendUnreliable | SendNoDelay | SendNoNagle

	// SendReliable sends the message reliably: it arrives exactly once, in
	// order with the other reliable messages on the same channel (if the
	// connection survives).
	SendReliable SendFlags = 8

	// SendReliableNoNagle is SendReliable|SendNoNagle.
	SendReliableNoNagle SendFlags = SendReliable | SendNoNagle

	// SendUseCurrentThread asks GNS to do the send work on the calling
	// thread. netmsg accepts it for compatibility and ignores it.
	SendUseCurrentThread SendFlags = 16

	// SendAutoRestartBrokenSession lets a send to a peer whose session has
	// failed start a new session instead of returning ResultNoConnection.
	// Only the Messages API looks at it.
	SendAutoRestartBrokenSession SendFlags = 32
)

// sendFlagNames are the bits in the order String writes them.
var sendFlagNames = []struct {
	bit  SendFlags
	name string
}{
	{SendNoNagle, "NoNagle"},
	{SendNoDelay, "NoDelay"},
	{SendUseCurrentThread, "UseCurrentThread"},
	{SendAutoRestartBrokenSession, "AutoRestartBrokenSession"},
}

// IsReliable reports whether f has the SendReliable bit. On a received
// Message this is the only meaningful bit.
func (f SendFlags) IsReliable() bool { return f&SendReliable != 0 }

// String writes f as "Reliable" or "Unreliable" followed by the other bits
// that are set, joined with '|': for example "Unreliable|NoNagle|NoDelay"
// for SendUnreliableNoDelay. Undefined bits are written in hex.
func (f SendFlags) String() string {
	var b strings.Builder
	if f.IsReliable() {
		b.WriteString("Reliable")
	} else {
		b.WriteString("Unreliable")
	}
	rest := f &^ SendReliable
	for _, n := range sendFlagNames {
		if rest&n.bit != 0 {
			b.WriteString("|")
			b.WriteString(n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		b.WriteString("|0x")
		b.WriteString(strconv.FormatUint(uint64(uint32(rest)), 16))
	}
	return b.String()
}
