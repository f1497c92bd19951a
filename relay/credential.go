package relay

import (
	"net"

	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"strconv"
	"strings"
	"time"
)

// RESTCredential returns a TURN credential in the TURN REST API scheme that
// coturn implements as use-auth-secret / static-auth-secret: username is
// the expiry as Unix seconds, followed by ":" and user when user is not
// empty, and password is the standard base64 of HMAC-SHA1(secret,
// username). A server holding the same secret (a Server with
// Config.AuthSecrets, or coturn) accepts it until expires and refuses it
// after. It is a pure function, safe to call concurrently.
func RESTCredential(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseRESTUsername splits a TURN REST username into its expiry and user
// part. The user part is empty when username has none; ok is false when
// username does not start with a decimal Unix time.
func parseRESTUsername(username string) (expires time.Time, user string, ok bool) {
	ts, user, _ := strings.Cut(username, ":")
	if ts == "" || len(ts) > 19 {
		return time.Time{}, "", false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return time.Time{}, "", false
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), user, true
}

// authenticate is pion's AuthHandler: it returns the long-term key of a
// static user or of a TURN REST credential, and the user ID allocations
// are counted under (the user part of a REST username, or the whole
// username when it has none). A wrong password is found later by pion's
// integrity check, reported through the OnAuth event.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	if ra.Method == stun.MethodAllocate {
		s.allocUsername = ra.Username
	}
	if k, ok := s.keys[ra.Username]; ok {
		return ra.Username, k, true
	}
	expires, user, ok := parseRESTUsername(ra.Username)
	if !ok || len(s.cfg.AuthSecrets) == 0 {
		s.authUnknown.Add(1)
		s.logLimited("auth", "relay: authentication failed", "client", ra.SrcAddr.String(), "username", ra.Username, "method", ra.Method.String(), "reason", "unknown user")
		return "", nil, false
	}
	if s.cfg.Now().After(expires) && !s.allocatedWith(ra.SrcAddr, ra.Username) {
		s.authExpired.Add(1)
		s.logLimited("auth", "relay: authentication failed", "client", ra.SrcAddr.String(), "username", ra.Username, "method", ra.Method.String(), "reason", "expired")
		return "", nil, false
	}
	secret := s.cfg.AuthSecrets[0]
	if s.secretUser == ra.Username {
		secret = s.cfg.AuthSecrets[s.secretIdx]
	}
	if user == "" {
		user = ra.Username
	}
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, restPassword(secret, ra.Username)), true
}

// allocatedWith reports whether client holds an allocation made with
// username. Credentials are checked for expiry when an allocation is
// made, as coturn does: once made, it is refreshed, and its permissions
// and channels made, with the credential it was made with (a TURN client
// cannot change it), until it ends.
func (s *Server) allocatedWith(client net.Addr, username string) bool {
	s.quota.Lock()
	defer s.quota.Unlock()
	return s.quota.username[client.String()] == username
}

// secretConn is the server's socket when there are several auth secrets:
// for each STUN request carrying a REST username and a MESSAGE-INTEGRITY,
// it finds the secret that the integrity verifies with before pion's read
// loop (the only reader) hands the request to authenticate.
type secretConn struct {
	net.PacketConn
	s *Server
}

func (c *secretConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	c.s.secretUser, c.s.secretIdx = "", 0
	if err != nil || n < 20 || b[0]&0xc0 != 0 || !stun.IsMessage(b[:n]) {
		return n, addr, err
	}
	m := &stun.Message{Raw: append([]byte(nil), b[:n]...)}
	if m.Decode() != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return n, addr, err
	}
	var uname stun.Username
	var realm stun.Realm
	if uname.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return n, addr, err
	}
	if _, _, ok := parseRESTUsername(uname.String()); !ok {
		return n, addr, err
	}
	for i, sec := range c.s.cfg.AuthSecrets {
		key := turn.GenerateAuthKey(uname.String(), realm.String(), restPassword(sec, uname.String()))
		if stun.MessageIntegrity(key).Check(m) == nil {
			c.s.secretUser, c.s.secretIdx = uname.String(), i
			break
		}
	}
	return n, addr, err
}
