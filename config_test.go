package netmsg

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	for name, in := range map[string]*Config{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			c, err := in.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			// The numbers are GNS's (csteamnetworkingsockets.cpp).
			want := ConnConfig{
				TimeoutInitial:     10 * time.Second,
				TimeoutConnected:   10 * time.Second,
				SendBufferSize:     512 * 1024,
				RecvBufferSize:     1024 * 1024,
				RecvBufferMessages: 1000,
				RecvMaxMessageSize: 512 * 1024,
				MaxMessageSize:     512 * 1024,
				SendRateMin:        256 * 1024,
				SendRateMax:        1 << 30,
				NagleTime:          5 * time.Millisecond,
				MTUPacketSize:      1300,
			}
			if c.ConnConfig != want {
				t.Errorf("ConnConfig =\n%+v\nwant\n%+v", c.ConnConfig, want)
			}
			if c.SessionIdleTimeout != 3*time.Minute {
				t.Errorf("SessionIdleTimeout = %v", c.SessionIdleTimeout)
			}
			if c.Now == nil || c.Rand != rand.Reader || c.Logger != slog.Default() {
				t.Errorf("Now, Rand, Logger not defaulted")
			}
			if d := time.Since(c.Now()); d < 0 || d > time.Minute {
				t.Errorf("Now is not the real clock")
			}
			if c.OnSessionRequest != nil || c.OnSessionFailed != nil {
				t.Errorf("callbacks set")
			}
			// Idempotent.
			c2, err := c.withDefaults()
			if err != nil || c2.ConnConfig != c.ConnConfig || c2.SessionIdleTimeout != c.SessionIdleTimeout {
				t.Errorf("second withDefaults changed the config: %v", err)
			}
		})
	}
}

func TestConfigKeepsValues(t *testing.T) {
	now := func() time.Time { return time.Unix(1, 0) }
	in := &Config{
		ConnConfig: ConnConfig{
			TimeoutInitial:     time.Second,
			TimeoutConnected:   2 * time.Second,
			SendBufferSize:     4096,
			RecvBufferSize:     8192,
			RecvBufferMessages: 2,
			RecvMaxMessageSize: 64,
			MaxMessageSize:     100,
			SendRateMin:        1024,
			SendRateMax:        2048,
			NagleTime:          20 * time.Millisecond,
			MTUPacketSize:      200,
			FakeSend:           FakeNetwork{LossPercent: 100, Lag: time.Second},
		},
		SessionIdleTimeout: time.Hour,
		Now:                now,
	}
	c, err := in.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnConfig != in.ConnConfig || c.SessionIdleTimeout != time.Hour || c.Now().Unix() != 1 {
		t.Errorf("withDefaults changed set values:\n%+v\n%+v", c.ConnConfig, in.ConnConfig)
	}
	if in.Logger != nil || in.Rand != nil {
		t.Errorf("withDefaults modified its receiver")
	}
	// Promoted fields.
	if c.NagleTime != 20*time.Millisecond {
		t.Errorf("cfg.NagleTime = %v", c.NagleTime)
	}
}

func TestConfigICEEnable(t *testing.T) {
	for _, c := range []struct {
		in        ICEEnable
		relayOnly bool
		want      ICEEnable
		ok        bool
	}{
		{0, false, ICEEnableAll, true},
		{ICEEnableRelay, false, ICEEnableRelay, true},
		{ICEEnablePrivate | ICEEnablePublic, false, ICEEnablePrivate | ICEEnablePublic, true},
		{ICEEnableAll, true, ICEEnableRelay, true}, // P2PRelayOnly wins
		{-1, false, 0, false},                      // GNS's "default" is our zero
	} {
		cfg, err := (&Config{P2PICEEnable: c.in, P2PRelayOnly: c.relayOnly}).withDefaults()
		if (err == nil) != c.ok {
			t.Errorf("%d relay only %v: err %v", c.in, c.relayOnly, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "P2PICEEnable") {
				t.Errorf("%d: error %v does not name the field", c.in, err)
			}
			continue
		}
		if cfg.P2PICEEnable != c.want || cfg.P2PICEEnable.relayOnly() != (c.want == ICEEnableRelay) {
			t.Errorf("%d relay only %v: got %d, want %d", c.in, c.relayOnly, cfg.P2PICEEnable, c.want)
		}
	}
}

