// Command netmsg is the netmsg command line. Today it has one subcommand:
//
//	netmsg demo    two peers exchange messages over a lossy in-memory network
//
// Later issues add chat, signal, relay, ping, bench and cert.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage: netmsg <command> [flags]

commands:
  demo    run two peers over a lossy in-memory network and check delivery
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
