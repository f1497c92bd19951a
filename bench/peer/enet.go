package peer

// enetName is the ENet peer's name on the command line. The adapter is
// enet_cgo.go (cgo and Debian's libenet-dev, ENet 1.3.17); a build without
// cgo, or with the tag noenet, registers enet_stub.go instead, whose Caps
// say the peer is unavailable.
const enetName = "enet"

// enetSendLimit is the ENet adapter's back-pressure: SendReliable and
// SendUnreliable block while the bytes of the packets ENet holds for the
// peer (queued, or sent and not yet acknowledged; an unreliable packet
// until it is sent) exceed it. ENet itself queues without a limit; 1 MiB
// is twice netmsg's default send buffer (512 KiB) and 16 times ENet's
// largest reliable window (64 KiB in flight), so the window never starves.
const enetSendLimit = 1 << 20

// enetSendPackets is the back-pressure's limit in packets, which is what
// matters for small messages: ENet 1.3.17 walks its whole outgoing queue on
// every service call (past the commands the reliable window holds back, to
// find unreliable ones), so a queue of thousands of packets costs more
// than the sends. 2,048 is twice what the 64 KiB window holds in flight at
// 64 B per message.
const enetSendPackets = 2048

// enetServiceEvery is how many bytes the sender queues between two
// enet_host_service calls (which send what the window allows and read the
// acknowledgements), as a game loop would service its host every frame.
// Under NoDelay every send is flushed at once instead.
const enetServiceEvery = 16 << 10

// enetNote describes the adapter's configuration.
const enetNote = "ENet 1.3.17 (Debian libenet-dev, C, through cgo), no encryption (ENet has none), one channel, default host settings (256 KiB socket buffers, 64 KiB reliable window); reliable = ENET_PACKET_FLAG_RELIABLE (ENet fragments large messages), unreliable = ENET_PACKET_FLAG_UNSEQUENCED; back-pressure: the sender waits while ENet holds more than 1 MiB or 2,048 of its packets; host serviced every 16 KiB sent, flushed after each send under NoDelay; fake loss drops received datagrams in ENet's intercept hook"
