package conn

import (
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// Settings are one connection's own tunables, replacing the host's
// (Config.SNP and the timeouts) for it alone.
type Settings struct {
	SNP              snp.Config
	TimeoutInitial   time.Duration // 0: the host's
	TimeoutConnected time.Duration // 0: the host's
}

// Configure gives the connection its own settings. Before the connection
// is connected they are kept for its engine; after, the engine takes them
// at once (snp.Conn.Reconfigure: lanes may be added, not removed). The
// packet size (SNP.MaxPayload) is fixed once connected.
func (c *Conn) Configure(s Settings) error {
	if c.eng != nil {
		if err := c.eng.Reconfigure(s.SNP); err != nil {
			return err
		}
	}
	own := s
	own.SNP.Lanes = append([]snp.Lane(nil), s.SNP.Lanes...)
	c.own = &own
	return nil
}

// snpConfig is the engine configuration the connection starts with.
func (c *Conn) snpConfig() snp.Config {
	if c.own != nil {
		return c.own.SNP
	}
	return c.loc.cfg.SNP
}

func (c *Conn) timeoutInitial() time.Duration {
	if c.own != nil && c.own.TimeoutInitial > 0 {
		return c.own.TimeoutInitial
	}
	return c.loc.cfg.TimeoutInitial
}

func (c *Conn) timeoutConnected() time.Duration {
	if c.own != nil && c.own.TimeoutConnected > 0 {
		return c.own.TimeoutConnected
	}
	return c.loc.cfg.TimeoutConnected
}

// lanesConfigured is the number of send lanes configured before the
// connection is connected.
func (c *Conn) lanesConfigured() int {
	if c.own != nil {
		return max(1, len(c.own.SNP.Lanes))
	}
	return c.loc.lanes
}

// maxMsgSize is the largest message the connection sends.
func (c *Conn) maxMsgSize() int {
	if c.own != nil && c.own.SNP.MaxMessageSize > 0 {
		return c.own.SNP.MaxMessageSize
	}
	return c.loc.maxMsgSize
}

// LaneStats appends the state of each send lane to dst (none before the
// connection is connected).
func (c *Conn) LaneStats(dst []snp.LaneStats) []snp.LaneStats {
	if c.eng == nil {
		return dst
	}
	return c.eng.LaneStats(dst)
}

// EngineConfig is the engine configuration in effect: the engine's once
// connected, else the one it will start with.
func (c *Conn) EngineConfig() snp.Config {
	if c.eng != nil {
		return c.eng.Config()
	}
	cfg := c.snpConfig()
	cfg.Lanes = append([]snp.Lane(nil), cfg.Lanes...)
	return cfg
}

// Timeouts returns the connection's initial and connected timeouts.
func (c *Conn) Timeouts() (initial, connected time.Duration) {
	return c.timeoutInitial(), c.timeoutConnected()
}
