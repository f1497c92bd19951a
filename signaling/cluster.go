package signaling

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ClusterConfig makes a Server one node of a cluster: any number of nodes
// share one identity space through NATS, so a client on one node signals
// an identity held on another, under the rules of one server (see
// doc.go, "Clusters").
type ClusterConfig struct {
	// URLs are the NATS servers ("nats://host:port"), tried in turn and
	// reconnected to for ever. Ignored when Conn is set.
	URLs []string
	// Conn is a NATS connection to use instead of dialling URLs; the
	// Server does not close it.
	Conn *nats.Conn
	// Prefix starts every subject the cluster uses (default
	// "netmsg.signal"); clusters sharing NATS servers use different ones.
	Prefix string
	// Heartbeat is how often a node announces itself (default 1 s);
	// DeadAfter is how long a node unheard of keeps its identities
	// (default 3 heartbeats): then the others release them.
	Heartbeat, DeadAfter time.Duration
}

// cluster is a Server's attachment to NATS. Its handlers run on nats.go's
// goroutines (one per subscription) and take Server.mu; its ticker
// goroutine publishes heartbeats and releases dead nodes' identities.
type cluster struct {
	s       *Server
	nc      *nats.Conn
	ownConn bool
	node    string // this node's id
	prefix  string
	hb      time.Duration
	dead    time.Duration
	subs    []*nats.Subscription
	stop    chan struct{}
	done    chan struct{} // closed when run has returned
	pumped  chan struct{} // closed when pump has returned
	out     chan natsOut  // messages for pump to publish, in order
	once    sync.Once

	// Guarded by Server.mu.
	peers  map[string]time.Time // other nodes, by id: when last heard of
	gens   map[string]uint64    // the generation of each node's entries (one per list request)
	genSeq uint64
}

// remoteHolder is an identity held on another node.
type remoteHolder struct {
	node   string
	authed bool
	holder holder
	at     int64  // when it was claimed (unix ns, the claiming node's clock)
	gen    uint64 // the node's generation when it was learnt (cluster.gens)
}

// clMsg is a directory message (JSON on <prefix>.dir, and in the
// chunks answering <prefix>.list.<node>).
type clMsg struct {
	Kind   string `json:"k"` // "claim", "release" or "deny"
	ID     string `json:"id"`
	Node   string `json:"n"`            // the claiming or releasing node; the denied node for "deny"
	At     int64  `json:"at,omitempty"` // claim time, unix ns
	Authed bool   `json:"a,omitempty"`
	Key    []byte `json:"key,omitempty"`
	CA     bool   `json:"ca,omitempty"`
	Until  int64  `json:"u,omitempty"` // release: reserved until (unix ns)
}

// clSignal is a signal for a client on another node (JSON on
// <prefix>.node.<node>).
type clSignal struct {
	To     string `json:"t"`
	From   string `json:"f"`
	Authed bool   `json:"a,omitempty"`
	Blob   []byte `json:"b"`
	At     int64  `json:"at"` // when the first node read it (unix ns)
}

const (
	listChunk    = 200     // claims per message answering a list request
	pubQueueLen  = 1 << 16 // messages waiting to be published; more are dropped and counted
	pumpDrainFor = time.Second
)

// natsOut is a message waiting to be published.
type natsOut struct {
	subj string
	data []byte
}

