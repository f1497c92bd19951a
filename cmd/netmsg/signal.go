package main

import (
	"errors"
	"io"
)

// runSignal runs the signaling server (netmsg signal --listen ADDR).
func runSignal(args []string, out io.Writer) error {
	return errors.New("signal: not built yet")
}
