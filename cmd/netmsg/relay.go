package main

import (
	"errors"
	"io"
)

// runRelay runs the STUN and TURN server (netmsg relay --listen ADDR).
func runRelay(args []string, out io.Writer) error {
	return errors.New("relay: not built yet")
}
