package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// netmsg cert makes and reads the certificates a Host presents, in the
// files GNS's certificate tool (steamnetworkingsockets_certtool) writes:
//
//	netmsg cert ca --out ca.key                    a CA key (and ca.key.pub)
//	netmsg cert issue --ca ca.key --identity str:alice --app 480 --out alice.cert
//	netmsg cert inspect [--ca ca.key.pub] alice.cert
//
// A certificate file is a STEAMDATAGRAM CERT block, a key an OpenSSH
// Ed25519 private key, a public key an authorized_keys line; see
// netmsg.LoadCertificate. Unlike GNS's tool, which issues certificates
// without an identity (for keys shared by game servers), issue binds the
// certificate to one identity, as GNS's peers require of a CA-signed
// certificate.

const certUsage = `usage: netmsg cert <command> [flags]

commands:
  ca       create a certificate authority key
           (--out FILE; writes FILE and FILE.pub)
  issue    issue a certificate signed by a CA
           (--ca KEY --identity ID [--key KEY] [--app N]... [--pop CODE]...
            [--expiry D] --out FILE)
  inspect  print what a certificate or key file holds
           ([--ca KEY] FILE)
`

var (
	certCAHelp = help{
		name:    "cert ca",
		summary: "create a certificate authority key",
		desc: `Writes a new Ed25519 CA private key to --out (OpenSSH format, mode 0600)
and its public key to --out.pub (an authorized_keys line). Keep the
private key secret; give the .pub file to Hosts that should trust the
certificates it signs (--ca of netmsg ping, chat and signal).
`,
		examples: []string{"netmsg cert ca --out ca.key", "netmsg cert ca --out ca.key --force"},
	}
	certIssueHelp = help{
		name:    "cert issue",
		summary: "issue a certificate signed by a CA",
		desc: `Signs a certificate that binds --identity to the holder's key (--key,
created if the file does not exist) for the given app IDs and lifetime,
and writes it to --out as a STEAMDATAGRAM CERT block, which GNS reads too.
`,
		examples: []string{
			"netmsg cert issue --ca ca.key --identity str:alice --out alice.cert",
			"netmsg cert issue --ca ca.key --identity str:server --key server.key --app 480 --expiry 30d --out server.cert",
		},
	}
	certInspectHelp = help{
		name:    "cert inspect",
		summary: "print what a certificate or key file holds",
		desc: `Prints a certificate's identity, key, times, app and PoP IDs and CA, or a
key file's public key and key ID. With --ca, checks the CA signature and
exits 1 if it does not verify.
`,
		examples: []string{"netmsg cert inspect alice.cert", "netmsg cert inspect --ca ca.key.pub alice.cert"},
	}
)

func runCert(args []string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("give a command: ca, issue or inspect (netmsg cert help)")
	}
	switch args[0] {
	case "ca":
		fl := newFlags("cert ca")
		o := fl.String("out", "", "write the CA private key to this `file` (and its public key to file.pub) (required)")
		force := fl.Bool("force", false, "overwrite existing files")
		if err := parseFlags(fl, certCAHelp, args[1:], out); err != nil {
			return err
		}
		if *o == "" {
			return usagef("--out FILE is required")
		}
		return certCA(*o, *force, out)
	case "issue":
		fl := newFlags("cert issue")
		var o issueOptions
		fl.StringVar(&o.CA, "ca", "", "the CA's private key `file`")
		fl.StringVar(&o.Identity, "identity", "", "the `identity` the certificate names (str:alice, steamid:N, ...)")
		fl.StringVar(&o.Key, "key", "", "the holder's private key `file`, created if absent (default: --out with .key for its extension)")
		fl.Var((*appList)(&o.Apps), "app", "an app `ID` the certificate is valid for; repeat or separate with commas (default 0, netmsg's default AppID)")
		fl.Var((*popList)(&o.DataCenters), "pop", "a data center (GNS PoP) `code` of 3 or 4 letters the certificate names, e.g. iad; repeat or separate with commas (default none)")
		exp := fl.String("expiry", "", "lifetime: a Go `duration` (720h) or days (30d) (default 730d, GNS's)")
		fl.StringVar(&o.Out, "out", "", "write the certificate to this `file` (required)")
		if err := parseFlags(fl, certIssueHelp, args[1:], out); err != nil {
			return err
		}
		if *exp != "" {
			d, err := parseLifetime(*exp)
			if err != nil {
				return err
			}
			o.Expiry = d
		}
		o.Now = time.Now()
		return certIssue(o, out)
	case "inspect":
		fl := newFlags("cert inspect")
		ca := fl.String("ca", "", "check the CA signature with this CA key `file` (private key or .pub)")
		// The file comes after the flags.
		var file string
		rest := args[1:]
		if n := len(rest); n > 0 && !strings.HasPrefix(rest[n-1], "-") {
			file, rest = rest[n-1], rest[:n-1]
		}
		if err := parseFlags(fl, certInspectHelp, rest, out); err != nil {
			return err
		}
		if file == "" {
			return usagef("give one FILE to inspect")
		}
		return certInspect(file, *ca, time.Now(), out)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(out, certUsage)
		return flag.ErrHelp
	}
	return usagef("unknown command %q (ca, issue or inspect)", args[0])
}

