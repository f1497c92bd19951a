// Package pb holds the protobuf messages of the GNS wire protocol that netmsg
// speaks (direct-UDP handshake and control messages, certificates, session
// crypt info, inline statistics) and the framing of control datagrams.
//
// The .proto files are netmsg's own, written from the wire facts of
// GameNetworkingSockets (field numbers, types and proto2 presence); the Go
// code is generated from them and committed, so building needs no protoc.
// Regenerate with `go generate ./internal/pb` (needs protoc and
// protoc-gen-go v1.36.12 on PATH).
//
// Everything here is pure: no I/O, no goroutines.
package pb

//go:generate sh -c "cd ../.. && protoc --go_out=. --go_opt=module=github.com/netmsg-go/netmsg internal/pb/certs.proto internal/pb/messages.proto internal/pb/udp.proto internal/pb/p2p.proto"