func newCluster(s *Server, cfg *ClusterConfig) (*cluster, error) {
	var id [8]byte
	rand.Read(id[:])
	cl := &cluster{s: s, node: hex.EncodeToString(id[:]), prefix: cfg.Prefix, hb: cfg.Heartbeat, dead: cfg.DeadAfter,
		stop: make(chan struct{}), done: make(chan struct{}), pumped: make(chan struct{}),
		out: make(chan natsOut, pubQueueLen), peers: map[string]time.Time{}, gens: map[string]uint64{}}
	if cl.prefix == "" {
		cl.prefix = "netmsg.signal"
	}
	if cl.hb <= 0 {
		cl.hb = time.Second
	}
	if cl.dead <= 0 {
		cl.dead = 3 * cl.hb
	}
	cl.nc = cfg.Conn
	if cl.nc == nil {
		if len(cfg.URLs) == 0 {
			return nil, errors.New("signaling: ClusterConfig without URLs or Conn")
		}
		nc, err := nats.Connect(strings.Join(cfg.URLs, ","), nats.Name("netmsg-signal "+cl.node),
			nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true),
			nats.ReconnectJitter(100*time.Millisecond, time.Second), nats.ReconnectHandler(func(*nats.Conn) { cl.onReconnect() }))
		if err != nil {
			return nil, fmt.Errorf("signaling: nats: %w", err)
		}
		cl.nc, cl.ownConn = nc, true
	}
	for subj, h := range map[string]nats.MsgHandler{
		cl.prefix + ".dir":             cl.onDir,
		cl.prefix + ".hb":              cl.onHeartbeat,
		cl.prefix + ".node." + cl.node: cl.onSignal,
		cl.prefix + ".list." + cl.node: cl.onList,
	} {
		sub, err := cl.nc.Subscribe(subj, h)
		if err != nil {
			for _, sub := range cl.subs {
				sub.Unsubscribe()
			}
			if cl.ownConn {
				cl.nc.Close()
			}
			return nil, fmt.Errorf("signaling: nats: %w", err)
		}
		sub.SetPendingLimits(1<<16, 64<<20)
		cl.subs = append(cl.subs, sub)
	}
	go cl.run()
	go cl.pump()
	return cl, nil
}

// pump publishes what publish queued, in order, so that no lock of the
// Server is held while nats.go writes to its socket. When the cluster
// stops it publishes what is left, for pumpDrainFor at most.
func (cl *cluster) pump() {
	defer close(cl.pumped)
	for {
		select {
		case m := <-cl.out:
			cl.send(m)
		case <-cl.stop:
			deadline := time.Now().Add(pumpDrainFor)
			for time.Now().Before(deadline) {
				select {
				case m := <-cl.out:
					cl.send(m)
				default:
					return
				}
			}
			return
		}
	}
}

func (cl *cluster) send(m natsOut) {
	if err := cl.nc.Publish(m.subj, m.data); err != nil {
		cl.s.logs.logf(slog.LevelWarn, "nats", "signaling: nats publish failed", "subject", m.subj, "err", err)
	}
}

// run publishes heartbeats and forgets nodes not heard of for cl.dead.
func (cl *cluster) run() {
	defer close(cl.done)
	t := time.NewTicker(cl.hb)
	defer t.Stop()
	hb, _ := json.Marshal(clMsg{Kind: "hb", Node: cl.node})
	for {
		cl.nc.Publish(cl.prefix+".hb", hb)
		select {
		case <-cl.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		s := cl.s
		s.mu.Lock()
		for node, last := range cl.peers {
			if now.Sub(last) <= cl.dead {
				continue
			}
			delete(cl.peers, node)
			delete(cl.gens, node)
			n := 0
			for id, rh := range s.remote {
				if rh.node == node {
					delete(s.remote, id)
					n++
				}
			}
			s.st.NodesLost++
			s.log.Info("signaling: cluster node lost, its identities released", "node", node, "identities", n)
		}
		s.mu.Unlock()
	}
}

// close stops the heartbeats and leaves NATS (after flushing what was
// published, for a second at most).
func (cl *cluster) close() {
	cl.once.Do(func() {
		close(cl.stop)
		<-cl.pumped
		if cl.nc.IsConnected() {
			cl.nc.FlushTimeout(time.Second)
		}
		for _, sub := range cl.subs {
			sub.Unsubscribe()
		}
		if cl.ownConn {
			cl.nc.Close()
		}
	})
	<-cl.done
}

// connected reports whether NATS is reachable now.
func (cl *cluster) connected() bool { return cl.nc.IsConnected() }

// publish queues v (as JSON) for subj (Server.mu held); when the queue
// is full (NATS is slower than the clients), it is dropped and counted.
func (cl *cluster) publish(subj string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case cl.out <- natsOut{subj, b}:
	default:
		cl.s.st.ClusterDropped++
		cl.s.logs.logf(slog.LevelWarn, "nats-queue", "signaling: nats publish queue full, message dropped", "subject", subj)
	}
}