// certCA creates a CA key at path and its public key at path.pub, and
// prints the public key and its key ID.
func certCA(path string, force bool, out io.Writer) error {
	key, err := netmsg.NewCAKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	comment := keyComment(pub)
	if err := writeNew(path, netmsg.MarshalPrivateKey(key, comment), 0o600, force); err != nil {
		return err
	}
	line := netmsg.MarshalAuthorizedKey(pub, comment)
	if err := writeNew(path+".pub", []byte(line+"\n"), 0o644, force); err != nil {
		return err
	}
	fmt.Fprintf(out, "Public key . . . : %s\n", line)
	fmt.Fprintf(out, "Key ID . . . . . : %d\n", netmsg.CAKeyID(pub))
	fmt.Fprintf(out, "Wrote %s (keep it secret) and %s (give it to hosts as a trusted CA)\n", path, path+".pub")
	return nil
}

// issueOptions are the inputs of certIssue.
type issueOptions struct {
	CA       string   // CA private key file
	Identity string   // identity the certificate names
	Key      string   // holder's key file; created if absent
	Apps     []uint32 // app IDs; none means {0}
	// DataCenters are the data center (PoP) IDs; none names none.
	DataCenters []uint32
	Expiry      time.Duration // lifetime; 0 means netmsg.DefaultCertLifetime
	Out         string        // certificate file
	Now         time.Time     // the creation time
}

