"""A software switch node: any `DataPlane` (the reference model by default) on real interfaces.

Runs inside a switch node's namespace as `python -m pyctl.net.swnode --node NODE.json --port
1=IFNAME ...`: frames received on each interface (AF_PACKET) go through the data plane, and its
outputs are sent on the interfaces of their ports. Sending through a packet socket passes the
interface's qdisc, so link shaping (HTB) and queues apply. The kernel of the namespace must not
route the same frames: the runner turns IPv6/IPv4 forwarding off there.

Slow (tens of thousands of packets per second) but exact: it is the contract itself on the
wire, useful to debug a topology and as the oracle beside the eBPF nodes. A frame the model
drops as `pfc-held` (its egress port paused for its priority) is held and retried in order
until the pause ends, so a PFC pause loses nothing (a held frame goes through the pipeline again
when retried: its elephant and IFIT counters count it once more).
"""

from __future__ import annotations

import argparse
import json
import random
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pyctl.errors import ICPNError
from pyctl.model import PacketContext, node_from_dict
from pyctl.targets import open_dataplane
from pyctl.targets.base import Result

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23


@dataclass
class VirtualQueues:
    """Per-port egress queues drained at each port's line rate: what ECN (queue depth) and PFC
    (ingress occupancy per priority) read, as the eBPF data plane models them too."""

    rates: dict[int, float]  # port -> bits per second
    queues: dict[int, deque[tuple[float, int, int, int]]] = field(default_factory=dict)
    bytes: dict[int, int] = field(default_factory=dict)
    ingress: dict[tuple[int, int], int] = field(default_factory=dict)
    last_departure: dict[int, float] = field(default_factory=dict)

    def drain(self, now: float) -> None:
        for port, q in self.queues.items():
            while q and q[0][0] <= now:
                _, n, in_port, prio = q.popleft()
                self.bytes[port] -= n
                self.ingress[(in_port, prio)] -= n

    def context(self, in_port: int, now: float) -> PacketContext:
        self.drain(now)
        return PacketContext(
            in_port=in_port,
            time_us=int(now * 1e6),
            egress_queue_bytes=dict(self.bytes),
            egress_queue_packets={p: len(q) for p, q in self.queues.items()},
            ingress_queue_bytes=dict(self.ingress),
            rand32=random.getrandbits(32),
        )

    def enqueue(self, port: int, nbytes: int, in_port: int, prio: int, now: float) -> None:
        rate = self.rates.get(port)
        if not rate:
            return  # an unshaped port never queues
        start = max(now, self.last_departure.get(port, 0.0))
        departure = start + nbytes * 8 / rate
        self.last_departure[port] = departure
        self.queues.setdefault(port, deque()).append((departure, nbytes, in_port, prio))
        self.bytes[port] = self.bytes.get(port, 0) + nbytes
        self.ingress[(in_port, prio)] = self.ingress.get((in_port, prio), 0) + nbytes


def _priority(frame: bytes) -> int:
    """DSCP >> 3 of an IPv6/IPv4 frame (PFC priority); 0 for anything else."""
    if len(frame) > 16 and frame[12:14] == b"\x86\xdd":
        return ((frame[14] & 0x0F) << 4 | frame[15] >> 4) >> 5
    if len(frame) > 16 and frame[12:14] == b"\x08\x00":
        return frame[15] >> 5
    return 0


def _ecn(frame: bytes) -> int:
    if len(frame) > 16 and frame[12:14] == b"\x86\xdd":
        return (frame[15] >> 4) & 0b11
    if len(frame) > 16 and frame[12:14] == b"\x08\x00":
        return frame[15] & 0b11
    return 0


def _emit(
    res: Result,
    frame: bytes,
    in_port: int,
    now: float,
    socks: dict[int, socket.socket],
    vq: VirtualQueues,
    counts: dict[str, int],
    drops: dict[str, int],
) -> None:
    """Count a result and send its outputs (through each port's qdisc)."""
    if res.drop is not None and res.drop != "pfc-held":
        counts["dropped"] += 1
        drops[res.drop] = drops.get(res.drop, 0) + 1
    for out in res.outputs:
        if out.frame[12:14] == b"\x88\x08":
            counts["pfc_frames"] += 1
        elif _ecn(out.frame) == 3 and _ecn(frame) != 3:
            counts["ce_marked"] += 1
        vq.enqueue(out.port, len(out.frame), in_port, _priority(frame), now)
        try:
            socks[out.port].send(out.frame)
            counts["out"] += 1
        except OSError:  # queue full (ENOBUFS): the frame is lost, as on a wire
            drops["tx-full"] = drops.get("tx-full", 0) + 1