// claimLocked announces that this node's client c holds its identity
// (Server.mu held).
func (cl *cluster) claimLocked(c *srvClient) {
	cl.publish(cl.prefix+".dir", cl.claimMsg(c))
}

func (cl *cluster) claimMsg(c *srvClient) clMsg {
	return clMsg{Kind: "claim", ID: c.id, Node: cl.node, At: c.since.UnixNano(), Authed: c.authed,
		Key: []byte(c.holder.key), CA: c.holder.caSigned}
}

// releaseLocked announces that id left this node, reserved until until
// if not zero (Server.mu held).
func (cl *cluster) releaseLocked(id string, until time.Time) {
	m := clMsg{Kind: "release", ID: id, Node: cl.node}
	if !until.IsZero() {
		m.Until = until.UnixNano()
	}
	cl.publish(cl.prefix+".dir", m)
}

// forwardLocked sends a signal to the node holding its recipient
// (Server.mu held).
func (cl *cluster) forwardLocked(node string, sig clSignal) {
	cl.publish(cl.prefix+".node."+node, sig)
}

func (cl *cluster) onHeartbeat(m *nats.Msg) {
	var h clMsg
	if json.Unmarshal(m.Data, &h) != nil || h.Node == cl.node || h.Node == "" {
		return
	}
	s := cl.s
	s.mu.Lock()
	_, known := cl.peers[h.Node]
	cl.peers[h.Node] = time.Now()
	s.mu.Unlock()
	if known {
		return
	}
	// A node we did not know (new, or heard again after we or it lost
	// NATS): learn what it holds. It answers with chunks of claims and an
	// end on an inbox; what we held of it and it did not list (releases
	// we missed) goes at the end.
	s.mu.Lock()
	cl.genSeq++
	gen := cl.genSeq
	cl.gens[h.Node] = gen
	s.mu.Unlock()
	inbox := cl.nc.NewRespInbox()
	var sub *nats.Subscription
	sub, err := cl.nc.Subscribe(inbox, func(m *nats.Msg) {
		if cl.onListReply(h.Node, gen, m) {
			sub.Unsubscribe()
		}
	})
	if err != nil {
		return
	}
	time.AfterFunc(10*time.Second, func() { sub.Unsubscribe() })
	cl.nc.PublishRequest(cl.prefix+".list."+h.Node, inbox, nil)
}

