package conn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/p2p"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/vectors"
)

// This file runs P2P connections end to end the way a host does: each side
// owns a Conn and its p2p.Session, rendezvous blobs travel through a fake
// signaling service, and once each side has the other's ICE password (the
// stand-in for ICE here) the data packets travel on an in-memory datagram
// path. Both paths can drop, duplicate, delay and reorder; time is fake.

// p2pPeer is one host's side of one P2P connection.
type p2pPeer struct {
	name    string
	cfg     Config
	id      uint32 // the connection id it uses (client or server)
	addr    netip.AddrPort
	c       *Conn
	s       *p2p.Session
	peerPwd string // the peer's ICE password, once signaled
	got     []string
}

type p2pItem struct {
	at   time.Time
	to   int
	from netip.AddrPort
	b    []byte
}

// p2pWorld joins two peers.
type p2pWorld struct {
	t     *testing.T
	r     *rand.Rand
	now   time.Time
	peers [2]*p2pPeer
	// Fault rates in percent, and the largest extra delay.
	sigLoss, sigDup, dataLoss, dataDup int
	sigDelay, dataDelay                time.Duration
	pace                               time.Duration // Session.MinInterval
	signals, dgrams                    []p2pItem
	// Counted drops of the routing layer (a host's).
	dropped map[string]int
	// Every rendezvous sent, decoded, by sender.
	sent [2][]*pb.P2PRendezvous
}

func newP2PWorld(t *testing.T, seed uint64, a, b string, idA, idB uint32) *p2pWorld {
	w := &p2pWorld{t: t, r: rand.New(rand.NewPCG(seed, 7)), now: t0, dropped: map[string]int{},
		sigDelay: 20 * time.Millisecond, dataDelay: 5 * time.Millisecond}
	w.peers[0] = &p2pPeer{name: a, cfg: testConfig(a), id: idA, addr: netip.MustParseAddrPort("10.1.0.1:40000")}
	w.peers[1] = &p2pPeer{name: b, cfg: testConfig(b), id: idB, addr: netip.MustParseAddrPort("10.2.0.1:40000")}
	for _, p := range w.peers {
		p.cfg.VirtualPort, p.cfg.OfferLanes = 0x7fffffff, 4
	}
	return w
}

// dial makes peer i connect to the other (a client Conn and Session).
func (w *p2pWorld) dial(i int) {
	p, q := w.peers[i], w.peers[1-i]
	cfg := p.cfg
	cfg.RemoteIdentity = q.name
	c, err := DialP2P(cfg, w.now, p.id)
	if err != nil {
		w.t.Fatal(err)
	}
	p.c = c
	p.s = p2p.NewSession(p.name, p.id, q.name, 0)
	p.s.MinInterval = w.pace
	p.s.QueueReliable(w.now, p2p.ICEAuth(fmt.Sprintf("pw%d", i)))
	p.s.SetConnectRequest(w.now, c.P2PConnectRequest())
}

