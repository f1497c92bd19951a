package signaling

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/netmsg-go/netmsg/relay"
)

// TURN credentials over signaling. An authenticated client that
// understands them says so after OK with one line, "WANT ice" (a line an
// older server counts as malformed and drops); a server with
// ServerConfig.TURN answers with one line
//
//	ICE ttl=<seconds> user=<username> pass=<password> turn=<host:port>,... stun=<host:port>,...
//
// and again each time the client asks (the client asks when half the
// time to live has passed). Clients that never asked are never sent one.
// The credentials are those of the TURN REST API (coturn's
// use-auth-secret; relay.RESTCredential): username "<unix expiry>:<the
// client's proven identity>", password the base64 HMAC-SHA1 of it keyed
// with the shared secret, so any TURN server holding the secret (netmsg
// relay --auth-secret, coturn --static-auth-secret) accepts them until
// they expire.
const (
	iceWant = "WANT ice"
	iceWord = "ICE"
)

// TURNConfig makes a Server hand its authenticated clients short-lived
// TURN credentials and the servers they are good for.
type TURNConfig struct {
	// Secret is the TURN REST API shared secret of the TURN servers.
	Secret string
	// Servers are the TURN servers ("host:port"), in order of preference.
	Servers []string
	// STUN are the STUN servers ("host:port"; default: Servers, as TURN
	// servers also answer STUN).
	STUN []string
	// TTL is how long credentials stay valid (default 1 h).
	TTL time.Duration
}

// TURNCredential is a TURN server and a credential for it.
type TURNCredential struct {
	Server             string // "host:port"
	Username, Password string
	Expires            time.Time
}

// ICEProvider is what the Conn of Dial and DialURL (authenticated) also
// implement: the STUN and TURN servers the signaling server handed out.
type ICEProvider interface {
	// ICEServers returns the servers and credentials last received, and
	// false if none were (the server hands none out, or has not yet).
	ICEServers() (stun []string, turn []TURNCredential, ok bool)
	// WaitICEServers waits for the first ICEServers, until ctx ends.
	WaitICEServers(ctx context.Context) (stun []string, turn []TURNCredential, err error)
}

// iceLine makes the ICE line for identity at now (cfg filled).
func (cfg *TURNConfig) iceLine(identity string, now time.Time) []byte {
	user, pass := relay.RESTCredential(cfg.Secret, identity, now.Add(cfg.TTL))
	return fmt.Appendf(nil, "%s ttl=%d user=%s pass=%s turn=%s stun=%s\n", iceWord, int(cfg.TTL.Seconds()), user, pass,
		strings.Join(cfg.Servers, ","), strings.Join(cfg.STUN, ","))
}

// iceSet is what a client received.
type iceSet struct {
	stun []string
	turn []TURNCredential
	ttl  time.Duration
}

// parseICE parses an ICE line (without its newline); now dates the
// credentials' expiry when the username does not.
func parseICE(line string) (iceSet, error) {
	rest, ok := strings.CutPrefix(line, iceWord+" ")
	if !ok {
		return iceSet{}, errors.New("signaling: not an ICE line")
	}
	var set iceSet
	var user, pass string
	for f := range strings.FieldsSeq(rest) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "ttl":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return iceSet{}, fmt.Errorf("signaling: ICE line: bad ttl %q", v)
			}
			set.ttl = time.Duration(n) * time.Second
		case "user":
			user = v
		case "pass":
			pass = v
		case "turn":
			for s := range strings.SplitSeq(v, ",") {
				if s != "" {
					set.turn = append(set.turn, TURNCredential{Server: s})
				}
			}
		case "stun":
			for s := range strings.SplitSeq(v, ",") {
				if s != "" {
					set.stun = append(set.stun, s)
				}
			}
		}
	}
	exp, _, _ := strings.Cut(user, ":")
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || pass == "" || set.ttl == 0 {
		return iceSet{}, errors.New("signaling: ICE line without a credential")
	}
	for i := range set.turn {
		set.turn[i].Username, set.turn[i].Password, set.turn[i].Expires = user, pass, time.Unix(secs, 0)
	}
	return set, nil
}

// ICEServers implements ICEProvider.
func (c *client) ICEServers() (stun []string, turn []TURNCredential, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ice == nil {
		return nil, nil, false
	}
	return append([]string(nil), c.ice.stun...), append([]TURNCredential(nil), c.ice.turn...), true
}

// WaitICEServers implements ICEProvider.
func (c *client) WaitICEServers(ctx context.Context) ([]string, []TURNCredential, error) {
	for {
		stun, turn, ok := c.ICEServers()
		if ok {
			return stun, turn, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-c.done:
			return nil, nil, ErrClosed
		case <-c.iceReady:
		}
	}
}

// ICEServerStrings is ICEServers in standard types, for programs that
// take the servers without depending on this package (a netmsg Host
// whose Config.Signaling is this Conn does): the STUN and TURN servers
// ("host:port"), the one credential every TURN server takes, and when it
// expires. ok is false until the first ICE line.
func (c *client) ICEServerStrings() (stun, turn []string, username, password string, expires time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ice == nil {
		return nil, nil, "", "", time.Time{}, false
	}
	for _, t := range c.ice.turn {
		turn = append(turn, t.Server)
		username, password, expires = t.Username, t.Password, t.Expires
	}
	return append([]string(nil), c.ice.stun...), turn, username, password, expires, true
}

// ICEServersChanged returns a channel that is closed when servers newer
// than those ICEServers returns now arrive (the server renews the
// credentials at half their time to live).
func (c *client) ICEServersChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.iceNews
}

// gotICE records an ICE line and asks again when half its time to live
// has passed (reader goroutine).
func (c *client) gotICE(line string) {
	set, err := parseICE(line)
	if err != nil {
		return
	}
	c.mu.Lock()
	first := c.ice == nil
	c.ice = &set
	close(c.iceNews)
	c.iceNews = make(chan struct{})
	if c.iceTimer != nil {
		c.iceTimer.Stop()
	}
	if !c.closed {
		c.iceTimer = time.AfterFunc(set.ttl/2, func() { c.queueLine([]byte(iceWant + "\n")) })
	}
	c.mu.Unlock()
	if first {
		close(c.iceReady)
	}
}

// queueLine queues a line for the writer if connected.
func (c *client) queueLine(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.conn == nil || len(c.out) >= clientQueueLen {
		return
	}
	c.out = append(c.out, line)
	c.outBytes += len(line)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