// onListReply applies one message answering a list request to node for
// generation gen; it returns true at the end of the answer.
func (cl *cluster) onListReply(node string, gen uint64, m *nats.Msg) (end bool) {
	s := cl.s
	if len(m.Data) == 0 || m.Data[0] != '[' {
		var d clMsg
		if json.Unmarshal(m.Data, &d) != nil || d.Kind != "end" {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cl.gens[node] == gen {
			for id, rh := range s.remote {
				if rh.node == node && rh.gen < gen {
					delete(s.remote, id)
				}
			}
		}
		return true
	}
	var claims []clMsg
	if json.Unmarshal(m.Data, &claims) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range claims {
		if d.Kind == "claim" && d.Node == node && CheckIdentity(d.ID) == nil {
			cl.onClaimLocked(d)
		}
	}
	return false
}

// onReconnect forgets the other nodes when NATS comes back after losing
// it: their next heartbeats make this node ask each for its holders, so
// what it missed meanwhile (releases above all) is put right.
func (cl *cluster) onReconnect() {
	s := cl.s
	s.mu.Lock()
	clear(cl.peers)
	s.mu.Unlock()
	s.log.Info("signaling: reconnected to NATS; learning the other nodes' holders again")
}

// onList answers a list request with this node's holders.
func (cl *cluster) onList(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	s := cl.s
	s.mu.Lock()
	var claims []clMsg
	for _, c := range s.clients {
		claims = append(claims, cl.claimMsg(c))
	}
	s.mu.Unlock()
	for len(claims) > 0 {
		n := min(len(claims), listChunk)
		b, _ := json.Marshal(claims[:n])
		cl.nc.Publish(m.Reply, b)
		claims = claims[n:]
	}
	end, _ := json.Marshal(clMsg{Kind: "end", Node: cl.node})
	cl.nc.Publish(m.Reply, end)
}

// onDir applies directory messages: one object, or an array.
func (cl *cluster) onDir(m *nats.Msg) {
	var msgs []clMsg
	if len(m.Data) > 0 && m.Data[0] == '[' {
		if json.Unmarshal(m.Data, &msgs) != nil {
			return
		}
	} else {
		var one clMsg
		if json.Unmarshal(m.Data, &one) != nil {
			return
		}
		msgs = []clMsg{one}
	}
	s := cl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range msgs {
		if CheckIdentity(d.ID) != nil {
			continue
		}
		switch d.Kind {
		case "claim":
			if d.Node != cl.node {
				cl.onClaimLocked(d)
			}
		case "release":
			if rh, ok := s.remote[d.ID]; ok && rh.node == d.Node {
				delete(s.remote, d.ID)
				if d.Until > 0 && rh.authed && s.cfg.ReserveFor > 0 {
					s.reserveLocked(d.ID, reservation{rh.holder, time.Unix(0, d.Until)})
				}
			}
		case "deny":
			if d.Node != cl.node {
				continue
			}
			if c := s.clients[d.ID]; c != nil && c.since.UnixNano() == d.At {
				// Another node's authenticated holder keeps it.
				delete(s.clients, d.ID)
				s.st.TakeoverRefused++
				c.endLocked(authErr + " " + errTakeover.Error() + "\n")
			}
		}
	}
}

// onClaimLocked applies another node's claim (Server.mu held): the newer
// of two claims wins, as on one server the later registration does,
// unless the older holder is authenticated and the newcomer may not take
// it, in which case the claimer is told to drop its client.
func (cl *cluster) onClaimLocked(d clMsg) {
	s := cl.s
	h := holder{key: string(d.Key), caSigned: d.CA}
	if rh, ok := s.remote[d.ID]; ok && rh.at > d.At {
		return // a newer claim is known
	}
	if c := s.clients[d.ID]; c != nil {
		ours := c.since.UnixNano()
		if ours > d.At || (ours == d.At && cl.node > d.Node) {
			return // ours is newer: the other node will see our claim
		}
		if c.authed && (!d.Authed || !c.holder.mayTake(h)) {
			s.st.TakeoverRefused++
			cl.publish(cl.prefix+".dir", clMsg{Kind: "deny", ID: d.ID, Node: d.Node, At: d.At})
			return
		}
		s.st.Replaced++
		delete(s.clients, d.ID)
		if c.authed {
			c.endLocked(authErr + " " + errReplaced + "\n")
		} else {
			c.conn.Close()
		}
	}
	delete(s.reserved, d.ID)
	s.remote[d.ID] = remoteHolder{node: d.Node, authed: d.Authed, holder: h, at: d.At, gen: cl.gens[d.Node]}
}

// onSignal queues a signal from another node for its local recipient.
func (cl *cluster) onSignal(m *nats.Msg) {
	var sig clSignal
	if json.Unmarshal(m.Data, &sig) != nil || CheckIdentity(sig.From) != nil || len(sig.Blob) > MaxBlobSize {
		return
	}
	line := appendLine(make([]byte, 0, len(sig.From)+2+2*len(sig.Blob)), sig.From, sig.Blob)
	s := cl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.ClusterIn++
	dst := s.clients[sig.To]
	switch {
	case dst == nil || dst.closing:
		s.st.NoRecipient++
	case s.cfg.IsolateTrivial && dst.authed != sig.Authed:
		s.st.Isolated++
	case len(dst.out) >= s.cfg.QueueLen || dst.outBytes+len(line) > s.cfg.QueueBytes:
		s.st.QueueDropped++
	default:
		at := time.Unix(0, sig.At)
		if now := time.Now(); at.After(now) {
			at = now // another clock ahead of ours
		}
		dst.queueAtLocked(line, at)
		s.st.Forwarded++
	}
}