// route is a host's handling of one signal for peer i (GNS's
// InternalReceivedP2PSignal): by to_connection_id, else by the sender's
// connection id, else a new connect request (or the other half of a
// symmetric connect).
func (w *p2pWorld) route(i int, from string, blob []byte) {
	p := w.peers[i]
	rv, err := p2p.ParseRendezvous(blob)
	if err != nil {
		w.dropped["malformed"]++
		return
	}
	if rv.GetFromIdentity() != from {
		w.dropped["forged sender"]++
		return
	}
	switch {
	case rv.ToConnectionId != nil:
		if p.c == nil || rv.GetToConnectionId() != p.c.LocalID() {
			w.dropped["unknown connection"]++
			return
		}
	case p.s != nil && p.s.RemoteID != 0 && p.s.RemoteID == rv.GetFromConnectionId():
	case rv.ConnectRequest == nil:
		w.dropped["unknown connection"]++
		return
	case p.c != nil && !p.c.IsServer() && p.c.State() == StateConnecting:
		// Symmetric connect: we asked too.
		ours := p.c.P2PConnectRequest().GetCert().GetCert()
		theirs := rv.ConnectRequest.GetCert().GetCert()
		if p2p.CompareSymmetric(p.c.LocalID(), ours, rv.GetFromConnectionId(), theirs) <= 0 {
			w.dropped["symmetric: we stay client"]++
			return
		}
		if err := p.c.BecomeP2PServer(w.now, rv.GetFromConnectionId(), rv.ConnectRequest); err != nil {
			w.dropped["refused"]++
			return
		}
		p.s.BecomeServer(rv.GetFromConnectionId())
		p.s.SetConnectOK(w.now, p.c.P2PConnectOK())
	case p.c != nil:
		w.dropped["second connection"]++
		return
	default:
		c, err := AcceptP2P(p.cfg, w.now, p.id, rv.GetFromConnectionId(), rv.ConnectRequest)
		if err != nil {
			w.dropped["refused"]++
			return
		}
		if c.RemoteIdentity() != from {
			w.dropped["refused"]++
			return
		}
		if err := c.Accept(w.now); err != nil {
			w.t.Fatal(err)
		}
		p.c = c
		p.s = p2p.NewSession(p.name, p.id, from, rv.GetFromConnectionId())
		p.s.MinInterval = w.pace
		p.s.QueueReliable(w.now, p2p.ICEAuth(fmt.Sprintf("pw%d", i)))
		p.s.SetConnectOK(w.now, c.P2PConnectOK())
	}
	rec, err := p.s.Receive(w.now, rv)
	if err != nil {
		w.dropped["session: "+err.Error()]++
		return
	}
	if rec.ConnectOK != nil && !p.c.IsServer() {
		if err := p.c.HandleP2PConnectOK(w.now, p.s.RemoteID, rec.ConnectOK); err != nil {
			w.dropped["connect OK refused"]++
		}
	}
	for _, it := range rec.ICE {
		if it.Password != "" {
			p.peerPwd = it.Password
		}
	}
	if rec.Closed != nil {
		p.c.CloseByPeer(w.now, int(rec.Closed.GetReasonCode()), rec.Closed.GetDebug())
	}
}

func (w *p2pWorld) chance(pct int) bool { return pct > 0 && w.r.IntN(100) < pct }

// step sends everything due at w.now, delivers everything due, and
// "selects the ICE path" of a side once it knows the peer's password.
func (w *p2pWorld) step() {
	buf := make([]byte, 0, 2048)
	for i, p := range w.peers {
		if p.s != nil {
			for range 16 {
				blob := p.s.NextBlob(w.now)
				if blob == nil {
					break
				}
				rv, _ := p2p.ParseRendezvous(blob)
				w.sent[i] = append(w.sent[i], rv)
				copies := 1
				if w.chance(w.sigDup) {
					copies = 2
				}
				for range copies {
					if !w.chance(w.sigLoss) {
						d := time.Duration(w.r.Int64N(int64(w.sigDelay) + 1))
						w.signals = append(w.signals, p2pItem{at: w.now.Add(d), to: 1 - i, b: blob})
					}
				}
			}
		}
		if p.c != nil {
			if p.peerPwd != "" && p.c.RemoteAddr() != w.peers[1-i].addr {
				p.c.SetRemoteAddr(w.peers[1-i].addr) // "ICE selected" the peer's address
			}
			for range 256 {
				d, ok := p.c.Poll(w.now, buf)
				if !ok {
					break
				}
				if k, _ := Classify(d); k == KindChallengeRequest || k == KindConnectRequest || k == KindChallengeReply {
					w.t.Fatalf("a P2P connection sent a UDP %v", k)
				}
				if !p.c.RemoteAddr().IsValid() {
					continue // no path yet
				}
				copies := 1
				if w.chance(w.dataDup) {
					copies = 2
				}
				for range copies {
					if !w.chance(w.dataLoss) {
						dl := time.Duration(w.r.Int64N(int64(w.dataDelay) + 1))
						w.dgrams = append(w.dgrams, p2pItem{at: w.now.Add(dl), to: 1 - i, from: p.addr, b: append([]byte(nil), d...)})
					}
				}
			}
		}
	}
	keep := w.signals[:0]
	var due []p2pItem
	for _, it := range w.signals {
		if w.now.Before(it.at) {
			keep = append(keep, it)
		} else {
			due = append(due, it)
		}
	}
	w.signals = keep
	for _, it := range due {
		w.route(it.to, w.peers[1-it.to].name, it.b)
	}
	keepD := w.dgrams[:0]
	var dueD []p2pItem
	for _, it := range w.dgrams {
		if w.now.Before(it.at) {
			keepD = append(keepD, it)
		} else {
			dueD = append(dueD, it)
		}
	}
	w.dgrams = keepD
	for _, it := range dueD {
		if c := w.peers[it.to].c; c != nil {
			c.HandleDatagram(w.now, it.from, it.b)
		}
	}
	for _, p := range w.peers {
		if p.c != nil {
			for _, m := range recvAll(p.c) {
				p.got = append(p.got, string(m.Data))
			}
		}
	}
}

