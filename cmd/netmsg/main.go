// Command netmsg is the netmsg command line:
//
//	netmsg demo    three hosts talk through the Messages API over a lossy in-memory network
//	netmsg chat    a chat server or client compatible with GNS's example_chat
//	netmsg cert    make and inspect CA keys and certificates
//	netmsg signal  a signaling server (GNS's trivial protocol and netmsg's own)
//	netmsg relay   an embedded STUN and TURN server
//	netmsg ping    a Messages peer over P2P, for checks by hand
//
// Every command checks all its flags before it starts anything. Exit
// status: 0 on success (and for -h), 1 when the command failed, 2 for a
// bad command line; errors are one line on standard error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `netmsg: Steam-style Networking Messages in pure Go (GameNetworkingSockets' wire protocol)

usage: netmsg <command> [flags]      (netmsg <command> -h for its flags and examples)

commands:
  demo    three hosts talk through the Messages API over a lossy in-memory network
  chat    a chat server (--listen PORT) or client (--connect HOST:PORT),
          compatible with GameNetworkingSockets' example_chat
  cert    make and inspect CA keys and certificates (netmsg cert help)
  signal  a signaling server for P2P (TCP, default 127.0.0.1:10000)
  relay   a STUN and TURN server (UDP, default 127.0.0.1:3478)
  ping    a Messages peer over P2P: ping another, or answer pings
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	var err error
	switch cmd {
	case "demo":
		err = runDemo(args[1:], stdout)
	case "chat":
		err = runChat(args[1:], stdin, stdout)
	case "cert":
		err = runCert(args[1:], stdout)
	case "signal":
		err = runSignal(args[1:], stdout)
	case "ping":
		err = runPing(args[1:], stdout)
	case "relay":
		err = runRelay(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "netmsg: unknown command %q (run netmsg -h for the list)\n", cmd)
		return 2
	}
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "netmsg %s: %s (see netmsg %s -h)\n", cmd, errorLine(cmd, err), cmd)
		return 2
	}
	fmt.Fprintf(stderr, "netmsg %s: %s\n", cmd, errorLine(cmd, err))
	return 1
}
