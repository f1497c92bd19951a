package snp

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/netmsg-go/netmsg/internal/vectors"
	"github.com/netmsg-go/netmsg/internal/wire"
)

type snpVectors struct {
	Vectors []struct {
		ID           string `json:"id"`
		PktNum       int64  `json:"pkt_num"`
		PlaintextHex string `json:"plaintext_hex"`
	} `json:"vectors"`
	Rejected []struct {
		ID           string `json:"id"`
		PktNum       int64  `json:"pkt_num"`
		PlaintextHex string `json:"plaintext_hex"`
	} `json:"rejected"`
}

func loadVectors(tb testing.TB) *snpVectors {
	var v snpVectors
	vectors.Load(tb, "snp_frames.json", &v)
	return &v
}

func encode(pkt int64, f func(e *wire.Encoder)) []byte {
	var e wire.Encoder
	e.PeerVersion = 13
	e.Reset(make([]byte, 0, 4096), pkt)
	f(&e)
	return e.Bytes()
}

func TestHostile(t *testing.T) {
	big := make([]byte, 1000)
	cases := []struct {
		name    string
		payload []byte
		want    error
	}{
		// An ack from the future is dropped with its packet, as GNS
		// does: a 16-bit latest field can be a stale ack from far behind.
		{"ack for a packet never sent", encode(2, func(e *wire.Encoder) { e.AppendAck(1, 0, nil) }), ErrDiscarded},
		{"ack below packet 0", encode(2, func(e *wire.Encoder) { e.AppendAck(60000, 0, nil) }), ErrProtocol},
		{"ack underflow", encode(2, func(e *wire.Encoder) {
			e.AppendAck(0, 0, []wire.AckBlock{{NumAck: 1, NumNack: 5}})
		}), ErrProtocol},
		{"stop waiting beyond the packet", []byte{0x83, 2, 0, 0, 0, 0, 0, 0, 0}, ErrProtocol},
		{"reliable data far past the window", encode(2, func(e *wire.Encoder) { e.AppendReliable(1<<30, big, false) }), ErrDiscarded},
		{"huge message header", encode(2, func(e *wire.Encoder) {
			e.AppendReliable(1, wire.AppendMsgHeader(nil, 1, 100<<20), false)
		}), ErrProtocol},
		{"unreliable message number 0", []byte{0x00 | 0x20, 0, 0, 1, 'x'}, ErrProtocol},
		{"lane out of range", []byte{0x8f, 0x80, 0x02}, ErrProtocol},
		{"reserved lead", []byte{0xc0}, ErrProtocol},
		{"truncated", encode(2, func(e *wire.Encoder) { e.AppendReliable(1, big, false) })[:20], ErrProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustNew(t, Config{})
			err := c.ReceivePacket(t0, 2, tc.payload)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var pe *ProtocolError
			if tc.want == ErrProtocol && (!errors.As(err, &pe) || pe.EndReason() != 5002) {
				t.Fatalf("no end reason: %v", err)
			}
			s := c.Stats(t0)
			if s.PacketsBad+s.PacketsDiscarded != 1 {
				t.Fatalf("not counted: %+v", s)
			}
			checkBounds(t, c, t0)
		})
	}
}

func TestRejectedVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.Rejected) == 0 {
		t.Fatal("no rejected vectors")
	}
	for _, r := range v.Rejected {
		b, _ := hex.DecodeString(r.PlaintextHex)
		c := mustNew(t, Config{FirstPktNum: 2, PeerFirstPktNum: 2})
		if err := c.ReceivePacket(t0, r.PktNum, b); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", r.ID, err)
		}
	}
}

// TestRandomPayloads: 10,000 random and mutated payloads never panic, are
// counted when rejected, and leave the records bounded.
func TestRandomPayloads(t *testing.T) {
	v := loadVectors(t)
	var seeds [][]byte
	for _, x := range v.Vectors {
		b, _ := hex.DecodeString(x.PlaintextHex)
		seeds = append(seeds, b)
	}
	r := rand.New(rand.NewPCG(42, 43))
	c := mustNew(t, Config{})
	var bad int64
	pkt := int64(1)
	for i := range 10000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, r.IntN(200))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		} else {
			b = append([]byte(nil), seeds[r.IntN(len(seeds))]...)
			for range 1 + r.IntN(4) {
				if len(b) > 0 {
					b[r.IntN(len(b))] ^= byte(1 << r.IntN(8))
				}
			}
		}
		pkt += 1 + int64(r.IntN(3))
		err := c.ReceivePacket(t0, pkt, b)
		if errors.Is(err, ErrProtocol) {
			bad++
			c = mustNew(t, Config{}) // the connection would be closed
			pkt = 1
			continue
		}
		checkBounds(t, c, t0)
		c.Poll(t0, make([]byte, 0, 2048))
	}
	if bad == 0 {
		t.Fatal("nothing rejected")
	}
	t.Logf("%d of 10000 rejected", bad)
}

func FuzzReceivePacket(f *testing.F) {
	v := loadVectors(f)
	for _, x := range v.Vectors {
		b, _ := hex.DecodeString(x.PlaintextHex)
		f.Add(x.PktNum, b)
	}
	for _, x := range v.Rejected {
		b, _ := hex.DecodeString(x.PlaintextHex)
		f.Add(x.PktNum, b)
	}
	buf := make([]byte, 0, 2048)
	f.Fuzz(func(t *testing.T, pktNum int64, b []byte) {
		if pktNum < 1 || pktNum > 1<<40 {
			pktNum = 2
		}
		c := mustNew(t, Config{Lanes: make([]Lane, 3)})
		c.SendMessage(t0, 0, []byte("hello"), Reliable|NoNagle)
		c.Poll(t0, buf)
		err := c.ReceivePacket(t0, pktNum, b)
		if err != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrDiscarded) {
			t.Fatalf("unexpected error type: %v", err)
		}
		// Whatever happened, the engine keeps working and stays bounded.
		c.Poll(t0, buf)
		c.NextWake()
		var ms [8]Message
		c.Receive(ms[:])
		checkBounds(t, c, t0)
		c.ReceivePacket(t0, pktNum+1, b)
	})
}
