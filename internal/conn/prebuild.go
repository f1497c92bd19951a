package conn

import (
	"errors"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// Prebuild makes, ahead of time, the datagrams that would carry count
// messages (msg(i) is the i-th; it may reuse its buffer) on the connected
// connection, for load generators that must offer more load than a live
// sender could on the same cores. It runs the connection's engine as if
// the peer acknowledged every packet as soon as it was made, on a clock
// that starts at now and advances only as the engine's send rate needs,
// and returns the sealed datagrams in order; written to the peer later, in
// that order, they are what the peer would have received. The engine takes
// the messages as delivered, so the connection must send nothing else
// afterwards, and the peer's acknowledgements of them are to be ignored.
func (c *Conn) Prebuild(now time.Time, count int, msg func(i int) []byte, flags snp.SendFlags) ([][]byte, error) {
	if c.state != StateConnected || c.eng == nil {
		return nil, ErrNotConnected
	}
	var (
		out  [][]byte
		buf  = make([]byte, 2048)
		sent = 0
		idle = 0
	)
	busy := func() bool {
		st := c.eng.Stats(now)
		return st.SentUnackedReliable+st.PendingReliable > 0
	}
	for sent < count || busy() {
		for sent < count {
			if _, err := c.eng.SendMessage(now, 0, msg(sent), flags); err != nil {
				if errors.Is(err, snp.ErrSendBufferFull) {
					break
				}
				return nil, err
			}
			sent++
		}
		progress := false
		for {
			// pollData's packet, without the ack requests: every packet
			// is taken as acknowledged as soon as it is made.
			h := dataHeader{ToConnID: c.remoteID}
			hd := appendDataHeader(buf[:0], &h)
			p, pktNum, ok := c.eng.Poll(now, hd[len(hd):len(hd)])
			if !ok {
				break
			}
			progress = true
			h.WirePktNum = uint16(pktNum)
			d := c.sendC.Seal(appendDataHeader(hd[:0], &h), p, uint64(pktNum))
			out = append(out, append([]byte(nil), d...))
			c.st.DatagramsSent++
			c.eng.AckSent(now)
		}
		if progress {
			idle = 0
			now = now.Add(time.Microsecond)
			continue
		}
		if idle++; idle > 100_000 {
			return nil, errors.New("conn: prebuild: the engine stopped sending")
		}
		if w := c.eng.NextWake(); w.After(now) {
			now = w
		} else {
			now = now.Add(100 * time.Microsecond)
		}
	}
	return out, nil
}