// run advances fake time to each wake-up until d passes or done holds.
func (w *p2pWorld) run(d time.Duration, done func() bool) bool {
	end := w.now.Add(d)
	for n := 0; w.now.Before(end) && n < 200000; n++ {
		w.step()
		if done != nil && done() {
			return true
		}
		next := end
		for _, p := range w.peers {
			if p.c != nil {
				if t := p.c.NextWake(); !t.IsZero() && t.Before(next) {
					next = t
				}
			}
			if p.s != nil {
				if t := p.s.NextWake(); !t.IsZero() && t.Before(next) {
					next = t
				}
			}
		}
		for _, it := range append(w.signals, w.dgrams...) {
			if it.at.Before(next) {
				next = it.at
			}
		}
		if !next.After(w.now) {
			next = w.now.Add(time.Millisecond)
		}
		w.now = next
	}
	return done != nil && done()
}

func (w *p2pWorld) connected() bool {
	for _, p := range w.peers {
		if p.c == nil || p.c.State() != StateConnected || !p.c.RemoteAddr().IsValid() {
			return false
		}
	}
	return true
}

// TestP2PRendezvousLossy: a client and a server Conn handshake through
// their Sessions over signaling that loses 30%, duplicates 30% and
// reorders, then exchange 300 reliable messages each way over a datagram
// path that loses, duplicates and reorders, through a route switch; a
// close reaches the peer with its reason. Odd seeds pace the sessions as
// GNS does.
func TestP2PRendezvousLossy(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newP2PWorld(t, seed, "str:alice", "str:bob", 0x1000_0001, 0x2000_0002)
			w.sigLoss, w.sigDup, w.sigDelay = 30, 30, 300*time.Millisecond
			w.dataLoss, w.dataDup, w.dataDelay = 10, 10, 20*time.Millisecond
			if seed%2 == 1 {
				w.pace = p2p.MinSendInterval // GNS's pacing
			}
			w.dial(0)
			if !w.run(30*time.Second, w.connected) {
				t.Fatalf("not connected: %v %v, dropped %v", w.peers[0].c.State(), w.peers[1].c, w.dropped)
			}
			a, b := w.peers[0], w.peers[1]
			if a.c.RemoteID() != b.id || b.c.RemoteID() != a.id || a.c.RemoteIdentity() != "str:bob" || b.c.RemoteIdentity() != "str:alice" {
				t.Fatalf("ids %d %d, identities %q %q", a.c.RemoteID(), b.c.RemoteID(), a.c.RemoteIdentity(), b.c.RemoteIdentity())
			}
			if a.c.NumLanes() != 4 || b.c.NumLanes() != 4 || b.c.VirtualPort() != 0x7fffffff {
				t.Fatalf("lanes %d %d vport %d", a.c.NumLanes(), b.c.NumLanes(), b.c.VirtualPort())
			}
			const n = 300
			send := func(from int, k int) {
				p := w.peers[from]
				if _, err := p.c.SendKeyed(w.now, uint32(k%3), nil, fmt.Appendf(nil, "%s-%d", p.name, k), snp.Reliable); err != nil {
					t.Fatal(err)
				}
			}
			for k := range n / 2 {
				send(0, k)
				send(1, k)
			}
			w.run(2*time.Second, nil)
			// Route switch: bob's path moves to another address (ICE
			// picked a better pair); alice follows.
			b.addr = netip.MustParseAddrPort("192.0.2.7:41000")
			a.c.SetRemoteAddr(b.addr)
			for k := n / 2; k < n; k++ {
				send(0, k)
				send(1, k)
			}
			ok := w.run(60*time.Second, func() bool { return len(a.got) == n && len(b.got) == n })
			if !ok {
				t.Fatalf("delivered %d and %d of %d", len(b.got), len(a.got), n)
			}
			for _, p := range w.peers {
				// Exactly once, and in order per lane (key k%3).
				last := map[int]int{0: -1, 1: -1, 2: -1}
				for _, m := range p.got {
					i := strings.LastIndexByte(m, '-')
					k, err := strconv.Atoi(m[i+1:])
					if err != nil || m[:i] == p.name {
						t.Fatalf("%s got %q", p.name, m)
					}
					if k <= last[k%3] {
						t.Fatalf("%s got %q after message %d of its lane", p.name, m, last[k%3])
					}
					last[k%3] = k
				}
			}
			// Alice closes: bob learns it with alice's reason (through the
			// data path or the signal, whichever comes first).
			a.c.Close(w.now, 1042, "done", false)
			a.s.Close(w.now, a.c.EndReason(), a.c.EndDebug())
			if !w.run(10*time.Second, func() bool { return b.c.State() == StateClosedByPeer }) || b.c.EndReason() != 1042 {
				t.Fatalf("bob: %v %d %q", b.c.State(), b.c.EndReason(), b.c.EndDebug())
			}
			t.Logf("signals sent %d/%d, dropped by routing %v, sessions %+v / %+v", len(w.sent[0]), len(w.sent[1]), w.dropped, a.s.Stats(), b.s.Stats())
		})
	}
}

