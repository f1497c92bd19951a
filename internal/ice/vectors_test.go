package ice

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

type stunAttr struct {
	Name       string `json:"name"`
	ValueHex   string `json:"value_hex"`
	Value      any    `json:"value"`
	Tiebreaker string `json:"tiebreaker"`
	Key        string `json:"key"`
	Verified   *bool  `json:"verified"`
}

type p2pRun struct {
	Name          string              `json:"name"`
	ConnectionIDs map[string]uint32   `json:"connection_ids"`
	Ufrags        map[string]string   `json:"ice_ufrag_by_identity"`
	Passwords     map[string][]string `json:"ice_passwords_by_identity"`
	Controlling   []string            `json:"controlling"`
	Signaling     []struct {
		Client  string `json:"client"`
		Decoded *struct {
			ConnectOK        any `json:"connect_ok"`
			ReliableMessages []struct {
				ICE struct {
					AddCandidate *struct {
						Candidate string `json:"candidate"`
					} `json:"add_candidate"`
				} `json:"ice"`
			} `json:"reliable_messages"`
		} `json:"decoded"`
	} `json:"signaling"`
	UDP []struct {
		Src  string `json:"src"`
		Dst  string `json:"dst"`
		Kind string `json:"kind"`
		Hex  string `json:"hex"`
		STUN *struct {
			TypeName string     `json:"type_name"`
			TxID     string     `json:"transaction_id_hex"`
			Attrs    []stunAttr `json:"attributes"`
		} `json:"stun"`
		SrcIdentity string `json:"src_identity"`
		DstIdentity string `json:"dst_identity"`
	} `json:"udp"`
}

func loadRuns(t *testing.T) []p2pRun {
	var v struct {
		Runs []p2pRun `json:"runs"`
	}
	vectors.Load(t, "p2p_signaling.json", &v)
	if len(v.Runs) != 2 {
		t.Fatalf("%d runs", len(v.Runs))
	}
	return v.Runs
}

// TestUfragVectors derives every peer's ufrag from its connection id.
func TestUfragVectors(t *testing.T) {
	for _, r := range loadRuns(t) {
		for id, cid := range r.ConnectionIDs {
			if got := Ufrag(cid); got != r.Ufrags[id] {
				t.Errorf("%s %s: ufrag %q, want %q", r.Name, id, got, r.Ufrags[id])
			}
		}
	}
}

