package netmsg

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/netmsg-go/netmsg/internal/paths"
)

// iceSource is what a Config.Signaling that hands out STUN and TURN
// servers also implements (package signaling's authenticated Conn, when
// its server has TURN credentials to give: its ICEServerStrings and
// ICEServersChanged), in standard types so that the Host does not depend
// on package signaling.
type iceSource interface {
	// ICEServerStrings returns the STUN and TURN servers ("host:port"),
	// the credential every TURN server takes and when it expires; ok is
	// false until the first.
	ICEServerStrings() (stun, turn []string, username, password string, expires time.Time, ok bool)
	// ICEServersChanged returns a channel closed when newer servers or
	// credentials than ICEServerStrings returns now arrive.
	ICEServersChanged() <-chan struct{}
}

// iceResolveTimeout bounds the lookup of a server's host name.
const iceResolveTimeout = 5 * time.Second

// startICE starts the "ice" goroutine when Config.Signaling hands out
// STUN and TURN servers and Config leaves STUNServers or TURNServers
// empty: the goroutine gives the Host's paths the servers, and each set
// of fresh credentials the signaling service sends (at half the time to
// live of the last), for the lists Config left empty. An allocation is
// made with the credentials current when it is made; one refused is
// tried again with the next credentials. h.paths is set.
func (h *Host) startICE() {
	src, ok := h.cfg.Signaling.(iceSource)
	if !ok || (len(h.cfg.STUNServers) > 0 && len(h.cfg.TURNServers) > 0) {
		return
	}
	h.wg.Add(1)
	go h.runICE(src)
}

// runICE is the "ice" goroutine.
func (h *Host) runICE(src iceSource) {
	defer h.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	var last struct {
		stun, turn []string
		user       string
	}
	for {
		news := src.ICEServersChanged()
		if stun, turn, user, pass, expires, ok := src.ICEServerStrings(); ok &&
			(!slices.Equal(stun, last.stun) || !slices.Equal(turn, last.turn) || user != last.user) {
			last.stun, last.turn, last.user = stun, turn, user
			h.setICE(ctx, stun, turn, user, pass, expires)
		}
		select {
		case <-ctx.Done():
			return
		case <-news:
		}
	}
}

// setICE gives the Host's paths the servers the signaling service handed
// out, for the lists Config left empty.
func (h *Host) setICE(ctx context.Context, stun, turn []string, user, pass string, expires time.Time) {
	h.mu.Lock()
	ps, closed := h.paths, h.closed
	h.mu.Unlock()
	if closed || ps == nil {
		return
	}
	log := h.cfg.Logger
	if len(h.cfg.STUNServers) == 0 {
		ps.SetSTUNServers(h.cfg.Now(), h.resolveServers(ctx, stun))
	}
	if len(h.cfg.TURNServers) == 0 {
		var ts []paths.TURNServer
		for _, a := range h.resolveServers(ctx, turn) {
			ts = append(ts, paths.TURNServer{Addr: a, Username: user, Password: pass})
		}
		if err := ps.SetTURNServers(ts); err != nil {
			log.Debug("netmsg: TURN servers from signaling", "err", err)
			return
		}
	}
	log.Debug("netmsg: STUN and TURN servers from signaling", "stun", stun, "turn", turn, "user", user, "expires", expires)
	signal(h.timerKick) // the STUN client may have something to send
}

// resolveServers turns "host:port" strings into addresses of the Host's
// socket's family (the first address a name resolves to); those that do
// not resolve are logged and left out.
func (h *Host) resolveServers(ctx context.Context, ss []string) []netip.AddrPort {
	want4 := h.pc.LocalAddr().Addr().Unmap().Is4()
	var out []netip.AddrPort
	for _, s := range ss {
		if a, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, a)
			continue
		}
		host, port, err := net.SplitHostPort(s)
		pn, perr := net.LookupPort("udp", port)
		if err != nil || perr != nil {
			h.cfg.Logger.Warn("netmsg: bad server address from signaling", "server", s)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, iceResolveTimeout)
		ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
		cancel()
		if err != nil {
			h.cfg.Logger.Warn("netmsg: server from signaling does not resolve", "server", s, "err", err)
			continue
		}
		for _, ip := range ips {
			if ip = ip.Unmap(); !want4 || ip.Is4() {
				out = append(out, netip.AddrPortFrom(ip, uint16(pn)))
				break
			}
		}
	}
	return out
}
