/*
 * w4.c: W4 (ping-pong of a 64 B reliable message, 1,000 warm-up and
 * 10,000 timed rounds) over ENet in plain C, each side blocking in
 * enet_host_service and flushing after each send, to check the cgo
 * adapter's (peer/enet_cgo.go) round trip against ENet's own.
 *
 *   gcc -O2 -o w4 w4.c -lenet
 *   ./w4 server PORT & ./w4 client PORT
 */
#include <enet/enet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
	if (argc < 3 || enet_initialize() != 0) return 2;
	ENetEvent ev;
	ENetAddress a;
	enet_address_set_host_ip(&a, "127.0.0.1");
	a.port = (enet_uint16)atoi(argv[2]);
	if (strcmp(argv[1], "server") == 0) {
		ENetHost *h = enet_host_create(&a, 1, 1, 0, 0);
		for (;;) {
			if (enet_host_service(h, &ev, 1000) <= 0 || ev.type != ENET_EVENT_TYPE_RECEIVE) continue;
			if (ev.packet->dataLength == 8) return 0; /* end marker */
			enet_peer_send(ev.peer, 0, enet_packet_create(ev.packet->data, ev.packet->dataLength, ENET_PACKET_FLAG_RELIABLE));
			enet_host_flush(h);
			enet_packet_destroy(ev.packet);
		}
	}
	ENetHost *h = enet_host_create(NULL, 1, 1, 0, 0);
	ENetPeer *p = enet_host_connect(h, &a, 1, 0);
	while (!(enet_host_service(h, &ev, 100) > 0 && ev.type == ENET_EVENT_TYPE_CONNECT))
		;
	static double rtt[10000];
	char msg[64] = {0};
	for (int i = 0; i < 11000; i++) {
		double t0 = now();
		enet_peer_send(p, 0, enet_packet_create(msg, sizeof msg, ENET_PACKET_FLAG_RELIABLE));
		enet_host_flush(h);
		for (;;) {
			if (enet_host_service(h, &ev, 1) > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) {
				enet_packet_destroy(ev.packet);
				break;
			}
		}
		if (i >= 1000) rtt[i - 1000] = (now() - t0) * 1e6;
	}
	qsort(rtt, 10000, sizeof rtt[0], cmp);
	printf("C enet W4: p50 %.1f µs, p99 %.1f µs\n", rtt[4999], rtt[9899]);
	enet_peer_send(p, 0, enet_packet_create(msg, 8, ENET_PACKET_FLAG_RELIABLE));
	for (double t = now(); now() - t < 0.2;) enet_host_service(h, &ev, 10);
	return 0;
}
