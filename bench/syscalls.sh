#!/usr/bin/env bash
# syscalls.sh PEER WORKLOAD [OUTDIR]: run one netbench server and client
# (two processes, 127.0.0.1) under `perf stat` with the kernel's syscall
# tracepoints, and print the syscalls per data message of each side.
# Needs perf with access to tracepoints (root, or perf_event_paranoid <= -1)
# and ./netbench (go build -o netbench ./cmd/netbench). Extra server flags
# (for example --cpuprofile FILE) may be given in SERVER_FLAGS, extra
# client flags in CLIENT_FLAGS.
set -euo pipefail
peer=$1 wl=$2 out=${3:-$(mktemp -d)}
mkdir -p "$out"
ev=raw_syscalls:sys_enter
for s in sendmsg sendmmsg sendto recvmsg recvmmsg recvfrom epoll_pwait futex nanosleep poll ppoll write read sched_yield; do
	ev+=,syscalls:sys_enter_$s
done
tag=$out/$peer-$wl
: >"$tag.srv.out"
# shellcheck disable=SC2086
perf stat -e "$ev" -o "$tag.srv.stat" ./netbench server --peer "$peer" --workload "$wl" ${SERVER_FLAGS:-} >"$tag.srv.out" 2>"$tag.srv.err" &
srv=$!
for _ in $(seq 100); do [ -s "$tag.srv.out" ] && break; sleep 0.05; done
addr=$(head -1 "$tag.srv.out" | cut -d' ' -f2)
# shellcheck disable=SC2086
perf stat -e "$ev" -o "$tag.cli.stat" ./netbench client --peer "$peer" --workload "$wl" --addr "$addr" ${CLIENT_FLAGS:-} >"$tag.cli.json" 2>"$tag.cli.err"
wait "$srv"
python3 - "$tag" <<'PY'
import json, re, sys
tag = sys.argv[1]
r = json.loads(open(tag + ".cli.json").read().strip().splitlines()[-1])
n = r.get("sent") or 1
fig = f"{r['msgs_per_sec']:.0f} msg/s" if r.get("msgs_per_sec") else f"RTT p50 {r.get('rtt_p50_us', 0):.1f} µs"
print(f"{r['peer']} {r['workload']}: {n} messages sent, {fig}, {r.get('lost_pct', 0):.2f}% lost")
for side, name in (("srv", "server"), ("cli", "client")):
    parts = []
    for line in open(f"{tag}.{side}.stat"):
        m = re.match(r"\s*([\d,]+)\s+(\S+:\S+)", line)
        if m and int(m.group(1).replace(",", "")):
            ev = m.group(2).split(":")[1].replace("sys_enter_", "").replace("sys_enter", "all")
            parts.append(f"{ev} {int(m.group(1).replace(',', '')) / n:.3f}")
    print(f"  {name} syscalls per message: " + ", ".join(parts))
PY