func TestConfigSendRate(t *testing.T) {
	for _, c := range []struct {
		min, max         int
		wantMin, wantMax int
	}{
		{0, 0, 256 * 1024, 1 << 30},
		{0, 100 * 1024, 100 * 1024, 100 * 1024},      // max below the default min: min follows
		{0, 128 << 20, 256 * 1024, 128 << 20},        // no crossing
		{10 * 1024, 0, 10 * 1024, 1 << 30},           // no crossing
		{0, 1024 * 1024, 256 * 1024, 1024 * 1024},    // no crossing
		{2048, 1024 * 1024, 2048, 1024 * 1024},       // both set
		{64 * 1024, 64 * 1024, 64 * 1024, 64 * 1024}, // equal
	} {
		cfg, err := (&Config{ConnConfig: ConnConfig{SendRateMin: c.min, SendRateMax: c.max}}).withDefaults()
		if err != nil {
			t.Errorf("min %d max %d: %v", c.min, c.max, err)
			continue
		}
		if cfg.SendRateMin != c.wantMin || cfg.SendRateMax != c.wantMax {
			t.Errorf("min %d max %d: got %d..%d, want %d..%d", c.min, c.max, cfg.SendRateMin, cfg.SendRateMax, c.wantMin, c.wantMax)
		}
	}
}