// TestP2PSymmetricConnect: both peers connect at once, with the connection
// ids of the two captured GNS runs. GNS's role rule makes alice accept in
// both (in the second, the low bits differ and flip the order): her
// connection answers with connect_ok from its own connection id, bob drops
// her request and waits, and one connection per side carries data,
// lossless and over lossy signaling.
func TestP2PSymmetricConnect(t *testing.T) {
	ids := [][2]uint32{{2873342440, 1286389014}, {1585807962, 2170492663}}
	for i, pair := range ids {
		for _, lossy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d-lossy-%v", i, lossy), func(t *testing.T) {
				w := newP2PWorld(t, uint64(i), "str:alice", "str:bob", pair[0], pair[1])
				if lossy {
					w.sigLoss, w.sigDup, w.sigDelay = 30, 30, 200*time.Millisecond
				}
				w.dial(0)
				w.dial(1)
				if !w.run(30*time.Second, w.connected) {
					t.Fatalf("not connected: %v %v, dropped %v", w.peers[0].c.State(), w.peers[1].c.State(), w.dropped)
				}
				a, b := w.peers[0], w.peers[1]
				if !a.c.IsServer() || b.c.IsServer() {
					t.Fatalf("alice server %v, bob server %v: alice should accept", a.c.IsServer(), b.c.IsServer())
				}
				if a.c.LocalID() != pair[0] || a.c.RemoteID() != pair[1] || b.c.RemoteID() != pair[0] {
					t.Fatalf("ids: alice %d->%d, bob %d->%d", a.c.LocalID(), a.c.RemoteID(), b.c.LocalID(), b.c.RemoteID())
				}
				// Alice's connect OK names her own (first) connection id.
				var oks int
				for _, rv := range w.sent[0] {
					if rv.ConnectOk != nil {
						oks++
						if rv.GetFromConnectionId() != pair[0] || rv.GetToConnectionId() != pair[1] || rv.ConnectRequest != nil {
							t.Fatalf("connect OK %v", rv)
						}
					}
				}
				if oks == 0 {
					t.Fatal("alice sent no connect OK")
				}
				if !lossy && w.dropped["symmetric: we stay client"] == 0 {
					t.Fatalf("bob never dropped alice's request: %v", w.dropped)
				}
				a.c.SendKeyed(w.now, 0, nil, []byte("hi bob"), snp.Reliable)
				b.c.SendKeyed(w.now, 0, nil, []byte("hi alice"), snp.Reliable)
				if !w.run(10*time.Second, func() bool { return len(a.got) == 1 && len(b.got) == 1 }) || a.got[0] != "hi alice" || b.got[0] != "hi bob" {
					t.Fatalf("got %q %q", a.got, b.got)
				}
			})
		}
	}
}

