"""A software switch node: any `DataPlane` (the reference model by default) on real interfaces.

Runs inside a switch node's namespace as `python -m pyctl.net.swnode --node NODE.json --port
1=IFNAME ...`: frames received on each interface (AF_PACKET) go through the data plane, and its
outputs are sent on the interfaces of their ports. Sending through a packet socket passes the
interface's qdisc, so link shaping (HTB) and queues apply. The kernel of the namespace must not
route the same frames: the runner turns IPv6/IPv4 forwarding off there.

Slow (tens of thousands of packets per second) but exact: it is the contract itself on the
wire, useful to debug a topology and as the oracle beside the eBPF nodes.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pyctl.errors import ICPNError
from pyctl.model import PacketContext, node_from_dict
from pyctl.targets import open_dataplane

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


def open_port(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # not our own transmissions
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((ifname, 0))
    sock.setblocking(False)
    return sock


def serve(node_file: Path, ports: dict[int, str], dataplane: str, stats: Path | None) -> int:
    node = node_from_dict(json.loads(node_file.read_text()), str(node_file))
    missing = {p.index for p in node.ports} - set(ports)
    if missing:
        raise ICPNError(f"--port: no interface given for port(s) {sorted(missing)}")
    socks = {port: open_port(name) for port, name in ports.items()}
    by_fd = {s.fileno(): port for port, s in socks.items()}
    counts = {"in": 0, "out": 0, "dropped": 0}
    drops: dict[str, int] = {}
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    with open_dataplane(dataplane) as dp:
        dp.configure(node)
        print(f"swnode {node.name}: {dataplane} on {ports}", flush=True)
        while running:
            for fd, _ in poller.poll(200):
                port = by_fd[fd]
                for _ in range(64):  # drain a burst before polling again
                    try:
                        frame = socks[port].recv(65536)
                    except BlockingIOError:
                        break
                    counts["in"] += 1
                    ctx = PacketContext(in_port=port, time_us=time.monotonic_ns() // 1000)
                    res = dp.process(frame, ctx)
                    if res.drop is not None:
                        counts["dropped"] += 1
                        drops[res.drop] = drops.get(res.drop, 0) + 1
                    for out in res.outputs:
                        try:
                            socks[out.port].send(out.frame)
                            counts["out"] += 1
                        except OSError:  # queue full (ENOBUFS): the frame is lost, as on a wire
                            drops["tx-full"] = drops.get("tx-full", 0) + 1
    if stats is not None:
        stats.write_text(json.dumps({"counts": counts, "drops": drops}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyctl.net.swnode", description=__doc__)
    ap.add_argument("--node", required=True, type=Path, help="node configuration (JSON)")
    ap.add_argument("--port", action="append", default=[], metavar="N=IFNAME")
    ap.add_argument("--dataplane", default="reference")
    ap.add_argument("--stats", type=Path, help="JSON counters written on exit")
    args = ap.parse_args(argv)
    ports: dict[int, str] = {}
    for spec in args.port:
        num, _, name = spec.partition("=")
        if not num.isdigit() or not name:
            print(f"swnode: --port {spec!r} is not N=IFNAME", file=sys.stderr)
            return 2
        ports[int(num)] = name
    try:
        return serve(args.node, ports, args.dataplane, args.stats)
    except ICPNError as e:
        print(f"swnode: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