func TestConfigNagle(t *testing.T) {
	c, err := (&Config{ConnConfig: ConnConfig{DisableNagle: true}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.NagleTime != 0 || !c.DisableNagle {
		t.Errorf("DisableNagle: NagleTime %v DisableNagle %v", c.NagleTime, c.DisableNagle)
	}
	// A connection inherits the host's DisableNagle, and may override it with
	// its own NagleTime.
	conn, err := (&ConnConfig{}).withDefaults(&c.ConnConfig)
	if err != nil || conn.NagleTime != 0 || !conn.DisableNagle {
		t.Errorf("inherited DisableNagle: %+v %v", conn, err)
	}
	conn, err = (&ConnConfig{NagleTime: time.Millisecond}).withDefaults(&c.ConnConfig)
	if err != nil || conn.NagleTime != time.Millisecond || conn.DisableNagle {
		t.Errorf("overridden DisableNagle: %+v %v", conn, err)
	}
}

func TestConfigFakeNetwork(t *testing.T) {
	c, err := (&Config{ConnConfig: ConnConfig{
		FakeSend: FakeNetwork{ReorderPercent: 10, DuplicatePercent: 5, RateLimit: 1000},
		FakeRecv: FakeNetwork{LossPercent: 1},
	}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := FakeNetwork{ReorderPercent: 10, ReorderLag: 15 * time.Millisecond, DuplicatePercent: 5,
		DuplicateLag: 10 * time.Millisecond, RateLimit: 1000, RateBurst: 16 * 1024}
	if c.FakeSend != want {
		t.Errorf("FakeSend = %+v, want %+v", c.FakeSend, want)
	}
	if c.FakeRecv != (FakeNetwork{LossPercent: 1}) {
		t.Errorf("FakeRecv = %+v", c.FakeRecv)
	}
	if !(FakeNetwork{}).IsZero() || c.FakeRecv.IsZero() {
		t.Errorf("IsZero")
	}

	// Per connection: zero inherits the host's conditions (they are the
	// socket's); non-zero is refused.
	conn, err := (&ConnConfig{SendRateMin: 1 << 20}).withDefaults(&c.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	if conn.FakeSend != c.FakeSend || conn.FakeRecv != c.FakeRecv {
		t.Errorf("per-connection fake network: %+v / %+v", conn.FakeSend, conn.FakeRecv)
	}
	if _, err := (&ConnConfig{FakeRecv: FakeNetwork{Lag: time.Millisecond}}).withDefaults(&c.ConnConfig); !errors.Is(err, ErrBadConfig) {
		t.Errorf("per-connection FakeRecv: %v, want ErrBadConfig", err)
	}
}

func TestConnConfigInherits(t *testing.T) {
	host, err := (&Config{ConnConfig: ConnConfig{TimeoutConnected: time.Minute, MTUPacketSize: 1200}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&ConnConfig{MTUPacketSize: 1000}).withDefaults(&host.ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := host.ConnConfig
	want.MTUPacketSize = 1000
	if conn != want {
		t.Errorf("conn = %+v, want %+v", conn, want)
	}
	// nil ConnConfig: all inherited.
	var nilConn *ConnConfig
	conn, err = nilConn.withDefaults(&host.ConnConfig)
	if err != nil || conn != host.ConnConfig {
		t.Errorf("nil conn config = %+v, %v", conn, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string // a field name that must appear in the error
	}{
		{"negative TimeoutInitial", Config{ConnConfig: ConnConfig{TimeoutInitial: -1}}, "TimeoutInitial"},
		{"negative TimeoutConnected", Config{ConnConfig: ConnConfig{TimeoutConnected: -time.Second}}, "TimeoutConnected"},
		{"huge TimeoutConnected", Config{ConnConfig: ConnConfig{TimeoutConnected: math.MaxInt64}}, "TimeoutConnected"},
		{"small SendBufferSize", Config{ConnConfig: ConnConfig{SendBufferSize: 4095}}, "SendBufferSize"},
		{"negative SendBufferSize", Config{ConnConfig: ConnConfig{SendBufferSize: -1}}, "SendBufferSize"},
		{"huge SendBufferSize", Config{ConnConfig: ConnConfig{SendBufferSize: 0x10000001}}, "SendBufferSize"},
		{"small RecvBufferSize", Config{ConnConfig: ConnConfig{RecvBufferSize: 1}}, "RecvBufferSize"},
		{"small RecvBufferMessages", Config{ConnConfig: ConnConfig{RecvBufferMessages: 1}}, "RecvBufferMessages"},
		{"small RecvMaxMessageSize", Config{ConnConfig: ConnConfig{RecvMaxMessageSize: 63}}, "RecvMaxMessageSize"},
		{"negative MaxMessageSize", Config{ConnConfig: ConnConfig{MaxMessageSize: -5}}, "MaxMessageSize"},
		{"MaxMessageSize above 512 KiB", Config{ConnConfig: ConnConfig{MaxMessageSize: 512*1024 + 1}}, "MaxMessageSize"},
		{"small SendRateMin", Config{ConnConfig: ConnConfig{SendRateMin: 1023}}, "SendRateMin"},
		{"small SendRateMax", Config{ConnConfig: ConnConfig{SendRateMax: 1}}, "SendRateMax"},
		{"min above max", Config{ConnConfig: ConnConfig{SendRateMin: 2048, SendRateMax: 1024}}, "SendRateMin"},
		{"negative NagleTime", Config{ConnConfig: ConnConfig{NagleTime: -1}}, "NagleTime"},
		{"huge NagleTime", Config{ConnConfig: ConnConfig{NagleTime: 21 * time.Millisecond}}, "NagleTime"},
		{"NagleTime with DisableNagle", Config{ConnConfig: ConnConfig{NagleTime: time.Millisecond, DisableNagle: true}}, "DisableNagle"},
		{"small MTU", Config{ConnConfig: ConnConfig{MTUPacketSize: 199}}, "MTUPacketSize"},
		{"large MTU", Config{ConnConfig: ConnConfig{MTUPacketSize: 1301}}, "MTUPacketSize"},
		{"loss above 100", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{LossPercent: 100.5}}}, "FakeSend.LossPercent"},
		{"negative loss", Config{ConnConfig: ConnConfig{FakeRecv: FakeNetwork{LossPercent: -1}}}, "FakeRecv.LossPercent"},
		{"NaN loss", Config{ConnConfig: ConnConfig{FakeRecv: FakeNetwork{LossPercent: math.NaN()}}}, "FakeRecv.LossPercent"},
		{"reorder above 100", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{ReorderPercent: 101}}}, "FakeSend.ReorderPercent"},
		{"duplicate below 0", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{DuplicatePercent: -0.1}}}, "FakeSend.DuplicatePercent"},
		{"negative lag", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{Lag: -time.Millisecond}}}, "FakeSend.Lag"},
		{"negative jitter", Config{ConnConfig: ConnConfig{FakeRecv: FakeNetwork{Jitter: -1}}}, "FakeRecv.Jitter"},
		{"negative reorder lag", Config{ConnConfig: ConnConfig{FakeRecv: FakeNetwork{ReorderLag: -1}}}, "FakeRecv.ReorderLag"},
		{"negative dup lag", Config{ConnConfig: ConnConfig{FakeRecv: FakeNetwork{DuplicateLag: -1}}}, "FakeRecv.DuplicateLag"},
		{"negative rate", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{RateLimit: -1}}}, "FakeSend.RateLimit"},
		{"negative burst", Config{ConnConfig: ConnConfig{FakeSend: FakeNetwork{RateBurst: -1}}}, "FakeSend.RateBurst"},
		{"negative idle timeout", Config{SessionIdleTimeout: -time.Second}, "SessionIdleTimeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.cfg.withDefaults()
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if got != nil {
				t.Errorf("config returned with the error")
			}
			if !errors.Is(err, ErrBadConfig) {
				t.Errorf("%v does not wrap ErrBadConfig", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "netmsg: ") {
				t.Errorf("error %q does not name %s", err, c.want)
			}
		})
	}

	// The same checks apply to a per-connection ConnConfig.
	host, _ := (*Config)(nil).withDefaults()
	if _, err := (&ConnConfig{MTUPacketSize: 5}).withDefaults(&host.ConnConfig); !errors.Is(err, ErrBadConfig) {
		t.Errorf("per-connection MTU 5: %v", err)
	}
}

// relayOnly reports whether e leaves only paths through a relay.
func (e ICEEnable) relayOnly() bool { return e&(ICEEnablePrivate|ICEEnablePublic) == 0 }
