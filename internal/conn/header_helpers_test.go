package conn

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// timeSincePrevShift is k_usecTimeSinceLastPacketSerializedPrecisionShift.
const timeSincePrevShift = 4

// timeSincePrev returns the decoded time-since-previous field.
func (h *dataHeader) timeSincePrev() time.Duration {
	return time.Duration(h.TimeSincePrev) << timeSincePrevShift * time.Microsecond
}

// dataHeaderLen is the length appendDataHeader produces for h.
func dataHeaderLen(h *dataHeader) int {
	n := dataHeaderSize
	if h.Stats != nil {
		n += protowire.SizeVarint(uint64(len(h.Stats))) + len(h.Stats)
	}
	if h.HasTimeSincePrev {
		n += 2
	}
	return n
}
