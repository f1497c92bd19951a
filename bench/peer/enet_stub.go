//go:build !cgo || noenet

package peer

import (
	"context"
	"errors"
)

// enetPeer stands for ENet in a build without it (cgo off, or the tag
// noenet for a machine without libenet-dev): its Caps say it is
// unavailable, and Listen and Dial fail.
type enetPeer struct{}

func init() { Register(enetPeer{}) }

// errENetUnavailable is returned by Listen and Dial.
var errENetUnavailable = errors.New("enet: unavailable: built without cgo or with -tags noenet (ENet needs cgo and libenet-dev)")

func (enetPeer) Name() string { return enetName }

func (enetPeer) Caps() Caps {
	return Caps{Reliable: true, Unreliable: true, Note: enetNote, Unavailable: "unavailable (built without cgo or with -tags noenet)"}
}

func (enetPeer) Listen(context.Context, string, Options) (Listener, error) {
	return nil, errENetUnavailable
}

func (enetPeer) Dial(context.Context, string, Options) (Conn, error) {
	return nil, errENetUnavailable
}
