"""RoCEv2-like traffic for the emulated hosts: a paced UDP sender and a counting receiver.

Run inside Mininet hosts as `python -m pyctl.net.traffic send|recv ...`; each writes its figures
as JSON to `--stats` when it ends (duration over, or SIGTERM).

* The sender puts a 12-octet InfiniBand BTH (opcode RC SEND-only, the flow's destination QP, a
  PSN) at the start of every UDP payload to port 4791, marks ECT(0) in the traffic class and,
  with `--mark`, sets SO_MARK so a host-side APN program can tag the flow. It reacts to CNPs
  DCQCN-style: each CNP halves the rate (not below 1/64 of the target), which then recovers by
  1/16 of the target every 5 ms without one.
* The receiver counts packets, bytes and CE marks per (source, QP) from the received traffic
  class (IPV6_RECVTCLASS), and answers CE-marked packets with a CNP (BTH opcode 0x81, BECN set)
  sent back to the packet's source address and port, at most one per QP every 50 us.
* With `--pfc-iface`, the sender also honours PFC pause frames for its priority (TC >> 5)
  arriving on its interface: it holds its packets for the pause time (quanta of 512 bit times
  at `--line-rate-mbit`) or until a time-0 frame resumes it.
  Real RoCEv2 sends CNPs to port 4791 and demultiplexes by QP; a kernel UDP socket cannot, so
  the CNP goes to the sender's own port (a documented simplification).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from pyctl import constants as C

BTH = struct.Struct("!BBHII")  # opcode, flags(SE M PadCnt TVer), P_Key, dest QP (24) , PSN (24)
OPCODE_SEND_ONLY = 0x04
OPCODE_CNP = 0x81
BECN = 0x40  # in the byte after the QP's reserved byte: FECN(7) BECN(6)
ECT0 = 0b10
CE = 0b11
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67
SO_MARK = 36
CNP_MIN_GAP_S = 50e-6


def bth(opcode: int, qp: int, psn: int, becn: bool = False) -> bytes:
    """Opcode, flags 0, P_Key 0xFFFF, then `reserved(8) | dest QP(24)` and `A | reserved(7) |
    PSN(24)`; a CNP carries BECN in the FECN/BECN bits of the reserved octet before the QP."""
    qp_word = ((BECN if becn else 0) << 24) | (qp & 0xFFFFFF)
    return BTH.pack(opcode, 0, 0xFFFF, qp_word, psn & 0xFFFFFF)


@dataclass
class SenderStats:
    dst: str
    qp: int
    packets: int = 0
    bytes: int = 0
    cnps: int = 0
    pfc_pauses: int = 0
    seconds: float = 0.0
    rate_samples: list[tuple[float, float]] = field(default_factory=list)  # (t, Mbit/s)


@dataclass
class FlowCount:
    packets: int = 0
    bytes: int = 0
    ce: int = 0
    first: float = 0.0
    last: float = 0.0


class Stopper:
    """Ends the loop at the deadline or on SIGTERM/SIGINT (the process is owned by this CLI)."""

    def __init__(self, duration: float) -> None:
        self.deadline = time.monotonic() + duration
        self.stopped = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def running(self) -> bool:
        return not self.stopped and time.monotonic() < self.deadline


class PFCListener:
    """Honours PFC frames (IEEE 802.1Qbb) received on the sending interface for our priority:
    the sender holds its packets while paused (a Linux veth would ignore them)."""

    def __init__(self, ifname: str, priority: int, line_rate_bps: float) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(C.PFC_ETHERTYPE))
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)
        self.priority = priority
        self.rate = line_rate_bps
        self.paused_until = 0.0
        self.pauses = 0

    def poll(self, now: float) -> bool:
        """Read pending PFC frames; True while our priority is paused."""
        try:
            while True:
                frame = self.sock.recv(128)
                if len(frame) < 34 or struct.unpack_from("!H", frame, 14)[0] != C.PFC_OPCODE:
                    continue
                vector = struct.unpack_from("!H", frame, 16)[0]
                if vector >> self.priority & 1:
                    quanta = struct.unpack_from("!H", frame, 18 + 2 * self.priority)[0]
                    self.paused_until = now + quanta * 512 / self.rate
                    self.pauses += quanta > 0
        except BlockingIOError:
            pass
        return now < self.paused_until


def send(args: argparse.Namespace) -> SenderStats:
    family = socket.AF_INET6 if ":" in args.dst else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, args.tclass)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, args.tclass)
    if args.mark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, args.mark)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", args.sport))
    sock.setblocking(False)
    payload_len = max(BTH.size, args.size)
    target = args.rate_mbit * 1e6
    rate = target
    stats = SenderStats(args.dst, args.qp)
    pfc = (
        PFCListener(args.pfc_iface, args.tclass >> 5, args.line_rate_mbit * 1e6)
        if args.pfc_iface
        else None
    )
    stop = Stopper(args.duration)
    start = last_cnp = last_sample = time.monotonic()
    next_send = start
    psn = 0
    while stop.running():
        now = time.monotonic()
        try:
            while True:
                data = sock.recv(2048)
                if len(data) >= BTH.size and data[0] == OPCODE_CNP:
                    stats.cnps += 1
                    rate = max(target / 64, rate / 2)
                    last_cnp = now
        except BlockingIOError:
            pass
        if now - last_cnp > 0.005 and rate < target:
            rate = min(target, rate + target / 16)
            last_cnp = now
        if now - last_sample >= 0.1:
            stats.rate_samples.append((round(now - start, 3), round(rate / 1e6, 3)))
            last_sample = now
        if pfc is not None and pfc.poll(now):
            time.sleep(0.0002)
            next_send = max(next_send, time.monotonic())
            continue
        if now < next_send:
            time.sleep(min(next_send - now, 0.001))
            continue
        packet = bth(OPCODE_SEND_ONLY, args.qp, psn) + bytes(payload_len - BTH.size)
        try:
            sock.sendto(packet, (args.dst, args.dport))
        except (BlockingIOError, OSError):
            next_send = now + 0.0005  # the qdisc is full or the route is gone: back off briefly
            continue
        psn += 1
        stats.packets += 1
        stats.bytes += len(packet)
        next_send = max(next_send + len(packet) * 8 / rate, now - 0.01)
    stats.seconds = round(time.monotonic() - start, 3)
    stats.pfc_pauses = pfc.pauses if pfc is not None else 0
    return stats


def recv(args: argparse.Namespace) -> dict[str, FlowCount]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    sock.bind(("::", args.port))
    sock.settimeout(0.1)
    flows: dict[str, FlowCount] = {}
    last_cnp: dict[int, float] = {}
    stop = Stopper(args.duration)
    while stop.running():
        try:
            data, anc, _flags, addr = sock.recvmsg(65536, socket.CMSG_SPACE(4))
        except TimeoutError:
            continue
        now = time.monotonic()
        tclass = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS and len(value) >= 4:
                tclass = struct.unpack("i", value[:4])[0]
        qp = BTH.unpack_from(data)[3] & 0xFFFFFF if len(data) >= BTH.size else 0
        key = f"{addr[0]}/{qp:#x}"
        fc = flows.setdefault(key, FlowCount(first=now))
        fc.packets += 1
        fc.bytes += len(data)
        fc.last = now
        if tclass & 0b11 == CE:
            fc.ce += 1
            if now - last_cnp.get(qp, 0.0) >= CNP_MIN_GAP_S:
                last_cnp[qp] = now
                sock.sendto(bth(OPCODE_CNP, qp, 0, becn=True) + bytes(16), addr[:2])
    return flows


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pyctl.net.traffic", description=__doc__)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send", help="paced RoCEv2-like UDP flow")
    s.add_argument("--dst", required=True)
    s.add_argument("--dport", type=int, default=C.ROCEV2_UDP_PORT)
    s.add_argument("--sport", type=int, default=0)
    s.add_argument("--qp", type=lambda x: int(x, 0), default=0x11)
    s.add_argument("--rate-mbit", type=float, default=10.0)
    s.add_argument("--size", type=int, default=1000, help="UDP payload octets (BTH included)")
    s.add_argument("--tclass", type=lambda x: int(x, 0), default=ECT0)
    s.add_argument("--mark", type=lambda x: int(x, 0), default=0, help="SO_MARK (host APN)")
    s.add_argument("--duration", type=float, default=5.0)
    s.add_argument("--pfc-iface", help="honour PFC pause frames received on this interface")
    s.add_argument("--line-rate-mbit", type=float, default=1000.0, help="for PFC pause quanta")
    s.add_argument("--stats", required=True, help="JSON file written at the end")
    r = sub.add_parser("recv", help="count packets, bytes and CE per (source, QP); answer CNPs")
    r.add_argument("--port", type=int, default=C.ROCEV2_UDP_PORT)
    r.add_argument("--duration", type=float, default=10.0)
    r.add_argument("--stats", required=True)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "send":
        if not 0 < args.rate_mbit <= 100_000:
            print(
                f"traffic: --rate-mbit {args.rate_mbit} is out of range (0, 100000]",
                file=sys.stderr,
            )
            return 2
        result: object = asdict(send(args))
    else:
        result = {k: asdict(v) for k, v in recv(args).items()}
    Path(args.stats).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
