package driver

import "github.com/netmsg-go/netmsg/bench/machine"

// Machine describes where and how a run was taken (package machine).
type Machine = machine.Machine

// ThisMachine is machine.This.
func ThisMachine(args []string) Machine { return machine.This(args) }
