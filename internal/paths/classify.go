package paths

import "encoding/binary"

// Kind is what a datagram on the shared socket is, by its first bytes.
type Kind uint8

// Kinds of datagrams (RFC 7983's demultiplexing, with GNS's lead bytes in
// place of DTLS and RTP).
const (
	// KindUnknown is anything else (empty, or a lead byte nobody uses).
	KindUnknown Kind = iota
	// KindSTUN: the first two bits zero and STUN's magic cookie (RFC 8489
	// 6): a binding request or answer of ICE, a STUN server's answer, or a
	// TURN server's.
	KindSTUN
	// KindChannelData: a TURN ChannelData message (RFC 8656 12.4), its
	// channel number in 0x4000-0x4fff.
	KindChannelData
	// KindGNSControl: a GNS control packet (lead byte 32-37: challenge,
	// connect, closed, no connection...).
	KindGNSControl
	// KindGNSData: a GNS data packet (lead byte with the top bit set).
	KindGNSData
)

func (k Kind) String() string {
	switch k {
	case KindSTUN:
		return "stun"
	case KindChannelData:
		return "channeldata"
	case KindGNSControl:
		return "gns-control"
	case KindGNSData:
		return "gns-data"
	}
	return "unknown"
}

// Protocol constants for classification.
const (
	// stunMagicCookie is STUN's fixed value at bytes 4-7 (RFC 8489 5).
	stunMagicCookie = 0x2112A442
	// stunHeaderSize is the STUN header (RFC 8489 5).
	stunHeaderSize = 20
	// gnsControlMin and gnsControlMax bound GNS's control lead bytes
	// (ESteamNetworkingUDPMsgID: 32 challenge request to 37 no connection); GNS's data
	// packets set the top bit (0x80).
	gnsControlMin = 32
	gnsControlMax = 37
	gnsDataFlag   = 0x80
)

// Classify returns what b is by its first bytes. It does not validate the
// rest: the layer that takes the datagram does.
func Classify(b []byte) Kind {
	if len(b) == 0 {
		return KindUnknown
	}
	lead := b[0]
	switch {
	case lead&gnsDataFlag != 0:
		return KindGNSData
	case lead < 4:
		if len(b) >= stunHeaderSize && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie {
			return KindSTUN
		}
	case lead&0xf0 == 0x40:
		if len(b) >= channelDataHeader {
			return KindChannelData
		}
	case lead >= gnsControlMin && lead <= gnsControlMax:
		return KindGNSControl
	}
	return KindUnknown
}
