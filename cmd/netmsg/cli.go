package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netmsg-go/netmsg"
)

// usageError is a command line that cannot run: a bad flag value, a
// missing flag, a flag that needs another. main prints it on one line and
// exits with status 2, before anything has started.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// help is what `netmsg CMD -h` prints besides the flags.
type help struct {
	name     string   // "ping"
	summary  string   // one line
	desc     string   // a paragraph or two, each line ending in "\n"
	examples []string // full command lines, at least two
}

// newFlags returns a flag set that prints nothing by itself: parseFlags
// prints the help on -h, and main prints a bad flag's error.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args into fs. On -h it prints h and the flags to out
// and returns flag.ErrHelp; a flag that does not parse, or an argument
// left over, is a usageError.
func parseFlags(fs *flag.FlagSet, h help, args []string, out io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(out, fs, h)
		return flag.ErrHelp
	case err != nil:
		return &usageError{err.Error()}
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	return nil
}

func printHelp(out io.Writer, fs *flag.FlagSet, h help) {
	fmt.Fprintf(out, "netmsg %s: %s\n\n%s\nusage: netmsg %s [flags]\n\nflags:\n", h.name, h.summary, h.desc, h.name)
	fs.SetOutput(out)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(out, "\nexamples:\n")
	for _, e := range h.examples {
		fmt.Fprintf(out, "  %s\n", e)
	}
}

// positive refuses a zero or negative duration flag.
func positive(flagName string, d time.Duration) error {
	if d <= 0 {
		return usagef("--%s must be positive (got %v)", flagName, d)
	}
	return nil
}

// resolveAddr reads a flag holding HOST:PORT: an IP address in any form
// GNS accepts ("1.2.3.4:5", "[::1]:5") or a host name, which is resolved
// (an IPv4 address is preferred). A missing port is defaultPort, or an
// error when defaultPort is 0. Errors are usageErrors naming the flag.
func resolveAddr(ctx context.Context, flagName, s string, defaultPort uint16) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, usagef("--%s is empty (want HOST:PORT)", flagName)
	}
	if ap, err := netmsg.ParseIPAddr(s); err == nil {
		return withPort(flagName, s, ap, defaultPort)
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort == 0 || strings.Contains(s, ":") {
			return netip.AddrPort{}, usagef("--%s %q: want HOST:PORT", flagName, s)
		}
		host, portStr = s, strconv.Itoa(int(defaultPort))
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, usagef("--%s %q: bad port %q", flagName, s, portStr)
	}
	if host == "" {
		return netip.AddrPort{}, usagef("--%s %q: no host (want HOST:PORT)", flagName, s)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return withPort(flagName, s, netip.AddrPortFrom(a.Unmap().WithZone(""), uint16(port)), defaultPort)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, usagef("--%s: cannot resolve %q: %v", flagName, host, err)
	}
	a := addrs[0]
	for _, x := range addrs {
		if x.Unmap().Is4() {
			a = x
			break
		}
	}
	return withPort(flagName, s, netip.AddrPortFrom(a.Unmap(), uint16(port)), defaultPort)
}

func withPort(flagName, s string, ap netip.AddrPort, defaultPort uint16) (netip.AddrPort, error) {
	if ap.Port() == 0 {
		if defaultPort == 0 {
			return netip.AddrPort{}, usagef("--%s %q: no port (want HOST:PORT)", flagName, s)
		}
		ap = netip.AddrPortFrom(ap.Addr(), defaultPort)
	}
	return ap, nil
}

// parseListen reads a local UDP address flag: ":PORT" or "PORT" (every
// interface), or IP:PORT.
func parseListen(flagName, s string) (netip.AddrPort, error) {
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	if strings.HasPrefix(s, ":") {
		s = "[::]" + s
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, usagef("--%s %q: want IP:PORT, :PORT or PORT", flagName, s)
	}
	return ap, nil
}

// certFlags are the options a Host's certificate comes from, the same in
// netmsg ping and netmsg chat.
type certFlags struct {
	cert, key string
	cas       stringList
	app       uint
}

func (c *certFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.cert, "cert", "", "certificate `file` to present (netmsg cert issue); needs --key unless the file holds the key")
	fs.StringVar(&c.key, "key", "", "Ed25519 private key `file` (OpenSSH format); alone, an unsigned certificate is made for it (default: a new random key)")
	fs.Var(&c.cas, "ca", "trust certificates signed by this CA public key `file` (the .pub of netmsg cert ca) and require peers to present one; repeatable")
	fs.UintVar(&c.app, "app", 0, "app `ID` of this Host; a peer's certificate that lists app IDs must list it")
}

// load reads the files. It returns the certificate (nil for none), the key
// (nil for a random one) and the trusted CAs. A certificate that has
// expired, or is not yet valid, is refused here: peers would refuse it.
func (c *certFlags) load(now time.Time) (cert []byte, key ed25519.PrivateKey, cas []ed25519.PublicKey, err error) {
	if c.app > 0xffffffff {
		return nil, nil, nil, usagef("--app %d: over 32 bits", c.app)
	}
	var keyPEM []byte
	if c.key != "" {
		if keyPEM, err = os.ReadFile(c.key); err != nil {
			return nil, nil, nil, usagef("--key: %v", err)
		}
	}
	switch {
	case c.cert != "":
		certPEM, err := os.ReadFile(c.cert)
		if err != nil {
			return nil, nil, nil, usagef("--cert: %v", err)
		}
		if cert, key, err = netmsg.LoadCertificate(certPEM, keyPEM); err != nil {
			if c.key == "" {
				return nil, nil, nil, usagef("--cert %s: %v (give its private key with --key)", c.cert, err)
			}
			return nil, nil, nil, usagef("--cert %s, --key %s: %v", c.cert, c.key, err)
		}
		if err := netmsg.CheckCertificateTime(cert, now); err != nil {
			return nil, nil, nil, usagef("--cert %s: %v", c.cert, err)
		}
	case c.key != "":
		if key, err = netmsg.ParsePrivateKey(keyPEM); err != nil {
			return nil, nil, nil, usagef("--key %s: %v", c.key, err)
		}
	}
	for _, f := range c.cas {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, nil, usagef("--ca: %v", err)
		}
		k, err := netmsg.ParseAuthorizedKey(b)
		if err != nil {
			return nil, nil, nil, usagef("--ca %s: %v", f, err)
		}
		cas = append(cas, k)
	}
	return cert, key, cas, nil
}

// errorLine renders err for the command cmd as one line without repeated
// prefixes: "netmsg" and cmd segments are dropped, since main prints
// "netmsg CMD: " before it, and a segment equal to the one before it
// ("signaling: signaling: ...") is said once.
func errorLine(cmd string, err error) string {
	parts := strings.Split(strings.ReplaceAll(err.Error(), "\n", " "), ": ")
	kept := parts[:0]
	for _, p := range parts {
		if p == "netmsg" || p == cmd || (len(kept) > 0 && kept[len(kept)-1] == p) {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return err.Error()
	}
	return strings.Join(kept, ": ")
}
