// Command sigbench measures the signaling service (package signaling) on
// this machine: three nodes on NATS holding many clients, and one node
// with the same load for comparison.
//
//	sigbench run [--clients 20000] [--nodes 3] [--out results/signaling-cluster-DATE.md]
//	sigbench run --small                    # 300 clients, short phases (the test runs this)
//	sigbench node [--nats URL]              # one signaling node (started by run)
//	sigbench nats [--servers 3]             # embedded NATS servers in one process (started by run)
//	sigbench hold --addrs A,B,C --from I --to J ...  # holds clients I..J-1 (started by run)
//
// run starts every node as a process of its own (and, for the cluster,
// one process holding an embedded three-node NATS cluster), holds the
// clients itself and measures, in order: the nodes' resident memory
// before and after the clients connect (after a garbage collection in
// each node), the signals forwarded per second between clients on
// different nodes and on the same node, the forward latency at half those
// rates, and how long the cluster takes to release a killed node's
// identities. See the package's README section in docs/benchmarks.md.
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  sigbench run [--clients N] [--auth-share F] [--nodes N] [--pairs N] [--window N] [--dur D] [--small] [--out FILE.md]
  sigbench node [--nats URL] [--listen ADDR] [--ca HEX] [--max-clients N]
  sigbench nats [--servers N]
  sigbench hold --addrs A,B,C --ca-key HEX --from I --to J [--sources N] [--auth-share F] [--conc N]
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "node":
		err = nodeCmd(os.Args[2:])
	case "nats":
		err = natsCmd(os.Args[2:])
	case "hold":
		err = holdCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigbench:", err)
		os.Exit(1)
	}
}
