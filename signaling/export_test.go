package signaling

import "net"

// ParseLineForTest exposes the signal line parser to the fuzz target; it
// panics if the parser accepts a line it should not.
func ParseLineForTest(b []byte) (string, []byte, error) {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	id, blob, err := parseLine(b)
	if err == nil {
		if CheckIdentity(id) != nil || len(blob) > MaxBlobSize {
			panic("parseLine accepted a bad line")
		}
	}
	return id, blob, err
}

// ParseAuthLinesForTest runs the authenticated protocol's line parsers on
// b; it panics if one accepts what it should not.
func ParseAuthLinesForTest(b []byte) {
	id, cert, ok, err := parseHello(b)
	if ok && err == nil && (CheckIdentity(id) != nil || len(cert) == 0 || len(cert) > MaxBlobSize) {
		panic("parseHello accepted a bad hello")
	}
	if !ok && (err != nil || id != "" || cert != nil) {
		panic("parseHello returned something for a non-hello")
	}
	for _, w := range []struct {
		word string
		n    int
	}{{authChallenge, challengeLen}, {authProof, 64}} {
		if v, err := parseWordHex(b, w.word, w.n); err == nil && len(v) != w.n {
			panic("parseWordHex returned the wrong length")
		}
	}
}

// ServeConnForTest makes s serve one connection (a net.Pipe end in
// tests) as if Serve had accepted it.
func ServeConnForTest(s *Server, c net.Conn) { s.serveConn(c) }

// KillForTest ends s as a crashed node would: it leaves NATS first, so
// the rest of the cluster hears nothing of its clients' departures.
func KillForTest(s *Server) {
	if s.cl != nil {
		s.cl.nc.Close()
	}
	s.Close()
}
