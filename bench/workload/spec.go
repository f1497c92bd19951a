// Package workload runs the workloads of ../shared/BENCH.md over any
// peer.Conn: the sender and pinger on the client side, the receiver and echo
// on the server side, and the small control protocol between them.
package workload

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/netmsg-go/netmsg/bench/peer"
)

// Kind is what a workload measures.
type Kind int

const (
	// Throughput: the client sends for Duration, the server receives and
	// measures (W1, W2, W3, W5).
	Throughput Kind = iota
	// PingPong: the client sends one message, the server echoes it back
	// (W4).
	PingPong
)

// Spec is one workload.
type Spec struct {
	ID   string
	What string
	Kind Kind
	// Size is the application payload of every data message, bytes.
	Size int
	// Unreliable sends the data messages unreliably (W5); the control
	// messages (hello, end marker, result) are always sent reliably.
	Unreliable bool
	// Duration is how long the sender sends (Throughput).
	Duration time.Duration
	// Warmup and Rounds are the ping-pong round trips before and during
	// the measurement (PingPong).
	Warmup, Rounds int
	// Loss is the fake random loss each way, 0 for none (W6, passed on
	// as peer.Options.Loss).
	Loss float64
	// NeedsReliable marks a workload that cannot run over a peer whose
	// reliable channel is not reliable (ping-pong under loss over raw UDP
	// would wait forever for a lost datagram).
	NeedsReliable bool
	// MinTimeout raises the time limit of one run for a workload that
	// takes longer than the default (W6b: every lost datagram costs a
	// retransmission timeout, and about 19% of its 11,000 rounds lose one).
	MinTimeout time.Duration
}

// WindowDelay is how long after the first message the receiver's
// measurement window opens (BENCH.md: 300 ms).
const WindowDelay = 300 * time.Millisecond

// W6Loss is W6's random loss each way (BENCH.md: 10%).
const W6Loss = 0.10

// Specs are the workloads of BENCH.md that this harness runs, by upper-case
// id. W6 is split in two: W6a is W2 and W6b is W4, both at W6Loss. W7
// (10,000 sessions) is not here yet.
var Specs = map[string]Spec{
	"W1":  {ID: "W1", What: "reliable 64 B, 2 s", Kind: Throughput, Size: 64, Duration: 2 * time.Second},
	"W2":  {ID: "W2", What: "reliable 1200 B, 2 s", Kind: Throughput, Size: 1200, Duration: 2 * time.Second},
	"W3":  {ID: "W3", What: "reliable 256 KiB, 2 s", Kind: Throughput, Size: 256 << 10, Duration: 2 * time.Second},
	"W4":  {ID: "W4", What: "ping-pong 64 B reliable, 1,000 warm-up + 10,000 rounds", Kind: PingPong, Size: 64, Warmup: 1000, Rounds: 10000},
	"W5":  {ID: "W5", What: "unreliable 64 B unpaced, 2 s", Kind: Throughput, Size: 64, Unreliable: true, Duration: 2 * time.Second},
	"W6A": {ID: "W6a", What: "W2 at 10% random loss each way", Kind: Throughput, Size: 1200, Duration: 2 * time.Second, Loss: W6Loss},
	"W6B": {ID: "W6b", What: "W4 at 10% random loss each way", Kind: PingPong, Size: 64, Warmup: 1000, Rounds: 10000, Loss: W6Loss, NeedsReliable: true, MinTimeout: 5 * time.Minute},
}

// Expand turns a comma-separated list of workload ids into canonical ids,
// "W6" standing for W6a and W6b.
func Expand(list string) ([]string, error) {
	var ids []string
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		if strings.EqualFold(id, "W6") {
			ids = append(ids, "W6a", "W6b")
			continue
		}
		s, err := Lookup(id)
		if err != nil {
			return nil, err
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// Lookup returns the workload with that id (case-insensitive).
func Lookup(id string) (Spec, error) {
	s, ok := Specs[strings.ToUpper(id)]
	if !ok {
		ids := make([]string, 0, len(Specs))
		for k := range Specs {
			ids = append(ids, k)
		}
		sort.Strings(ids)
		return Spec{}, fmt.Errorf("workload: unknown workload %q (have %v)", id, ids)
	}
	return s, nil
}

// Options are the connection options the workload needs.
func (s Spec) Options() peer.Options {
	return peer.Options{Unreliable: s.Unreliable, NoDelay: s.Kind == PingPong, Loss: s.Loss}
}

// Unsupported says why p cannot run s, or "" if it can.
func Unsupported(c peer.Caps, s Spec) string {
	if c.Unavailable != "" {
		return c.Unavailable
	}
	if s.Unreliable && !c.Unreliable {
		return "no unreliable mode"
	}
	if s.NeedsReliable && !c.Reliable {
		return "n/a (not reliable)"
	}
	if !s.Unreliable && c.MaxReliable > 0 && s.Size > c.MaxReliable {
		return fmt.Sprintf("n/a (%d B > max %d B)", s.Size, c.MaxReliable)
	}
	return ""
}

// Result is what one client run reports: one JSON line.
type Result struct {
	Peer     string `json:"peer"`
	Workload string `json:"workload"`
	Size     int    `json:"size"`
	// Delivery is "reliable" (every message checked: order, no gap, no
	// duplicate, size, count) or "unreliable" (losses counted).
	Delivery  string  `json:"delivery"`
	Encrypted bool    `json:"encrypted"`
	Loss      float64 `json:"fake_loss,omitempty"`
	Note      string  `json:"note,omitempty"`

	// Throughput: data messages the sender sent and the receiver got
	// before the end marker, and the receiver's window.
	Sent           uint64  `json:"sent,omitempty"`
	Received       uint64  `json:"received,omitempty"`
	WindowMessages uint64  `json:"window_messages,omitempty"`
	WindowSeconds  float64 `json:"window_seconds,omitempty"`
	MsgsPerSec     float64 `json:"msgs_per_sec,omitempty"`
	MBPerSec       float64 `json:"mb_per_sec,omitempty"`
	LostPct        float64 `json:"lost_pct"`
	OutOfOrder     uint64  `json:"out_of_order,omitempty"`

	// PingPong: round-trip times of the measured rounds, µs.
	Rounds    int     `json:"rounds,omitempty"`
	RTTP50us  float64 `json:"rtt_p50_us,omitempty"`
	RTTP99us  float64 `json:"rtt_p99_us,omitempty"`
	RTTMinUs  float64 `json:"rtt_min_us,omitempty"`
	RTTMaxUs  float64 `json:"rtt_max_us,omitempty"`
	RTTMeanUs float64 `json:"rtt_mean_us,omitempty"`

	// Unsupported is set instead of figures when the peer cannot run the
	// workload ("no unreliable mode").
	Unsupported string `json:"unsupported,omitempty"`
	// Error is set when the run failed; its figures are not to be used.
	Error string `json:"error,omitempty"`
}