// TestP2PHostileSignals: on a connected pair, malformed blobs, forged
// senders, wrong and unknown connection ids, replays of the handshake and
// a request with a bad certificate are refused or harmless, counted, and
// the connection goes on.
func TestP2PHostileSignals(t *testing.T) {
	w := newP2PWorld(t, 1, "str:alice", "str:bob", 0x1000_0001, 0x2000_0002)
	w.dial(0)
	if !w.run(10*time.Second, w.connected) {
		t.Fatal("not connected")
	}
	a, b := w.peers[0], w.peers[1]
	var req, ok []byte
	for _, rv := range w.sent[0] {
		if rv.ConnectRequest != nil {
			req, _ = p2p.MarshalRendezvous(rv)
		}
	}
	for _, rv := range w.sent[1] {
		if rv.ConnectOk != nil {
			ok, _ = p2p.MarshalRendezvous(rv)
		}
	}
	mk := func(f func(*pb.P2PRendezvous)) []byte {
		rv, _ := p2p.ParseRendezvous(req)
		f(rv)
		out, _ := p2p.MarshalRendezvous(rv)
		return out
	}
	badCert := mk(func(rv *pb.P2PRendezvous) {
		rv.FromConnectionId = new(uint32)
		*rv.FromConnectionId = 0x3000_0003
		rv.ConnectRequest.Cert = &pb.CertificateSigned{Cert: []byte("not a certificate")}
	})
	otherKey := testConfig("str:mallory")
	mal, _ := DialP2P(otherKey, w.now, 0x4000_0004)
	malReq := mk(func(rv *pb.P2PRendezvous) { // a valid request, but its certificate names mallory
		*rv.FromConnectionId = 0x4000_0004
		rv.ConnectRequest = mal.P2PConnectRequest()
	})
	hostile := []struct {
		to   int
		from string
		blob []byte
		why  string
	}{
		{1, "str:alice", []byte{0x0a, 0x05, 0x01}, "malformed"},
		{1, "str:alice", bytes.Repeat([]byte{0x42}, p2p.MaxRendezvousSize+1), "malformed"},
		{1, "str:mallory", req, "forged sender"},
		{1, "str:alice", mk(func(rv *pb.P2PRendezvous) {
			rv.ConnectRequest = nil
			rv.ToConnectionId = new(uint32)
			*rv.ToConnectionId = 0x7777
		}), "unknown connection"},
		{1, "str:alice", mk(func(rv *pb.P2PRendezvous) { rv.ConnectRequest = nil; *rv.FromConnectionId = 0x5555 }), "unknown connection"},
		{1, "str:alice", mk(func(rv *pb.P2PRendezvous) {
			rv.ToConnectionId = new(uint32)
			*rv.ToConnectionId = b.id
			*rv.FromConnectionId = 0x5555 // names bob's connection, from another of alice's
		}), "session: " + p2p.ErrWrongConnection.Error()},
		{1, "str:alice", badCert, "second connection"},
		{1, "str:alice", malReq, "second connection"},
		{1, "str:alice", req, ""}, // replayed request: bob answers connect OK again
		{0, "str:bob", ok, ""},    // replayed connect OK: alice ignores it
	}
	for _, h := range hostile {
		before := fmt.Sprint(w.dropped)
		w.route(h.to, h.from, h.blob)
		if h.why == "" {
			if fmt.Sprint(w.dropped) != before {
				t.Errorf("replay dropped: %v", w.dropped)
			}
			continue
		}
		if w.dropped[h.why] == 0 && !containsPrefix(w.dropped, h.why) {
			t.Errorf("%q not counted: %v", h.why, w.dropped)
		}
	}
	// A server with no connection yet refuses the bad ones itself.
	if _, err := AcceptP2P(b.cfg, w.now, 9, 0x3000_0003, mustRV(t, badCert).ConnectRequest); err == nil {
		t.Error("bad certificate accepted")
	}
	cfg := b.cfg
	cfg.RemoteIdentity = "str:alice" // what signaling says the request came from
	if _, err := AcceptP2P(cfg, w.now, 9, 0x4000_0004, mustRV(t, malReq).ConnectRequest); !errors.Is(err, ErrHandshake) {
		t.Errorf("mallory's certificate for alice's request: %v", err)
	}
	if err := a.c.HandleP2PConnectOK(w.now, 0x6666, mustRV(t, ok).ConnectOk); !errors.Is(err, ErrWrongConnID) {
		t.Errorf("connect OK from another connection: %v", err)
	}
	if err := b.c.HandleP2PConnectOK(w.now, a.id, mustRV(t, ok).ConnectOk); err == nil {
		t.Error("connect OK taken by the server")
	}
	if err := b.c.BecomeP2PServer(w.now, a.id, mustRV(t, req).ConnectRequest); err == nil {
		t.Error("a server changed role")
	}
	// Still connected, and bob's repeated connect OK went out.
	w.run(time.Second, nil)
	a.c.SendKeyed(w.now, 0, nil, []byte("still here"), snp.Reliable)
	if !w.run(5*time.Second, func() bool { return len(b.got) == 1 }) || a.c.State() != StateConnected || b.c.State() != StateConnected {
		t.Fatalf("after the hostile signals: %v %v %q", a.c.State(), b.c.State(), b.got)
	}
	var oks int
	for _, rv := range w.sent[1] {
		if rv.ConnectOk != nil {
			oks++
		}
	}
	if oks < 2 {
		t.Errorf("the replayed request was not answered (%d connect OKs)", oks)
	}
	t.Logf("dropped %v; bob's session %+v", w.dropped, b.s.Stats())
}