// certIssue issues a certificate: the holder's key (loaded, or created),
// the identity, the app IDs, created now and expiring Expiry later, signed
// by the CA.
func certIssue(o issueOptions, out io.Writer) error {
	if o.CA == "" || o.Identity == "" || o.Out == "" {
		return usagef("--ca, --identity and --out are required")
	}
	id, err := netmsg.ParseIdentity(o.Identity)
	if err != nil {
		return usagef("--identity: %v", err)
	}
	if id.IsLocalhost() {
		return usagef("--identity %v: the localhost identity is anonymous and needs no certificate", id)
	}
	caKey, err := readPrivateKey(o.CA)
	if err != nil {
		return err
	}
	if o.Key == "" {
		o.Key = strings.TrimSuffix(o.Out, ".cert") + ".key"
		if o.Key == o.Out {
			o.Key = o.Out + ".key"
		}
	}
	key, err := readPrivateKey(o.Key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if key, err = crypto.GenerateIdentityKey(nil); err != nil {
			return err
		}
		pub := key.Public().(ed25519.PublicKey)
		if err := writeNew(o.Key, netmsg.MarshalPrivateKey(key, keyComment(pub)), 0o600, false); err != nil {
			return err
		}
		fmt.Fprintf(out, "Created key %s\n", o.Key)
	case err != nil:
		return err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	b, err := netmsg.IssueCertificate(caKey, netmsg.CertTemplate{
		Identity:      id,
		PublicKey:     key.Public().(ed25519.PublicKey),
		AppIDs:        o.Apps,
		DataCenterIDs: o.DataCenters,
		Created:       o.Now,
		Lifetime:      o.Expiry,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.Out, netmsg.MarshalCertificatePEM(b), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "Wrote %s\n", o.Out)
	return printCert(out, b, caKey.Public().(ed25519.PublicKey), o.Now)
}

// certInspect prints what the certificate, private key or public key in
// path holds. With caPath, a certificate's CA signature is checked against
// that CA key, and a signature that does not verify is an error.
func certInspect(path, caPath string, now time.Time, out io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var ca ed25519.PublicKey
	if caPath != "" {
		if ca, err = readPublicKey(caPath); err != nil {
			return err
		}
	}
	if cert, err := netmsg.ParseCertificatePEM(b); err == nil {
		return printCert(out, cert, ca, now)
	}
	if key, err := netmsg.ParsePrivateKey(b); err == nil {
		pub := key.Public().(ed25519.PublicKey)
		fmt.Fprintf(out, "Private key\n")
		fmt.Fprintf(out, "  Public key . . . : %s\n", netmsg.MarshalAuthorizedKey(pub, keyComment(pub)))
		fmt.Fprintf(out, "  Key ID . . . . . : %d\n", crypto.KeyID(pub))
		return nil
	}
	if pub, err := netmsg.ParseAuthorizedKey(b); err == nil {
		fmt.Fprintf(out, "Public key\n")
		fmt.Fprintf(out, "  Public key . . . : %s\n", netmsg.MarshalAuthorizedKey(pub, keyComment(pub)))
		fmt.Fprintf(out, "  Key ID . . . . . : %d\n", crypto.KeyID(pub))
		return nil
	}
	return fmt.Errorf("cert inspect: %s holds no certificate, OpenSSH Ed25519 private key or authorized_keys line", path)
}

// printCert prints a serialized CertificateSigned. With ca set, it checks
// the signature (and returns an error if it does not verify).
func printCert(out io.Writer, cert []byte, ca ed25519.PublicKey, now time.Time) error {
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		return fmt.Errorf("cert: certificate body: %w", err)
	}
	fmt.Fprintf(out, "Certificate\n")
	ident, ok, err := crypto.CertIdentity(&c)
	switch {
	case err != nil:
		fmt.Fprintf(out, "  Identity . . . . : invalid (%v)\n", err)
	case !ok:
		fmt.Fprintf(out, "  Identity . . . . : none (a key shared by game servers)\n")
	default:
		fmt.Fprintf(out, "  Identity . . . . : %s\n", ident)
	}
	pub := ed25519.PublicKey(c.GetKeyData())
	if c.GetKeyType() == pb.Certificate_ED25519 && len(pub) == ed25519.PublicKeySize {
		fmt.Fprintf(out, "  Public key . . . : %s\n", netmsg.MarshalAuthorizedKey(pub, keyComment(pub)))
		fmt.Fprintf(out, "  Key ID . . . . . : %d\n", crypto.KeyID(pub))
	} else {
		fmt.Fprintf(out, "  Public key . . . : invalid (type %v, %d bytes)\n", c.GetKeyType(), len(pub))
	}
	if c.TimeCreated != nil {
		fmt.Fprintf(out, "  Created. . . . . : %s\n", certTime(c.GetTimeCreated()))
	}
	if c.TimeExpiry != nil {
		exp := certTime(c.GetTimeExpiry())
		if time.Unix(int64(c.GetTimeExpiry()), 0).Before(now) {
			exp += " EXPIRED"
		}
		fmt.Fprintf(out, "  Expires. . . . . : %s\n", exp)
	}
	if len(c.AppIds) > 0 {
		fmt.Fprintf(out, "  App ID(s). . . . : %s\n", joinUints(c.AppIds))
	}
	if len(c.GameserverDatacenterIds) > 0 {
		fmt.Fprintf(out, "  POP ID(s). . . . : %s\n", joinPOPs(c.GameserverDatacenterIds))
	}
	if cs.CaSignature == nil {
		fmt.Fprintf(out, "  CA key ID. . . . : none\n")
		fmt.Fprintf(out, "  Signature. . . . : none (unsigned certificate)\n")
		if ca != nil {
			return errors.New("cert: the certificate is not signed")
		}
		return nil
	}
	fmt.Fprintf(out, "  CA key ID. . . . : %d\n", cs.GetCaKeyId())
	if ca == nil {
		fmt.Fprintf(out, "  Signature. . . . : not checked (give --ca)\n")
		return nil
	}
	switch {
	case cs.GetCaKeyId() != crypto.KeyID(ca):
		fmt.Fprintf(out, "  Signature. . . . : INVALID: signed by CA key %d, not %d\n", cs.GetCaKeyId(), crypto.KeyID(ca))
		return errors.New("cert: signed by another CA")
	case !ed25519.Verify(ca, cs.GetCert(), cs.GetCaSignature()):
		fmt.Fprintf(out, "  Signature. . . . : INVALID\n")
		return errors.New("cert: the CA signature does not verify")
	}
	fmt.Fprintf(out, "  Signature. . . . : valid, CA key %d\n", crypto.KeyID(ca))
	return nil
}

func certTime(s uint32) string {
	return fmt.Sprintf("%s (%d)", time.Unix(int64(s), 0).UTC().Format(time.RFC3339), s)
}

func joinUints(v []uint32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatUint(uint64(x), 10)
	}
	return strings.Join(s, " ")
}