def open_port(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # not our own transmissions
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((ifname, 0))
    sock.setblocking(False)
    return sock


def open_control(path: Path) -> socket.socket:
    """The node's control socket: a client connects, sends one JSON request and reads one JSON
    answer (`answer_control`)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    sock.bind(str(path))
    sock.listen(8)
    sock.setblocking(False)
    return sock


def _receive_all(conn: socket.socket) -> bytes:
    """A client's whole request (it shuts its side down after sending)."""
    return b"".join(iter(lambda: conn.recv(65536), b""))


def _answer(request: Any, dp: Any, ports: set[int]) -> Any:
    """{"counters": [FlowMonID, ...]} -> the data plane's IFIT running totals of those,
    [[FlowMonID, colour, packets, bytes], ...]; {"configure": NODE} -> the node's new tables
    in this process (the controller's re-push: no restart), {"ok": true} or {"error": why}."""
    if "configure" in request:
        try:
            node = node_from_dict(request["configure"], "configure")
            if {p.index for p in node.ports} != ports:
                return {"error": "the ports differ: restart the switch"}
            dp.configure(node)
        except ICPNError as e:
            return {"error": str(e)}
        return {"ok": True}
    wanted = set(request.get("counters") or [])
    read = getattr(dp, "counters", None)
    totals = read() if callable(read) else {}
    return [[f, c, p, b] for (f, c), (p, b) in totals.items() if f in wanted]


def answer_control(listener: socket.socket, dp: Any, ports: set[int]) -> None:
    """Answer the clients waiting on the control socket, one JSON request each."""
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(1.0)  # a client sends its request at once
            try:
                request = json.loads(_receive_all(conn) or b"{}")
                conn.sendall(json.dumps(_answer(request, dp, ports)).encode())
            except (OSError, ValueError, AttributeError):
                continue  # a client that went away or sent garbage: the next one


def serve(
    node_file: Path,
    ports: dict[int, str],
    dataplane: str,
    stats: Path | None,
    rates: dict[int, float] | None = None,
    control: Path | None = None,
) -> int:
    node = node_from_dict(json.loads(node_file.read_text()), str(node_file))
    missing = {p.index for p in node.ports} - set(ports)
    if missing:
        raise ICPNError(f"--port: no interface given for port(s) {sorted(missing)}")
    socks = {port: open_port(name) for port, name in ports.items()}
    by_fd = {s.fileno(): port for port, s in socks.items()}
    counts = {"in": 0, "out": 0, "dropped": 0, "ce_marked": 0, "pfc_frames": 0, "held": 0}
    vq = VirtualQueues(rates or {})
    drops: dict[str, int] = {}
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    held: deque[tuple[bytes, int]] = deque()  # frames a PFC pause holds (lossless), in order
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    listener = open_control(control) if control is not None else None
    if listener is not None:
        poller.register(listener.fileno(), select.POLLIN)
    with open_dataplane(dataplane) as dp:
        dp.configure(node)
        print(f"swnode {node.name}: {dataplane} on {ports}", flush=True)
        while running:
            while held:  # retry the held frames, oldest first, until one is still paused
                frame, in_port = held[0]
                now = time.monotonic()
                res = dp.process(frame, vq.context(in_port, now))
                if res.drop == "pfc-held":
                    break
                held.popleft()
                _emit(res, frame, in_port, now, socks, vq, counts, drops)
            for fd, _ in poller.poll(2 if held else 50):
                if listener is not None and fd == listener.fileno():
                    answer_control(listener, dp, set(ports))
                    continue
                port = by_fd[fd]
                for _ in range(64):  # drain a burst before polling again
                    try:
                        frame = socks[port].recv(65536)
                    except BlockingIOError:
                        break
                    counts["in"] += 1
                    now = time.monotonic()
                    if held:  # keep the order behind frames already held
                        held.append((frame, port))
                        continue
                    res = dp.process(frame, vq.context(port, now))
                    if res.drop == "pfc-held":
                        counts["held"] += 1
                        held.append((frame, port))
                        _emit(res, frame, port, now, socks, vq, counts, drops)  # PFC frames
                        continue
                    _emit(res, frame, port, now, socks, vq, counts, drops)
    if listener is not None:
        listener.close()
    if stats is not None:
        stats.write_text(json.dumps({"counts": counts, "drops": drops}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyctl.net.swnode", description=__doc__)
    ap.add_argument("--node", required=True, type=Path, help="node configuration (JSON)")
    ap.add_argument("--port", action="append", default=[], metavar="N=IFNAME")
    ap.add_argument("--dataplane", default="reference")
    ap.add_argument("--stats", type=Path, help="JSON counters written on exit")
    ap.add_argument("--control", type=Path, help="unix socket answering counter requests")
    ap.add_argument(
        "--rate", action="append", default=[], metavar="N=BPS", help="port N's line rate"
    )
    args = ap.parse_args(argv)
    ports: dict[int, str] = {}
    for spec in args.port:
        num, _, name = spec.partition("=")
        if not num.isdigit() or not name:
            print(f"swnode: --port {spec!r} is not N=IFNAME", file=sys.stderr)
            return 2
        ports[int(num)] = name
    rates: dict[int, float] = {}
    for spec in args.rate:
        num, _, bps = spec.partition("=")
        try:
            rates[int(num)] = float(bps)
        except ValueError:
            print(f"swnode: --rate {spec!r} is not N=BPS", file=sys.stderr)
            return 2
    try:
        return serve(args.node, ports, args.dataplane, args.stats, rates, args.control)
    except ICPNError as e:
        print(f"swnode: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