// TestCandidateVectors parses every candidate GNS signaled and writes it
// back byte for byte.
func TestCandidateVectors(t *testing.T) {
	n := 0
	for _, r := range loadRuns(t) {
		for _, s := range r.Signaling {
			if s.Decoded == nil {
				continue
			}
			for _, m := range s.Decoded.ReliableMessages {
				if m.ICE.AddCandidate == nil {
					continue
				}
				str := m.ICE.AddCandidate.Candidate
				c, err := ParseCandidate(str)
				if err != nil {
					t.Fatal(err)
				}
				if c.Type != Host || c.Priority != Priority(Host) || c.Component != 0 {
					t.Errorf("%q parsed as %+v", str, c)
				}
				// GNS's foundation of a host candidate: no STUN server.
				if f := Foundation(Host, c.Addr, netip.AddrPort{}); f != c.Foundation {
					t.Errorf("%q: foundation %s", str, f)
				}
				// What our agent would signal for the same socket.
				a := &Agent{cfg: Config{Allow: EnableAll}}
				if got := a.AddHostCandidates([]netip.AddrPort{c.Addr}); len(got) != 1 || got[0].String() != str {
					t.Errorf("our host candidate %v, GNS's %q", got, str)
				}
				if got := c.String(); got != str {
					t.Errorf("rendered %q, want %q", got, str)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no candidates in the vectors")
	}
}

// TestSTUNVectors checks every captured STUN datagram: FINGERPRINT and
// MESSAGE-INTEGRITY verify with the recorded keys, and our own encoder,
// given the same transaction id, tiebreaker and role, writes every
// connectivity check and response byte for byte as GNS did.
func TestSTUNVectors(t *testing.T) {
	checks, responses, servers := 0, 0, 0
	for _, r := range loadRuns(t) {
		for i, u := range r.UDP {
			if u.Kind != "STUN" {
				continue
			}
			t.Run(fmt.Sprintf("%s_%d", r.Name, i), func(t *testing.T) {
				raw, _ := hex.DecodeString(u.Hex)
				if !IsSTUN(raw) {
					t.Fatal("IsSTUN says no")
				}
				m := &stun.Message{Raw: append([]byte(nil), raw...)}
				if err := m.Decode(); err != nil {
					t.Fatal(err)
				}
				if err := stun.Fingerprint.Check(m); err != nil && m.Contains(stun.AttrFingerprint) {
					t.Fatalf("fingerprint: %v", err)
				}
				var key string
				var tb uint64
				controlling, useCand := false, false
				for _, a := range u.STUN.Attrs {
					switch a.Name {
					case "MESSAGE-INTEGRITY":
						key = a.Key
					case "ICE-CONTROLLING", "ICE-CONTROLLED":
						tb, _ = strconv.ParseUint(a.Tiebreaker, 10, 64)
						controlling = a.Name == "ICE-CONTROLLING"
					case "USE-CANDIDATE":
						useCand = true
					}
				}
				if key == "" {
					// A binding with a STUN server: no integrity.
					stunServerBinding(t, m, raw, u.Src, u.Dst, u.STUN.TypeName)
					servers++
					return
				}
				if err := stun.NewShortTermIntegrity(key).Check(m); err != nil {
					t.Fatalf("integrity with %q: %v", key, err)
				}
				var user stun.Username
				user.GetFrom(m)
				recvUfrag, sendUfrag, _ := bytes.Cut([]byte(user.String()), []byte(":"))
				switch u.STUN.TypeName {
				case "Binding request":
					checks++
					if r.Ufrags[u.DstIdentity] != string(recvUfrag) || r.Ufrags[u.SrcIdentity] != string(sendUfrag) {
						t.Fatalf("username %q: not <receiver>:<sender>", user)
					}
					if local, ok := Route(raw); !ok || local != r.Ufrags[u.DstIdentity] {
						t.Fatalf("Route says %q", local)
					}
					a := &Agent{cfg: Config{LocalUfrag: string(sendUfrag), Controlling: controlling, Tiebreaker: tb}}
					a.SetRemoteCredentials(string(recvUfrag), key)
					p := &pair{txID: m.TransactionID, useCand: useCand}
					if got := a.buildRequest(p); !bytes.Equal(got, raw) {
						t.Fatalf("our check\n %x\nGNS's\n %x", got, raw)
					}
				case "Binding success response":
					responses++
					from := netip.MustParseAddrPort(u.Dst) // the address the request came from
					a := &Agent{cfg: Config{LocalUfrag: string(recvUfrag), LocalPwd: key}}
					req := &stun.Message{TransactionID: m.TransactionID}
					if got := a.buildResponse(req, from, user); !bytes.Equal(got, raw) {
						t.Fatalf("our response\n %x\nGNS's\n %x", got, raw)
					}
					if local, ok := Route(raw); !ok || local != r.Ufrags[u.DstIdentity] {
						t.Fatalf("Route says %q", local)
					}
				}
			})
		}
	}
	if checks < 10 || responses < 4 || servers != 6 {
		t.Fatalf("%d checks, %d responses, %d with the STUN server", checks, responses, servers)
	}
}

// stunServerBinding checks a captured exchange with the STUN server: our
// request from the same socket with the same transaction id is GNS's byte
// for byte (MAPPED-ADDRESS with the local address, FINGERPRINT), and the
// server's answer gives a Gatherer its mapped address.
func stunServerBinding(t *testing.T, m *stun.Message, raw []byte, src, dst, typ string) {
	switch typ {
	case "Binding request":
		local := netip.MustParseAddrPort(src)
		if got := BindingRequestFrom(m.TransactionID, local); !bytes.Equal(got, raw) {
			t.Fatalf("our binding request\n %x\nGNS's\n %x", got, raw)
		}
		if local, ok := Route(raw); ok {
			t.Fatalf("Route found ufrag %q in a STUN server binding", local)
		}
	case "Binding success response":
		base, server := netip.MustParseAddrPort(dst), netip.MustParseAddrPort(src)
		g := NewGatherer(base, []netip.AddrPort{server}, nil)
		g.queries[0].tx, g.queries[0].pending = m.TransactionID, true
		if !g.HandleResponse(time.Unix(1, 0), server, raw) {
			t.Fatal("Gatherer refused the server's answer")
		}
		// The server saw the peer at its own address (one namespace), so
		// the candidate is "reflexive" at the host address, with GNS's
		// reflexive foundation.
		c := g.Candidates()
		if len(c) != 1 || c[0].Addr != base || c[0].Type != ServerReflexive || c[0].Foundation != Foundation(ServerReflexive, base, server) {
			t.Fatalf("candidates %v", c)
		}
	default:
		t.Fatalf("unexpected %s", typ)
	}
}

// TestFoundationRule: GNS's foundation formula on the captured sockets and
// on a reflexive candidate.
func TestFoundationRule(t *testing.T) {
	for _, c := range []struct {
		t          Type
		base, stun string
		want       string
	}{
		{Host, "10.99.0.1:34750", "", "37062591"},
		{Host, "10.99.0.1:50917", "", "37078758"},
		{Host, "10.99.0.1:36996", "", "37064837"},
		// (255+255+10+99+1 + 255+255+127+1) << 15 + 39421 + 3478 + 2
		{ServerReflexive, "10.99.0.1:39421", "127.0.0.1:3478", strconv.Itoa((620+638)<<15 + 39421 + 3478 + 2)},
	} {
		var stunAP netip.AddrPort
		if c.stun != "" {
			stunAP = netip.MustParseAddrPort(c.stun)
		}
		if got := Foundation(c.t, netip.MustParseAddrPort(c.base), stunAP); got != c.want {
			t.Errorf("%v %s %s: %s, want %s", c.t, c.base, c.stun, got, c.want)
		}
	}
}