// keyComment is the comment GNS's tool gives a key: "ID" and the key ID.
func keyComment(pub ed25519.PublicKey) string {
	return "ID" + strconv.FormatUint(crypto.KeyID(pub), 10)
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := netmsg.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// readPublicKey reads a public key from an authorized_keys line or a
// private key file.
func readPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if pub, err := netmsg.ParseAuthorizedKey(b); err == nil {
		return pub, nil
	}
	key, err := netmsg.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: neither an authorized_keys line nor a private key: %w", path, err)
	}
	return key.Public().(ed25519.PublicKey), nil
}

// writeNew writes a file, refusing to replace one unless force is set.
func writeNew(path string, b []byte, perm os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists (use --force to replace it)", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parseLifetime reads a Go duration or a whole number of days ("30d", or
// "30" as GNS's --expiry takes it).
func parseLifetime(s string) (time.Duration, error) {
	days := strings.TrimSuffix(s, "d")
	if n, err := strconv.Atoi(days); err == nil {
		if n <= 0 {
			return 0, usagef("--expiry %q: must be positive", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("--expiry %q: want a duration like 720h, or days like 30d", s)
	}
	return d, nil
}

// appList is a repeatable --app flag taking one or more comma-separated
// app IDs.
type appList []uint32

func (a *appList) String() string {
	if a == nil {
		return ""
	}
	return joinUints(*a)
}

func (a *appList) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return fmt.Errorf("bad app ID %q", f)
		}
		*a = append(*a, uint32(v))
	}
	return nil
}

// popList is a repeatable --pop flag taking one or more comma-separated
// data center codes, packed as GNS packs them
// (CalculateSteamNetworkingPOPIDFromString: the first three characters in
// bits 16, 8 and 0, a fourth in bits 24).
type popList []uint32

func (p *popList) String() string {
	if p == nil {
		return ""
	}
	return joinPOPs(*p)
}

func (p *popList) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if len(f) < 3 || len(f) > 4 {
			return fmt.Errorf("bad PoP code %q (3 or 4 characters, e.g. iad)", f)
		}
		for i := 0; i < len(f); i++ {
			if c := f[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				return fmt.Errorf("bad PoP code %q (lowercase letters and digits)", f)
			}
		}
		id := uint32(f[0])<<16 | uint32(f[1])<<8 | uint32(f[2])
		if len(f) == 4 {
			id |= uint32(f[3]) << 24
		}
		*p = append(*p, id)
	}
	return nil
}

// joinPOPs renders data center IDs as their codes, as GNS's tool prints
// them.
func joinPOPs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		b := []byte{byte(id >> 16), byte(id >> 8), byte(id)}
		if id>>24 != 0 {
			b = append(b, byte(id>>24))
		}
		s[i] = string(b)
	}
	return strings.Join(s, " ")
}
