// Command netmsg is the netmsg command line:
//
//	netmsg demo    three hosts talk through the Messages API over a lossy in-memory network
//	netmsg chat    a chat server or client compatible with GNS's example_chat
//	netmsg cert    make and inspect CA keys and certificates
//	netmsg signal  a signaling server (GNS's trivial protocol and netmsg's own)
//	netmsg relay   an embedded STUN and TURN server
//	netmsg ping    a Messages peer over P2P, for checks by hand
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage: netmsg <command> [flags]

commands:
  demo    three hosts talk through the Messages API over a lossy in-memory network
  chat    a chat server (--listen :PORT) or client (--connect HOST:PORT),
          compatible with GameNetworkingSockets' example_chat
  cert    make and inspect CA keys and certificates (netmsg cert help)
  signal  a signaling server for P2P (netmsg signal --listen ADDR)
  relay   a STUN and TURN server (--listen ADDR --user U:P)
  ping    a Messages peer over P2P: ping another (--identity ID --peer ID
          --signaling ADDR [--stun ADDR] [--turn ADDR --turn-user U
          --turn-pass P] [--count N] [--channel C]), or answer (--count 0)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "demo":
		err = runDemo(os.Args[2:], os.Stdout)
	case "chat":
		err = runChat(os.Args[2:], os.Stdin, os.Stdout)
	case "cert":
		err = runCert(os.Args[2:], os.Stdout)
	case "signal":
		err = runSignal(os.Args[2:], os.Stdout)
	case "ping":
		err = runPing(os.Args[2:], os.Stdout)
	case "relay":
		err = runRelay(os.Args[2:], os.Stdout)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "netmsg: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netmsg:", err)
		os.Exit(1)
	}
}
