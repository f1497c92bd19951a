// Command netmsg is the netmsg command line: demo, and later chat, signal,
// relay, bench and cert.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "demo" {
		fmt.Fprintln(os.Stderr, "usage: netmsg demo")
		os.Exit(2)
	}
	fmt.Println("netmsg demo: not yet built")
}
