/*
 * w1.c: W1 (reliable 64 B messages, 2 s) over ENet in plain C, with the
 * same back-pressure and servicing as the cgo adapter (peer/enet_cgo.go),
 * to check that the adapter does not slow ENet down.
 *
 *   gcc -O2 -o w1 w1.c -lenet
 *   ./w1 server PORT & ./w1 client PORT [SIZE]
 *
 * The server prints the rate from 300 ms after the first message to the
 * end marker (an 8-byte message), as netbench measures it.
 */
#include <enet/enet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Bytes and packets ENet holds (queued or unacknowledged). */
static size_t outstanding, packets;

static void freed(ENetPacket *p) {
	outstanding -= p->dataLength;
	packets--;
}

static int full(void) { return outstanding > (1 << 20) || packets > 2048; }

static void drain(ENetHost *h) {
	ENetEvent ev;
	while (enet_host_service(h, &ev, 0) > 0)
		if (ev.type == ENET_EVENT_TYPE_RECEIVE) enet_packet_destroy(ev.packet);
}

int main(int argc, char **argv) {
	if (argc < 3 || enet_initialize() != 0) return 2;
	size_t size = argc > 3 ? (size_t)atoi(argv[3]) : 64;
	ENetEvent ev;
	ENetAddress a;
	enet_address_set_host_ip(&a, "127.0.0.1");
	a.port = (enet_uint16)atoi(argv[2]);
	if (strcmp(argv[1], "server") == 0) {
		ENetHost *h = enet_host_create(&a, 1, 1, 0, 0);
		uint64_t n = 0, n0 = 0;
		double first = 0, start = 0;
		int in = 0;
		for (;;) {
			if (enet_host_service(h, &ev, 1) <= 0 || ev.type != ENET_EVENT_TYPE_RECEIVE) continue;
			size_t len = ev.packet->dataLength;
			enet_packet_destroy(ev.packet);
			if (len == 8) {
				printf("C enet W1 size %zu: %.0f msg/s (%llu messages)\n", size, (n - n0) / (now() - start), (unsigned long long)n);
				return 0;
			}
			if (first == 0) first = now();
			if (!in && (n & 255) == 0 && now() - first >= 0.3) {
				in = 1;
				start = now();
				n0 = n;
			}
			n++;
		}
	}
	ENetHost *h = enet_host_create(NULL, 1, 1, 0, 0);
	ENetPeer *p = enet_host_connect(h, &a, 1, 0);
	while (!(enet_host_service(h, &ev, 100) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT))
		;
	static char msg[1 << 19];
	double end = now() + 2;
	uint64_t seq = 0;
	size_t since = 0;
	while ((seq & 63) != 0 || now() < end) {
		memcpy(msg, &seq, 8);
		ENetPacket *pk = enet_packet_create(msg, size, ENET_PACKET_FLAG_RELIABLE);
		pk->freeCallback = freed;
		outstanding += size;
		packets++;
		enet_peer_send(p, 0, pk);
		seq++;
		if ((since += size) >= 16384) {
			drain(h);
			since = 0;
		}
		while (full()) {
			drain(h);
			if (full()) enet_host_service(h, &ev, 1);
		}
	}
	enet_peer_send(p, 0, enet_packet_create(&seq, 8, ENET_PACKET_FLAG_RELIABLE));
	for (double t = now(); now() - t < 0.5;) enet_host_service(h, &ev, 10);
	return 0;
}