func containsPrefix(m map[string]int, p string) bool {
	for k := range m {
		if len(k) >= len(p) && k[:len(p)] == p {
			return true
		}
	}
	return false
}

func mustRV(t *testing.T, b []byte) *pb.P2PRendezvous {
	t.Helper()
	rv, err := p2p.ParseRendezvous(b)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

// TestP2PNoConnectionSignal: a "no connection" closed ends a connection
// with 5010, as GNS; an ordinary closed with the peer's reason.
func TestP2PNoConnectionSignal(t *testing.T) {
	for _, tc := range []struct {
		reason, want int
	}{{p2p.ReasonNoConnection, EndMiscPeerSentNoConnection}, {1001, 1001}, {5008, 5008}} {
		w := newP2PWorld(t, 3, "str:alice", "str:bob", 0x1000_0001, 0x2000_0002)
		w.dial(0)
		if !w.run(10*time.Second, w.connected) {
			t.Fatal("not connected")
		}
		a := w.peers[0]
		a.c.CloseByPeer(w.now, tc.reason, "x")
		if a.c.State() != StateClosedByPeer || a.c.EndReason() != tc.want {
			t.Errorf("reason %d: %v %d %q", tc.reason, a.c.State(), a.c.EndReason(), a.c.EndDebug())
		}
	}
}

// TestP2PDataHeaderVectors: GNS's data packets over ICE in the captured
// runs have the direct-UDP header (our parser takes each, with its
// recipient's connection id and packet number), and numbering starts at 2
// both ways (the handshake counts as packet 1); ours do the same.
func TestP2PDataHeaderVectors(t *testing.T) {
	var v struct {
		Runs []struct {
			ConnectionIDs map[string]uint32 `json:"connection_ids"`
			UDP           []struct {
				Kind   string `json:"kind"`
				Len    int    `json:"len"`
				To     string `json:"to_identity"`
				First  string `json:"hex_first_16"`
				Header struct {
					Lead string `json:"lead"`
					To   uint32 `json:"to_connection_id"`
					Num  uint16 `json:"wire_pkt_num"`
				} `json:"header"`
			} `json:"udp"`
		} `json:"runs"`
	}
	vectors.Load(t, "p2p_signaling.json", &v)
	n := 0
	for _, run := range v.Runs {
		first := map[string]uint16{}
		for _, u := range run.UDP {
			if u.Kind != "GNS data" {
				continue
			}
			n++
			b := unhex(t, u.First)
			h, _, err := parseDataHeader(b)
			if err != nil {
				t.Fatalf("%s: %v", u.First, err)
			}
			if fmt.Sprintf("0x%02x", b[0]) != u.Header.Lead || h.ToConnID != u.Header.To || h.WirePktNum != u.Header.Num || h.ToConnID != run.ConnectionIDs[u.To] {
				t.Fatalf("%s: header %+v, recorded %+v", u.First, h, u.Header)
			}
			if _, ok := first[u.To]; !ok {
				first[u.To] = h.WirePktNum
			}
		}
		for who, num := range first {
			if num != 2 {
				t.Errorf("GNS's first data packet to %s is %d", who, num)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d data packets", n)
	}
	// Ours.
	w := newP2PWorld(t, 5, "str:alice", "str:bob", 0x1000_0001, 0x2000_0002)
	w.dial(0)
	if !w.run(10*time.Second, w.connected) {
		t.Fatal("not connected")
	}
	for i, p := range w.peers {
		p.c.SendKeyed(w.now, 0, nil, []byte("x"), snp.Reliable|snp.NoNagle)
		d, ok := p.c.Poll(w.now, nil)
		if !ok {
			t.Fatal("nothing to send")
		}
		h, _, err := parseDataHeader(d)
		if err != nil || d[0]&0xfc != 0x80 || h.ToConnID != w.peers[1-i].id || binary.LittleEndian.Uint32(d[1:5]) != h.ToConnID {
			t.Fatalf("%s: header %+v %v", p.name, h, err)
		}
		if h.WirePktNum != 2 {
			t.Errorf("%s's first data packet is %d, GNS's are 2", p.name, h.WirePktNum)
		}
	}
}

// FuzzP2PHandshake: any rendezvous, taken as a connect request by a new
// server or as a connect OK by a connecting client, is refused or
// accepted without panic; what is accepted connects.
func FuzzP2PHandshake(f *testing.F) {
	cli, _ := DialP2P(testConfig("str:alice"), t0, 11)
	srv, err := AcceptP2P(testConfig("str:bob"), t0, 22, 11, cli.P2PConnectRequest())
	if err != nil {
		f.Fatal(err)
	}
	srv.Accept(t0)
	for _, rv := range []*pb.P2PRendezvous{
		{ConnectRequest: cli.P2PConnectRequest()},
		{ConnectOk: srv.P2PConnectOK()},
		{ConnectRequest: &pb.P2PRendezvous_ConnectRequest{Cert: &pb.CertificateSigned{}, Crypt: &pb.SessionCryptInfoSigned{}}},
	} {
		b, _ := p2p.MarshalRendezvous(rv)
		f.Add(b)
	}
	scfg, ccfg := testConfig("str:bob"), testConfig("str:alice")
	f.Fuzz(func(t *testing.T, b []byte) {
		var rv pb.P2PRendezvous
		if err := proto.Unmarshal(b, &rv); err != nil {
			return
		}
		if rv.ConnectRequest != nil {
			if c, err := AcceptP2P(scfg, t0, 22, 11, rv.ConnectRequest); err == nil {
				if err := c.Accept(t0); err != nil || c.State() != StateConnected {
					t.Fatalf("accepted request does not connect: %v %v", err, c.State())
				}
				c.P2PConnectOK()
			}
		}
		if rv.ConnectOk != nil {
			c, _ := DialP2P(ccfg, t0, 11)
			if err := c.HandleP2PConnectOK(t0, 22, rv.ConnectOk); err == nil && c.State() != StateConnected {
				t.Fatalf("connect OK taken but %v", c.State())
			}
			c.Poll(t0, nil)
		}
	})
}
